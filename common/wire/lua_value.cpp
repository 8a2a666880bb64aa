#include "common/wire/lua_value.hpp"

#include <cstdio>
#include <cstring>

namespace csk {

const char* lua_type_name(lua_type t) noexcept {
  switch (t) {
    case lua_type::nil: return "nil";
    case lua_type::boolean: return "boolean";
    case lua_type::integer: return "integer";
    case lua_type::real: return "real";
    case lua_type::string: return "string";
    case lua_type::table: return "table";
    case lua_type::light_userdata: return "lightuserdata";
  }
  return "?";
}

const char* seri_enc_name(seri_enc e) noexcept {
  switch (e) {
    case seri_enc::none: return "none";
    case seri_enc::zero: return "zero";
    case seri_enc::byte: return "byte";
    case seri_enc::word: return "word";
    case seri_enc::dword: return "dword";
    case seri_enc::qword: return "qword";
    case seri_enc::real: return "real";
    case seri_enc::short_str: return "short";
    case seri_enc::long16: return "long16";
    case seri_enc::long32: return "long32";
    case seri_enc::cookie: return "cookie";
  }
  return "?";
}

lua_value::lua_value(lua_table t)
    : type_(lua_type::table), table_(std::make_unique<lua_table>(std::move(t))) {}

lua_value::lua_value(const lua_value& o)
    : type_(o.type_), enc_(o.enc_), bool_(o.bool_), int_(o.int_), str_(o.str_),
      table_(o.table_ ? std::make_unique<lua_table>(*o.table_) : nullptr) {}

lua_value& lua_value::operator=(const lua_value& o) {
  if (this != &o) {
    lua_value tmp(o);
    *this = std::move(tmp);
  }
  return *this;
}

lua_value::~lua_value() = default;

bool operator==(const lua_value& a, const lua_value& b) noexcept {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case lua_type::nil: return true;
    case lua_type::boolean: return a.bool_ == b.bool_;
    case lua_type::integer:
    case lua_type::light_userdata: return a.int_ == b.int_;
    case lua_type::real: {
      std::uint64_t x = 0;
      std::uint64_t y = 0;
      std::memcpy(&x, &a.real_, sizeof x);
      std::memcpy(&y, &b.real_, sizeof y);
      return x == y;
    }
    case lua_type::string: return a.str_ == b.str_;
    case lua_type::table: return *a.table_ == *b.table_;
  }
  return false;
}

const lua_value* lua_table::find(const lua_value& key) const noexcept {
  if (key.is_integer() && key.as_integer() >= 1 &&
      static_cast<std::uint64_t>(key.as_integer()) <= array.size()) {
    const lua_value& v = array[static_cast<std::size_t>(key.as_integer() - 1)];
    if (!v.is_nil()) return &v;
  }
  for (auto it = hash.rbegin(); it != hash.rend(); ++it) {
    if (it->first == key) return it->second.is_nil() ? nullptr : &it->second;
  }
  return nullptr;
}

std::string lua_value::debug_string() const {
  char buf[64];
  switch (type_) {
    case lua_type::nil: return "nil";
    case lua_type::boolean: return bool_ ? "true" : "false";
    case lua_type::integer: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(int_)); return buf;
    case lua_type::real: std::snprintf(buf, sizeof buf, "%.17g", real_); return buf;
    case lua_type::light_userdata:
      std::snprintf(buf, sizeof buf, "lightuserdata: 0x%llx", static_cast<unsigned long long>(int_));
      return buf;
    case lua_type::string: {
      std::string out = "\"";
      for (char c : str_) {
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
          out += c;
        } else {
          std::snprintf(buf, sizeof buf, "\\x%02x", u);
          out += buf;
        }
        if (out.size() > 80) { out += "..."; break; }
      }
      return out + "\"";
    }
    case lua_type::table: {
      std::string out = "{";
      const char* sep = "";
      for (const auto& v : table_->array) { out += sep; out += v.debug_string(); sep = ", "; }
      for (const auto& [k, v] : table_->hash) {
        out += sep; out += "[" + k.debug_string() + "]=" + v.debug_string(); sep = ", ";
      }
      return out + "}";
    }
  }
  return "?";
}

}  // namespace csk
