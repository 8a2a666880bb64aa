// unpack_length16: skynet's u16 big-endian length framing, as a pure function.

#include <gtest/gtest.h>

#include "common/net/framing.hpp"

namespace csk::net {
namespace {

using status = unpack_result::status;

TEST(UnpackLength16, NeedsMoreWithoutAWholeHeader) {
  const byte_buffer none;
  const byte_buffer one{0x00};
  for (const auto& b : {none, one}) {
    const auto r = unpack_length16(b);
    EXPECT_EQ(r.what, status::need_more);
    EXPECT_EQ(r.header + r.length, 0u) << "size unknown before both length bytes";
  }
}

TEST(UnpackLength16, ReportsTheSizeBeforeTheBodyArrives) {
  const byte_buffer partial{0x00, 0x05, 'a', 'b'};
  const auto r = unpack_length16(partial);
  EXPECT_EQ(r.what, status::need_more);
  EXPECT_EQ(r.header, 2u);
  EXPECT_EQ(r.length, 5u);
  const byte_buffer header_only{0x00, 0x05};
  EXPECT_EQ(unpack_length16(header_only).what, status::need_more);
}

TEST(UnpackLength16, ReadsTheLengthBigEndian) {
  byte_buffer b{0x01, 0x02};
  b.resize(2 + 0x0102, 'x');
  const auto r = unpack_length16(b);
  EXPECT_EQ(r.what, status::message);
  EXPECT_EQ(r.header, 2u);
  EXPECT_EQ(r.length, 0x0102u);
}

TEST(UnpackLength16, AcceptsAZeroLengthBody) {
  const byte_buffer b{0x00, 0x00, 0x00, 0x01};  // an empty frame, then a partial one
  const auto r = unpack_length16(b);
  EXPECT_EQ(r.what, status::message);
  EXPECT_EQ(r.header, 2u);
  EXPECT_EQ(r.length, 0u);
}

TEST(UnpackLength16, TakesOnlyTheFirstOfSeveralFrames) {
  const byte_buffer b{0x00, 0x01, 'a', 0x00, 0x02, 'b', 'c'};
  const auto r = unpack_length16(b);
  EXPECT_EQ(r.what, status::message);
  EXPECT_EQ(r.length, 1u);
}

TEST(UnpackLength16, HandlesTheLargestBody) {
  byte_buffer b{0xff, 0xff};
  b.resize(2 + 0xffff - 1, 'x');
  auto r = unpack_length16(b);
  EXPECT_EQ(r.what, status::need_more);
  EXPECT_EQ(r.length, 0xffffu);
  b.push_back('x');
  r = unpack_length16(b);
  EXPECT_EQ(r.what, status::message);
  EXPECT_EQ(r.header + r.length, length16_header + length16_max_body);
}

}  // namespace
}  // namespace csk::net
