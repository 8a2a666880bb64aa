// The journal's bytes (services/entity/journal_format.hpp), as pure functions on byte
// vectors: the superblock's layout and its checks, the pick between its two copies,
// records and the chain scan (wraps, stale laps, epochs, torn and corrupted records), and
// checkpoint frames.

#include <gtest/gtest.h>

#include <vector>

#include "common/base/crc32c.hpp"
#include "common/base/little_endian.hpp"
#include "services/entity/journal_format.hpp"

namespace csk::entity::journal {
namespace {

superblock sample() {
  superblock sb;
  sb.counter = 7;
  sb.epoch = 3;
  sb.ring_size = 1 << 16;
  sb.head = 4096;
  sb.head_seq = 120;
  sb.slot = 1;
  sb.key = key_kind::integer;
  sb.checkpoint_pages = 5;
  sb.checkpoint_bytes = 9000;
  sb.checkpoint_clock_ms = 123456;
  sb.checkpoint_unix_ms = 1700000000000;
  sb.checkpoints = 4;
  for (std::size_t i = 0; i < sb.boot.size(); ++i) sb.boot[i] = static_cast<std::uint8_t>(i + 1);
  sb.store_id = "players";
  sb.type = "game.player";
  return sb;
}

TEST(JournalFormat, SuperblockLayoutIsPinned) {
  const byte_buffer b = encode_superblock(sample());
  ASSERT_EQ(b.size(), 112u + 1 + 7 + 1 + 11 + 4);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "CSKS");
  EXPECT_EQ(le::get(b, 4, 2), 1u);     // format
  EXPECT_EQ(le::get(b, 8, 8), 7u);     // counter
  EXPECT_EQ(le::get(b, 16, 8), 3u);    // epoch
  EXPECT_EQ(le::get(b, 24, 8), 65536u);
  EXPECT_EQ(le::get(b, 32, 8), 4096u);  // head
  EXPECT_EQ(le::get(b, 40, 8), 120u);   // head_seq
  EXPECT_EQ(b[48], 1);                  // slot
  EXPECT_EQ(b[49], 2);                  // integer keys
  EXPECT_EQ(le::get(b, 56, 8), 5u);
  EXPECT_EQ(le::get(b, 64, 8), 9000u);
  EXPECT_EQ(le::get(b, 72, 8), 123456u);
  EXPECT_EQ(le::get(b, 88, 8), 4u);
  EXPECT_EQ(b[96], 1);
  EXPECT_EQ(b[111], 16);
  EXPECT_EQ(b[112], 7);
  EXPECT_EQ(std::string(b.begin() + 113, b.begin() + 120), "players");
  EXPECT_EQ(b[120], 11);
  EXPECT_EQ(le::get(b, b.size() - 4, 4), crc32c(bytes_view(b).first(b.size() - 4)));
  auto back = decode_superblock(b);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, sample());
}

TEST(JournalFormat, EveryFlippedSuperblockByteIsRefused) {
  const byte_buffer b = encode_superblock(sample());
  for (std::size_t i = 0; i < b.size(); ++i) {
    byte_buffer bad = b;
    bad[i] ^= 0x01;
    EXPECT_FALSE(decode_superblock(bad)) << "byte " << i;
  }
  EXPECT_FALSE(decode_superblock(bytes_view(b).first(b.size() - 1)));
}

TEST(JournalFormat, FieldsOutOfRangeAreRefusedEvenWithAGoodChecksum) {
  const auto refused = [](superblock sb, const std::string& why) {
    auto r = decode_superblock(encode_superblock(sb));
    ASSERT_FALSE(r) << why;
    EXPECT_NE(r.error().find(why), std::string::npos) << r.error();
  };
  superblock sb = sample();
  sb.ring_size = 1000;  // not a multiple of 8, below the minimum
  refused(sb, "bad ring size");
  sb = sample();
  sb.head = sb.ring_size;
  refused(sb, "bad head");
  sb = sample();
  sb.slot = 2;
  refused(sb, "bad slot");
  sb = sample();
  sb.slot = no_slot;  // sizes without a slot
  refused(sb, "checkpoint size without a slot");
}

TEST(JournalFormat, TheNewerValidCopyIsCurrent) {
  byte_buffer page(header_page_size, 0);
  auto cur = read_superblocks(page);
  ASSERT_TRUE(cur);
  EXPECT_FALSE(cur->sb.has_value()) << "zeros: a new region";
  superblock a = sample(), b = sample();
  b.counter = 8;
  b.head = 8192;
  const auto put = [&](int copy, const superblock& sb) {
    std::fill(page.begin() + static_cast<std::ptrdiff_t>(superblock_at[copy]),
              page.begin() + static_cast<std::ptrdiff_t>(superblock_at[copy] + superblock_space), 0);
    const byte_buffer e = encode_superblock(sb);
    std::copy(e.begin(), e.end(), page.begin() + static_cast<std::ptrdiff_t>(superblock_at[copy]));
  };
  put(0, a);
  put(1, b);
  cur = read_superblocks(page);
  ASSERT_TRUE(cur && cur->sb);
  EXPECT_EQ(cur->copy, 1);
  EXPECT_EQ(cur->sb->head, 8192u);
  page[superblock_at[1] + 30] ^= 0xFF;  // a torn write of copy 1: copy 0 stands
  cur = read_superblocks(page);
  ASSERT_TRUE(cur && cur->sb);
  EXPECT_EQ(cur->copy, 0);
  EXPECT_EQ(cur->sb->head, 4096u);
  page[superblock_at[0] + 9] ^= 0xFF;  // both bad: an error naming both
  cur = read_superblocks(page);
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().find("copy 0: superblock checksum mismatch"), std::string::npos) << cur.error();
  EXPECT_NE(cur.error().find("copy 1:"), std::string::npos) << cur.error();
}

TEST(JournalFormat, HintRoundTrips) {
  byte_buffer page(header_page_size, 0);
  const tail_hint h{4, 99, 4096, 5000};
  write_hint(page.data(), h);
  EXPECT_EQ(read_hint(page), h);
  EXPECT_EQ(le::get(page, hint_at + 8, 8), 99u);
}

// A ring under construction: records appended as the writer does.
struct ring_writer {
  byte_buffer ring;
  std::uint64_t tail = 0, seq = 1, used = 0;
  std::uint32_t epoch = 1;
  explicit ring_writer(std::size_t size) : ring(size, 0) {}
  void add(record_kind kind, const std::string& payload) {
    const std::size_t size = record_size(payload.size());
    std::uint64_t pos = tail, waste = 0;
    if (ring.size() - pos < record_header_size) {
      waste = ring.size() - pos;
      pos = 0;
    } else if (ring.size() - pos < size) {
      waste = ring.size() - pos;
      write_record(ring.data() + tail, seq++, epoch, record_kind::wrap, {});
      pos = 0;
    }
    write_record(ring.data() + pos, seq++, epoch, kind, as_bytes(payload));
    tail = pos + size == ring.size() ? 0 : pos + size;
    used += waste + size;
  }
};

std::vector<std::string> payloads(const byte_buffer& ring, std::uint64_t head, std::uint64_t head_seq, scan_result* out = nullptr) {
  std::vector<std::string> got;
  auto s = scan(ring, head, head_seq, [&](const record& r) -> result<void, std::string> {
    got.push_back(r.kind == record_kind::clear ? "<clear>" : std::string(as_chars(r.payload)));
    return {};
  });
  EXPECT_TRUE(s) << s.error();
  if (out != nullptr && s) *out = *s;
  return got;
}

TEST(JournalFormat, RecordLayoutIsPinned) {
  byte_buffer b(record_size(5), 0xAA);
  write_record(b.data(), 42, 3, record_kind::delta, as_bytes("hello"));
  ASSERT_EQ(b.size(), 40u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "CSKJ");
  EXPECT_EQ(le::get(b, 8, 8), 42u);
  EXPECT_EQ(le::get(b, 16, 4), 3u);
  EXPECT_EQ(b[20], 1);
  EXPECT_EQ(le::get(b, 24, 4), 5u);
  EXPECT_EQ(std::string(b.begin() + 32, b.begin() + 37), "hello");
  EXPECT_EQ(b[37], 0);  // padding is zeros
  EXPECT_EQ(le::get(b, 4, 4), crc32c(bytes_view(b).subspan(8, 24 + 5)));
  auto r = read_record(b, 0, 42, 3);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(as_chars(r->payload), "hello");
  EXPECT_EQ(r->size, 40u);
}

TEST(JournalFormat, ARecordThatDoesNotContinueTheChainSaysWhy) {
  byte_buffer b(64, 0);
  EXPECT_EQ(read_record(b, 0, 1, 0).error(), "never written");
  write_record(b.data(), 5, 2, record_kind::delta, as_bytes("x"));
  EXPECT_EQ(read_record(b, 0, 6, 0).error(), "seq 5 where 6 was due");
  EXPECT_EQ(read_record(b, 0, 5, 3).error(), "epoch 2 after epoch 3");
  b[32] ^= 1;  // the payload
  EXPECT_EQ(read_record(b, 0, 5, 0).error(), "checksum mismatch");
  b[32] ^= 1;
  b[16] ^= 1;  // the epoch (a header field)
  EXPECT_EQ(read_record(b, 0, 5, 0).error(), "checksum mismatch");
  b[0] = 'X';
  EXPECT_EQ(read_record(b, 0, 5, 0).error(), "no record magic");
  byte_buffer big(40, 0);
  write_record(big.data(), 1, 1, record_kind::delta, as_bytes("12345678"));
  EXPECT_NE(read_record(bytes_view(big).first(36), 0, 1, 0).error().find("past the ring's end"), std::string::npos);
}

TEST(JournalFormat, ScanFollowsWrapsAndStopsAtTheTail) {
  ring_writer w(1024);
  std::vector<std::string> want;
  for (int i = 0; i < 40; ++i) {  // several laps' worth: keep the last ones only
    const std::string p = "payload-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 13), '.');
    w.add(record_kind::delta, p);
    want.push_back(p);
  }
  // Replay from a head that is still intact: the record 8 back from the end.
  // Find its offset by scanning the writer's arithmetic again.
  ring_writer probe(1024);
  std::uint64_t head = 0, head_seq = 1, used_before = 0;
  for (int i = 0; i < 40; ++i) {
    if (i == 32) {
      head = probe.tail;
      head_seq = probe.seq;
      used_before = probe.used;
    }
    probe.add(record_kind::delta, want[static_cast<std::size_t>(i)]);
  }
  scan_result s;
  const auto got = payloads(w.ring, head, head_seq, &s);
  EXPECT_EQ(got, std::vector<std::string>(want.begin() + 32, want.end()));
  EXPECT_EQ(s.tail, w.tail);
  EXPECT_EQ(s.next_seq, w.seq);
  EXPECT_EQ(s.used, w.used - used_before);
  EXPECT_GT(w.used, 2 * w.ring.size()) << "the writer went round more than twice";
}

TEST(JournalFormat, ImplicitWrapWhenLessThanAHeaderIsLeft) {
  ring_writer w(1000);
  w.add(record_kind::delta, "x");                        // [0, 40): before the head
  w.add(record_kind::delta, std::string(912, 'a'));      // [40, 984): 16 bytes are left
  EXPECT_EQ(w.tail, 984u);
  w.add(record_kind::clear, "");                         // does not fit in 16: at 0, no wrap record
  scan_result s;
  EXPECT_EQ(payloads(w.ring, 40, 2, &s), (std::vector<std::string>{std::string(912, 'a'), "<clear>"}));
  EXPECT_EQ(s.next_seq, 4u);
  EXPECT_EQ(s.tail, 32u);
  EXPECT_EQ(s.used, 944u + 16u + 32u);
}

TEST(JournalFormat, AStaleLapOrAnEarlierEpochEndsTheChain) {
  ring_writer w(4096);
  for (int i = 0; i < 10; ++i) w.add(record_kind::delta, "old-" + std::to_string(i));
  // A new writer (epoch 2) restarts at offset 0 with the seq the chain had reached at
  // record 3: the old records after its tail are of epoch 1 and stop the chain.
  ring_writer again(4096);
  again.ring = w.ring;
  for (int i = 0; i < 3; ++i) again.add(record_kind::delta, "old-" + std::to_string(i));
  again.epoch = 2;
  again.add(record_kind::delta, "new-3");  // the sizes of old-3 and old-4: the tail lands on
  again.add(record_kind::delta, "new-4");  // old-5, whose seq (6) is the one due next
  scan_result s;
  EXPECT_EQ(payloads(again.ring, 0, 1, &s), (std::vector<std::string>{"old-0", "old-1", "old-2", "new-3", "new-4"}));
  EXPECT_EQ(s.tail, again.tail);
  EXPECT_EQ(s.stop, "epoch 1 after epoch 2");
  // A longer record: the tail lands mid-way in an old one.
  again.add(record_kind::delta, "new-5, longer than old-5");
  EXPECT_EQ(payloads(again.ring, 0, 1, &s).size(), 6u);
  EXPECT_EQ(s.stop, "no record magic");
}

TEST(JournalFormat, ACallbackErrorStopsTheScan) {
  ring_writer w(4096);
  w.add(record_kind::delta, "a");
  w.add(record_kind::delta, "b");
  int seen = 0;
  auto s = scan(w.ring, 0, 1, [&](const record&) -> result<void, std::string> {
    if (++seen == 2) return unexpected(std::string("cannot read b"));
    return {};
  });
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "cannot read b");
}

TEST(JournalFormat, TheScanNeverReadsMoreThanOneLap) {
  // A ring entirely full of one writer's records with the tail == head: it stops at the
  // head's record (its seq is behind) instead of going round again.
  ring_writer w(record_size(8) * 4);
  for (int i = 0; i < 4; ++i) w.add(record_kind::delta, "abcdefgh");
  scan_result s;
  EXPECT_EQ(payloads(w.ring, 0, 1, &s).size(), 4u);
  EXPECT_EQ(s.used, w.ring.size());
  EXPECT_EQ(s.tail, 0u);
}

TEST(JournalFormat, CheckpointFrames) {
  byte_buffer slot;
  write_frame(slot, as_bytes("page one"));
  write_frame(slot, as_bytes("2"));
  std::vector<std::string> got;
  auto r = read_frames(slot, 2, slot.size(), [&](bytes_view p) -> result<void, std::string> {
    got.emplace_back(as_chars(p));
    return {};
  });
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(got, (std::vector<std::string>{"page one", "2"}));
  EXPECT_FALSE(read_frames(slot, 3, slot.size(), [](bytes_view) -> result<void, std::string> { return {}; }));
  EXPECT_FALSE(read_frames(slot, 1, slot.size(), [](bytes_view) -> result<void, std::string> { return {}; }));
  EXPECT_FALSE(read_frames(slot, 2, slot.size() + 1, [](bytes_view) -> result<void, std::string> { return {}; }));
  byte_buffer bad = slot;
  bad[10] ^= 1;
  auto e = read_frames(bad, 2, bad.size(), [](bytes_view) -> result<void, std::string> { return {}; });
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), "checkpoint page 1 of 2: checksum mismatch");
}

}  // namespace
}  // namespace csk::entity::journal
