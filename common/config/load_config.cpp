#include "common/config/load_config.hpp"
#include "common/log/log.hpp"  // parse_level

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace csk {

namespace {

constexpr std::size_t max_arg_values = 100000;  // all args together; bounds alias expansion
constexpr std::int64_t u32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::int64_t int_max = std::numeric_limits<int>::max();

// --- scalars (YAML 1.2 core schema) ---------------------------------------------

bool all_of(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
bool is_dec(char c) { return c >= '0' && c <= '9'; }
bool is_oct(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool is_null_text(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool is_float_text(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t int_digits = 0;
  while (i < s.size() && is_dec(s[i])) ++i, ++int_digits;
  std::size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_dec(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && is_dec(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

double to_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec == std::errc::result_out_of_range) {
    d = std::strtod(std::string(s).c_str(), nullptr);  // gives +-HUGE_VAL or 0
  }
  return d;
}

// Unsigned digits in `base`; integer when it fits int64, otherwise a real.
lua_value unsigned_number(std::string_view digits, int base, bool negative) {
  std::uint64_t u = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u, base);
  if (ec == std::errc{}) {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!negative && u <= max) return lua_value(static_cast<std::int64_t>(u));
    if (negative && u <= max + 1) return lua_value(static_cast<std::int64_t>(0 - u));
  }
  if (base == 10) {
    const double d = to_double(digits);
    return lua_value(negative ? -d : d);
  }
  double d = 0;
  for (char c : digits) {
    const int v = is_dec(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    d = d * base + v;
  }
  return lua_value(negative ? -d : d);
}

lua_value resolve_plain(const std::string& text) {
  std::string_view s = text;
  if (is_null_text(s)) return lua_value();
  if (s == "true" || s == "True" || s == "TRUE") return lua_value(true);
  if (s == "false" || s == "False" || s == "FALSE") return lua_value(false);
  {
    std::string_view body = s;
    bool negative = false;
    if (!body.empty() && (body.front() == '-' || body.front() == '+')) {
      negative = body.front() == '-';
      body.remove_prefix(1);
    }
    if (all_of(body, is_dec)) return unsigned_number(body, 10, negative);
  }
  if (s.starts_with("0x") && all_of(s.substr(2), is_hex)) return unsigned_number(s.substr(2), 16, false);
  if (s.starts_with("0o") && all_of(s.substr(2), is_oct)) return unsigned_number(s.substr(2), 8, false);
  if (is_float_text(s)) return lua_value(to_double(s));
  std::string_view inf = s;
  bool negative_inf = false;
  if (!inf.empty() && (inf.front() == '-' || inf.front() == '+')) {
    negative_inf = inf.front() == '-';
    inf.remove_prefix(1);
  }
  if (inf == ".inf" || inf == ".Inf" || inf == ".INF") {
    const double d = std::numeric_limits<double>::infinity();
    return lua_value(negative_inf ? -d : d);
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return lua_value(std::numeric_limits<double>::quiet_NaN());
  return lua_value(text);
}

constexpr std::string_view core_tag = "tag:yaml.org,2002:";

// A scalar or null node as a lua_value; an error text for tags we do not understand.
result<lua_value, std::string> scalar_value(const YAML::Node& n) {
  if (n.IsNull()) return lua_value();
  const std::string& tag = n.Tag();
  if (tag == "!" || tag == std::string(core_tag) + "str") return lua_value(n.Scalar());
  lua_value v = resolve_plain(n.Scalar());
  if (tag.empty() || tag == "?") return v;
  const std::string_view expected = std::string_view(tag).starts_with(core_tag)
                                        ? std::string_view(tag).substr(core_tag.size())
                                        : std::string_view();
  const bool matches = (expected == "null" && v.is_nil()) || (expected == "bool" && v.is_boolean()) ||
                       (expected == "int" && v.is_integer()) ||
                       (expected == "float" && v.is_number());
  if (expected == "float" && v.is_integer()) return lua_value(static_cast<double>(v.as_integer()));
  if (matches) return v;
  if (expected == "null" || expected == "bool" || expected == "int" || expected == "float") {
    return unexpected{"\"" + n.Scalar() + "\" is not a valid !!" + std::string(expected)};
  }
  return unexpected{"unsupported tag " + tag};
}

std::string quoted(const std::string& s) {
  constexpr std::size_t max = 40;
  if (s.size() <= max) return "\"" + s + "\"";
  return "\"" + s.substr(0, max) + "...\"";
}

// "a map", "null", "integer 5", "string \"x\"": what a node is, for messages.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Undefined: return "nothing";
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: break;
  }
  auto v = scalar_value(n);
  if (!v) return "a scalar with " + v.error();
  switch (v->type()) {
    case lua_type::nil: return "null";
    case lua_type::boolean: return "boolean " + n.Scalar();
    case lua_type::integer: return "integer " + n.Scalar();
    case lua_type::real: return "number " + n.Scalar();
    default: return "string " + quoted(n.Scalar());
  }
}

// 1-based line of a node, or 0 when yaml-cpp has no position for it.
int line_of(const YAML::Node& n) {
  if (!n.IsDefined()) return 0;
  const YAML::Mark m = n.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

bool valid_service_name(const std::string& s) {
  return s.size() >= 2 && s.size() <= 255 && (s.front() == '.' || s.front() == '@');
}

// --- the loader ------------------------------------------------------------------

struct problem {
  int line;
  std::string text;
};

// A value in a config map: its path, node, and the line to blame when the value
// itself has no useful position (an empty value).
struct field {
  std::string path;
  YAML::Node node;
  int key_line;

  int line() const {
    if (node.IsNull() || line_of(node) == 0) return key_line;
    return line_of(node);
  }
};

class loader {
 public:
  node_config load(std::string_view text) {
    node_config config;
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.empty()) return config;
    if (docs.size() > 1) error("(document)", line_of(docs[1]), "only one YAML document is allowed");
    const YAML::Node& root = docs.front();
    if (root.IsNull()) return config;
    if (!root.IsMap()) {
      error("(document)", line_of(root), "expected a map, got " + describe(root));
      return config;
    }
    for_each_key(root, "", [&](const std::string& key, const field& f) {
      if (key == "runtime") return read_runtime(f, config.runtime), true;
      if (key == "log") return read_log(f, config.log), true;
      if (key == "services") return read_services(f, config.services), true;
      return false;
    });
    return config;
  }

  std::string report() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const problem& a, const problem& b) { return a.line < b.line; });
    std::string out;
    for (const auto& p : problems_) {
      if (!out.empty()) out += '\n';
      out += p.text;
    }
    return out;
  }

  bool failed() const { return !problems_.empty(); }

  void error(const std::string& path, int line, const std::string& message) {
    std::string text = path;
    if (line > 0) text += " (line " + std::to_string(line) + ")";
    text += ": " + message;
    problems_.push_back({line, std::move(text)});
  }

 private:
  // Calls on_key(key, field) for each entry of a config map; on_key returns false for
  // keys it does not know. Reports non-string keys, duplicates and unknown keys.
  template <class F>
  void for_each_key(const YAML::Node& map, const std::string& prefix, F&& on_key) {
    std::vector<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      const int key_line = line_of(key);
      if (!key.IsScalar()) {
        error(prefix.empty() ? "(document)" : prefix, key_line,
              "keys must be strings, got " + describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        error(path, key_line, "duplicate key");
        continue;
      }
      seen.push_back(name);
      if (!on_key(name, field{path, it->second, key_line})) error(path, key_line, "unknown key");
    }
  }

  // A section that must be a map (null = empty, all defaults). Returns false otherwise.
  bool expect_map(const field& f) {
    if (f.node.IsMap()) return true;
    if (!f.node.IsNull()) error(f.path, f.line(), "expected a map, got " + describe(f.node));
    return false;
  }

  bool expect_sequence(const field& f) {
    if (f.node.IsSequence()) return true;
    if (!f.node.IsNull()) error(f.path, f.line(), "expected a sequence, got " + describe(f.node));
    return false;
  }

  // Checks that f is a scalar of `type`; reports and returns nullopt otherwise.
  std::optional<lua_value> typed_scalar(const field& f, lua_type type, const char* expected) {
    if (f.node.IsScalar() || f.node.IsNull()) {
      auto v = scalar_value(f.node);
      if (!v) {
        error(f.path, f.line(), v.error());
        return std::nullopt;
      }
      if (v->type() == type) return std::move(v).value();
    }
    error(f.path, f.line(), std::string("expected ") + expected + ", got " + describe(f.node));
    return std::nullopt;
  }

  template <class T>
  void read_int(const field& f, T& out, std::int64_t min, std::int64_t max, const char* range) {
    auto v = typed_scalar(f, lua_type::integer, "an integer");
    if (!v) return;
    const std::int64_t i = v->as_integer();
    if (i < min || i > max) {
      error(f.path, f.line(), std::string(range) + ", got " + std::to_string(i));
      return;
    }
    out = static_cast<T>(i);
  }

  std::optional<std::string> string_value(const field& f) {
    auto v = typed_scalar(f, lua_type::string, "a string");
    if (!v) return std::nullopt;
    return std::move(v->as_string());
  }

  void read_string(const field& f, std::string& out) {
    if (auto v = string_value(f)) out = std::move(*v);
  }

  void read_bool(const field& f, bool& out) {
    if (auto v = typed_scalar(f, lua_type::boolean, "a boolean (true or false)")) out = v->as_boolean();
  }

  void read_runtime(const field& section, runtime_config& rt) {
    if (!expect_map(section)) return;
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "threads") {
        read_int(f, rt.threads, 0, 256, "must be between 1 and 256 (or 0: one per core)");
      } else if (key == "harbor") {
        read_int(f, rt.harbor, 0, 255, "must be between 0 and 255");
      } else if (key == "tick_ms") {
        read_int(f, rt.tick_ms, 1, 10, "must be between 1 and 10");
      } else if (key == "call_timeout_ms") {
        read_int(f, rt.call_timeout_ms, 1, u32_max, "must be between 1 and 4294967295");
      } else if (key == "mailbox_warn") {
        read_int(f, rt.mailbox_warn, 1, u32_max, "must be between 1 and 4294967295");
      } else if (key == "slow_handler_ms") {
        read_int(f, rt.slow_handler_ms, 1, u32_max, "must be between 1 and 4294967295");
      } else if (key == "shutdown_timeout_ms") {
        read_int(f, rt.shutdown_timeout_ms, 0, u32_max, "must be between 0 and 4294967295");
      } else {
        return false;
      }
      return true;
    });
  }

  void read_log(const field& section, log_config& log) {
    if (!expect_map(section)) return;
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "level") {
        if (auto level = string_value(f)) {
          bool ok = false;
          (void)parse_level(*level, ok);
          if (ok) {
            log.level = std::move(*level);
          } else {
            error(f.path, f.line(),
                  "must be one of trace, debug, info, warn, error, critical, off; got " + quoted(*level));
          }
        }
      } else if (key == "file") {
        read_string(f, log.file);
      } else if (key == "color") {
        read_bool(f, log.color);
      } else {
        return false;
      }
      return true;
    });
  }

  void read_services(const field& section, std::vector<service_config>& out) {
    if (!expect_sequence(section)) return;
    std::size_t index = 0;
    for (const auto& item : section.node) {
      const field f{section.path + "[" + std::to_string(index++) + "]", item, line_of(item)};
      out.push_back(read_service(f));
    }
  }

  service_config read_service(const field& f) {
    service_config svc;
    if (!f.node.IsMap()) {
      error(f.path, f.line(), "expected a map, got " + describe(f.node));
      return svc;
    }
    bool has_type = false;
    for_each_key(f.node, f.path, [&](const std::string& key, const field& v) {
      if (key == "type") {
        has_type = true;
        if (auto type = string_value(v)) {
          if (type->empty()) {
            error(v.path, v.line(), "must not be empty");
          } else {
            svc.type = std::move(*type);
          }
        }
      } else if (key == "name") {
        if (auto name = read_name(v)) svc.name = std::move(*name);
      } else if (key == "names") {
        if (expect_sequence(v)) {
          std::size_t i = 0;
          for (const auto& item : v.node) {
            const field n{v.path + "[" + std::to_string(i++) + "]", item, v.line()};
            if (auto name = read_name(n)) svc.names.push_back(std::move(*name));
          }
        }
      } else if (key == "instances") {
        read_int(v, svc.instances, 1, int_max, "must be between 1 and 2147483647");
      } else if (key == "args") {
        if (expect_sequence(v)) {
          std::size_t i = 0;
          for (const auto& item : v.node) {
            svc.args.push_back(to_lua(item, v.path + "[" + std::to_string(i++) + "]", v.line(), 0));
          }
        }
      } else {
        return false;
      }
      return true;
    });
    if (!has_type) error(f.path + ".type", f.line(), "required");
    return svc;
  }

  std::optional<std::string> read_name(const field& f) {
    auto v = string_value(f);
    if (!v) return std::nullopt;
    std::string name = std::move(*v);
    if (!valid_service_name(name)) {
      error(f.path, f.line(),
            "must start with '.' (local) or '@' (cluster) and be 2 to 255 bytes, got " + quoted(name));
      return std::nullopt;
    }
    auto [it, inserted] = names_.emplace(name, f.path);
    if (!inserted) {
      error(f.path, f.line(), "duplicate name " + quoted(name) + " (first at " + it->second + ")");
      return std::nullopt;
    }
    return name;
  }

  // YAML -> lua_value for service args. `depth` counts the sequences/maps around n.
  lua_value to_lua(const YAML::Node& n, const std::string& path, int fallback_line, int depth) {
    const int line = line_of(n) > 0 ? line_of(n) : fallback_line;
    if (++values_ > max_arg_values) {
      if (values_ == max_arg_values + 1) {
        error(path, line, "too many values in args (more than " + std::to_string(max_arg_values) + ")");
      }
      return lua_value();
    }
    if (n.IsNull() || n.IsScalar()) {
      auto v = scalar_value(n);
      if (!v) {
        error(path, line, v.error());
        return lua_value();
      }
      return std::move(v).value();
    }
    if (!n.IsSequence() && !n.IsMap()) return lua_value();
    if (depth >= max_arg_depth) {
      error(path, line, "nested deeper than " + std::to_string(max_arg_depth) + " levels");
      return lua_value();
    }
    lua_table t;
    if (n.IsSequence()) {
      std::size_t i = 0;
      for (const auto& item : n) {
        t.array.push_back(to_lua(item, path + "[" + std::to_string(i++) + "]", line, depth + 1));
      }
      return lua_value(std::move(t));
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node key_node = it->first;
      const std::string key_path =
          path + (key_node.IsScalar() ? "." + key_node.Scalar() : "[" + describe(key_node) + "]");
      const int key_line = line_of(key_node) > 0 ? line_of(key_node) : line;
      lua_value key = to_lua(key_node, key_path, line, depth + 1);
      lua_value value = to_lua(it->second, key_path, key_line, depth + 1);
      if (key.is_nil()) {
        error(key_path, key_line, "a table key cannot be null");
        continue;
      }
      if (key.is_real() && std::isnan(key.as_real())) {
        error(key_path, key_line, "a table key cannot be NaN");
        continue;
      }
      const bool duplicate = std::any_of(t.hash.begin(), t.hash.end(),
                                         [&](const auto& kv) { return kv.first == key; });
      if (duplicate) {
        error(key_path, key_line, "duplicate key");
        continue;
      }
      t.set(std::move(key), std::move(value));
    }
    return lua_value(std::move(t));
  }

  std::vector<problem> problems_;
  std::map<std::string, std::string> names_;  // service name -> path where first seen
  std::size_t values_ = 0;
};

std::string position(const YAML::Mark& m) {
  if (m.is_null()) return "";
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

}  // namespace

result<node_config, std::string> load_config_string(std::string_view yaml) {
  loader l;
  try {
    node_config config = l.load(yaml);
    if (!l.failed()) return config;
  } catch (const YAML::ParserException& e) {
    return unexpected{"syntax error" + position(e.mark) + ": " + e.msg};
  } catch (const YAML::Exception& e) {
    l.error("(document)", e.mark.is_null() ? 0 : e.mark.line + 1, e.msg);
  } catch (const std::exception& e) {
    l.error("(document)", 0, std::string("cannot load: ") + e.what());
  }
  return unexpected{l.report()};
}

result<node_config, std::string> load_config_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return unexpected{path + ": cannot open: " + std::generic_category().message(errno)};
  }
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) return unexpected{path + ": cannot read: " + std::generic_category().message(err)};
  return load_config_string(text);
}

}  // namespace csk
