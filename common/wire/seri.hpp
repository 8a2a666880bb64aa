#pragma once
// skynet.pack / skynet.unpack (lua-seri) for csk::lua_value. Pure functions on bytes.
//
// Wire layout of one value (all multi-byte numbers little-endian):
//
//   tag = type | cookie << 3
//   type 0 nil            cookie ignored
//   type 1 boolean        cookie 0 = false, non-zero = true
//   type 2 number         cookie 0 zero | 1 u8 | 2 u16 | 4 i32 | 6 i64 | 8 double
//   type 3 light userdata 8 bytes
//   type 4 short string   cookie = length (0..31), then the bytes
//   type 5 long string    cookie 2: u16 length | cookie 4: u32 length, then the bytes
//   type 6 table          cookie = array size 0..30, or 31 then the size as a number value;
//                         array values, then (key value)* pairs, then a nil tag (00)
//   type 7 invalid
//
// A payload is a plain concatenation of values (no count, no terminator).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::seri {

/// Error numbers are pinned: they reach logs and tools.
enum class seri_errc : std::uint8_t {
  invalid_stream = 1,  ///< what skynet.unpack reports as "Invalid serialize stream N"
  nan_key = 2,         ///< unpack: a table key is NaN ("table index is NaN")
  too_deep = 3,        ///< unpack: nesting beyond unpack_limits::max_depth
  pack_too_deep = 4,   ///< pack: "serialize can't pack too depth table"
  nil_key = 5,         ///< pack: a hash key is nil (or NaN): no Lua table can hold it
  too_large = 6,       ///< pack: output would reach 2^31 bytes (skynet's int size)
};

struct seri_error {
  seri_errc code = seri_errc::invalid_stream;
  std::size_t offset = 0;     ///< byte offset in the input where decoding failed
  std::size_t remaining = 0;  ///< bytes left after `offset` (skynet's "stream N")
  const char* detail = "";    ///< what was wrong, e.g. "truncated string"

  /// One line: for unpack errors it starts with skynet's own text, e.g.
  /// "Invalid serialize stream 3 (at byte 3: truncated string)".
  std::string message() const;
};

/// skynet.pack refuses tables nested deeper than this (33 tables pack, 34 do not).
inline constexpr int max_pack_depth = 32;

struct unpack_limits {
  /// skynet.unpack has no explicit limit (only the C stack); skynet senders never
  /// exceed 33 levels. We bound recursion so hostile input cannot overflow the stack.
  int max_depth = 128;
};

/// Decodes a whole payload into values. Accepts exactly what skynet.unpack accepts
/// (see tests/data/interop/seri_reject.jsonl), except nesting beyond max_depth.
/// Never throws on bad input; never allocates more than the input can back.
[[nodiscard]] result<std::vector<lua_value>, seri_error> unpack(bytes_view in,
                                                                 const unpack_limits& limits = {});

/// Appends the skynet.pack encoding of `values` to `out`. On error `out` is left as it was.
[[nodiscard]] result<void, seri_error> pack(std::span<const lua_value> values, byte_buffer& out);

/// Convenience: pack into a new buffer (throws nothing; check the result).
[[nodiscard]] result<byte_buffer, seri_error> pack(std::span<const lua_value> values);

}  // namespace csk::seri
