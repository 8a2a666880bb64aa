// CRC-32C: the published check value, RFC 3720's test patterns (iSCSI, appendix B.4),
// chaining, and the hardware path against the table path on every length and alignment.

#include <gtest/gtest.h>

#include <random>

#include "common/base/crc32c.hpp"

namespace csk {
namespace {

TEST(Crc32c, CheckValue) {
  EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32c_portable(as_bytes("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32c(bytes_view{}), 0u);
}

TEST(Crc32c, Rfc3720Patterns) {
  byte_buffer zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
    down[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down), 0x113FDB5Cu);
}

TEST(Crc32c, ChainsAndAgreesWithTheTablePathEverywhere) {
  std::mt19937 rng(7);
  byte_buffer data(1000);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  for (std::size_t start = 0; start < 9; ++start) {
    for (std::size_t len = 0; start + len <= 300; ++len) {
      const bytes_view v(data.data() + start, len);
      ASSERT_EQ(crc32c(v), crc32c_portable(v)) << start << "+" << len;
    }
  }
  const bytes_view all(data);
  for (std::size_t cut : {0u, 1u, 7u, 8u, 500u, 999u, 1000u}) {
    EXPECT_EQ(crc32c(all.subspan(cut), crc32c(all.first(cut))), crc32c(all)) << cut;
  }
  // One flipped bit changes it.
  byte_buffer flipped = data;
  flipped[123] ^= 0x10;
  EXPECT_NE(crc32c(flipped), crc32c(data));
}

}  // namespace
}  // namespace csk
