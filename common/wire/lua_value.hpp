#pragma once
// csk::lua_value: the C++ image of a Lua value as skynet.pack / skynet.unpack
// carry it: nil, boolean, 64-bit integer, double, byte string, table, light userdata.
//
// Integer and real stay distinct (Lua 5.4 subtypes: 1 ~= 1.0 on the wire).
// Tables keep skynet's wire shape: an array part (keys 1..N, nil elements allowed)
// and a hash part of (key, value) pairs in wire order. Nothing is reordered or
// deduplicated, so a decoded table re-encodes to the same bytes.
//
// Values decoded from the wire remember how each number, string and array size was
// encoded (`seri_enc`); that is only information for tools (the dissector) and
// does not take part in equality. The encoder always writes skynet's canonical form.
//
// Thread rules: a lua_value is a plain value; distinct values may be used from
// distinct threads, one value is not synchronised.

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace csk {

enum class lua_type : std::uint8_t {
  nil = 0,
  boolean = 1,
  integer = 2,
  real = 3,
  string = 4,
  table = 5,
  light_userdata = 6,
};

const char* lua_type_name(lua_type t) noexcept;

/// How a value appeared on the wire (set by the decoder; `none` for values built in C++).
enum class seri_enc : std::uint8_t {
  none = 0,
  zero,     ///< integer 0, no bytes
  byte,     ///< integer, u8
  word,     ///< integer, u16 LE
  dword,    ///< integer, i32 LE
  qword,    ///< integer, i64 LE
  real,     ///< double
  short_str,///< string, length in the cookie (0..31)
  long16,   ///< string, u16 LE length
  long32,   ///< string, u32 LE length
  cookie,   ///< table: array size in the cookie (0..30)
};

const char* seri_enc_name(seri_enc e) noexcept;

struct lua_table;

class lua_value {
 public:
  lua_value() noexcept = default;  ///< nil
  lua_value(std::nullptr_t) noexcept {}
  lua_value(bool b) noexcept : type_(lua_type::boolean), bool_(b) {}
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  lua_value(I i) noexcept : type_(lua_type::integer), int_(static_cast<std::int64_t>(i)) {}
  lua_value(double d) noexcept : type_(lua_type::real), real_(d) {}
  lua_value(std::string s) : type_(lua_type::string), str_(std::move(s)) {}
  lua_value(std::string_view s) : type_(lua_type::string), str_(s) {}
  lua_value(const char* s) : type_(lua_type::string), str_(s) {}
  lua_value(lua_table t);

  static lua_value light_userdata(std::uint64_t p) noexcept {
    lua_value v;
    v.type_ = lua_type::light_userdata;
    v.int_ = static_cast<std::int64_t>(p);
    return v;
  }

  lua_value(const lua_value& o);
  lua_value(lua_value&& o) noexcept = default;
  lua_value& operator=(const lua_value& o);
  lua_value& operator=(lua_value&& o) noexcept = default;
  ~lua_value();

  // -- observers ------------------------------------------------------------
  lua_type type() const noexcept { return type_; }
  bool is_nil() const noexcept { return type_ == lua_type::nil; }
  bool is_boolean() const noexcept { return type_ == lua_type::boolean; }
  bool is_integer() const noexcept { return type_ == lua_type::integer; }
  bool is_real() const noexcept { return type_ == lua_type::real; }
  bool is_number() const noexcept { return is_integer() || is_real(); }
  bool is_string() const noexcept { return type_ == lua_type::string; }
  bool is_table() const noexcept { return type_ == lua_type::table; }
  bool is_light_userdata() const noexcept { return type_ == lua_type::light_userdata; }

  /// Lua truthiness: everything but nil and false.
  bool truthy() const noexcept { return !(is_nil() || (is_boolean() && !bool_)); }

  // Accessors assert the type in debug builds; use the is_* checks first.
  bool as_boolean() const noexcept { return bool_; }
  std::int64_t as_integer() const noexcept { return int_; }
  double as_real() const noexcept { return real_; }
  std::uint64_t as_light_userdata() const noexcept { return static_cast<std::uint64_t>(int_); }
  const std::string& as_string() const noexcept { return str_; }
  std::string& as_string() noexcept { return str_; }
  const lua_table& as_table() const noexcept { return *table_; }
  lua_table& as_table() noexcept { return *table_; }

  /// Wire encoding seen by the decoder (none for values built in C++).
  seri_enc enc() const noexcept { return enc_; }
  void set_enc(seri_enc e) noexcept { enc_ = e; }

  /// Structural equality: same type, same integer/real subtype, reals compared by
  /// bit pattern (so NaN == NaN and 0.0 != -0.0), tables compared part by part in
  /// wire order. Not Lua's `==`. Ignores enc().
  friend bool operator==(const lua_value& a, const lua_value& b) noexcept;

  /// A short human-readable rendering for logs and test failures.
  std::string debug_string() const;

 private:
  lua_type type_ = lua_type::nil;
  seri_enc enc_ = seri_enc::none;
  bool bool_ = false;
  union {
    std::int64_t int_ = 0;
    double real_;
  };
  std::string str_;
  std::unique_ptr<lua_table> table_;
};

/// A Lua table in skynet's wire shape.
struct lua_table {
  std::vector<lua_value> array;                          ///< keys 1..N in order; nil allowed
  std::vector<std::pair<lua_value, lua_value>> hash;     ///< other pairs, wire order
  seri_enc array_len_enc = seri_enc::none;               ///< how N was written (decoder only)

  lua_table() = default;
  lua_table(std::vector<lua_value> a) : array(std::move(a)) {}  // NOLINT: {1,2,3} reads well

  /// Appends a hash pair (no dedup: the wire keeps duplicates, and so do we).
  lua_table& set(lua_value k, lua_value v) {
    hash.emplace_back(std::move(k), std::move(v));
    return *this;
  }
  /// Looks a key up the way Lua would after unpack: array part for integer keys
  /// 1..N, then the *last* matching hash pair. Returns nullptr when absent or nil.
  const lua_value* find(const lua_value& key) const noexcept;

  friend bool operator==(const lua_table& a, const lua_table& b) noexcept {
    return a.array == b.array && a.hash == b.hash;
  }
};

}  // namespace csk
