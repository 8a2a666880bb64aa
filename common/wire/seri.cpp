#include "common/wire/seri.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace csk::seri {
namespace {

enum : std::uint8_t {
  type_nil = 0,
  type_boolean = 1,
  type_number = 2,
  type_userdata = 3,
  type_short_string = 4,
  type_long_string = 5,
  type_table = 6,
};
enum : std::uint8_t {
  number_zero = 0,
  number_byte = 1,
  number_word = 2,
  number_dword = 4,
  number_qword = 6,
  number_real = 8,
};
constexpr std::uint8_t max_cookie = 32;
constexpr std::uint8_t combine(std::uint8_t type, std::uint8_t cookie) {
  return static_cast<std::uint8_t>(type | (cookie << 3));
}

// ---------------------------------------------------------------- decoding --

class reader {
 public:
  reader(bytes_view in, const unpack_limits& limits) : in_(in), limits_(limits) {}

  bool at_end() const { return pos_ == in_.size(); }
  std::size_t remaining() const { return in_.size() - pos_; }

  seri_error fail(const char* detail, seri_errc code = seri_errc::invalid_stream) const {
    return seri_error{code, pos_, remaining(), detail};
  }

  bool read_tag(std::uint8_t& tag) {
    if (pos_ >= in_.size()) return false;
    tag = in_[pos_++];
    return true;
  }

  template <class T>
  bool read_le(T& v) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));  // little-endian hosts only (as skynet)
    pos_ += sizeof(T);
    return true;
  }

  // Reads the integer that follows a number tag with `cookie`. Returns false with err set.
  bool read_integer(std::uint8_t cookie, std::int64_t& v, seri_enc& enc, seri_error& err) {
    switch (cookie) {
      case number_zero: v = 0; enc = seri_enc::zero; return true;
      case number_byte: {
        std::uint8_t x;
        if (!read_le(x)) { err = fail("truncated byte integer"); return false; }
        v = x; enc = seri_enc::byte; return true;
      }
      case number_word: {
        std::uint16_t x;
        if (!read_le(x)) { err = fail("truncated word integer"); return false; }
        v = x; enc = seri_enc::word; return true;
      }
      case number_dword: {
        std::int32_t x;
        if (!read_le(x)) { err = fail("truncated dword integer"); return false; }
        v = x; enc = seri_enc::dword; return true;
      }
      case number_qword: {
        std::int64_t x;
        if (!read_le(x)) { err = fail("truncated qword integer"); return false; }
        v = x; enc = seri_enc::qword; return true;
      }
      default: err = fail("invalid number cookie"); return false;
    }
  }

  bool read_string(std::size_t len, seri_enc enc, lua_value& out, seri_error& err) {
    if (remaining() < len) { err = fail("truncated string"); return false; }
    out = lua_value(std::string(reinterpret_cast<const char*>(in_.data() + pos_), len));
    out.set_enc(enc);
    pos_ += len;
    return true;
  }

  // Decodes the value whose tag was just read.
  bool value(std::uint8_t tag, lua_value& out, int depth, seri_error& err) {
    const std::uint8_t type = tag & 7;
    const std::uint8_t cookie = tag >> 3;
    switch (type) {
      case type_nil: out = lua_value(); return true;
      case type_boolean: out = lua_value(cookie != 0); return true;
      case type_number: {
        if (cookie == number_real) {
          double d;
          if (!read_le(d)) { err = fail("truncated real"); return false; }
          out = lua_value(d);
          out.set_enc(seri_enc::real);
          return true;
        }
        std::int64_t v;
        seri_enc enc;
        if (!read_integer(cookie, v, enc, err)) return false;
        out = lua_value(v);
        out.set_enc(enc);
        return true;
      }
      case type_userdata: {
        std::uint64_t p;
        if (!read_le(p)) { err = fail("truncated light userdata"); return false; }
        out = lua_value::light_userdata(p);
        return true;
      }
      case type_short_string: return read_string(cookie, seri_enc::short_str, out, err);
      case type_long_string: {
        if (cookie == 2) {
          std::uint16_t n;
          if (!read_le(n)) { err = fail("truncated long string length"); return false; }
          return read_string(n, seri_enc::long16, out, err);
        }
        if (cookie == 4) {
          std::uint32_t n;
          if (!read_le(n)) { err = fail("truncated long string length"); return false; }
          return read_string(n, seri_enc::long32, out, err);
        }
        err = fail("invalid long string cookie");
        return false;
      }
      case type_table: return table(cookie, out, depth, err);
      default: err = fail("invalid type 7"); return false;
    }
  }

  bool next_value(lua_value& out, int depth, seri_error& err, const char* what) {
    std::uint8_t tag;
    if (!read_tag(tag)) { err = fail(what); return false; }
    return value(tag, out, depth, err);
  }

  bool table(std::uint8_t cookie, lua_value& out, int depth, seri_error& err) {
    if (depth >= limits_.max_depth) { err = fail("table nesting too deep", seri_errc::too_deep); return false; }
    lua_table t;
    std::uint64_t n = cookie;
    t.array_len_enc = seri_enc::cookie;
    if (cookie == max_cookie - 1) {
      std::uint8_t tag;
      if (!read_tag(tag)) { err = fail("truncated table size"); return false; }
      if ((tag & 7) != type_number || (tag >> 3) == number_real) {
        err = fail("table size is not an integer");
        return false;
      }
      std::int64_t v;
      if (!read_integer(static_cast<std::uint8_t>(tag >> 3), v, t.array_len_enc, err)) return false;
      if (v < 0) { err = fail("negative table size"); return false; }
      n = static_cast<std::uint64_t>(v);
    }
    // Every element takes at least one byte, but nested tables would each reserve
    // against the same remaining bytes: reserve only a little and let it grow.
    t.array.reserve(static_cast<std::size_t>(std::min<std::uint64_t>({n, std::uint64_t{remaining()}, std::uint64_t{64}})));
    for (std::uint64_t i = 0; i < n; ++i) {
      lua_value v;
      if (!next_value(v, depth + 1, err, "truncated table array")) return false;
      t.array.push_back(std::move(v));
    }
    for (;;) {
      lua_value k;
      if (!next_value(k, depth + 1, err, "missing table terminator")) return false;
      if (k.is_nil()) break;
      lua_value v;
      if (!next_value(v, depth + 1, err, "truncated table value")) return false;
      if (k.is_real() && std::isnan(k.as_real())) {
        err = seri_error{seri_errc::nan_key, pos_, remaining(), "table index is NaN"};
        return false;
      }
      t.hash.emplace_back(std::move(k), std::move(v));
    }
    out = lua_value(std::move(t));
    return true;
  }

 private:
  bytes_view in_;
  const unpack_limits& limits_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------- encoding --

class writer {
 public:
  explicit writer(byte_buffer& out) : out_(out) {}

  void byte(std::uint8_t b) { out_.push_back(b); }
  template <class T>
  void le(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }

  void integer(std::int64_t v) {
    if (v == 0) {
      byte(combine(type_number, number_zero));
    } else if (v != static_cast<std::int32_t>(v)) {
      byte(combine(type_number, number_qword));
      le(v);
    } else if (v < 0) {
      byte(combine(type_number, number_dword));
      le(static_cast<std::int32_t>(v));
    } else if (v < 0x100) {
      byte(combine(type_number, number_byte));
      le(static_cast<std::uint8_t>(v));
    } else if (v < 0x10000) {
      byte(combine(type_number, number_word));
      le(static_cast<std::uint16_t>(v));
    } else {
      byte(combine(type_number, number_dword));
      le(static_cast<std::int32_t>(v));
    }
  }

  void string(const std::string& s) {
    const std::size_t n = s.size();
    if (n < max_cookie) {
      byte(combine(type_short_string, static_cast<std::uint8_t>(n)));
    } else if (n < 0x10000) {
      byte(combine(type_long_string, 2));
      le(static_cast<std::uint16_t>(n));
    } else {
      byte(combine(type_long_string, 4));
      le(static_cast<std::uint32_t>(n));
    }
    out_.insert(out_.end(), s.begin(), s.end());
  }

  bool value(const lua_value& v, int depth, seri_error& err) {
    // skynet checks the depth for every value, not only tables: 33 nested tables pack
    // only while the innermost one is empty.
    if (depth > max_pack_depth) {
      err = seri_error{seri_errc::pack_too_deep, out_.size(), 0, "serialize can't pack too depth table"};
      return false;
    }
    switch (v.type()) {
      case lua_type::nil: byte(combine(type_nil, 0)); return true;
      case lua_type::boolean: byte(combine(type_boolean, v.as_boolean() ? 1 : 0)); return true;
      case lua_type::integer: integer(v.as_integer()); return true;
      case lua_type::real: byte(combine(type_number, number_real)); le(v.as_real()); return true;
      case lua_type::light_userdata: byte(combine(type_userdata, 0)); le(v.as_light_userdata()); return true;
      case lua_type::string:
        if (v.as_string().size() > std::numeric_limits<std::int32_t>::max()) {
          err = seri_error{seri_errc::too_large, out_.size(), 0, "string too large"};
          return false;
        }
        string(v.as_string());
        return true;
      case lua_type::table: return table(v.as_table(), depth, err);
    }
    return false;
  }

  bool table(const lua_table& t, int depth, seri_error& err) {
    const std::size_t n = t.array.size();
    if (n < max_cookie - 1) {
      byte(combine(type_table, static_cast<std::uint8_t>(n)));
    } else {
      byte(combine(type_table, max_cookie - 1));
      integer(static_cast<std::int64_t>(n));
    }
    for (const auto& v : t.array) {
      if (!value(v, depth + 1, err)) return false;
    }
    for (const auto& [k, v] : t.hash) {
      if (k.is_nil() || (k.is_real() && std::isnan(k.as_real()))) {
        err = seri_error{seri_errc::nil_key, out_.size(), 0, "table index is nil or NaN"};
        return false;
      }
      if (!value(k, depth + 1, err) || !value(v, depth + 1, err)) return false;
    }
    byte(combine(type_nil, 0));
    return true;
  }

 private:
  byte_buffer& out_;
};

}  // namespace

std::string seri_error::message() const {
  std::string m;
  switch (code) {
    case seri_errc::invalid_stream:
      m = "Invalid serialize stream " + std::to_string(remaining);
      break;
    case seri_errc::nan_key: return "table index is NaN (at byte " + std::to_string(offset) + ")";
    case seri_errc::too_deep:
      return "table nesting too deep (at byte " + std::to_string(offset) + ": over the unpack depth limit)";
    case seri_errc::pack_too_deep: return "serialize can't pack too depth table";
    case seri_errc::nil_key: return "table index is nil or NaN";
    case seri_errc::too_large: return "serialize: value too large";
  }
  return m + " (at byte " + std::to_string(offset) + ": " + detail + ")";
}

result<std::vector<lua_value>, seri_error> unpack(bytes_view in, const unpack_limits& limits) {
  reader r(in, limits);
  std::vector<lua_value> values;
  seri_error err;
  std::uint8_t tag;
  while (r.read_tag(tag)) {
    lua_value v;
    if (!r.value(tag, v, 0, err)) return unexpected(err);
    values.push_back(std::move(v));
  }
  return values;
}

namespace {
// A guess at the packed size of the top level (tables count as a little), so that the
// usual payload - a few scalars and strings - is packed without regrowing the buffer.
std::size_t packed_size_hint(std::span<const lua_value> values) noexcept {
  std::size_t n = 0;
  for (const auto& v : values) n += v.is_string() ? v.as_string().size() + 5 : v.is_table() ? 64 : 9;
  return n;
}
}  // namespace

result<void, seri_error> pack(std::span<const lua_value> values, byte_buffer& out) {
  const std::size_t start = out.size();
  if (const std::size_t hint = packed_size_hint(values); out.capacity() - start < hint) {
    out.reserve(std::max(start + hint, 2 * out.capacity()));
  }
  writer w(out);
  seri_error err;
  for (const auto& v : values) {
    if (!w.value(v, 0, err)) {
      out.resize(start);
      return unexpected(err);
    }
  }
  if (out.size() - start > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    out.resize(start);
    return unexpected(seri_error{seri_errc::too_large, 0, 0, "payload too large"});
  }
  return {};
}

result<byte_buffer, seri_error> pack(std::span<const lua_value> values) {
  byte_buffer out;
  auto r = pack(values, out);
  if (!r) return unexpected(r.error());
  return out;
}

}  // namespace csk::seri
