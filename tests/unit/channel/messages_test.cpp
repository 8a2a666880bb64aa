// The channel's catalog as pure functions on bytes: a golden record, every kind round
// trips, and garbage, truncation and lying lengths come back as errors.

#include <gtest/gtest.h>

#include "common/channel/messages.hpp"

namespace csk::channel {
namespace {

byte_buffer hex(std::string_view h) {
  byte_buffer out;
  EXPECT_TRUE(from_hex(h, out)) << h;
  return out;
}

std::vector<message> one_of_each() {
  return {
      hello{protocol_version, 7, 4242},
      welcome{250},
      refuse{"protocol version 9, supervisor speaks 1"},
      listeners{{"cluster", "gate:kv", "admin"}, 0, 1},
      ready{},
      heartbeat{3, 3000, 12, 99999, 4},
      reload{},
      log_reopen{},
      drain{5000},
      drained{},
      stop{10000},
      stopped{},
      handover{3, 30000},
      takeover{2, 30000},
      upgrade_result{1, "", "done", 812000, 700000, 4100, 10000, 120, 3, 1200000, 2},
      console{7, "call @echo hi"},
      console_reply{7, 1, "[\"hi\"]"},
      counters{2, 20, 1, 812000, 1500},
  };
}

TEST(ChannelMessages, HelloHasAFixedLayout) {
  // magic "CSKC", format 1, kind 1, payload 12 bytes: version 1, generation 2, pid 0x01020304
  const byte_buffer expected = hex("43534b43" "0100" "0100" "0c000000" "01000000" "02000000" "04030201");
  EXPECT_EQ(encode(hello{1, 2, 0x01020304}), expected);
  auto m = decode(expected);
  ASSERT_TRUE(m.has_value()) << m.error();
  EXPECT_EQ(std::get<hello>(*m), (hello{1, 2, 0x01020304}));
}

TEST(ChannelMessages, ListenersLayout) {
  // kind 4; payload: u64 count 1, u64 length 7 "cluster", batch 0, batches 1
  const byte_buffer expected = hex("43534b43" "0100" "0400" "1f000000" "0100000000000000" "0700000000000000"
                                   "636c7573746572" "00000000" "01000000");
  EXPECT_EQ(encode(listeners{{"cluster"}, 0, 1}), expected);
}

TEST(ChannelMessages, EveryKindRoundTrips) {
  for (const message& m : one_of_each()) {
    const byte_buffer bytes = encode(m);
    EXPECT_LE(bytes.size(), max_record);
    auto back = decode(bytes);
    ASSERT_TRUE(back.has_value()) << name_of(kind_of(m)) << ": " << back.error();
    EXPECT_EQ(*back, m) << name_of(kind_of(m));
    EXPECT_EQ(encode(*back), bytes);
  }
}

TEST(ChannelMessages, NamesAndFdCounts) {
  EXPECT_EQ(name_of(kind::heartbeat), "heartbeat");
  EXPECT_EQ(name_of(static_cast<kind>(0)), "unknown");
  EXPECT_EQ(name_of(static_cast<kind>(99)), "unknown");
  EXPECT_EQ(kind_of(stop{1}), kind::stop);
  EXPECT_EQ(fds_announced(listeners{{"a", "b"}, 0, 1}), 2u);
  EXPECT_EQ(fds_announced(hello{}), 0u);
  EXPECT_EQ(fds_announced(handover{}), 1u);
  EXPECT_EQ(fds_announced(takeover{}), 1u);
  EXPECT_EQ(name_of(kind::upgrade_result), "upgrade_result");
  EXPECT_EQ(check(upgrade_result{2, "", "", 0, 0, 0, 0, 0, 0, 0, 0}),
            "upgrade_result: ok is 0 or 1, reason at most 4096 bytes, phase at most 64");
}

TEST(ChannelMessages, EveryTruncationIsAnErrorNeverACrash) {
  for (const message& m : one_of_each()) {
    const byte_buffer bytes = encode(m);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      auto r = decode(bytes_view(bytes.data(), n));
      ASSERT_FALSE(r.has_value()) << name_of(kind_of(m)) << " cut to " << n;
      EXPECT_FALSE(r.error().empty());
    }
  }
  EXPECT_EQ(decode(hex("43534b43")).error(), "truncated header: 4 of 12 bytes");
}

TEST(ChannelMessages, HeaderErrorsSayWhatIsWrong) {
  EXPECT_EQ(decode(hex("58534b43" "0100" "0100" "00000000")).error(), "bad magic (not a channel record)");
  EXPECT_EQ(decode(hex("43534b43" "0200" "0100" "00000000")).error(), "header format 2 (this side reads 1)");
  EXPECT_EQ(decode(hex("43534b43" "0100" "6300" "00000000")).error(), "unknown message kind 99");
  EXPECT_EQ(decode(hex("43534b43" "0100" "0000" "00000000")).error(), "unknown message kind 0");
  EXPECT_EQ(decode(hex("43534b43" "0100" "0500" "01000000")).error(),
            "ready: payload length says 1 bytes, the record has 0");
  EXPECT_EQ(decode(hex("43534b43" "0100" "0500" "01000000" "00")).error(), "ready: 1 bytes after the payload");
}

TEST(ChannelMessages, LyingLengthsAllocateNothing) {
  // refuse with a string length of 2^62 and 3 bytes behind it
  auto r = decode(hex("43534b43" "0100" "0300" "0b000000" "0000000000000040" "414243"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("bad refuse payload: length 4611686018427387904 exceeds the 3 bytes left"),
            std::string::npos)
      << r.error();
  // listeners claiming 2^32 names
  auto l = decode(hex("43534b43" "0100" "0400" "10000000" "0000000001000000" "0000000001000000"));
  ASSERT_FALSE(l.has_value());
  EXPECT_NE(l.error().find("exceeds"), std::string::npos) << l.error();
}

TEST(ChannelMessages, ListenerRulesAreChecked) {
  EXPECT_EQ(check(listeners{{"a"}, 1, 1}), "listeners: batch 1 of 1");
  EXPECT_EQ(check(listeners{{"a"}, 0, 0}), "listeners: batches must be at least 1");
  EXPECT_EQ(check(listeners{{""}, 0, 1}), "listeners: empty name");
  EXPECT_EQ(check(listeners{std::vector<std::string>(254, "x"), 0, 1}),
            "listeners: 254 names in one record (at most 253)");
  EXPECT_EQ(check(refuse{std::string(5000, 'x')}), "refuse: reason longer than 4096 bytes");
  auto r = decode(encode(listeners{{"a"}, 2, 1}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "listeners: batch 2 of 1");
}

TEST(ChannelMessages, OversizedRecordIsRefused) {
  byte_buffer big = encode(refuse{"x"});
  big.resize(max_record + 1);
  auto r = decode(big);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "record of 65537 bytes (at most 65536)");
}

}  // namespace
}  // namespace csk::channel
