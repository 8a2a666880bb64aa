// entity::store without a runtime: data, timers, change tracking, snapshots, versions,
// and what a corrupt or truncated snapshot does.

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "services/entity/registry.hpp"
#include "services/entity/service.hpp"
#include "services/entity/store.hpp"
#include "tests/unit/entity/test_types.hpp"

namespace csk::entity::test {
namespace {

using player_store = store<player>;

player make_player(int i) {
  player p;
  p.name = "player-" + std::to_string(i);
  p.hp = 100 + i;
  p.level = i % 7;
  p.speed = 0.25 * i;
  for (int j = 0; j < i % 4; ++j) p.items.push_back(i * 10 + j);
  return p;
}

std::string key(int i) { return "k" + std::to_string(1000 + i); }

/// A store with n players, a TTL on every third and a named timer on every fifth.
void fill(player_store& s, int n, std::int64_t now) {
  for (int i = 0; i < n; ++i) {
    s.set(key(i), make_player(i));
    if (i % 3 == 0) {
      ASSERT_TRUE(s.schedule(key(i), std::string(expire_timer), now + 1000 + i));
    }
    if (i % 5 == 0) {
      ASSERT_TRUE(s.schedule(key(i), "regen", now + 500 + i));
    }
  }
}

byte_buffer full(const player_store& s) {
  byte_buffer b;
  s.snapshot(b);
  return b;
}

const type_desc& player_desc() {
  static const type_desc d = describe<player>("test.player");
  return d;
}

TEST(EntityStore, SetFindEraseAndScanInKeyOrder) {
  manual_clock clk;
  player_store s(player_desc(), &clk);
  EXPECT_TRUE(s.set("b", make_player(2)));
  EXPECT_TRUE(s.set("a", make_player(1)));
  EXPECT_FALSE(s.set("b", make_player(3)));  // replaced
  ASSERT_NE(s.find("b"), nullptr);
  EXPECT_EQ(*s.find("b"), make_player(3));
  EXPECT_EQ(s.size(), 2u);
  std::vector<std::string> seen;
  auto next = s.scan(std::nullopt, 1, [&](const std::string& k, const player&) { seen.push_back(k); });
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, "a");
  next = s.scan(next, 1, [&](const std::string& k, const player&) { seen.push_back(k); });
  EXPECT_FALSE(next.has_value());  // "b" was the last
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(s.erase("a"));
  EXPECT_FALSE(s.erase("a"));
  EXPECT_EQ(s.find("a"), nullptr);
}

TEST(EntityStore, TimersFireInDeadlineOrderAndExpiryDeletes) {
  manual_clock clk;
  player_store s(player_desc(), &clk);
  s.set("a", make_player(1));
  s.set("b", make_player(2));
  ASSERT_TRUE(s.schedule("a", "x", 30));
  ASSERT_TRUE(s.schedule("b", std::string(expire_timer), 20));
  ASSERT_TRUE(s.schedule("b", "y", 25));  // dies with b
  EXPECT_FALSE(s.schedule("zz", "x", 5));  // no such key
  EXPECT_EQ(s.timer_count(), 3u);
  EXPECT_EQ(s.next_deadline(), 20);
  EXPECT_FALSE(s.pop_due(19).has_value());
  auto f = s.pop_due(20);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->key, "b");
  EXPECT_EQ(f->name, expire_timer);
  EXPECT_FALSE(s.contains("b"));
  EXPECT_EQ(s.timer_count(), 1u);  // b's "y" went with it
  ASSERT_TRUE(s.schedule("a", "x", 40));  // moved, not added
  EXPECT_EQ(s.timer_count(), 1u);
  EXPECT_FALSE(s.pop_due(39).has_value());
  f = s.pop_due(100);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->name, "x");
  EXPECT_EQ(f->deadline_ms, 40);
  EXPECT_TRUE(s.contains("a"));
  EXPECT_EQ(s.timer_count(), 0u);
  EXPECT_FALSE(s.next_deadline().has_value());
}

TEST(EntityStore, SnapshotRestoreRoundTripIsExact) {
  manual_clock clk(5000);
  player_store a(player_desc(), &clk);
  fill(a, 200, 5000);
  const byte_buffer snap = full(a);

  player_store b(player_desc(), &clk);
  auto r = b.restore(snap);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, 200u);
  EXPECT_EQ(b.size(), a.size());
  EXPECT_EQ(b.timer_count(), a.timer_count());
  for (const auto& [k, e] : a.entries()) {
    ASSERT_NE(b.find(k), nullptr) << k;
    EXPECT_EQ(*b.find(k), e.value);
    EXPECT_EQ(*b.timers(k), e.timers);
  }
  EXPECT_EQ(full(b), snap);  // one state, one encoding

  auto h = read_header(snap);
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(h->type, "test.player");
  EXPECT_EQ(h->version, 1u);
  EXPECT_EQ(h->kind, snapshot_kind::full);
  EXPECT_EQ(h->key, key_kind::string);
  EXPECT_EQ(h->entries, 200u);
  EXPECT_EQ(h->clock_ms, 5000);
}

TEST(EntityStore, IntegerKeysRoundTrip) {
  const type_desc d = describe<counter, std::int64_t>("test.counter_plain");
  store<counter, std::int64_t> a(d);
  for (std::int64_t i = -5; i < 5; ++i) a.set(i * 1000, counter{i});
  byte_buffer snap;
  a.snapshot(snap);
  store<counter, std::int64_t> b(d);
  ASSERT_TRUE(b.restore(snap).has_value());
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b.find(-5000)->n, -5);
  EXPECT_EQ(b.entries().begin()->first, -5000);  // numeric order, negatives first
  // A string-keyed binary of the same name refuses integer keys before reading data.
  store<counter> c(describe<counter>("test.counter_plain"));
  auto r = c.restore(snap);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("integers"), std::string::npos) << r.error();
}

TEST(EntityStore, RestoreRebasesDeadlinesWhenAsked) {
  manual_clock ca(1000);
  player_store a(player_desc(), &ca);
  a.set("a", make_player(1));
  a.schedule("a", "x", 1300);  // 300 ms left when written
  const byte_buffer snap = full(a);
  manual_clock cb(50);  // another host's clock
  player_store abs(player_desc(), &cb);
  ASSERT_TRUE(abs.restore(snap).has_value());
  EXPECT_EQ(abs.deadline("a", "x"), 1300);
  player_store reb(player_desc(), &cb);
  ASSERT_TRUE(reb.restore(snap, timer_base::rebase).has_value());
  EXPECT_EQ(reb.deadline("a", "x"), 350);
}

TEST(EntityStore, RestoreNeedsAnEmptyStoreAndAFullSnapshot) {
  player_store a(player_desc());
  a.set("a", make_player(1));
  const byte_buffer snap = full(a);
  auto r = a.restore(snap);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("empty store"), std::string::npos) << r.error();
  auto ap = a.apply(snap);
  ASSERT_FALSE(ap.has_value());
  EXPECT_NE(ap.error().find("use restore"), std::string::npos) << ap.error();
}

// -- versions ---------------------------------------------------------------------------

TEST(EntityStore, NewerBinaryReadsAnOlderVersion) {
  store<profile_v1> old_binary(describe<profile_v1>("test.profile"));
  old_binary.set("ann", profile_v1{"Ann", 7});
  old_binary.set("bob", profile_v1{"Bob", -3});
  byte_buffer snap;
  old_binary.snapshot(snap);
  ASSERT_EQ(read_header(snap)->version, 1u);

  store<profile_v2> new_binary(describe<profile_v2>("test.profile", 1));
  auto r = new_binary.restore(snap);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*new_binary.find("ann"), (profile_v2{"Ann", 7, "from v1"}));
  EXPECT_EQ(*new_binary.find("bob"), (profile_v2{"Bob", -3, "from v1"}));
  // What it writes back is version 2.
  byte_buffer again;
  new_binary.snapshot(again);
  EXPECT_EQ(read_header(again)->version, 2u);
}

TEST(EntityStore, OlderBinaryRefusesANewerVersionBeforeReadingData) {
  store<profile_v2> newer(describe<profile_v2>("test.profile", 1));
  newer.set("ann", profile_v2{"Ann", 7, "x"});
  byte_buffer snap;
  newer.snapshot(snap);
  store<profile_v1> older(describe<profile_v1>("test.profile"));
  auto r = older.restore(snap);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "entity type 'test.profile': snapshot version 2 is newer than this binary's version 1");
  EXPECT_EQ(older.size(), 0u);
}

TEST(EntityStore, BinaryWithoutOldVersionSupportRefusesIt) {
  store<profile_v1> old_binary(describe<profile_v1>("test.profile"));
  old_binary.set("ann", profile_v1{"Ann", 7});
  byte_buffer snap;
  old_binary.snapshot(snap);
  store<profile_v2> strict(describe<profile_v2>("test.profile"));  // min_version = 2
  auto r = strict.restore(snap);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(),
            "entity type 'test.profile': snapshot version 1 is older than the oldest version this binary reads (2; it "
            "writes 2)");
}

TEST(EntityStore, StreamVersionMustMatchTheHeader) {
  store<profile_v1> old_binary(describe<profile_v1>("test.profile"));
  old_binary.set("ann", profile_v1{"Ann", 7});
  byte_buffer snap;
  old_binary.snapshot(snap);
  // Claim version 2 in the header; the data still says 1.
  snap[8] = 2;
  store<profile_v2> new_binary(describe<profile_v2>("test.profile", 1));
  auto r = new_binary.restore(snap);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("the data says class version 1, the header 2"), std::string::npos) << r.error();
  EXPECT_EQ(new_binary.size(), 0u);
}

TEST(EntityStore, RegistryCheckNamesTypeAndVersions) {
  register_type<profile_v2>("test.profile", 1);
  byte_buffer snap;
  store<profile_v3> newest(describe<profile_v3>("test.profile"));
  newest.set("x", profile_v3{"x"});
  newest.snapshot(snap);
  auto c = check_snapshot(snap);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), "entity type 'test.profile': snapshot version 3 is newer than this binary's version 2");

  store<profile_v3> unknown(describe<profile_v3>("test.nobody"));
  byte_buffer u;
  unknown.snapshot(u);
  c = check_snapshot(u);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), "entity type 'test.nobody' (snapshot version 3) is not registered in this binary");

  // A header alone (the first bytes of a stream) is enough for the check.
  store<profile_v1> old_binary(describe<profile_v1>("test.profile"));
  byte_buffer h;
  write_header(h, old_binary.header());
  auto ok = check_snapshot(h);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(ok->version, 1u);

  EXPECT_THROW(register_type<profile_v3>("test.profile"), std::invalid_argument);  // name taken
  EXPECT_THROW(register_type<profile_v3>("bad name"), std::invalid_argument);
  EXPECT_THROW(register_type<profile_v3>("test.v3", 4), std::invalid_argument);  // min above version
}

// -- corrupt input ----------------------------------------------------------------------

TEST(EntityStore, EveryTruncationIsAnErrorAndLeavesTheStoreEmpty) {
  manual_clock clk;
  player_store a(player_desc(), &clk);
  fill(a, 12, 0);
  const byte_buffer snap = full(a);
  for (std::size_t n = 0; n < snap.size(); ++n) {
    player_store b(player_desc(), &clk);
    auto r = b.restore(bytes_view(snap.data(), n));
    ASSERT_FALSE(r.has_value()) << "prefix of " << n << " bytes was accepted";
    EXPECT_FALSE(r.error().empty());
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(b.timer_count(), 0u);
  }
  byte_buffer longer = snap;
  longer.push_back(0);
  player_store b(player_desc(), &clk);
  auto r = b.restore(longer);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("1 bytes after the end mark"), std::string::npos) << r.error();
}

TEST(EntityStore, CorruptSnapshotsAreErrorsNeverCrashes) {
  manual_clock clk;
  player_store a(player_desc(), &clk);
  fill(a, 20, 0);
  const byte_buffer snap = full(a);
  std::mt19937 rng(12345);
  int refused = 0;
  for (int round = 0; round < 3000; ++round) {
    byte_buffer bad = snap;
    const int flips = 1 + round % 4;
    for (int f = 0; f < flips; ++f) {
      const std::size_t at = rng() % bad.size();
      bad[at] = static_cast<std::uint8_t>(bad[at] ^ (1u << (rng() % 8)));
    }
    player_store b(player_desc(), &clk);
    auto r = b.restore(bad);
    if (!r) {
      ++refused;
      EXPECT_EQ(b.size(), 0u);
    } else {
      EXPECT_EQ(b.size(), *r);
    }
  }
  EXPECT_GT(refused, 100);
}

TEST(EntityStore, HugeCountsAreRefusedBeforeAllocating) {
  player_store a(player_desc());
  a.set("a", make_player(1));
  byte_buffer snap = full(a);
  // entries = 2^60
  byte_buffer bad = snap;
  for (int i = 0; i < 8; ++i) bad[20 + static_cast<std::size_t>(i)] = i == 7 ? 0x10 : 0;
  player_store b(player_desc());
  auto r = b.restore(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("cannot fit"), std::string::npos) << r.error();
  // A key length of 2^62 right after the header.
  auto h = read_header(snap);
  const std::size_t body = header_fixed_size + h->type.size();
  bad = snap;
  bad[body + 7] = 0x40;
  r = b.restore(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("exceeds"), std::string::npos) << r.error();
  EXPECT_EQ(b.size(), 0u);
}

TEST(EntityStore, ForeignAndMalformedHeadersAreRefused) {
  player_store a(player_desc());
  a.set("a", make_player(1));
  const byte_buffer snap = full(a);
  player_store b(player_desc());
  byte_buffer bad = snap;
  bad[0] = 'X';
  EXPECT_EQ(b.restore(bad).error(), "entity snapshot of 'test.player': not an entity snapshot (bad magic)");
  bad = snap;
  bad[4] = 9;
  EXPECT_NE(b.restore(bad).error().find("format 9"), std::string::npos);
  bad = snap;
  bad[6] = 7;
  EXPECT_NE(b.restore(bad).error().find("unknown snapshot kind 7"), std::string::npos);
  // Another type's snapshot.
  store<counter> other(describe<counter>("test.other"));
  other.set("x", counter{1});
  byte_buffer o;
  other.snapshot(o);
  EXPECT_EQ(b.restore(o).error(), "entity snapshot of 'test.player': the snapshot is of entity type 'test.other'");
  EXPECT_EQ(b.size(), 0u);
}

// -- change tracking --------------------------------------------------------------------

TEST(EntityStore, TrackingRecordsChangedAndDeletedKeys) {
  manual_clock clk;
  player_store s(player_desc(), &clk);
  fill(s, 10, 0);
  EXPECT_FALSE(s.tracking());
  s.set(key(0), make_player(50));  // not tracked: tracking is off
  byte_buffer d;
  EXPECT_FALSE(s.delta_snapshot(d).has_value());

  s.begin_tracking();
  s.set(key(1), make_player(51));         // changed
  s.erase(key(2));                        // deleted
  s.set("new", make_player(52));          // added
  s.set("gone", make_player(53));         // added then deleted
  s.erase("gone");
  s.schedule(key(4), "regen", 77);        // a timer change is a change
  *s.modify(key(7)) = make_player(54);    // mutable access counts
  (void)s.find(key(8));                   // reading does not
  auto ch = s.changes();
  EXPECT_EQ(ch.changed, (std::vector<std::string>{key(1), key(4), key(7), "new"}));
  EXPECT_EQ(ch.deleted, (std::vector<std::string>{"gone", key(2)}));

  s.begin_tracking();  // a new mark forgets
  EXPECT_TRUE(s.changes().changed.empty());
  s.end_tracking();
  s.set(key(3), make_player(55));
  EXPECT_EQ(s.changed_keys(), 0u);
}

TEST(EntityStore, PreCopyWithPagesAndDeltasConverges) {
  manual_clock clk(100);
  player_store src(player_desc(), &clk);
  fill(src, 500, 100);
  player_store dst(player_desc(), &clk);

  // Pre-copy: tracking first, then pages, with writes landing between the pages.
  src.begin_tracking();
  std::optional<std::string> cursor;
  int page = 0;
  do {
    byte_buffer b;
    writer w(b);
    cursor = src.snapshot_page(w, cursor, 64);
    auto r = dst.apply(b);
    ASSERT_TRUE(r.has_value()) << r.error();
    // Writes behind and ahead of the cursor.
    src.set(key(page * 37 % 500), make_player(900 + page));
    src.erase(key((page * 53 + 11) % 500));
    src.set("late-" + std::to_string(page), make_player(page));
    src.schedule(key(page * 19 % 500), "regen", 5000 + page);
    ++page;
  } while (cursor);
  EXPECT_GE(page, 8);  // at least ceil(500 / 64): keys added ahead of the cursor come along

  // Two delta rounds (the second one small), then the state is the same.
  for (int round = 0; round < 2; ++round) {
    byte_buffer delta;
    ASSERT_TRUE(src.delta_snapshot(delta).has_value());
    auto r = dst.apply(delta);
    ASSERT_TRUE(r.has_value()) << r.error();
    if (round == 0) src.set(key(1), make_player(4242));
  }
  EXPECT_EQ(full(dst), full(src));
  EXPECT_EQ(dst.timer_count(), src.timer_count());
}

TEST(EntityStore, CorruptDeltaChangesNothing) {
  manual_clock clk;
  player_store src(player_desc(), &clk);
  fill(src, 30, 0);
  player_store dst(player_desc(), &clk);
  ASSERT_TRUE(dst.restore(full(src)).has_value());
  src.begin_tracking();
  for (int i = 0; i < 30; i += 2) src.set(key(i), make_player(i + 100));
  src.erase(key(1));
  byte_buffer delta;
  ASSERT_TRUE(src.delta_snapshot(delta, false).has_value());
  const byte_buffer before = full(dst);
  for (std::size_t n = 0; n < delta.size(); ++n) {
    auto r = dst.apply(bytes_view(delta.data(), n));
    ASSERT_FALSE(r.has_value()) << n;
  }
  EXPECT_EQ(full(dst), before);
  auto r = dst.apply(delta);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->changed, 15u);
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_EQ(full(dst), full(src));
}

TEST(EntityStore, ChunkedWriterProducesTheSameBytes) {
  manual_clock clk;
  player_store s(player_desc(), &clk);
  fill(s, 300, 0);
  byte_buffer chunks;
  int calls = 0;
  {
    writer w([&](bytes_view b) {
      ++calls;
      chunks.insert(chunks.end(), b.begin(), b.end());
    }, 1024);
    s.snapshot(w);
  }
  EXPECT_GT(calls, 5);
  EXPECT_EQ(chunks, full(s));
}

}  // namespace
}  // namespace csk::entity::test
