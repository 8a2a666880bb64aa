#include "tools/wire/plain_json.hpp"

#include <cmath>

#include "common/base/bytes.hpp"

namespace csk::tools {
namespace {

// Structure only (lead byte + continuation bytes); output is dumped with replacement
// anyway, so an overlong form cannot break it.
bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if ((c >> 5) == 0x6) {
      len = 2;
    } else if ((c >> 4) == 0xe) {
      len = 3;
    } else if ((c >> 3) == 0x1e) {
      len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string key_text(const lua_value& k) {
  if (k.is_string()) return k.as_string();
  return to_plain_json(k).dump();
}

}  // namespace

json to_plain_json(const lua_value& v) {
  switch (v.type()) {
    case lua_type::nil: return nullptr;
    case lua_type::boolean: return v.as_boolean();
    case lua_type::integer: return v.as_integer();
    case lua_type::real: {
      const double d = v.as_real();
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
      return d;
    }
    case lua_type::light_userdata: return "lightuserdata: " + lua_value(v).debug_string();
    case lua_type::string:
      if (valid_utf8(v.as_string())) return v.as_string();
      return json{{"hex", csk::to_hex(csk::as_bytes(v.as_string()))}};
    case lua_type::table: {
      const lua_table& t = v.as_table();
      if (t.hash.empty()) {
        json a = json::array();
        for (const auto& e : t.array) a.push_back(to_plain_json(e));
        return a;
      }
      json o = json::object();
      for (std::size_t i = 0; i < t.array.size(); ++i) o[std::to_string(i + 1)] = to_plain_json(t.array[i]);
      for (const auto& [k, x] : t.hash) o[key_text(k)] = to_plain_json(x);
      return o;
    }
  }
  return nullptr;
}

result<lua_value, std::string> from_plain_json(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return lua_value();
    case json::value_t::boolean: return lua_value(j.get<bool>());
    case json::value_t::number_integer: return lua_value(j.get<std::int64_t>());
    case json::value_t::number_unsigned: {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return lua_value(static_cast<double>(u));
      return lua_value(static_cast<std::int64_t>(u));
    }
    case json::value_t::number_float: return lua_value(j.get<double>());
    case json::value_t::string: return lua_value(j.get<std::string>());
    case json::value_t::array: {
      lua_table t;
      for (const auto& e : j) {
        auto v = from_plain_json(e);
        if (!v) return v;
        t.array.push_back(std::move(*v));
      }
      return lua_value(std::move(t));
    }
    case json::value_t::object: {
      lua_table t;
      for (const auto& [k, e] : j.items()) {
        auto v = from_plain_json(e);
        if (!v) return v;
        t.set(lua_value(k), std::move(*v));
      }
      return lua_value(std::move(t));
    }
    default: return unexpected(std::string("unsupported JSON value"));
  }
}

lua_value parse_cli_arg(std::string_view arg) {
  json j = json::parse(arg.begin(), arg.end(), nullptr, false);
  if (!j.is_discarded()) {
    auto v = from_plain_json(j);
    if (v) return std::move(*v);
  }
  return lua_value(arg);
}

}  // namespace csk::tools
