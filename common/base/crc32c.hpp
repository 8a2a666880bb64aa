#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of the entity
// journal's records and checkpoints (services/entity/journal_format.hpp). The SSE4.2
// crc32 instruction where the CPU has it (checked once, at first use), else a
// slicing-by-8 table. Pure; any thread.
//
//   crc32c(as_bytes("123456789")) == 0xE3069283
//   crc32c(b, crc32c(a)) == crc32c(a followed by b)      (chaining)

#include <cstdint>

#include "common/base/bytes.hpp"

namespace csk {

/// The CRC-32C of `data`, continuing from `crc` (the CRC of what came before; 0 to start).
std::uint32_t crc32c(bytes_view data, std::uint32_t crc = 0) noexcept;

/// The same on the table path only (tests compare it with the hardware path).
std::uint32_t crc32c_portable(bytes_view data, std::uint32_t crc = 0) noexcept;

}  // namespace csk
