#include "services/io_pool/options.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace csk::io_pool {

std::string where(const std::string& host, int port, const std::string& unix_path) {
  return unix_path.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_path;
}

lua_value spawn_options(std::string_view service, const actor::values& args) {
  if (args.size() > 1) {
    throw std::invalid_argument(std::string(service) + ": spawn takes one options table, got " +
                                std::to_string(args.size()) + " arguments");
  }
  return args.empty() ? lua_value() : args[0];
}

option_reader::option_reader(std::string_view service, const lua_value& v, std::span<const std::string_view> known)
    : service_(service) {
  if (v.is_nil()) return;
  if (!v.is_table()) throw std::invalid_argument(service_ + ": the options must be a table, got " + v.debug_string());
  const lua_table& t = v.as_table();
  if (!t.array.empty()) throw std::invalid_argument(service_ + ": the options table takes named keys only, got a list");
  for (const auto& [key, value] : t.hash) {
    const bool found =
        key.is_string() && std::find(known.begin(), known.end(), std::string_view(key.as_string())) != known.end();
    if (!found) {
      std::string list;
      for (const auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      throw std::invalid_argument(service_ + ": unknown option " +
                                  (key.is_string() ? "'" + key.as_string() + "'" : key.debug_string()) +
                                  " (known: " + list + ")");
    }
  }
  table_ = &t;
}

void option_reader::bad(std::string_view key, std::string_view want, const lua_value& got) const {
  throw std::invalid_argument(service_ + ": option '" + std::string(key) + "' must be " + std::string(want) +
                              ", got " + got.debug_string());
}

void option_reader::read(std::string_view key, std::string& out) const {
  const lua_value* v = table_ == nullptr ? nullptr : table_->find(lua_value(key));
  if (v == nullptr) return;
  if (!v->is_string()) bad(key, "a string", *v);
  out = v->as_string();
}

std::int64_t option_reader::integer(std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t dflt) const {
  const lua_value* v = table_ == nullptr ? nullptr : table_->find(lua_value(key));
  if (v == nullptr) return dflt;
  const std::string want = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  std::int64_t n = 0;
  if (v->is_integer()) {
    n = v->as_integer();
  } else if (v->is_real() && std::trunc(v->as_real()) == v->as_real() && std::abs(v->as_real()) < 1e15) {
    n = static_cast<std::int64_t>(v->as_real());
  } else {
    bad(key, want, *v);
  }
  if (n < lo || n > hi) bad(key, want, *v);
  return n;
}

void option_reader::read(std::string_view key, int& out, std::int64_t lo, std::int64_t hi) const {
  out = static_cast<int>(integer(key, lo, hi, out));
}

void option_reader::read(std::string_view key, std::chrono::milliseconds& out, std::int64_t lo,
                         std::int64_t hi) const {
  out = std::chrono::milliseconds(integer(key, lo, hi, out.count()));
}

void option_reader::need_address(const std::string& host, const std::string& unix_path) const {
  if (unix_path.empty() && host.empty()) {
    throw std::invalid_argument(service_ + ": option 'host' is empty and no 'unix' path is set");
  }
}

}  // namespace csk::io_pool
