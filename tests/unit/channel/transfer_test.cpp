// The transfer socket between two workers: messages far larger than a record travel as
// several records and come back whole with their fd; every malformed record or body is an
// error, an oversized message is refused before it is buffered, a reader that is gone or
// silent is an error within the deadline, never a hang.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "common/channel/fd_channel.hpp"
#include "common/channel/transfer.hpp"

namespace csk::channel::transfer {
namespace {

using namespace std::chrono_literals;

struct pair_fixture : ::testing::Test {
  void SetUp() override {
    auto p = make_socket_pair();
    ASSERT_TRUE(p.has_value()) << p.error();
    a = std::move(p->first);
    b = std::move(p->second);
  }
  unique_fd a, b;
};
using TransferSocket = pair_fixture;

byte_buffer pattern(std::size_t n) {
  byte_buffer out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i * 7 + (i >> 8));
  return out;
}

std::vector<message> one_of_each() {
  return {offer{4, {store_offer{"players", "game.player", byte_buffer{1, 2, 3}}}, {"kv"}},
          accept{},
          refuse{"entity type 'x' is not registered"},
          page{"players", pattern(100)},
          applied{"players", 10, 2},
          commit{},
          conn{"cluster", "127.0.0.1:5000", pattern(10), pattern(20)},
          conn{"gate:kv", "127.0.0.1:5001", {}, {}},  // empty byte strings (nothing unread)
          done{3},
          serving{},
          abort{"freeze: 2 calls still in flight after 5000 ms"}};
}

TEST(TransferMessages, EveryKindRoundTripsThroughItsBody) {
  for (const message& m : one_of_each()) {
    const byte_buffer body = encode_body(m);
    auto back = decode_body(kind_of(m), body);
    ASSERT_TRUE(back.has_value()) << name_of(kind_of(m)) << ": " << back.error();
    EXPECT_EQ(*back, m);
    for (std::size_t n = 0; n < body.size(); ++n) {  // every truncation is an error
      EXPECT_FALSE(decode_body(kind_of(m), bytes_view(body.data(), n)).has_value()) << name_of(kind_of(m)) << " " << n;
    }
  }
  EXPECT_EQ(decode_body(static_cast<kind>(11), {}).error(), "unknown transfer kind 11");
}

// An offer that claims a million stores and carries a few bytes: refused as truncated,
// having allocated only for the stores it could read (the archive does not size the list
// by the claimed count; that count alone passes the one-byte-per-element check here).
TEST(TransferMessages, ALyingListCountIsRefusedAfterTheElementsThatAreThere) {
  offer o{4, {store_offer{"players", "game.player", byte_buffer{1, 2, 3}}}, {"kv"}};
  byte_buffer body = encode_body(o);
  // generation u32, then the stores' count u64 (little-endian): claim 2^20 instead of 1.
  ASSERT_GE(body.size(), 12u);
  body[4 + 2] = 0x10;
  body.resize(body.size() + (std::size_t{1} << 20), 0);  // room enough for the count check
  auto back = decode_body(kind::offer, body);
  ASSERT_FALSE(back.has_value());
  EXPECT_NE(back.error().find("bad offer body"), std::string::npos) << back.error();
}

TEST(TransferMessages, RecordLayoutAndSplitting) {
  // done{3}: "CSKX", kind 8, flags 0, 0, part length 8, u64 3
  const auto one = encode_records(done{3});
  ASSERT_EQ(one.size(), 1u);
  const byte_buffer expected = {'C', 'S', 'K', 'X', 8, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(one[0], expected);
  // A 200 KB page: 4 records, "more" on all but the last, each within max_record.
  const auto many = encode_records(page{"p", pattern(200000)});
  ASSERT_EQ(many.size(), 4u);
  for (std::size_t i = 0; i < many.size(); ++i) {
    EXPECT_LE(many[i].size(), max_record);
    EXPECT_EQ(many[i][6], i + 1 < many.size() ? 1 : 0);
  }
}

TEST(TransferMessages, ParseRecordChecksTheHeaderInOrder) {
  const auto one = encode_records(done{3});
  auto h = parse_record(one[0]);
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(h->type, kind::done);
  EXPECT_FALSE(h->more);
  EXPECT_EQ(h->length, 8u);
  const auto many = encode_records(page{"p", pattern(100000)});
  ASSERT_EQ(many.size(), 2u);
  EXPECT_TRUE(parse_record(many[0])->more);
  EXPECT_EQ(parse_record(many[0])->length, max_record - record_header);
  // The texts recv fails with; magic before flags before length before kind.
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'X', 8, 0, 0, 0, 0, 0, 0}).error(),
            "transfer: not a transfer record (11 bytes)");
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'C', 99, 0, 2, 0, 9, 0, 0, 0}).error(),
            "transfer: not a transfer record (12 bytes)");
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'X', 99, 0, 2, 0, 9, 0, 0, 0}).error(),
            "transfer: unknown record flags");
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'X', 99, 0, 0, 1, 9, 0, 0, 0}).error(),
            "transfer: unknown record flags");
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'X', 99, 0, 1, 0, 9, 0, 0, 0}).error(),
            "transfer: part length says 9, the record has 0");
  EXPECT_EQ(parse_record(byte_buffer{'C', 'S', 'K', 'X', 0, 1, 1, 0, 1, 0, 0, 0, 7}).error(),
            "transfer: unknown kind 256");
}

TEST_F(TransferSocket, LargeMessageAndItsFdArriveWhole) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  struct stat want {};
  ASSERT_EQ(::fstat(r.get(), &want), 0);
  const conn c{"gate:kv", "127.0.0.1:1", pattern(300000), pattern(70000)};
  // The socket buffer is far smaller than the message: the receiver must read meanwhile.
  std::thread sender([&] {
    const int fds[] = {r.get()};
    auto s = send(a.get(), c, 5s, fds);
    EXPECT_TRUE(s.has_value()) << s.error();
  });
  auto got = recv(b.get(), 5s, 1 << 20);
  sender.join();
  ASSERT_TRUE(got.has_value()) << got.error().text;
  EXPECT_EQ(std::get<conn>(got->msg), c);
  ASSERT_EQ(got->fds.size(), 1u);
  struct stat have {};
  ASSERT_EQ(::fstat(got->fds[0].get(), &have), 0);
  EXPECT_EQ(have.st_ino, want.st_ino);
}

TEST_F(TransferSocket, OversizedMessageIsRefusedBeforeBuffering) {
  std::thread sender([&] { (void)send(a.get(), page{"p", pattern(500000)}, 2s); });
  auto got = recv(b.get(), 5s, 100000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().why, recv_error::kind::failed);
  EXPECT_NE(got.error().text.find("page larger than 100000 bytes"), std::string::npos) << got.error().text;
  b.reset();  // the sender sees the reader gone and stops
  sender.join();
}

TEST_F(TransferSocket, BadRecordsAreErrors) {
  const auto raw = [&](byte_buffer bytes) { ASSERT_EQ(::send(a.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size())); };
  raw({'C', 'S', 'K', 'C', 8, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("not a transfer record"), std::string::npos);
  raw({'C', 'S', 'K', 'X', 8, 0, 2, 0, 0, 0, 0, 0});
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("unknown record flags"), std::string::npos);
  raw({'C', 'S', 'K', 'X', 8, 0, 0, 0, 9, 0, 0, 0});
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("part length says 9"), std::string::npos);
  raw({'C', 'S', 'K', 'X', 99, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("unknown kind 99"), std::string::npos);
  raw({'C', 'S', 'K', 'X', 4, 0, 1, 0, 0, 0, 0, 0});  // page, more ...
  raw({'C', 'S', 'K', 'X', 8, 0, 0, 0, 0, 0, 0, 0});  // ... then done
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("change kind"), std::string::npos);
  raw({'C', 'S', 'K', 'X', 8, 0, 0, 0, 1, 0, 0, 0, 5});  // done with a 1-byte body
  EXPECT_NE(recv(b.get(), 1s, 1000).error().text.find("bad done body"), std::string::npos);
}

TEST_F(TransferSocket, SilenceTimesOutAndAClosedPeerIsClosed) {
  auto t = recv(b.get(), 50ms, 1000);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().why, recv_error::kind::timeout);
  a.reset();
  auto c = recv(b.get(), 1s, 1000);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().why, recv_error::kind::closed);
}

TEST_F(TransferSocket, SendToAReaderThatNeverReadsFailsAtTheDeadline) {
  auto s = send(a.get(), page{"p", pattern(4 << 20)}, 100ms);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().find("does not read"), std::string::npos) << s.error();
  EXPECT_FALSE(send(a.get(), done{}, 100ms, std::vector<int>{1}).has_value());  // fd count checked
}

}  // namespace
}  // namespace csk::channel::transfer
