// store_journal on real memfds and files: what one process wrote, another one reading the
// same files gets back (a crash loses nothing the store appended), checkpoints drop what
// they cover, a checkpoint cut short leaves the previous one, a full ring says so, a torn
// tail is quiet and a bad record in the middle is loud, a new worker continues the old
// one's chain, and a region of another store or type is refused.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <fcntl.h>

#include "common/base/little_endian.hpp"
#include "services/entity/journal.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/entity/memory_regions.hpp"

namespace csk::entity {
namespace {

using test::held_region;

const type_desc desc{"test.thing", 1, 1, key_kind::string};

struct reader {
  std::vector<std::string> pages, records;
  store_journal::replayed result;
};

reader replay(store_journal& j) {
  reader r;
  auto got = j.replay(
      [&](bytes_view p) -> result<void, std::string> {
        r.pages.emplace_back(as_chars(p));
        return {};
      },
      [&](const journal::record& rec) -> result<void, std::string> {
        r.records.push_back(rec.kind == journal::record_kind::clear ? "<clear>" : std::string(as_chars(rec.payload)));
        return {};
      });
  EXPECT_TRUE(got) << (got ? "" : got.error());
  if (got) r.result = *got;
  return r;
}

std::unique_ptr<store_journal> open(const held_region& h, journal_options o = {}, const std::string& id = "things",
                                    const type_desc& d = desc) {
  auto j = store_journal::open(h.dup(), id, d, o);
  EXPECT_TRUE(j) << (j ? "" : j.error());
  return j ? std::move(*j) : nullptr;
}

std::unique_ptr<store_journal> writer(const held_region& h, journal_options o = {}) {
  auto j = open(h, o);
  if (!j) return nullptr;
  (void)replay(*j);
  EXPECT_TRUE(j->start_writing());
  return j;
}

void add(store_journal& j, const std::string& payload) {
  ASSERT_EQ(j.append(journal::record_kind::delta, as_bytes(payload)), store_journal::append_status::ok) << payload;
}

// The header page of a region, read and written through its fd (another process's view).
byte_buffer header_of(const held_region& h) {
  byte_buffer page(journal::header_page_size);
  EXPECT_EQ(::pread(h.journal.get(), page.data(), page.size(), 0), static_cast<ssize_t>(page.size()));
  return page;
}
void poke(const held_region& h, std::uint64_t file_offset, std::uint8_t x) {
  std::uint8_t b = 0;
  ASSERT_EQ(::pread(h.journal.get(), &b, 1, static_cast<off_t>(file_offset)), 1);
  b ^= x;
  ASSERT_EQ(::pwrite(h.journal.get(), &b, 1, static_cast<off_t>(file_offset)), 1);
}

TEST(Journal, WhatOneProcessAppendedTheNextRecovers) {
  const auto h = held_region::make("things");
  {
    auto j = writer(h);
    ASSERT_TRUE(j);
    for (int i = 0; i < 100; ++i) add(*j, "change " + std::to_string(i));
    EXPECT_EQ(j->stats()->records.load(), 100u);
    EXPECT_EQ(j->next_seq(), 101u);
  }  // gone, as if killed: nothing is flushed or closed that a kill would not
  auto j = open(h);
  ASSERT_TRUE(j);
  const auto r = replay(*j);
  ASSERT_EQ(r.records.size(), 100u);
  EXPECT_EQ(r.records.front(), "change 0");
  EXPECT_EQ(r.records.back(), "change 99");
  EXPECT_TRUE(r.pages.empty());
  EXPECT_FALSE(r.result.bad);
  EXPECT_FALSE(r.result.other_boot);
  EXPECT_EQ(j->next_seq(), 101u);
  EXPECT_FALSE(j->fresh());
}

TEST(Journal, ACheckpointDropsTheRecordsItCovers) {
  const auto h = held_region::make("things");
  auto j = writer(h);
  ASSERT_TRUE(j);
  for (int i = 0; i < 10; ++i) add(*j, "before " + std::to_string(i));
  const auto used_before = j->used();
  ASSERT_TRUE(j->begin_checkpoint(1234));
  EXPECT_TRUE(j->checkpointing());
  ASSERT_TRUE(j->add_page(as_bytes("page 1")));
  for (int i = 0; i < 5; ++i) add(*j, "during " + std::to_string(i));  // fuzzy: appends go on
  ASSERT_TRUE(j->add_page(as_bytes("page 2")));
  const auto used_during = j->used() - used_before;
  ASSERT_TRUE(j->commit_checkpoint());
  EXPECT_EQ(j->used(), used_during) << "only the records after the checkpoint's start stay";
  add(*j, "after");
  EXPECT_EQ(j->stats()->checkpoints.load(), 1u);
  EXPECT_GT(j->stats()->last_checkpoint_unix_ms.load(), 0);
  j.reset();
  auto again = open(h);
  const auto r = replay(*again);
  EXPECT_EQ(r.pages, (std::vector<std::string>{"page 1", "page 2"}));
  EXPECT_EQ(r.records, (std::vector<std::string>{"during 0", "during 1", "during 2", "during 3", "during 4", "after"}));
}

TEST(Journal, ACheckpointCutShortLeavesThePreviousOne) {
  const auto h = held_region::make("things");
  auto j = writer(h);
  add(*j, "a");
  ASSERT_TRUE(j->begin_checkpoint(0));
  ASSERT_TRUE(j->add_page(as_bytes("first")));
  ASSERT_TRUE(j->commit_checkpoint());
  add(*j, "b");
  ASSERT_TRUE(j->begin_checkpoint(0));
  ASSERT_TRUE(j->add_page(as_bytes("second, never committed")));
  add(*j, "c");
  j.reset();  // killed in the middle of the second checkpoint
  auto again = open(h);
  const auto r = replay(*again);
  EXPECT_EQ(r.pages, (std::vector<std::string>{"first"}));
  EXPECT_EQ(r.records, (std::vector<std::string>{"b", "c"}));
}

TEST(Journal, AFullRingSaysSoAndACheckpointMakesRoom) {
  const auto h = held_region::make("things");
  journal_options o;
  o.ring_bytes = journal::min_ring_size;
  auto j = writer(h, o);
  const std::string payload(1000, 'x');
  int n = 0;
  while (j->append(journal::record_kind::delta, as_bytes(payload)) == store_journal::append_status::ok) ++n;
  EXPECT_EQ(n, static_cast<int>(journal::min_ring_size / journal::record_size(1000)));
  EXPECT_TRUE(j->checkpoint_due(std::chrono::steady_clock::now()));
  EXPECT_FALSE(j->too_large(1000));
  EXPECT_TRUE(j->too_large(journal::min_ring_size / 2));
  ASSERT_TRUE(j->begin_checkpoint(0));
  ASSERT_TRUE(j->add_page(as_bytes("all of it")));
  ASSERT_TRUE(j->commit_checkpoint());
  EXPECT_EQ(j->used(), 0u);
  add(*j, "room again");
  j.reset();
  auto again = open(h, o);
  const auto r = replay(*again);
  EXPECT_EQ(r.pages, (std::vector<std::string>{"all of it"}));
  EXPECT_EQ(r.records, (std::vector<std::string>{"room again"}));
}

// The growth rule: records past checkpoint_growth_percent of the last checkpoint's bytes
// (and at least checkpoint_min_bytes) make a checkpoint due long before the ring fills.
TEST(Journal, ACheckpointIsDueWhenTheRecordsOutgrowTheLastOne) {
  const auto h = held_region::make("things");
  journal_options o;
  o.ring_bytes = std::uint64_t{4} << 20;
  o.checkpoint_growth_percent = 200;
  o.checkpoint_min_bytes = 8 << 10;
  auto j = writer(h, o);
  const auto now = std::chrono::steady_clock::now();
  const std::string record(1000, 'r');
  while (!j->checkpoint_due(now)) add(*j, record);  // no checkpoint yet: the minimum decides
  EXPECT_GE(j->used(), o.checkpoint_min_bytes);
  EXPECT_LT(j->used(), o.checkpoint_min_bytes + journal::record_size(record.size()));
  ASSERT_TRUE(j->begin_checkpoint(0));
  const std::string page(20000, 'p');
  ASSERT_TRUE(j->add_page(as_bytes(page)));
  ASSERT_TRUE(j->commit_checkpoint());
  EXPECT_FALSE(j->checkpoint_due(now));
  while (!j->checkpoint_due(now)) add(*j, record);  // now twice the checkpoint's bytes
  EXPECT_GE(j->used(), 2 * page.size());
  EXPECT_LT(j->used(), 2 * (page.size() + 8) + journal::record_size(record.size()));
  EXPECT_LT(j->used() * 100, o.ring_bytes * o.checkpoint_percent) << "long before the ring's own threshold";

  o.checkpoint_growth_percent = 0;  // off: only the ring's fill
  auto off = writer(held_region::make("things"), o);
  while (!off->checkpoint_due(now)) add(*off, record);
  EXPECT_GE(off->used() * 100, o.ring_bytes * o.checkpoint_percent);
}

// Random appends, checkpoints (some cut short) and reopenings over many laps of a small
// ring, against a model: what recovery must return.
TEST(Journal, ManyLapsAgainstAModel) {
  const auto h = held_region::make("things");
  journal_options o;
  o.ring_bytes = journal::min_ring_size;
  std::mt19937 rng(11);
  std::vector<std::string> model_pages, model_records, pending_pages;
  std::size_t records_at_begin = 0;
  bool in_checkpoint = false;
  auto j = writer(h, o);
  std::uint64_t appended = 0;
  for (int step = 0; step < 20000; ++step) {
    const auto r = static_cast<unsigned>(rng() % 100);
    if (r < 90) {
      const std::string p = "r" + std::to_string(step) + std::string(rng() % 300, '.');
      if (j->append(journal::record_kind::delta, as_bytes(p)) == store_journal::append_status::full) {
        // What an entity store does: a whole checkpoint now (its state covers everything).
        ASSERT_TRUE(j->begin_checkpoint(0));
        ASSERT_TRUE(j->add_page(as_bytes("full@" + std::to_string(step))));
        ASSERT_TRUE(j->commit_checkpoint());
        model_pages = {"full@" + std::to_string(step)};
        model_records.clear();
        in_checkpoint = false;
        continue;
      }
      model_records.push_back(p);
      ++appended;
    } else if (r < 94 && !in_checkpoint) {
      ASSERT_TRUE(j->begin_checkpoint(0));
      in_checkpoint = true;
      pending_pages.clear();
      records_at_begin = model_records.size();
    } else if (r < 97 && in_checkpoint) {
      pending_pages.push_back("p" + std::to_string(step));
      ASSERT_TRUE(j->add_page(as_bytes(pending_pages.back())));
    } else if (r < 98 && in_checkpoint) {
      ASSERT_TRUE(j->commit_checkpoint());
      model_pages = pending_pages;
      model_records.erase(model_records.begin(), model_records.begin() + static_cast<std::ptrdiff_t>(records_at_begin));
      in_checkpoint = false;
    } else {
      j.reset();  // a crash, maybe mid-checkpoint
      in_checkpoint = false;
      j = open(h, o);
      const auto got = replay(*j);
      ASSERT_EQ(got.pages, model_pages) << "step " << step;
      ASSERT_EQ(got.records, model_records) << "step " << step;
      ASSERT_FALSE(got.result.bad);
      ASSERT_TRUE(j->start_writing());
    }
  }
  EXPECT_GT(appended * 150, 10 * journal::min_ring_size) << "many laps";
}

TEST(Journal, ATornTailIsQuiet) {
  const auto h = held_region::make("things");
  auto j = writer(h);
  for (int i = 0; i < 4; ++i) add(*j, "whole " + std::to_string(i));
  const byte_buffer hint_before = header_of(h);
  const auto tail = journal::read_hint(hint_before).tail;
  add(*j, "torn");
  j.reset();
  // The crash came in the middle of the fifth append: its bytes are half there and the
  // hint was not moved yet.
  poke(h, journal::header_page_size + tail + journal::record_header_size + 2, 0x55);
  ASSERT_EQ(::pwrite(h.journal.get(), hint_before.data() + journal::hint_at, journal::hint_size,
                     static_cast<off_t>(journal::hint_at)),
            static_cast<ssize_t>(journal::hint_size));
  auto again = open(h);
  const auto r = replay(*again);
  EXPECT_EQ(r.records.size(), 4u);
  EXPECT_FALSE(r.result.bad);
  EXPECT_EQ(r.result.note, "");
}

TEST(Journal, ABadRecordInTheMiddleIsLoudAndWhatFollowsIsNeverReadAgain) {
  const auto h = held_region::make("things");
  auto j = writer(h);
  std::uint64_t third = 0;
  for (int i = 0; i < 5; ++i) {
    if (i == 2) third = journal::read_hint(header_of(h)).tail;
    add(*j, "record " + std::to_string(i));
  }
  j.reset();
  poke(h, journal::header_page_size + third + journal::record_header_size, 0x01);  // scribbled on
  auto again = open(h);
  const auto r = replay(*again);
  EXPECT_EQ(r.records, (std::vector<std::string>{"record 0", "record 1"}));
  EXPECT_TRUE(r.result.bad);
  EXPECT_EQ(r.result.note, "stopped at seq 3 (ring offset " + std::to_string(third) +
                               "): checksum mismatch; the writer had reached seq 5: records 3..5 are lost");
  EXPECT_TRUE(again->stats()->recovery_stopped_at_bad_record.load());
  // The next writer overwrites from the bad record on; records 4 and 5 of the old epoch
  // are never taken for its own.
  ASSERT_TRUE(again->start_writing());
  add(*again, "new 3");
  again.reset();
  auto third_look = open(h);
  const auto r3 = replay(*third_look);
  EXPECT_EQ(r3.records, (std::vector<std::string>{"record 0", "record 1", "new 3"}));
  EXPECT_FALSE(r3.result.bad);
}

TEST(Journal, TheNewWorkerContinuesTheOldOnesChain) {
  const auto h = held_region::make("things");
  auto old_worker = writer(h);
  for (int i = 0; i < 3; ++i) add(*old_worker, "old " + std::to_string(i));
  old_worker->stop_writing();  // sealed for the upgrade
  auto new_worker = open(h);    // opened at its boot, unread (its state comes by pre-copy)
  ASSERT_TRUE(new_worker->continue_after_predecessor());
  add(*new_worker, "new 0");
  add(*new_worker, "new 1");
  EXPECT_FALSE(old_worker->writer_current()) << "the old worker sees it was taken over";
  EXPECT_TRUE(new_worker->writer_current());
  new_worker.reset();
  old_worker.reset();
  auto later = open(h);
  EXPECT_EQ(replay(*later).records, (std::vector<std::string>{"old 0", "old 1", "old 2", "new 0", "new 1"}));
}

TEST(Journal, AStaleHintIsNotTrustedOverTheRecords) {
  const auto h = held_region::make("things");
  auto old_worker = writer(h);
  for (int i = 0; i < 3; ++i) add(*old_worker, "old " + std::to_string(i));
  const byte_buffer early = header_of(h);
  add(*old_worker, "old 3");
  old_worker->stop_writing();
  // The hint says record 3 is next although it is there.
  ASSERT_EQ(::pwrite(h.journal.get(), early.data() + journal::hint_at, journal::hint_size, static_cast<off_t>(journal::hint_at)),
            static_cast<ssize_t>(journal::hint_size));
  auto new_worker = open(h);
  ASSERT_TRUE(new_worker->continue_after_predecessor());
  add(*new_worker, "new");
  new_worker.reset();
  auto later = open(h);
  EXPECT_EQ(replay(*later).records, (std::vector<std::string>{"old 0", "old 1", "old 2", "old 3", "new"}));
}

TEST(Journal, ARegionOfAnotherStoreOrTypeIsRefused) {
  const auto h = held_region::make("things");
  (void)writer(h);
  auto other_id = store_journal::open(h.dup(), "others", desc, {});
  ASSERT_FALSE(other_id);
  EXPECT_NE(other_id.error().find("the region belongs to store 'things'"), std::string::npos) << other_id.error();
  auto other_type = store_journal::open(h.dup(), "things", type_desc{"test.other", 1, 1, key_kind::string}, {});
  ASSERT_FALSE(other_type);
  EXPECT_NE(other_type.error().find("holds entity type 'test.thing'"), std::string::npos) << other_type.error();
  auto other_keys = store_journal::open(h.dup(), "things", type_desc{"test.thing", 1, 1, key_kind::integer}, {});
  ASSERT_FALSE(other_keys);
  // Garbage in the header page: unreadable, not reformatted.
  poke(h, 9, 0xFF);
  poke(h, 1024 + 9, 0xFF);
  auto garbage = store_journal::open(h.dup(), "things", desc, {});
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().find("no valid superblock"), std::string::npos) << garbage.error();
}

TEST(Journal, AnotherBootIsNoticed) {
  const auto h = held_region::make("things");
  {
    auto j = writer(h);
    add(*j, "x");
  }
  // Rewrite the current superblock copy with another boot id (a reboot happened).
  byte_buffer page = header_of(h);
  auto cur = journal::read_superblocks(page);
  ASSERT_TRUE(cur && cur->sb);
  journal::superblock sb = *cur->sb;
  sb.boot[0] ^= 0xFF;
  const byte_buffer e = journal::encode_superblock(sb);
  ASSERT_EQ(::pwrite(h.journal.get(), e.data(), e.size(), static_cast<off_t>(journal::superblock_at[cur->copy])),
            static_cast<ssize_t>(e.size()));
  auto j = open(h);
  EXPECT_TRUE(replay(*j).result.other_boot);
}

class JournalOnDisk : public csk::test::temp_dir_test {};

TEST_F(JournalOnDisk, FilesWithFsyncAlwaysRecoverEverything) {
  const auto files = [&] {
    region_files f;
    f.journal.reset(::open((dir_ / "things.journal").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    f.slots[0].reset(::open((dir_ / "things.slot0").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    f.slots[1].reset(::open((dir_ / "things.slot1").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    f.on_disk = true;
    f.where = dir_.string();
    return f;
  };
  journal_options o;
  o.ring_bytes = 1 << 20;
  o.fsync = fsync_policy::always;
  {
    auto j = store_journal::open(files(), "things", desc, o);
    ASSERT_TRUE(j) << j.error();
    ASSERT_TRUE((*j)->replay([](bytes_view) -> result<void, std::string> { return {}; },
                             [](const journal::record&) -> result<void, std::string> { return {}; }));
    ASSERT_TRUE((*j)->start_writing());
    ASSERT_TRUE((*j)->begin_checkpoint(0));
    ASSERT_TRUE((*j)->add_page(as_bytes("on disk")));
    ASSERT_TRUE((*j)->commit_checkpoint());
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ((*j)->append(journal::record_kind::delta, as_bytes("d" + std::to_string(i))), store_journal::append_status::ok);
    }
    EXPECT_GE((*j)->stats()->syncs.load(), 20u);
  }
  EXPECT_EQ(std::filesystem::file_size(dir_ / "things.journal"), journal::header_page_size + (1u << 20));
  auto j = store_journal::open(files(), "things", desc, o);
  ASSERT_TRUE(j) << j.error();
  std::vector<std::string> pages, records;
  ASSERT_TRUE((*j)->replay(
      [&](bytes_view p) -> result<void, std::string> {
        pages.emplace_back(as_chars(p));
        return {};
      },
      [&](const journal::record& r) -> result<void, std::string> {
        records.emplace_back(as_chars(r.payload));
        return {};
      }));
  EXPECT_EQ(pages, (std::vector<std::string>{"on disk"}));
  ASSERT_EQ(records.size(), 20u);
  EXPECT_EQ(records.back(), "d19");
}

}  // namespace
}  // namespace csk::entity
