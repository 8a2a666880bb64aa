// timer_wheel: exact fire ticks and order, cancel, callbacks that re-enter the wheel,
// every level boundary, 64-bit delays and a randomised run against a std::multimap.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/actor/timer_wheel.hpp"

namespace csk::actor {
namespace {

constexpr std::uint64_t max_tick = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t p2(unsigned n) { return std::uint64_t{1} << n; }

struct fired {
  std::uint64_t id;
  std::uint32_t handle;
  std::uint32_t session;
  std::uint64_t tick;  // now() inside fn
  bool operator==(const fired&) const = default;
};

std::ostream& operator<<(std::ostream& os, const fired& f) {
  return os << "{id " << f.id << " handle " << f.handle << " session " << f.session << " tick "
            << f.tick << "}";
}

std::vector<fired> advance(timer_wheel& w, std::uint64_t tick) {
  std::vector<fired> out;
  w.advance_to(tick, [&](const timer_event& ev) {
    out.push_back({ev.id, ev.handle, ev.session, w.now()});
  });
  return out;
}

std::vector<std::uint32_t> sessions(const std::vector<fired>& events) {
  std::vector<std::uint32_t> out;
  for (const auto& e : events) out.push_back(e.session);
  return out;
}

TEST(TimerWheel, StartsAtGivenTickEmpty) {
  timer_wheel w(1234);
  EXPECT_EQ(w.now(), 1234u);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_expiry(), std::nullopt);
  EXPECT_TRUE(advance(w, 5000).empty());
  EXPECT_EQ(w.now(), 5000u);
}

TEST(TimerWheel, FiresInExpiryOrder) {
  timer_wheel w(10);
  const timer_wheel::timer_id a = w.add(30, 7, 1);
  const timer_wheel::timer_id b = w.add(5, 8, 2);
  const timer_wheel::timer_id c = w.add(300, 9, 3);
  const timer_wheel::timer_id d = w.add(1, 10, 4);
  EXPECT_EQ(w.size(), 4u);
  const auto events = advance(w, 1000);
  const std::vector<fired> expected = {
      {d, 10, 4, 11}, {b, 8, 2, 15}, {a, 7, 1, 40}, {c, 9, 3, 310}};
  EXPECT_EQ(events, expected);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.now(), 1000u);
}

TEST(TimerWheel, SameTickFiresInInsertionOrder) {
  // All expire at tick 1000, added from different now() values so that they enter
  // the wheel at different levels and meet only after cascading.
  timer_wheel w;
  w.add(1000, 0, 1);  // level 1
  w.add(1000, 0, 2);
  ASSERT_TRUE(advance(w, 300).empty());
  w.add(700, 0, 3);  // level 0
  ASSERT_TRUE(advance(w, 770).empty());
  w.add(230, 0, 4);  // level 0, after the cascade of tick 768
  ASSERT_TRUE(advance(w, 999).empty());
  w.add(1, 0, 5);  // near
  w.add(2, 0, 6);  // tick 1001
  w.add(1, 0, 7);
  const auto events = advance(w, 1001);
  EXPECT_EQ(sessions(events), (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 7, 6}));
  for (std::size_t i = 0; i + 1 < events.size(); ++i) EXPECT_EQ(events[i].tick, 1000u);
  EXPECT_EQ(events.back().tick, 1001u);
}

TEST(TimerWheel, DelayZeroFiresAtNextAdvanceOnItsOwnTick) {
  timer_wheel w(50);
  const timer_wheel::timer_id id = w.add(0, 3, 9);
  EXPECT_EQ(w.next_expiry(), 50u);
  EXPECT_TRUE(advance(w, 50).empty()) << "advance_to(now()) is a no-op";
  EXPECT_TRUE(advance(w, 20).empty()) << "time never goes back";
  EXPECT_EQ(w.now(), 50u);
  EXPECT_EQ(w.size(), 1u);
  const auto events = advance(w, 51);
  EXPECT_EQ(events, (std::vector<fired>{{id, 3, 9, 50}}));
  EXPECT_EQ(w.now(), 51u);
}

TEST(TimerWheel, CancelBeforeFiring) {
  timer_wheel w;
  const timer_wheel::timer_id a = w.add(10, 0, 1);
  const timer_wheel::timer_id b = w.add(10, 0, 2);
  const timer_wheel::timer_id c = w.add(100000, 0, 3);  // in a level, not near
  EXPECT_TRUE(w.cancel(a));
  EXPECT_TRUE(w.cancel(c));
  EXPECT_EQ(w.size(), 1u);
  EXPECT_FALSE(w.cancel(a)) << "already cancelled";
  EXPECT_EQ(sessions(advance(w, 200000)), (std::vector<std::uint32_t>{2}));
  EXPECT_FALSE(w.cancel(b)) << "already fired";
}

TEST(TimerWheel, CancelAfterFiringReturnsFalse) {
  timer_wheel w;
  const timer_wheel::timer_id id = w.add(3, 0, 1);
  ASSERT_EQ(advance(w, 3).size(), 1u);
  EXPECT_FALSE(w.cancel(id));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, UnknownIdsCannotCancel) {
  timer_wheel w;
  const timer_wheel::timer_id id = w.add(3, 0, 1);
  EXPECT_FALSE(w.cancel(0));
  EXPECT_FALSE(w.cancel(id + 1));                  // index beyond the slab
  EXPECT_FALSE(w.cancel(id + (p2(32))));          // same node, future generation
  EXPECT_FALSE(w.cancel(id & 0xffff'ffffu));      // generation 0 is never issued
  EXPECT_FALSE(w.cancel(max_tick));
  EXPECT_EQ(w.size(), 1u);
  EXPECT_TRUE(w.cancel(id));
}

TEST(TimerWheel, StaleIdCannotCancelTimerReusingItsNode) {
  timer_wheel w;
  const timer_wheel::timer_id old_id = w.add(5, 0, 1);
  ASSERT_TRUE(w.cancel(old_id));
  const timer_wheel::timer_id new_id = w.add(5, 0, 2);  // reuses the freed node
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(new_id & 0xffff'ffffu, old_id & 0xffff'ffffu) << "same slab index expected";
  EXPECT_FALSE(w.cancel(old_id));
  EXPECT_EQ(w.size(), 1u);

  // And after firing rather than cancelling.
  ASSERT_EQ(sessions(advance(w, 5)), (std::vector<std::uint32_t>{2}));
  const timer_wheel::timer_id newer_id = w.add(5, 0, 3);
  EXPECT_FALSE(w.cancel(new_id));
  EXPECT_FALSE(w.cancel(old_id));
  EXPECT_EQ(sessions(advance(w, 10)), (std::vector<std::uint32_t>{3}));
  EXPECT_FALSE(w.cancel(newer_id));
}

TEST(TimerWheel, IdsAreNonZeroAndNeverRepeat) {
  timer_wheel w;
  std::unordered_set<timer_wheel::timer_id> seen;
  for (int round = 0; round < 1000; ++round) {
    std::vector<timer_wheel::timer_id> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(w.add(static_cast<std::uint64_t>(i), 0, 0));
    for (const auto id : ids) {
      EXPECT_NE(id, 0u);
      EXPECT_TRUE(seen.insert(id).second) << id;
    }
    if (round % 2 == 0) {
      for (const auto id : ids) EXPECT_TRUE(w.cancel(id));
    } else {
      EXPECT_EQ(advance(w, w.now() + 4).size(), 4u);
    }
  }
}

// Every level boundary from several starting ticks (boundaries are relative to the
// absolute tick, so the start changes which digits roll over), checking the exact tick.
TEST(TimerWheel, CascadesAcrossEveryLevelBoundary) {
  const std::vector<std::uint64_t> delays = {
      1,           255,         256,         257,         p2(14) - 1,  p2(14),
      p2(14) + 1,  p2(20) - 1,  p2(20),      p2(20) + 1,  p2(26) - 1,  p2(26),
      p2(26) + 1,  p2(32) - 1,  p2(32),      p2(32) + 1,  p2(38),      p2(40),
      p2(40) + 77, p2(44) + 1,  p2(50) - 3,  p2(56),      p2(62) + 5,  p2(63)};
  const std::vector<std::uint64_t> starts = {
      0, 1, 200, 255, 256, 12345, p2(14) - 1, p2(20) - 3, p2(32) - 1, p2(32) + 255,
      p2(40) - 77, 0xdead'beef'cafeu, p2(62) - 1};

  for (const std::uint64_t start : starts) {
    SCOPED_TRACE(start);
    // One jump over everything.
    {
      timer_wheel w(start);
      for (std::size_t i = 0; i < delays.size(); ++i)
        w.add(delays[i], 0, static_cast<std::uint32_t>(i));
      const auto events = advance(w, start + p2(63) + 1);
      ASSERT_EQ(events.size(), delays.size());
      for (std::size_t i = 0; i < delays.size(); ++i) {
        EXPECT_EQ(events[i].session, i);
        EXPECT_EQ(events[i].tick, start + delays[i]) << "delay " << delays[i];
      }
    }
    // Jumps that stop one tick short of each expiry, then land on it.
    {
      timer_wheel w(start);
      for (std::size_t i = 0; i < delays.size(); ++i)
        w.add(delays[i], 0, static_cast<std::uint32_t>(i));
      for (std::size_t i = 0; i < delays.size(); ++i) {
        const std::uint64_t expiry = start + delays[i];
        EXPECT_TRUE(advance(w, expiry - 1).empty()) << "delay " << delays[i];
        EXPECT_EQ(w.next_expiry(), expiry);
        const auto events = advance(w, expiry);
        ASSERT_EQ(events.size(), 1u) << "delay " << delays[i];
        EXPECT_EQ(events[0].session, i);
        EXPECT_EQ(events[0].tick, expiry);
        EXPECT_EQ(w.size(), delays.size() - i - 1);
      }
    }
    // Tick by tick over the first two level boundaries.
    {
      timer_wheel w(start);
      std::vector<std::uint64_t> small;
      for (const std::uint64_t d : delays)
        if (d <= p2(14) + 1) small.push_back(d);
      for (std::size_t i = 0; i < small.size(); ++i)
        w.add(small[i], 0, static_cast<std::uint32_t>(i));
      std::vector<fired> events;
      for (std::uint64_t t = start + 1; t <= start + p2(14) + 1; ++t) {
        const auto step = advance(w, t);
        events.insert(events.end(), step.begin(), step.end());
      }
      ASSERT_EQ(events.size(), small.size());
      for (std::size_t i = 0; i < small.size(); ++i)
        EXPECT_EQ(events[i].tick, start + small[i]) << "delay " << small[i];
    }
  }
}

TEST(TimerWheel, DelaysBeyond32BitsInBigJumps) {
  timer_wheel w(p2(32) - 10);
  const std::uint64_t start = w.now();
  const std::vector<std::uint64_t> delays = {p2(32) + 5, 5 * p2(32) + 1, 7 * p2(32), p2(45) + 3};
  for (std::size_t i = 0; i < delays.size(); ++i)
    w.add(delays[i], 0, static_cast<std::uint32_t>(i));
  std::vector<fired> events;
  // Jumps of about 2^31.5 ticks, landing on no boundary on purpose, up to 8 * 2^32...
  const std::uint64_t jump = p2(31) + p2(30) + 12345;
  while (w.now() < start + 8 * p2(32)) {
    const auto step = advance(w, w.now() + jump);
    events.insert(events.end(), step.begin(), step.end());
  }
  ASSERT_EQ(events.size(), 3u);
  // ... then two jumps to the last one: one tick short, and onto it.
  EXPECT_TRUE(advance(w, start + p2(45) + 2).empty());
  const auto last = advance(w, start + p2(45) + 3);
  events.insert(events.end(), last.begin(), last.end());
  ASSERT_EQ(events.size(), delays.size());
  for (std::size_t i = 0; i < delays.size(); ++i) {
    EXPECT_EQ(events[i].session, i);
    EXPECT_EQ(events[i].tick, start + delays[i]);
  }
}

TEST(TimerWheel, WholeRangeInOneCall) {
  timer_wheel w;
  for (unsigned k = 0; k < 64; ++k) w.add(p2(k), 0, k);
  w.add(max_tick, 0, 64);
  const auto events = advance(w, max_tick);
  ASSERT_EQ(events.size(), 65u);
  for (unsigned k = 0; k < 64; ++k) EXPECT_EQ(events[k].tick, p2(k));
  EXPECT_EQ(events[64].tick, max_tick);
  EXPECT_EQ(w.now(), max_tick);
  EXPECT_TRUE(advance(w, max_tick).empty());
}

TEST(TimerWheel, ExpirySaturatesAtMaxTick) {
  timer_wheel w(max_tick - 10);
  w.add(5, 0, 1);
  w.add(100, 0, 2);
  w.add(max_tick, 0, 3);
  w.add(10, 0, 4);
  EXPECT_EQ(w.next_expiry(), max_tick - 5);
  const auto events = advance(w, max_tick);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(sessions(events), (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(events[0].tick, max_tick - 5);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(events[i].tick, max_tick);
}

TEST(TimerWheel, BigJumpsWithFewTimers) {
  // Each call crosses billions of ticks; the test would time out on a tick-by-tick walk.
  timer_wheel w(17);
  w.add(p2(40) + 3, 0, 1);
  w.add(p2(41), 0, 2);
  EXPECT_TRUE(advance(w, p2(40)).empty());
  EXPECT_EQ(w.next_expiry(), 17 + p2(40) + 3);
  auto events = advance(w, p2(60));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].tick, 17 + p2(40) + 3);
  EXPECT_EQ(events[1].tick, 17 + p2(41));
  EXPECT_TRUE(advance(w, p2(63)).empty());
  w.add(1, 0, 3);
  events = advance(w, max_tick - 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tick, p2(63) + 1);
}

TEST(TimerWheel, AddFromCallback) {
  timer_wheel w(100);
  std::vector<fired> events;
  std::vector<timer_wheel::timer_id> added;
  w.add(1, 0, 1);
  w.add(1, 0, 2);
  w.add(4, 0, 3);
  w.advance_to(110, [&](const timer_event& ev) {
    events.push_back({ev.id, ev.handle, ev.session, w.now()});
    if (ev.session == 1) {
      added.push_back(w.add(0, 0, 10));   // same tick, after session 2
      added.push_back(w.add(3, 0, 11));   // tick 104, after session 3
      added.push_back(w.add(20, 0, 12));  // beyond this call
    }
    if (ev.session == 10) added.push_back(w.add(0, 0, 13));  // still tick 101
  });
  EXPECT_EQ(sessions(events), (std::vector<std::uint32_t>{1, 2, 10, 13, 3, 11}));
  const std::vector<std::uint64_t> ticks = {101, 101, 101, 101, 104, 104};
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].tick, ticks[i]);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.next_expiry(), 121u);
  EXPECT_EQ(sessions(advance(w, 121)), (std::vector<std::uint32_t>{12}));
}

TEST(TimerWheel, DelayZeroAddedInCallbackOnTargetTickFiresInSameCall) {
  timer_wheel w;
  w.add(5, 0, 1);
  std::vector<std::uint32_t> order;
  w.advance_to(5, [&](const timer_event& ev) {
    order.push_back(ev.session);
    if (ev.session == 1) w.add(0, 0, 2);
  });
  EXPECT_EQ(order, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CancelFromCallback) {
  timer_wheel w;
  const timer_wheel::timer_id a = w.add(10, 0, 1);
  const timer_wheel::timer_id b = w.add(10, 0, 2);  // same tick as a, cancelled by a
  const timer_wheel::timer_id c = w.add(500, 0, 3);  // later, cancelled by a
  w.add(10, 0, 4);
  std::vector<std::uint32_t> order;
  std::vector<bool> results;
  w.advance_to(1000, [&](const timer_event& ev) {
    order.push_back(ev.session);
    if (ev.session == 1) {
      results.push_back(w.cancel(a));  // itself: already fired
      results.push_back(w.cancel(b));
      results.push_back(w.cancel(c));
      results.push_back(w.cancel(b));
    }
  });
  EXPECT_EQ(order, (std::vector<std::uint32_t>{1, 4}));
  EXPECT_EQ(results, (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, ThrowingCallbackLeavesWheelUsable) {
  timer_wheel w;
  w.add(3, 0, 1);
  w.add(3, 0, 2);
  w.add(7, 0, 3);
  std::vector<std::uint32_t> order;
  EXPECT_THROW(w.advance_to(10,
                            [&](const timer_event& ev) {
                              order.push_back(ev.session);
                              if (ev.session == 1) throw std::runtime_error("boom");
                            }),
               std::runtime_error);
  EXPECT_EQ(w.now(), 3u);
  EXPECT_EQ(w.size(), 2u);
  const auto events = advance(w, 10);
  EXPECT_EQ(sessions(events), (std::vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(events[0].tick, 3u);
  EXPECT_EQ(events[1].tick, 7u);
}

TEST(TimerWheel, NextExpiry) {
  timer_wheel w(1000);
  EXPECT_EQ(w.next_expiry(), std::nullopt);
  const timer_wheel::timer_id far = w.add(p2(33) + 9, 0, 1);
  EXPECT_EQ(w.next_expiry(), 1000 + p2(33) + 9);
  const timer_wheel::timer_id mid = w.add(70000, 0, 2);
  w.add(70001, 0, 3);
  EXPECT_EQ(w.next_expiry(), 71000u);
  const timer_wheel::timer_id soon = w.add(3, 0, 4);
  EXPECT_EQ(w.next_expiry(), 1003u);
  EXPECT_TRUE(w.cancel(soon));
  EXPECT_EQ(w.next_expiry(), 71000u);
  EXPECT_TRUE(w.cancel(mid));
  EXPECT_EQ(w.next_expiry(), 71001u);
  EXPECT_EQ(advance(w, 71001).size(), 1u);
  EXPECT_EQ(w.next_expiry(), 1000 + p2(33) + 9);
  ASSERT_TRUE(advance(w, p2(33)).empty());
  EXPECT_EQ(w.next_expiry(), 1000 + p2(33) + 9);
  EXPECT_TRUE(w.cancel(far));
  EXPECT_EQ(w.next_expiry(), std::nullopt);
  w.add(0, 0, 5);
  EXPECT_EQ(w.next_expiry(), w.now());
}

TEST(TimerWheel, SizeCountsPendingTimers) {
  timer_wheel w;
  EXPECT_EQ(w.size(), 0u);
  std::vector<timer_wheel::timer_id> ids;
  for (std::uint64_t i = 0; i < 1000; ++i) ids.push_back(w.add(i * 37, 0, 0));
  EXPECT_EQ(w.size(), 1000u);
  for (std::size_t i = 0; i < ids.size(); i += 2) ASSERT_TRUE(w.cancel(ids[i]));
  EXPECT_EQ(w.size(), 500u);
  EXPECT_EQ(advance(w, 37 * 500).size(), 250u);
  EXPECT_EQ(w.size(), 250u);
  EXPECT_EQ(advance(w, max_tick).size(), 250u);
  EXPECT_EQ(w.size(), 0u);
}

// 100k timers with delays spread over every level, random cancels and adds (also from
// inside fn), advanced by steps from one tick to 2^40: every firing must be exactly the
// next entry of a std::multimap keyed by expiry (equal keys keep insertion order).
TEST(TimerWheel, RandomTimersMatchReference) {
  std::mt19937_64 rng(20240611);
  const std::uint64_t start = 0xffff'ffff'ff00u - 12345;
  timer_wheel w(start);
  std::multimap<std::uint64_t, timer_wheel::timer_id> ref;
  std::unordered_map<timer_wheel::timer_id, std::multimap<std::uint64_t, timer_wheel::timer_id>::iterator>
      where;
  std::vector<timer_wheel::timer_id> issued;

  auto random_delay = [&]() -> std::uint64_t {
    const std::uint64_t r = rng();
    switch (r % 20) {
      case 0: return 0;
      case 1: case 2: case 3: case 4: case 5: case 6: return (r >> 8) % 300;
      case 7: case 8: case 9: case 10: case 11: return (r >> 8) % p2(16);
      case 12: case 13: case 14: return (r >> 8) % p2(26);
      case 15: case 16: return (r >> 8) % p2(34);
      case 17: return (r >> 8) % p2(44);
      case 18: return (r >> 8) % 4;  // many collisions on one tick
      default: return p2(32) + ((r >> 8) % 1000);
    }
  };
  auto add_one = [&]() {
    const std::uint64_t delay = random_delay();
    const timer_wheel::timer_id id = w.add(delay, 0, static_cast<std::uint32_t>(issued.size()));
    where[id] = ref.emplace(w.now() + delay, id);  // no saturation at these ticks
    issued.push_back(id);
  };
  auto cancel_one = [&]() {
    const timer_wheel::timer_id id = issued[rng() % issued.size()];
    const auto it = where.find(id);
    const bool expected = it != where.end();
    ASSERT_EQ(w.cancel(id), expected);
    if (expected) {
      ref.erase(it->second);
      where.erase(it);
    }
  };

  for (int i = 0; i < 100000; ++i) add_one();
  for (int i = 0; i < 10000; ++i) cancel_one();
  ASSERT_EQ(w.size(), ref.size());

  std::size_t mismatches = 0;
  std::size_t fired_count = 0;
  auto on_fire = [&](const timer_event& ev) {
    ++fired_count;
    if (ref.empty() || ref.begin()->second != ev.id || ref.begin()->first != w.now()) {
      if (mismatches++ == 0)
        ADD_FAILURE() << "fired id " << ev.id << " at " << w.now() << ", expected "
                      << (ref.empty() ? 0 : ref.begin()->second) << " at "
                      << (ref.empty() ? 0 : ref.begin()->first);
      where.erase(ev.id);
      for (auto it = ref.begin(); it != ref.end(); ++it)
        if (it->second == ev.id) {
          ref.erase(it);
          break;
        }
      return;
    }
    EXPECT_EQ(issued[ev.session], ev.id);
    where.erase(ev.id);
    ref.erase(ref.begin());
    const std::uint64_t r = rng() % 64;
    if (r < 3) add_one();
    if (r == 3) cancel_one();
  };

  const std::uint64_t end = start + p2(40);
  while (w.now() < end) {
    const std::uint64_t r = rng();
    std::uint64_t step = 0;
    switch (r % 8) {
      case 0: case 1: case 2: step = 1 + (r >> 8) % 64; break;
      case 3: case 4: step = 1 + (r >> 8) % 5000; break;
      case 5: step = 1 + (r >> 8) % p2(22); break;
      case 6: step = 1 + (r >> 8) % p2(30); break;
      default: step = 1 + (r >> 8) % p2(36); break;
    }
    // Sometimes land exactly on the next expiry (or one before it).
    if (r % 11 == 0 && !ref.empty() && ref.begin()->first > w.now())
      step = ref.begin()->first - w.now() - (r % 2 == 0 && ref.begin()->first - w.now() > 1 ? 1 : 0);
    w.advance_to(std::min(end, w.now() + step), on_fire);
    ASSERT_EQ(mismatches, 0u);
    ASSERT_TRUE(ref.empty() || ref.begin()->first > w.now());
    ASSERT_EQ(w.size(), ref.size());
    ASSERT_EQ(w.next_expiry(), ref.empty() ? std::nullopt : std::optional(ref.begin()->first));
    if (r % 5 == 0) {
      for (int i = 0; i < 20; ++i) add_one();
      for (int i = 0; i < 5; ++i) cancel_one();
    }
  }
  w.advance_to(max_tick, on_fire);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_TRUE(ref.empty());
  EXPECT_EQ(w.size(), 0u);
  EXPECT_GT(fired_count, 80000u);
}

}  // namespace
}  // namespace csk::actor
