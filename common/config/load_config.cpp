#include "common/config/load_config.hpp"
#include "common/config/cluster_names_lua.hpp"
#include "common/config/cluster_names_rules.hpp"
#include "common/config/gate_options.hpp"
#include "common/log/log.hpp"  // parse_level

#include <arpa/inet.h>  // inet_pton, inet_ntop: pure address parsing
#include <netinet/in.h>
#include <sys/stat.h>   // fstat: a node table's size before it is read

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
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

std::string quote(const std::string& s) {
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
    default: return "string " + quote(n.Scalar());
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

bool valid_node_name(std::string_view s) {
  return !s.empty() && s.size() <= 255 && !s.starts_with("__");
}

const char* const node_name_rule = "a node name must be 1 to 255 bytes and not start with \"__\"";

bool is_hostname_char(char c) {
  return is_dec(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool valid_ipv4(const std::string& s) {
  in_addr a{};
  return s.find('\0') == std::string::npos && ::inet_pton(AF_INET, s.c_str(), &a) == 1;
}

// Dotted IPv4, or DNS-style labels. A last label of digits only (which no top-level
// domain has) means the text was meant as IPv4, so "10.0.0.256" is not a hostname.
bool valid_host(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  const std::size_t last_dot = host.rfind('.');
  const std::string_view last_label = last_dot == std::string::npos
                                          ? std::string_view(host)
                                          : std::string_view(host).substr(last_dot + 1);
  if (all_of(last_label, is_dec)) return valid_ipv4(host);
  std::string_view rest = host;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63 || !all_of(label, is_hostname_char) ||
        label.front() == '-' || label.back() == '-') {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    rest.remove_prefix(dot + 1);
  }
}

// Parses "host:port" into out; returns what is wrong ("" when nothing is).
std::string host_port_problem(std::string_view text, bool allow_port_zero, cluster_node_address& out) {
  std::string host;
  std::string_view port;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return "expected \"[IPv6]:port\"";
    }
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    in6_addr a{};
    if (host.find('\0') != std::string::npos || ::inet_pton(AF_INET6, host.c_str(), &a) != 1) {
      return "the host is not a valid IPv6 address";
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return "expected \"host:port\"";
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (host.empty()) return "the host is empty";
    if (host.find(':') != std::string::npos) {
      return "an IPv6 address needs brackets, as \"[::1]:2528\"";
    }
    if (!valid_host(host)) return "the host is not a valid IPv4 address or hostname";
  }
  const char* const port_rule =
      allow_port_zero ? "the port must be between 0 and 65535" : "the port must be between 1 and 65535";
  if (!all_of(port, is_dec) || port.size() > 5) return port_rule;
  unsigned value = 0;
  std::from_chars(port.data(), port.data() + port.size(), value);
  if (value > 65535 || (value == 0 && !allow_port_zero)) return port_rule;
  out.host = std::move(host);
  out.port = static_cast<std::uint16_t>(value);
  return "";
}

// Why `listen` (a valid "host:port") may not carry the debug console without
// allow_remote: "" when its host is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x).
// A hostname is refused, not resolved: what it resolves to may change.
std::string console_address_problem(const std::string& listen) {
  cluster_node_address a;
  if (!host_port_problem(listen, true, a).empty()) return "";  // reported as a bad address already
  in_addr a4{};
  in6_addr a6{};
  bool ip = true;
  bool loopback = false;
  if (::inet_pton(AF_INET, a.host.c_str(), &a4) == 1) {
    loopback = (ntohl(a4.s_addr) >> 24) == 127;
  } else if (::inet_pton(AF_INET6, a.host.c_str(), &a6) == 1) {
    loopback = IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
  } else {
    ip = false;
  }
  if (loopback) return "";
  const std::string allow = "write debug_console: {listen: \"" + listen + "\", allow_remote: true}";
  if (!ip) {
    return quote(a.host) + " is a hostname, not known to be loopback: give 127.0.0.1 or [::1], or to listen there anyway " +
           allow;
  }
  return listen + " is not a loopback address, and the console runs any verb (call, kill, start) for whoever "
                  "connects: give 127.0.0.1 or [::1], or to listen there anyway " + allow;
}

// --- the loader ------------------------------------------------------------------

struct problem {
  int order;  // the line, or after every line for problems that have none in the file
  std::string text;
};

constexpr int after_all_lines = std::numeric_limits<int>::max();

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
  // `listen_env` is CSK_CLUSTER_LISTEN's value, or null when it is unset.
  node_config load(std::string_view text, const char* listen_env) {
    node_config config;
    if (auto root = document(text)) {
      for_each_key(*root, "", [&](const std::string& key, const field& f) {
        if (key == "runtime") return read_runtime(f, config.runtime), true;
        if (key == "log") return read_log(f, config.log), true;
        if (key == "services") return read_services(f, config.services), true;
        if (key == "cluster") return read_cluster(f, config.cluster), true;
        if (key == "supervisor") return read_supervisor(f, config.supervisor), true;
        if (key == "gates") return read_gates(f, config.gates), true;
        if (key == "admin") return read_admin(f, config.admin), true;
        if (key == "debug_console") return read_debug_console(f, config.debug_console), true;
        if (key == "journal") return read_journal(f, config.journal), true;
        if (key == "persist") return read_persist(f, config.persist), true;
        return false;
      });
    }
    finish_cluster(config.cluster, listen_env);
    finish_gates(config.gates);
    finish_debug_console(config.debug_console);
    return config;
  }

  cluster_names load_names(std::string_view text) {
    cluster_names names;
    auto root = document(text);
    if (!root) return names;
    for_each_key(*root, "", [&](const std::string& key, const field& f) {
      if (key.starts_with("__")) {
        if (key == "__nowaiting") {
          read_bool(f, names.nowaiting);
        } else {
          error(f.path, f.key_line, "unknown option (only __nowaiting is known)");
        }
      } else if (!valid_node_name(key)) {
        error("(document)", f.key_line, std::string(node_name_rule) + ", got " + quote(key));
      } else {
        read_node_address(f, key, names);
      }
      return true;
    });
    return names;
  }

  std::string report() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const problem& a, const problem& b) { return a.order < b.order; });
    std::string out;
    for (const auto& p : problems_) {
      if (!out.empty()) out += '\n';
      out += p.text;
    }
    return out;
  }

  bool failed() const { return !problems_.empty(); }

  void env_error(const std::string& message, const std::string& variable = cluster_listen_env) {
    problems_.push_back({after_all_lines, variable + " (environment): " + message});
  }

  void error(const std::string& path, int line, const std::string& message) {
    std::string text = path;
    if (line > 0) text += " (line " + std::to_string(line) + ")";
    text += ": " + message;
    problems_.push_back({line, std::move(text)});
  }

 private:
  // The root map of a one-document text, or nullopt for an empty document or after
  // reporting why it is not a map.
  std::optional<YAML::Node> document(std::string_view text) {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.empty()) return std::nullopt;
    if (docs.size() > 1) error("(document)", line_of(docs[1]), "only one YAML document is allowed");
    const YAML::Node& root = docs.front();
    if (root.IsNull()) return std::nullopt;
    if (!root.IsMap()) {
      error("(document)", line_of(root), "expected a map, got " + describe(root));
      return std::nullopt;
    }
    return root;
  }

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

  // The same, in one of the shared ranges (gate_options.hpp): the message gives the range.
  template <class T>
  void read_int(const field& f, T& out, gate_limits::range r) {
    const std::string rule = "must be between " + std::to_string(r.min) + " and " + std::to_string(r.max);
    read_int(f, out, r.min, r.max, rule.c_str());
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
      } else if (key == "profile") {
        read_bool(f, rt.profile);
      } else if (key == "idle_spin_us") {
        read_int(f, rt.idle_spin_us, 0, 10000, "must be between 0 and 10000");
      } else if (key == "mailbox_high") {
        read_int(f, rt.mailbox_high, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "mailbox_low") {
        read_int(f, rt.mailbox_low, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "mailbox_limit") {
        read_int(f, rt.mailbox_limit, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "memory_high_mb") {
        read_int(f, rt.memory_high_mb, 0, 1u << 20, "must be between 0 and 1048576");
      } else if (key == "memory_low_mb") {
        read_int(f, rt.memory_low_mb, 0, 1u << 20, "must be between 0 and 1048576");
      } else {
        return false;
      }
      return true;
    });
    if (rt.mailbox_low > rt.mailbox_high) {
      error(section.path + ".mailbox_low", section.line(),
            "must not be above mailbox_high (" + std::to_string(rt.mailbox_high) + "); got " +
                std::to_string(rt.mailbox_low));
    }
    if (rt.memory_high_mb != 0 && rt.memory_low_mb > rt.memory_high_mb) {
      error(section.path + ".memory_low_mb", section.line(),
            "must not be above memory_high_mb (" + std::to_string(rt.memory_high_mb) + "); got " +
                std::to_string(rt.memory_low_mb));
    }
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
                  "must be one of trace, debug, info, warn, error, critical, off; got " + quote(*level));
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

  void read_cluster(const field& section, cluster_config& cluster) {
    const std::size_t problems_before = problems_.size();
    if (!expect_map(section)) {
      cluster_ok_ = problems_.size() == problems_before;
      return;
    }
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "self") {
        self_line_ = f.line();
        if (auto self = string_value(f)) {
          if (self->empty() || valid_node_name(*self)) {
            cluster.self = std::move(*self);
          } else {
            error(f.path, f.line(), std::string(node_name_rule) + ", got " + quote(*self));
          }
        }
      } else if (key == "names_file") {
        read_string(f, cluster.names_file);
      } else if (key == "listen") {
        listen_line_ = f.line();
        if (auto listen = string_value(f)) {
          cluster_node_address address;
          const std::string why = listen->empty() ? "" : host_port_problem(*listen, true, address);
          if (why.empty()) {
            cluster.listen = std::move(*listen);
          } else {
            error(f.path, f.line(), why + ", got " + quote(*listen));
          }
        }
      } else if (key == "max_message_mb") {
        read_int(f, cluster.max_message_mb, 1, 2047, "must be between 1 and 2047");
      } else if (key == "max_pending_mb") {
        read_int(f, cluster.max_pending_mb, 0, 1u << 20, "must be between 0 and 1048576 (0: 4 x max_message_mb)");
      } else if (key == "max_connections") {
        read_int(f, cluster.max_connections, 1, u32_max, "must be between 1 and 4294967295");
      } else if (key == "idle_timeout_ms") {
        read_int(f, cluster.idle_timeout_ms, 0, u32_max, "must be between 0 and 4294967295");
      } else {
        return false;
      }
      return true;
    });
    cluster_ok_ = problems_.size() == problems_before;
  }

  // Applies CSK_CLUSTER_LISTEN, then checks what needs several keys (only when the
  // section itself was fine: an invalid `self` would otherwise also read as absent).
  void finish_cluster(cluster_config& cluster, const char* listen_env) {
    bool listen_from_env = false;
    if (listen_env != nullptr && *listen_env != '\0') {
      cluster_node_address address;
      const std::string why = host_port_problem(listen_env, true, address);
      if (!why.empty()) {
        env_error(why + ", got " + quote(listen_env));
        return;
      }
      cluster.listen = listen_env;
      listen_from_env = true;
    }
    if (!cluster_ok_) return;
    if (!cluster.listen.empty() && cluster.self.empty()) {
      const std::string message = "needs cluster.self (the name this node listens as)";
      if (listen_from_env) {
        env_error(message);
      } else {
        error("cluster.listen", listen_line_, message);
      }
    }
    if (!cluster.self.empty() && cluster.names_file.empty() && cluster.listen.empty()) {
      error("cluster.self", self_line_,
            "needs cluster.names_file or cluster.listen (an address to listen on)");
    }
  }

  void read_supervisor(const field& section, supervisor_config& sup) {
    if (!expect_map(section)) return;
    int heartbeat_line = 0;
    int backoff_line = 0;
    const char* const positive = "must be between 1 and 4294967295";
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "worker") {
        read_string(f, sup.worker);
      } else if (key == "control_socket") {
        if (auto path = string_value(f)) {
          if (path->empty()) {
            error(f.path, f.line(), "must not be empty");
          } else {
            sup.control_socket = std::move(*path);
          }
        }
      } else if (key == "pid_file") {
        read_string(f, sup.pid_file);
      } else if (key == "heartbeat_ms") {
        read_int(f, sup.heartbeat_ms, 1, u32_max, positive);
      } else if (key == "heartbeat_timeout_ms") {
        heartbeat_line = f.line();
        read_int(f, sup.heartbeat_timeout_ms, 1, u32_max, positive);
      } else if (key == "ready_timeout_ms") {
        read_int(f, sup.ready_timeout_ms, 1, u32_max, positive);
      } else if (key == "upgrade_timeout_ms") {
        read_int(f, sup.upgrade_timeout_ms, 100, 3600000, "must be between 100 and 3600000");
      } else if (key == "stop_timeout_ms") {
        read_int(f, sup.stop_timeout_ms, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "restart_backoff_ms") {
        read_int(f, sup.restart_backoff_ms, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "restart_backoff_max_ms") {
        backoff_line = f.line();
        read_int(f, sup.restart_backoff_max_ms, 0, u32_max, "must be between 0 and 4294967295");
      } else if (key == "crash_loop_restarts") {
        read_int(f, sup.crash_loop_restarts, 1, u32_max, positive);
      } else if (key == "crash_loop_window_ms") {
        read_int(f, sup.crash_loop_window_ms, 1, u32_max, positive);
      } else {
        return false;
      }
      return true;
    });
    if (sup.heartbeat_timeout_ms <= sup.heartbeat_ms) {
      error(section.path + ".heartbeat_timeout_ms", heartbeat_line > 0 ? heartbeat_line : section.line(),
            "must be greater than heartbeat_ms (" + std::to_string(sup.heartbeat_ms) + "), got " +
                std::to_string(sup.heartbeat_timeout_ms));
    }
    if (sup.restart_backoff_max_ms < sup.restart_backoff_ms) {
      error(section.path + ".restart_backoff_max_ms", backoff_line > 0 ? backoff_line : section.line(),
            "must not be below restart_backoff_ms (" + std::to_string(sup.restart_backoff_ms) + "), got " +
                std::to_string(sup.restart_backoff_max_ms));
    }
  }

  // A "host:port" value (port 0 allowed); "" only when `optional`.
  void read_listen(const field& f, std::string& out, bool optional) {
    auto listen = string_value(f);
    if (!listen) return;
    if (listen->empty() && optional) {
      out.clear();
      return;
    }
    cluster_node_address address;
    const std::string why = host_port_problem(*listen, true, address);
    if (why.empty()) {
      out = std::move(*listen);
    } else {
      error(f.path, f.line(), why + ", got " + quote(*listen));
    }
  }

  // CSK_GATE_<NAME>_LISTEN replaces a gate's listen, as CSK_CLUSTER_LISTEN does the
  // cluster's (gate_listen_env names the variable).
  void finish_gates(std::vector<gate_config>& gates) {
    for (auto& g : gates) {
      if (g.name.empty()) continue;
      const std::string variable = gate_listen_env(g.name);
      const char* value = std::getenv(variable.c_str());  // NOLINT(concurrency-mt-unsafe): config load, before threads
      if (value == nullptr || *value == '\0') continue;
      cluster_node_address address;
      if (const std::string why = host_port_problem(value, true, address); !why.empty()) {
        env_error(why + ", got " + quote(value), variable);
        continue;
      }
      g.listen = value;
    }
  }

  void read_gates(const field& section, std::vector<gate_config>& out) {
    if (!expect_sequence(section)) return;
    std::map<std::string, std::string> names;  // gate name -> path where first seen
    std::size_t index = 0;
    for (const auto& item : section.node) {
      const field f{section.path + "[" + std::to_string(index++) + "]", item, line_of(item)};
      gate_config gate = read_gate(f);
      if (!gate.name.empty()) {
        auto [it, inserted] = names.emplace(gate.name, f.path);
        if (!inserted) {
          error(f.path + ".name", f.line(), "duplicate gate name " + quote(gate.name) + " (first at " + it->second + ")");
        }
      }
      out.push_back(std::move(gate));
    }
  }

  static bool valid_gate_name(const std::string& s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
      return is_dec(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' || c == '.';
    });
  }

  gate_config read_gate(const field& f) {
    gate_config gate;
    if (!f.node.IsMap()) {
      error(f.path, f.line(), "expected a map, got " + describe(f.node));
      return gate;
    }
    bool has_name = false, has_listen = false, has_type = false;
    for_each_key(f.node, f.path, [&](const std::string& key, const field& v) {
      if (key == "name") {
        has_name = true;
        if (auto name = string_value(v)) {
          if (valid_gate_name(*name)) {
            gate.name = std::move(*name);
          } else {
            error(v.path, v.line(),
                  "must be 1 to 64 letters, digits, '_', '-' or '.', got " + quote(*name));
          }
        }
      } else if (key == "listen") {
        has_listen = true;
        read_listen(v, gate.listen, false);
      } else if (key == "type") {
        has_type = true;
        if (auto type = string_value(v)) {
          if (type->empty()) {
            error(v.path, v.line(), "must not be empty");
          } else {
            gate.type = std::move(*type);
          }
        }
      } else if (key == "args") {
        if (expect_sequence(v)) {
          std::size_t i = 0;
          for (const auto& item : v.node) {
            gate.args.push_back(to_lua(item, v.path + "[" + std::to_string(i++) + "]", v.line(), 0));
          }
        }
      } else if (key == "max_connections") {
        read_int(v, gate.max_connections, gate_limits::max_connections);
      } else if (key == "max_in_flight") {
        read_int(v, gate.max_in_flight, gate_limits::max_in_flight);
      } else if (key == "max_outbound_kb") {
        read_int(v, gate.max_outbound_kb, gate_limits::max_outbound_kb);
      } else if (key == "idle_timeout_ms") {
        read_int(v, gate.idle_timeout_ms, gate_limits::idle_timeout_ms);
      } else if (key == "max_message") {
        read_int(v, gate.max_message, gate_limits::max_message);
      } else if (key == "message_timeout_ms") {
        read_int(v, gate.message_timeout_ms, gate_limits::message_timeout_ms);
      } else {
        return false;
      }
      return true;
    });
    if (!has_name) error(f.path + ".name", f.line(), "required");
    if (!has_listen) error(f.path + ".listen", f.line(), "required");
    if (!has_type) error(f.path + ".type", f.line(), "required");
    return gate;
  }

  void read_admin(const field& section, admin_config& admin) {
    if (!expect_map(section)) return;
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key != "listen") return false;
      read_listen(f, admin.listen, true);
      return true;
    });
  }

  // debug_console: "host:port" | {listen: "host:port", allow_remote: bool}; null = none.
  void read_debug_console(const field& f, debug_console_config& c) {
    console_line_ = f.line();
    if (f.node.IsNull()) return;
    if (!f.node.IsMap()) {
      read_listen(f, c.listen, true);
      return;
    }
    for_each_key(f.node, f.path, [&](const std::string& key, const field& v) {
      if (key == "listen") {
        read_listen(v, c.listen, true);
      } else if (key == "allow_remote") {
        read_bool(v, c.allow_remote);
      } else {
        return false;
      }
      return true;
    });
  }

  // CSK_DEBUG_CONSOLE_LISTEN replaces the address; then the loopback rule.
  void finish_debug_console(debug_console_config& c) {
    bool from_env = false;
    const char* value = std::getenv(debug_console_listen_env);  // NOLINT(concurrency-mt-unsafe): config load, before threads
    if (value != nullptr && *value != '\0') {
      cluster_node_address address;
      if (const std::string why = host_port_problem(value, true, address); !why.empty()) {
        env_error(why + ", got " + quote(value), debug_console_listen_env);
        return;
      }
      c.listen = value;
      from_env = true;
    }
    if (c.listen.empty() || c.allow_remote) return;
    const std::string why = console_address_problem(c.listen);
    if (why.empty()) return;
    if (from_env) {
      env_error(why, debug_console_listen_env);
    } else {
      error("debug_console", console_line_, why);
    }
  }

  void read_journal(const field& section, journal_config& j) {
    if (!expect_map(section)) return;
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "enabled") {
        read_bool(f, j.enabled);
      } else if (key == "size_mb") {
        read_int(f, j.size_mb, 1, 65536, "must be between 1 and 65536");
      } else if (key == "checkpoint_percent") {
        read_int(f, j.checkpoint_percent, 10, 90, "must be between 10 and 90");
      } else if (key == "checkpoint_growth_percent") {
        read_int(f, j.checkpoint_growth_percent, 0, 10000, "must be between 0 and 10000");
      } else if (key == "checkpoint_min_mb") {
        read_int(f, j.checkpoint_min_mb, 1, 65536, "must be between 1 and 65536");
      } else if (key == "checkpoint_interval_s") {
        read_int(f, j.checkpoint_interval_s, 0, 31536000, "must be between 0 and 31536000");
      } else if (key == "checkpoint_page") {
        read_int(f, j.checkpoint_page, 1, 1000000, "must be between 1 and 1000000");
      } else if (key == "checkpoint_pause_ms") {
        read_int(f, j.checkpoint_pause_ms, 0, 60000, "must be between 0 and 60000");
      } else {
        return false;
      }
      return true;
    });
  }

  void read_persist(const field& section, persist_config& p) {
    if (!expect_map(section)) return;
    bool has_dir = false;
    for_each_key(section.node, section.path, [&](const std::string& key, const field& f) {
      if (key == "dir") {
        if (auto dir = string_value(f)) {
          if (dir->empty()) {
            error(f.path, f.line(), "must not be empty (leave persist out for memory only)");
          } else {
            p.dir = std::move(*dir);
            has_dir = true;
          }
        }
      } else if (key == "fsync") {
        if (auto v = string_value(f)) {
          if (*v == "always" || *v == "everysec" || *v == "no") {
            p.fsync = std::move(*v);
          } else {
            error(f.path, f.line(), "must be always, everysec or no, got " + quote(*v));
          }
        }
      } else {
        return false;
      }
      return true;
    });
    if (!has_dir && section.node.IsMap()) error(section.path + ".dir", section.line(), "required");
  }

  void read_node_address(const field& f, const std::string& name, cluster_names& names) {
    const char* const expected = "expected \"host:port\" or false";
    if (!f.node.IsScalar()) {
      error(f.path, f.line(), std::string(expected) + ", got " + describe(f.node));
      return;
    }
    auto v = scalar_value(f.node);
    if (!v) {
      error(f.path, f.line(), v.error());
      return;
    }
    if (v->is_boolean()) {
      if (v->as_boolean()) {
        error(f.path, f.line(),
              "true is not an address: give \"host:port\", or false to mark the node down");
      } else {
        names.nodes[name] = std::nullopt;
      }
      return;
    }
    if (!v->is_string()) {
      error(f.path, f.line(), std::string(expected) + ", got " + describe(f.node));
      return;
    }
    cluster_node_address address;
    const std::string why = host_port_problem(v->as_string(), false, address);
    if (!why.empty()) {
      error(f.path, f.line(), why + ", got " + quote(v->as_string()));
      return;
    }
    names.nodes[name] = std::move(address);
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
            "must start with '.' (local) or '@' (cluster) and be 2 to 255 bytes, got " + quote(name));
      return std::nullopt;
    }
    auto [it, inserted] = names_.emplace(name, f.path);
    if (!inserted) {
      error(f.path, f.line(), "duplicate name " + quote(name) + " (first at " + it->second + ")");
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
  int self_line_ = 0;
  int console_line_ = 0;
  int listen_line_ = 0;
  bool cluster_ok_ = true;
};

std::string position(const YAML::Mark& m) {
  if (m.is_null()) return "";
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

// Runs one loader pass; yaml-cpp's exceptions become problems like any other.
template <class T, class Load>
result<T, std::string> run(Load&& load) {
  loader l;
  try {
    T out = load(l);
    if (!l.failed()) return out;
  } catch (const YAML::ParserException& e) {
    return unexpected{"syntax error" + position(e.mark) + ": " + e.msg};
  } catch (const YAML::Exception& e) {
    l.error("(document)", e.mark.is_null() ? 0 : e.mark.line + 1, e.msg);
  } catch (const std::exception& e) {
    l.error("(document)", 0, std::string("cannot load: ") + e.what());
  }
  return unexpected{l.report()};
}

// Reads a whole file. With a limit, a larger file is refused by its size before any of
// it is read (and reading stops past the limit, for files that grow or have no size).
result<std::string, std::string> read_text_file(const std::string& path,
                                                std::size_t limit = std::numeric_limits<std::size_t>::max()) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return unexpected{path + ": cannot open: " + std::generic_category().message(errno)};
  }
  const auto too_big = [&](const std::string& size) {
    std::fclose(f);
    return unexpected{path + ": too big: " + size + " (a node table may have at most " + std::to_string(limit) +
                      " bytes); not read"};
  };
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      static_cast<std::uint64_t>(st.st_size) > limit) {
    return too_big(std::to_string(st.st_size) + " bytes");
  }
  std::string text;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > limit) return too_big("more than " + std::to_string(limit) + " bytes");
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) return unexpected{path + ": cannot read: " + std::generic_category().message(err)};
  return text;
}

}  // namespace

std::string gate_listen_env(std::string_view gate_name) {
  std::string out = "CSK_GATE_";
  for (const char c : gate_name) {
    if (c >= 'a' && c <= 'z') {
      out.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if (c == '-' || c == '.') {
      out.push_back('_');
    } else {
      out.push_back(c);
    }
  }
  return out + "_LISTEN";
}

std::optional<cluster_node_address> parse_host_port(std::string_view text, bool allow_port_zero) {
  cluster_node_address address;
  if (!host_port_problem(text, allow_port_zero, address).empty()) return std::nullopt;
  return address;
}

result<node_config, std::string> load_config_string(std::string_view yaml) {
  const char* const listen_env = std::getenv(cluster_listen_env);  // NOLINT(concurrency-mt-unsafe)
  return run<node_config>([&](loader& l) { return l.load(yaml, listen_env); });
}

result<node_config, std::string> load_config_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return unexpected{text.error()};
  auto config = load_config_string(*text);
  if (!config) return config;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (std::string* file : {&config->cluster.names_file, &config->log.file, &config->supervisor.worker,
                            &config->supervisor.control_socket, &config->supervisor.pid_file, &config->persist.dir}) {
    if (!file->empty() && std::filesystem::path(*file).is_relative()) *file = (dir / *file).string();
  }
  const char* const names_env = std::getenv(cluster_names_file_env);  // NOLINT(concurrency-mt-unsafe): config load
  if (names_env != nullptr && *names_env != '\0') {
    config->cluster.names_file = std::filesystem::absolute(names_env).lexically_normal().string();
  }
  return config;
}

namespace {

// A listening host as the kernel sees it, for the overlap check: Linux refuses a second
// listener on a port when one of them is a wildcard that covers the other's address
// (SO_REUSEADDR does not help a listener). 0.0.0.0 covers every IPv4 address; "::"
// (dual-stack, the default) covers every address; an IPv4-mapped IPv6 address is its
// IPv4 address. A hostname is not resolved: it overlaps the same name, and a wildcard.
struct bound_host {
  enum class family { v4, v6, name } fam = family::name;
  bool wildcard = false;
  std::string canonical;  // inet_ntop's form, or the name lower-cased
};

bound_host bound_host_of(const std::string& host) {
  bound_host b;
  char text[INET6_ADDRSTRLEN] = {};
  in_addr a4{};
  in6_addr a6{};
  if (::inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    b.fam = bound_host::family::v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      b.fam = bound_host::family::v4;
      std::memcpy(&a4, &a6.s6_addr[12], sizeof a4);
    } else {
      b.fam = bound_host::family::v6;
      b.wildcard = IN6_IS_ADDR_UNSPECIFIED(&a6);
      b.canonical = ::inet_ntop(AF_INET6, &a6, text, sizeof text) != nullptr ? text : host;
      return b;
    }
  } else {
    b.canonical = host;
    std::transform(b.canonical.begin(), b.canonical.end(), b.canonical.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    return b;
  }
  b.wildcard = a4.s_addr == htonl(INADDR_ANY);
  b.canonical = ::inet_ntop(AF_INET, &a4, text, sizeof text) != nullptr ? text : host;
  return b;
}

bool covers(const bound_host& wildcard, const bound_host& other) {
  if (!wildcard.wildcard) return false;
  if (wildcard.fam == bound_host::family::v6) return true;  // "::" takes IPv4 too
  return other.fam != bound_host::family::v6 || other.wildcard;  // 0.0.0.0: IPv4, names, "::"
}

}  // namespace

bool listen_addresses_overlap(const std::string& host_a, std::uint16_t port_a, const std::string& host_b,
                              std::uint16_t port_b) {
  if (port_a == 0 || port_b == 0 || port_a != port_b) return false;  // port 0: each gets its own
  const bound_host a = bound_host_of(host_a);
  const bound_host b = bound_host_of(host_b);
  return (a.fam == b.fam && a.canonical == b.canonical) || covers(a, b) || covers(b, a);
}

result<std::vector<listener_spec>, std::string> listeners_of(const node_config& cfg) {
  std::vector<listener_spec> out;
  const auto text = [](const std::string& host, std::uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  };
  const auto add = [&](std::string name, const std::string& listen) -> std::string {
    cluster_node_address a;
    const std::string why = host_port_problem(listen, true, a);
    if (!why.empty()) return name + ": " + why + ", got " + quote(listen);
    for (const auto& l : out) {
      if (!listen_addresses_overlap(a.host, a.port, l.host, l.port)) continue;
      if (a.host == l.host) return name + ": " + text(a.host, a.port) + " is also " + l.name + "'s address";
      return name + ": " + text(a.host, a.port) + " overlaps " + l.name + "'s address " + text(l.host, l.port) +
             " (a wildcard address takes its port on every address)";
    }
    out.push_back(listener_spec{std::move(name), std::move(a.host), a.port});
    return "";
  };
  const cluster_config& c = cfg.cluster;
  if (!c.self.empty()) {
    std::string listen = c.listen;
    if (listen.empty()) {
      if (c.names_file.empty()) return unexpected("cluster: node " + c.self + " has no address (no listen, no names_file)");
      auto table = load_cluster_names_file(c.names_file);
      if (!table) return unexpected(table.error());
      auto it = table->nodes.find(c.self);
      if (it == table->nodes.end()) {
        return unexpected("cluster node " + c.self + " is not in the node table " + c.names_file);
      }
      if (!it->second) return unexpected("cluster node " + c.self + " is down (false) in the node table " + c.names_file);
      const auto& a = *it->second;
      listen = (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
    }
    if (auto why = add("cluster", listen); !why.empty()) return unexpected(why);
  }
  for (const auto& g : cfg.gates) {
    if (auto why = add("gate:" + g.name, g.listen); !why.empty()) return unexpected(why);
  }
  if (!cfg.admin.listen.empty()) {
    if (auto why = add("admin", cfg.admin.listen); !why.empty()) return unexpected(why);
  }
  if (!cfg.debug_console.listen.empty()) {
    if (auto why = add("debug_console", cfg.debug_console.listen); !why.empty()) return unexpected(why);
  }
  return out;
}

result<cluster_names, std::string> load_cluster_names_string(std::string_view yaml) {
  return run<cluster_names>([&](loader& l) { return l.load_names(yaml); });
}

result<cluster_names, std::string> load_cluster_names_file(const std::string& path) {
  auto text = read_text_file(path, names_file_max_bytes);
  if (!text) return unexpected{text.error()};
  if (is_lua_names_file(path)) {
    return load_cluster_names_lua(*text, std::filesystem::path(path).filename().string());
  }
  return load_cluster_names_string(*text);
}

namespace config_detail {

bool valid_node_name(std::string_view name) { return csk::valid_node_name(name); }

std::string node_name_rule() { return csk::node_name_rule; }

std::string node_address_problem(std::string_view text, cluster_node_address& out) {
  return host_port_problem(text, false, out);
}

std::string quote(const std::string& text) { return csk::quote(text); }

std::string problem_text(const std::string& path, int line, const std::string& message) {
  std::string text = path;
  if (line > 0) text += " (line " + std::to_string(line) + ")";
  return text + ": " + message;
}

}  // namespace config_detail

}  // namespace csk
