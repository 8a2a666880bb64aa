#pragma once
// Little-endian integers in byte buffers, for the hand-encoded headers (the entity
// journal's records and superblocks). Pure.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/base/bytes.hpp"

namespace csk::le {

/// Appends the low `bytes` bytes of v, least significant first.
inline void put(byte_buffer& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
/// Writes them at p (which must have room).
inline void store(std::uint8_t* p, std::uint64_t v, int bytes) noexcept {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
/// Reads `bytes` bytes at in[at] (the caller checked the length).
inline std::uint64_t get(bytes_view in, std::size_t at, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{in[at + static_cast<std::size_t>(i)]} << (8 * i);
  return v;
}

}  // namespace csk::le
