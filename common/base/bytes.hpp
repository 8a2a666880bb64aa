#pragma once
// Byte buffers and views. Wire code takes views and appends to buffers; it never
// owns a socket and never allocates from an unchecked length.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace csk {

using byte_buffer = std::vector<std::uint8_t>;
using bytes_view = std::span<const std::uint8_t>;

inline bytes_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(bytes_view b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Lowercase hex, no separators.
std::string to_hex(bytes_view b);
/// Parses hex (either case, no separators). Returns false on odd length or a non-hex digit.
bool from_hex(std::string_view hex, byte_buffer& out);

}  // namespace csk
