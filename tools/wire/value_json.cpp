#include "tools/wire/value_json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "tools/wire/sha1.hpp"

namespace csk::tools {
namespace {

constexpr std::size_t max_inline_string = 256;
constexpr std::size_t head_bytes = 16;

seri_enc canonical_int_enc(std::int64_t v) {
  if (v == 0) return seri_enc::zero;
  if (v != static_cast<std::int32_t>(v)) return seri_enc::qword;
  if (v < 0) return seri_enc::dword;
  if (v < 0x100) return seri_enc::byte;
  if (v < 0x10000) return seri_enc::word;
  return seri_enc::dword;
}

seri_enc canonical_str_enc(std::size_t n) {
  if (n < 32) return seri_enc::short_str;
  if (n < 0x10000) return seri_enc::long16;
  return seri_enc::long32;
}

std::string real_bits_hex(double d) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(bits));
  return buf;
}

bool printable_ascii(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  }
  return true;
}

using err = unexpected<std::string>;

}  // namespace

std::string format_real(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits, laid out as Python's repr(): positional when the
  // decimal exponent is in [-4, 16), else d.ddde+XX with at least two exponent digits.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // e.g. "-1.2345e+17"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const auto e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp = std::stoi(sci.substr(e + 1));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int n = static_cast<int>(digits.size());
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    } else if (exp + 1 >= n) {
      out = digits + std::string(static_cast<std::size_t>(exp + 1 - n), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<std::size_t>(exp + 1)) + "." + digits.substr(static_cast<std::size_t>(exp + 1));
    }
  } else {
    out = digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    char ex[16];
    std::snprintf(ex, sizeof ex, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ex;
  }
  return sign + out;
}

json value_to_json(const lua_value& v) {
  json j;
  switch (v.type()) {
    case lua_type::nil: j["t"] = "nil"; break;
    case lua_type::boolean:
      j["t"] = "bool";
      j["v"] = v.as_boolean();
      break;
    case lua_type::integer:
      j["t"] = "int";
      j["v"] = std::to_string(v.as_integer());
      j["enc"] = seri_enc_name(v.enc() != seri_enc::none ? v.enc() : canonical_int_enc(v.as_integer()));
      break;
    case lua_type::real:
      j["t"] = "float";
      j["v"] = format_real(v.as_real());
      j["bits"] = real_bits_hex(v.as_real());
      j["enc"] = "real";
      break;
    case lua_type::string: {
      const std::string& s = v.as_string();
      j["t"] = "str";
      j["len"] = s.size();
      j["enc"] = seri_enc_name(v.enc() != seri_enc::none ? v.enc() : canonical_str_enc(s.size()));
      if (s.size() > max_inline_string) {
        j["sha1"] = sha1_hex(as_bytes(s));
        j["head_hex"] = to_hex(as_bytes(s).first(head_bytes));
      } else {
        j["hex"] = to_hex(as_bytes(s));
        if (printable_ascii(s)) j["text"] = s;
      }
      break;
    }
    case lua_type::table: {
      const lua_table& t = v.as_table();
      j["t"] = "table";
      j["array"] = json::array();
      for (const auto& e : t.array) j["array"].push_back(value_to_json(e));
      j["hash"] = json::array();
      for (const auto& [k, x] : t.hash) j["hash"].push_back(json::array({value_to_json(k), value_to_json(x)}));
      seri_enc ale = t.array_len_enc;
      if (ale == seri_enc::none) {
        ale = t.array.size() < 31 ? seri_enc::cookie : canonical_int_enc(static_cast<std::int64_t>(t.array.size()));
      }
      j["array_len_enc"] = ale == seri_enc::cookie ? std::string("cookie") : std::string("int:") + seri_enc_name(ale);
      break;
    }
    case lua_type::light_userdata: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v.as_light_userdata()));
      j["t"] = "lightuserdata";
      j["v"] = buf;
      break;
    }
  }
  return j;
}

json values_to_json(std::span<const lua_value> values) {
  json a = json::array();
  for (const auto& v : values) a.push_back(value_to_json(v));
  return a;
}

namespace {

result<std::string, std::string> string_from_json(const json& j, const std::string& path) {
  byte_buffer bytes;
  if (j.contains("hex")) {
    if (!j["hex"].is_string() || !from_hex(j["hex"].get<std::string>(), bytes)) {
      return err{path + ": \"hex\" is not a hex string"};
    }
  } else if (j.contains("text")) {
    if (!j["text"].is_string()) return err{path + ": \"text\" is not a string"};
    return j["text"].get<std::string>();
  } else if (j.contains("sha1") && j.contains("head_hex") && j.contains("len")) {
    // Long strings are given by digest. The vectors' long strings are string.rep of one
    // byte; rebuild that and accept it only if the digest agrees.
    byte_buffer head;
    if (!j["head_hex"].is_string() || !from_hex(j["head_hex"].get<std::string>(), head) || head.empty()) {
      return err{path + ": bad \"head_hex\""};
    }
    if (!j["len"].is_number_unsigned()) return err{path + ": bad \"len\""};
    const auto n = j["len"].get<std::size_t>();
    std::string s(n, static_cast<char>(head[0]));
    if (sha1_hex(as_bytes(s)) != j["sha1"].get<std::string>()) {
      return err{path + ": long string is not a repetition of its first byte; give \"hex\""};
    }
    return s;
  } else {
    return err{path + ": string needs \"hex\" or \"text\""};
  }
  std::string s(bytes.begin(), bytes.end());
  if (j.contains("len") && (!j["len"].is_number_unsigned() || j["len"].get<std::size_t>() != s.size())) {
    return err{path + ": \"len\" does not match the bytes"};
  }
  return s;
}

result<std::int64_t, std::string> int_from_json(const json& v, const std::string& path) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (!v.is_string()) return err{path + ": integer \"v\" must be a decimal string"};
  const auto s = v.get<std::string>();
  std::int64_t x = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), x);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
    return err{path + ": \"" + s + "\" is not a 64-bit integer"};
  }
  return x;
}

}  // namespace

result<lua_value, std::string> value_from_json(const json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("t") || !j["t"].is_string()) {
    return err{path + ": expected an object with \"t\""};
  }
  const auto t = j["t"].get<std::string>();
  if (t == "nil") return lua_value();
  if (t == "bool") {
    if (!j.contains("v") || !j["v"].is_boolean()) return err{path + ": bool needs \"v\": true|false"};
    return lua_value(j["v"].get<bool>());
  }
  if (t == "int") {
    if (!j.contains("v")) return err{path + ": int needs \"v\""};
    auto x = int_from_json(j["v"], path);
    if (!x) return err{x.error()};
    return lua_value(*x);
  }
  if (t == "float") {
    if (j.contains("bits")) {
      byte_buffer b;
      if (!j["bits"].is_string() || !from_hex(j["bits"].get<std::string>(), b) || b.size() != 8) {
        return err{path + ": \"bits\" must be 16 hex digits"};
      }
      std::uint64_t bits = 0;
      for (auto byte : b) bits = bits << 8 | byte;
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return lua_value(d);
    }
    if (!j.contains("v")) return err{path + ": float needs \"bits\" or \"v\""};
    if (j["v"].is_number()) return lua_value(j["v"].get<double>());
    if (!j["v"].is_string()) return err{path + ": bad float \"v\""};
    const auto s = j["v"].get<std::string>();
    if (s == "inf") return lua_value(HUGE_VAL);
    if (s == "-inf") return lua_value(-HUGE_VAL);
    if (s == "nan") return lua_value(std::nan(""));
    double d = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return err{path + ": \"" + s + "\" is not a number"};
    return lua_value(d);
  }
  if (t == "str") {
    auto s = string_from_json(j, path);
    if (!s) return err{s.error()};
    return lua_value(std::move(*s));
  }
  if (t == "table") {
    lua_table tab;
    if (j.contains("array")) {
      if (!j["array"].is_array()) return err{path + ".array: expected an array"};
      for (std::size_t i = 0; i < j["array"].size(); ++i) {
        auto v = value_from_json(j["array"][i], path + ".array[" + std::to_string(i) + "]");
        if (!v) return err{v.error()};
        tab.array.push_back(std::move(*v));
      }
    }
    for (const char* part : {"hash", "pairs"}) {
      if (!j.contains(part)) continue;
      if (!j[part].is_array()) return err{path + "." + part + ": expected an array"};
      for (std::size_t i = 0; i < j[part].size(); ++i) {
        const auto& kv = j[part][i];
        const std::string p = path + "." + part + "[" + std::to_string(i) + "]";
        if (!kv.is_array() || kv.size() != 2) return err{p + ": expected [key, value]"};
        auto k = value_from_json(kv[0], p + "[0]");
        if (!k) return err{k.error()};
        auto v = value_from_json(kv[1], p + "[1]");
        if (!v) return err{v.error()};
        tab.set(std::move(*k), std::move(*v));
      }
    }
    return lua_value(std::move(tab));
  }
  if (t == "lightuserdata") {
    if (!j.contains("v") || !j["v"].is_string()) return err{path + ": lightuserdata needs \"v\": \"0x...\""};
    auto s = j["v"].get<std::string>();
    if (s.rfind("userdata: ", 0) == 0) s.erase(0, 10);
    if (s.rfind("0x", 0) != 0) return err{path + ": lightuserdata \"v\" must start with 0x"};
    std::uint64_t p = 0;
    auto r = std::from_chars(s.data() + 2, s.data() + s.size(), p, 16);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return err{path + ": bad pointer \"" + s + "\""};
    return lua_value::light_userdata(p);
  }
  return err{path + ": unknown type \"" + t + "\""};
}

result<std::vector<lua_value>, std::string> values_from_json(const json& j, const std::string& path) {
  if (!j.is_array()) return err{path + ": expected an array of values"};
  std::vector<lua_value> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    auto v = value_from_json(j[i], path + "[" + std::to_string(i) + "]");
    if (!v) return err{v.error()};
    out.push_back(std::move(*v));
  }
  return out;
}

}  // namespace csk::tools
