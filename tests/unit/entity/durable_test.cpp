// Entity services with a journal (a region_source attached: tests/unit/entity/
// memory_regions.hpp keeps the memfds as the supervisor does). Each test ends one runtime
// as a crash would (what the store wrote stays in the memfds; nothing more is written at
// its end) and starts another on the same regions: its store must hold exactly what the
// first one acknowledged, byte for byte (the full snapshots are compared).
//
// Manual mode with a manual_clock, except the last test (threads, for the sanitizers).

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include <unistd.h>

#include "common/actor/runtime.hpp"
#include "services/entity/entity.hpp"
#include "tests/unit/entity/memory_regions.hpp"
#include "tests/unit/entity/test_types.hpp"

namespace csk::entity::test {
namespace {

using namespace std::chrono_literals;
using actor::runtime;
using actor::runtime_options;
using actor::values;

/// "test.tally": string keys; mutation "incr" (creates the key); timer hook "bump" (+1000,
/// and again in 50 ms until 3000); a `blob` to make entities as large as a test wants.
struct tally {
  std::int64_t n = 0;
  std::string blob;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(n, blob);
  }
};
lua_value to_lua(const tally& t) { return fields().add("n", t.n).add("blob", t.blob).table(); }
void from_lua(const lua_value& in, tally& t) { field_reader(in, "test.tally").get("n", t.n).get("blob", t.blob).done(); }

void register_tally() {
  static const bool once = [] {
    register_type<tally>("test.tally")
        .mutation(
            "incr",
            [](tally& t, values& a) {
              t.n += a.empty() ? 1 : a[0].as_integer();
              return values{t.n};
            },
            entity_type<tally>::missing::create)
        .mutation("fail", [](tally&, values&) -> values { throw std::runtime_error("no"); })
        .on_timer("bump", [](entity_type<tally>::timer_call& t) {
          t.value.n += 1000;
          if (t.value.n < 3000) t.data.schedule(t.key, t.name, t.deadline_ms + 50);
        });
    register_type<profile_v2>("test.profile", 1);
    return true;
  }();
  (void)once;
}

runtime_options manual() {
  runtime_options o;
  o.run_mode = runtime_options::mode::manual;
  o.tick = 10ms;
  o.call_timeout = 1000ms;
  return o;
}

/// One worker's runtime with a store ".t" (id "tallies") on the shared regions.
struct node {
  manual_clock& clk;
  directory dir;
  runtime rt{manual()};
  actor::handle_t store = 0;
  std::string spawn_error;

  node(manual_clock& c, memory_regions& regions, bool takeover = false) : clk(c) {
    regions.set_takeover(takeover);
    use_clock(rt, &clk);
    attach_directory(rt, &dir);
    attach_region_source(rt, &regions);
    auto h = rt.spawn(std::make_unique<entity_service<tally>>(), {lua_value(lua_table{}.set("id", "tallies"))}, {".t"});
    if (h) {
      store = *h;
    } else {
      spawn_error = h.error();
    }
    rt.start();
    rt.run_until_idle();
  }
  ~node() { rt.shutdown(); }

  values call(values args) {
    auto f = rt.call(".t", std::move(args));
    rt.run_until_idle();
    EXPECT_EQ(f.wait_for(0s), std::future_status::ready);
    auto r = f.get();
    EXPECT_TRUE(r.has_value()) << r.error().text;
    return r ? *r : values{};
  }
  std::string call_error(values args) {
    auto f = rt.call(".t", std::move(args));
    rt.run_until_idle();
    auto r = f.get();
    return r ? std::string("(no error)") : r.error().text;
  }
  values up(values args) {
    args.insert(args.begin(), lua_value(upgrade_key()));
    return call(std::move(args));
  }
  std::string snapshot() { return call({"snapshot"}).at(0).as_string(); }
  void advance(std::chrono::milliseconds d) {
    clk.advance(rt, d);
    rt.run_until_idle();
  }
  /// The store's journal counters.
  std::shared_ptr<const journal_stats> journal() const {
    auto e = dir.find("tallies");
    return e ? e->journal : nullptr;
  }
};

lua_value value(std::int64_t n, std::string blob = "") {
  return lua_value(lua_table{}.set("n", n).set("blob", std::move(blob)));
}

class Durable : public ::testing::Test {
 protected:
  void SetUp() override { register_tally(); }
  manual_clock clk{1000000};
  memory_regions regions;
};

TEST_F(Durable, EveryKindOfChangeSurvivesACrash) {
  std::string before;
  {
    node a(clk, regions);
    ASSERT_EQ(a.spawn_error, "");
    a.call({"set", "set", value(1)});
    a.call({"set", "ttl", value(2), 500});         // expires in 500 ms
    a.call({"set", "upd", value(3)});
    a.call({"update", "upd", "blob", "updated"});
    a.call({"mutate", "mut", "incr", 5});         // created by the hook
    a.call({"set", "del", value(4)});
    a.call({"delete", "del"});
    a.call({"set", "timed", value(0)});
    a.call({"schedule", "timed", "bump", 100});   // fires at +100, +150, +200 (stops at 3000)
    a.call({"set", "persisted", value(6), 300});
    a.call({"persist", "persisted"});
    a.call({"set", "gone", value(7), 100});       // expires below
    a.advance(160ms);                             // bump twice, "gone" expired
    EXPECT_TRUE(a.call({"get", "gone"}).at(0).is_nil());
    a.call({"set", "last", value(8)});           // the crash comes right after this reply
    before = a.snapshot();
    EXPECT_GE(a.call({"count"}).at(0).as_integer(), 5);
  }
  node b(clk, regions);
  ASSERT_EQ(b.spawn_error, "");
  EXPECT_EQ(b.snapshot(), before) << "byte for byte the state that was acknowledged";
  // The timers go on where they were: the third bump at +200, the TTL at +500.
  b.advance(50ms);
  EXPECT_EQ(b.call({"get", "timed"}).at(0).as_table().find("n")->as_integer(), 3000);
  EXPECT_FALSE(b.call({"get", "ttl"}).at(0).is_nil());
  b.advance(300ms);
  EXPECT_TRUE(b.call({"get", "ttl"}).at(0).is_nil());
}

TEST_F(Durable, ARecordIsWrittenBeforeTheReplyAndOnlyForChanges) {
  node a(clk, regions);
  auto records = [&] {
    // What another process reading the region sees right after the reply.
    auto j = store_journal::open(regions.region("tallies").dup(), "tallies",
                                 *find_type("test.tally"), regions.options());
    EXPECT_TRUE(j);
    std::size_t n = 0;
    (void)(*j)->replay([](bytes_view) -> result<void, std::string> { return {}; },
                       [&](const journal::record&) -> result<void, std::string> {
                         ++n;
                         return {};
                       });
    return n;
  };
  EXPECT_EQ(records(), 0u);
  a.call({"set", "k", value(1)});
  EXPECT_EQ(records(), 1u) << "in the region as soon as the reply is there";
  a.call({"get", "k"});
  a.call({"count"});
  EXPECT_EQ(records(), 1u) << "reads write nothing";
  EXPECT_NE(a.call_error({"mutate", "k", "fail"}), "(no error)");
  EXPECT_EQ(records(), 1u) << "a failed mutation changed nothing";
  a.call({"mutate", "k", "incr"});
  EXPECT_EQ(records(), 2u);
  a.call({"clear"});
  a.call({"set", "k2", value(1)});
  EXPECT_EQ(records(), 4u);  // clear, then a delta
}

TEST_F(Durable, BackgroundCheckpointsInterleaveWithWritesAndBoundTheRing) {
  regions.opts().ring_bytes = journal::min_ring_size;  // 64 KiB: checkpoints at 32 KiB
  regions.opts().checkpoint_page = 16;
  std::string before;
  std::uint64_t checkpoints = 0;
  {
    node a(clk, regions);
    for (int i = 0; i < 3000; ++i) {
      a.call({"mutate", "k" + std::to_string(i % 200), "incr"});
      if (i % 7 == 0) a.call({"delete", "k" + std::to_string((i * 13) % 200)});
    }
    auto info = a.journal();
    checkpoints = info->checkpoints.load();
    EXPECT_GT(checkpoints, 3u);
    EXPECT_EQ(info->forced_checkpoints.load(), 0u) << "the ring never filled: pages kept up";
    EXPECT_LE(info->used_bytes.load(), journal::min_ring_size);
    before = a.snapshot();
  }
  node b(clk, regions);
  EXPECT_EQ(b.snapshot(), before);
}

TEST_F(Durable, AFullRingForcesACheckpointInsteadOfFailingTheWrite) {
  regions.opts().ring_bytes = journal::min_ring_size;
  regions.opts().checkpoint_pause = 10s;  // background checkpoints far too slow to keep up
  std::string before;
  {
    node a(clk, regions);
    const std::string blob(2000, 'b');
    for (int i = 0; i < 200; ++i) a.call({"set", "k" + std::to_string(i), value(i, blob)});
    auto info = a.journal();
    EXPECT_GT(info->forced_checkpoints.load(), 0u);
    EXPECT_LE(info->used_bytes.load(), journal::min_ring_size);
    before = a.snapshot();
  }
  node b(clk, regions);
  EXPECT_EQ(b.snapshot(), before);
  EXPECT_EQ(b.call({"count"}).at(0).as_integer(), 200);
}

TEST_F(Durable, ACrashDuringABackgroundCheckpointLosesNothing) {
  regions.opts().checkpoint_page = 10;
  regions.opts().checkpoint_pause = 1000ms;  // one page a second
  std::string before;
  {
    node a(clk, regions);
    for (int i = 0; i < 100; ++i) a.call({"set", "k" + std::to_string(i), value(i)});
    EXPECT_TRUE(a.up({"checkpoint"}).at(0).as_boolean());
    for (int i = 0; i < 3; ++i) a.advance(1000ms);  // three pages written
    auto info = a.journal();
    EXPECT_TRUE(info->checkpointing.load());
    EXPECT_EQ(info->checkpoints.load(), 0u);
    for (int i = 0; i < 100; i += 3) a.call({"delete", "k" + std::to_string(i)});
    a.call({"set", "late", value(1)});
    before = a.snapshot();
  }
  node b(clk, regions);
  EXPECT_EQ(b.snapshot(), before);
  EXPECT_EQ(b.journal()->checkpoints.load(), 0u) << "the cut checkpoint was never used";
  // A whole one, this time.
  EXPECT_TRUE(b.up({"checkpoint"}).at(0).as_boolean());
  for (int i = 0; i < 12; ++i) b.advance(1000ms);
  EXPECT_EQ(b.journal()->checkpoints.load(), 1u);
  EXPECT_FALSE(b.up({"checkpoint"}).empty());
}

TEST_F(Durable, TheNewWorkerOfAnUpgradeContinuesTheJournal) {
  node old_worker(clk, regions);
  for (int i = 0; i < 50; ++i) old_worker.call({"set", "k" + std::to_string(i), value(i)});
  old_worker.up({"track"});
  node new_worker(clk, regions, /*takeover=*/true);
  ASSERT_EQ(new_worker.spawn_error, "");
  EXPECT_NE(new_worker.call_error({"set", "early", value(1)}).find("its journal is not writing (not serving yet)"),
            std::string::npos)
      << "a standby store takes no write it could not journal";
  new_worker.call({"clear"});  // what take_over does: start from nothing, sealed until the commit
  new_worker.up({"seal"});
  // The pre-copy: pages, then a write on the old side and the final delta with the seal.
  const values page = old_worker.call({"snapshot_page", lua_value{}, 1000});
  new_worker.up({"apply", page.at(0)});
  old_worker.call({"set", "late", value(99)});
  const values last = old_worker.up({"delta", true});
  new_worker.up({"apply", last.at(0)});
  new_worker.up({"unseal"});  // commit: the new worker writes from here on
  new_worker.call({"set", "after", value(7)});
  new_worker.call({"delete", "k0"});
  EXPECT_NE(old_worker.call_error({"set", "x", value(1)}).find("sealed"), std::string::npos);
  const std::string state = new_worker.snapshot();
  node recovered(clk, regions);  // a crash of the new worker right after it took over
  EXPECT_EQ(recovered.snapshot(), state);
}

TEST_F(Durable, ARolledBackOldWorkerReloadsWhatTheNewOneWrote) {
  node old_worker(clk, regions);
  old_worker.call({"set", "a", value(1)});
  old_worker.up({"track"});
  {
    node new_worker(clk, regions, true);
    new_worker.call({"clear"});
    new_worker.up({"seal"});
    new_worker.up({"apply", old_worker.call({"snapshot_page"}).at(0)});
    new_worker.up({"apply", old_worker.up({"delta", true}).at(0)});
    new_worker.up({"unseal"});
    new_worker.call({"set", "b", value(2)});  // acknowledged by the new worker, which then dies
  }
  old_worker.up({"unseal"});  // the rollback
  old_worker.up({"untrack"});
  EXPECT_FALSE(old_worker.call({"get", "b"}).at(0).is_nil()) << "the new worker's write is kept";
  old_worker.call({"set", "c", value(3)});
  const std::string state = old_worker.snapshot();
  node later(clk, regions);
  EXPECT_EQ(later.snapshot(), state);
}

TEST_F(Durable, ARollbackBeforeTheCommitContinuesTheSameChain) {
  node old_worker(clk, regions);
  old_worker.call({"set", "a", value(1)});
  old_worker.up({"track"});
  {
    node new_worker(clk, regions, true);  // it never gets to the commit
    new_worker.call({"clear"});
    new_worker.up({"seal"});
    new_worker.up({"apply", old_worker.up({"delta", true}).at(0)});
  }
  const auto records = old_worker.journal()->records.load();
  old_worker.up({"unseal"});
  old_worker.up({"untrack"});
  old_worker.call({"set", "b", value(2)});
  EXPECT_EQ(old_worker.journal()->records.load(), records + 1) << "the same journal, one record more";
  const std::string state = old_worker.snapshot();
  node later(clk, regions);
  EXPECT_EQ(later.snapshot(), state);
}

// A store the old worker of an upgrade did not have (so the pre-copy never filled it)
// loads its own region at the cutover: what an earlier worker left there.
TEST_F(Durable, AStoreTheOldWorkerDidNotHaveRecoversItsOwnRegionAtTheCutover) {
  {
    node earlier(clk, regions);
    earlier.call({"set", "kept", value(5)});
  }
  node new_worker(clk, regions, true);
  EXPECT_TRUE(new_worker.call({"get", "kept"}).at(0).is_nil()) << "standby: nothing read yet";
  EXPECT_TRUE(new_worker.up({"recover"}).at(0).as_boolean());
  EXPECT_EQ(new_worker.call({"get", "kept"}).at(0).as_table().find("n")->as_integer(), 5);
  new_worker.call({"set", "more", value(6)});
  EXPECT_FALSE(new_worker.up({"recover"}).at(0).as_boolean()) << "once only";
  const std::string state = new_worker.snapshot();
  node later(clk, regions);
  EXPECT_EQ(later.snapshot(), state);
}

TEST_F(Durable, StateThisBinaryCannotReadRefusesTheStoreAndSaysWhy) {
  // A region written by a newer binary: "test.profile" version 3 (this one reads 1..2).
  {
    const type_desc v3{"test.profile", 3, 3, key_kind::string};
    store<profile_v3> s(v3);
    s.set_journaling(true);
    s.set("ann", profile_v3{"Ann"});
    byte_buffer delta;
    ASSERT_TRUE(s.take_journal(delta).delta);
    auto j = store_journal::open(regions.open("profiles").value(), "profiles", v3, {});
    ASSERT_TRUE(j) << j.error();
    ASSERT_TRUE((*j)->replay([](bytes_view) -> result<void, std::string> { return {}; },
                             [](const journal::record&) -> result<void, std::string> { return {}; }));
    ASSERT_TRUE((*j)->start_writing());
    ASSERT_EQ((*j)->append(journal::record_kind::delta, delta), store_journal::append_status::ok);
  }
  runtime rt(manual());
  use_clock(rt, &clk);
  attach_region_source(rt, &regions);
  auto h = rt.spawn(std::make_unique<entity_service<profile_v2>>(), {lua_value(lua_table{}.set("id", "profiles"))});
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().find("snapshot version 3 is newer than this binary's version 2"), std::string::npos) << h.error();
  EXPECT_NE(regions.unreadable_reason().find("cannot recover its state from the journal"), std::string::npos)
      << regions.unreadable_reason();
  // The region is untouched: a binary that reads version 3 still finds the record.
  auto j = store_journal::open(regions.open("profiles").value(), "profiles", type_desc{"test.profile", 3, 3, key_kind::string}, {});
  ASSERT_TRUE(j);
  std::size_t n = 0;
  ASSERT_TRUE((*j)->replay([](bytes_view) -> result<void, std::string> { return {}; },
                           [&](const journal::record&) -> result<void, std::string> {
                             ++n;
                             return {};
                           }));
  EXPECT_EQ(n, 1u);
}

// After a reboot (persist) the monotonic clock starts again: deadlines keep the time they
// had left at the last state written, and the state is checkpointed at once (so no
// record of the old boot is ever replayed again, unshifted).
TEST_F(Durable, AfterARebootTimersKeepTheTimeTheyHadLeft) {
  {
    node a(clk, regions);  // clock at 1,000,000 ms
    a.call({"set", "ttl", value(1), 500});
    a.call({"set", "bump", value(0)});
    a.call({"schedule", "bump", "bump", 300});
    a.advance(100ms);  // the last state is written at 1,000,100: 400 and 200 ms left
    a.call({"set", "last", value(2)});
  }
  // The region as a rebooted machine finds it: another boot id in its superblock.
  const auto& h = regions.region("tallies");
  byte_buffer page(journal::header_page_size);
  ASSERT_EQ(::pread(h.journal.get(), page.data(), page.size(), 0), static_cast<ssize_t>(page.size()));
  auto cur = journal::read_superblocks(page);
  ASSERT_TRUE(cur && cur->sb);
  journal::superblock sb = *cur->sb;
  sb.boot[0] ^= 0xFF;
  const byte_buffer e = journal::encode_superblock(sb);
  ASSERT_EQ(::pwrite(h.journal.get(), e.data(), e.size(), static_cast<off_t>(journal::superblock_at[cur->copy])),
            static_cast<ssize_t>(e.size()));
  manual_clock rebooted(50);  // the new boot's monotonic clock
  node b(rebooted, regions);
  ASSERT_EQ(b.spawn_error, "");
  EXPECT_EQ(b.call({"ttl", "ttl"}).at(0).as_integer(), 400);
  EXPECT_EQ(b.journal()->checkpoints.load(), 1u) << "checkpointed at once";
  b.advance(190ms);
  EXPECT_EQ(b.call({"get", "bump"}).at(0).as_table().find("n")->as_integer(), 0);
  b.advance(20ms);  // 200 ms left at the last write: it fires now, not at 1,000,300
  EXPECT_EQ(b.call({"get", "bump"}).at(0).as_table().find("n")->as_integer(), 1000);
  EXPECT_FALSE(b.call({"get", "ttl"}).at(0).is_nil());
  b.advance(200ms);
  EXPECT_TRUE(b.call({"get", "ttl"}).at(0).is_nil());
}

// Threads: callers on the pool while background checkpoints run (TSan, ASan), then a
// crash and a recovery with exactly the acknowledged increments.
TEST_F(Durable, ThreadedCallersAndCheckpoints) {
  regions.opts().ring_bytes = journal::min_ring_size;
  regions.opts().checkpoint_page = 8;
  constexpr int keys = 20, per_key = 300;
  {
    runtime_options o;
    o.threads = 2;
    directory dir;
    runtime rt(o);
    attach_directory(rt, &dir);
    attach_region_source(rt, &regions);
    ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<tally>>(), {lua_value(lua_table{}.set("id", "tallies"))}, {".t"}));
    rt.start();
    std::vector<std::thread> callers;
    std::atomic<int> failed{0};
    for (int c = 0; c < 4; ++c) {
      callers.emplace_back([&, c] {
        for (int i = 0; i < keys * per_key / 4; ++i) {
          auto r = rt.call(".t", {"mutate", "k" + std::to_string((i + c) % keys), "incr"}).get();
          if (!r) ++failed;
        }
      });
    }
    std::thread reader([&] {  // what an admin scrape does meanwhile
      for (int i = 0; i < 200; ++i) {
        if (auto e = dir.find("tallies"); e && e->journal) (void)e->journal->used_bytes.load();
      }
    });
    for (auto& t : callers) t.join();
    reader.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(dir.find("tallies")->journal->checkpoints.load(), 0u);
    rt.shutdown();
  }
  node b(clk, regions);
  std::int64_t total = 0;
  for (int k = 0; k < keys; ++k) total += b.call({"get", "k" + std::to_string(k)}).at(0).as_table().find("n")->as_integer();
  EXPECT_EQ(total, keys * per_key);
}

}  // namespace
}  // namespace csk::entity::test
