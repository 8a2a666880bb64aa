// csk::memory_budget: the marks, the waiters (run once, at the low mark, on the thread
// that releases), and the race between a pause and the release that ends it.

#include "common/base/memory_budget.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace csk {
namespace {

TEST(MemoryBudget, OverOnlyPastTheHighMark) {
  memory_budget b(1000, 500);
  b.charge(1000);
  EXPECT_FALSE(b.over()) << "at the mark is not past it";
  b.charge(1);
  EXPECT_TRUE(b.over());
  EXPECT_EQ(b.held(), 1001u);
  b.release(1001);
  EXPECT_EQ(b.held(), 0u);
  EXPECT_FALSE(b.over());
}

TEST(MemoryBudget, ZeroHighIsNeverOverButStillCounts) {
  memory_budget b(0, 0);
  b.charge(1u << 30);
  EXPECT_FALSE(b.over());
  EXPECT_EQ(b.held(), std::size_t{1} << 30);
}

TEST(MemoryBudget, AWaiterRunsAtOnceWhenAlreadyLow) {
  memory_budget b(1000, 500);
  b.charge(500);
  int ran = 0;
  b.when_below_low([&] { ++ran; });
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(b.pauses(), 0u);
}

TEST(MemoryBudget, WaitersRunOnceWhenAReleaseReachesTheLowMark) {
  memory_budget b(1000, 500);
  b.charge(2000);
  int ran = 0;
  b.when_below_low([&] { ++ran; });
  b.when_below_low([&] { ++ran; });
  EXPECT_EQ(b.waiting(), 2u);
  EXPECT_EQ(b.pauses(), 2u);
  b.release(1000);  // 1000 held: past low still
  EXPECT_EQ(ran, 0);
  b.release(500);  // 500: at the low mark
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(b.waiting(), 0u);
  b.release(500);
  EXPECT_EQ(ran, 2) << "each waiter runs once";
}

TEST(MemoryBudget, PeakIsTakenAndReset) {
  memory_budget b(0, 0);
  b.charge(300);
  b.release(200);
  EXPECT_EQ(b.take_peak(), 300u);
  EXPECT_EQ(b.take_peak(), 100u) << "reset to what is held";
}

TEST(MemoryBudget, ReleasePastTheTotalClampsAtZero) {
  memory_budget b(10, 5);
  b.charge(3);
  b.release(7);
  EXPECT_EQ(b.held(), 0u);
}

// A feeder pauses (when_below_low) while other threads release: every pause ends,
// whatever the interleaving (the seq_cst handshake between the flag and the total).
TEST(MemoryBudget, EveryPauseEndsUnderConcurrentReleases) {
  memory_budget b(100, 50);
  constexpr int rounds = 20000;
  std::atomic<int> resumed{0};
  std::thread feeder([&] {
    for (int i = 0; i < rounds; ++i) {
      b.charge(200);
      b.when_below_low([&] { resumed.fetch_add(1); });
    }
  });
  std::thread releaser([&] {
    int released = 0;
    while (released < rounds) {
      if (b.held() >= 200) {
        b.release(200);
        ++released;
      }
    }
  });
  feeder.join();
  releaser.join();
  EXPECT_EQ(b.held(), 0u);
  EXPECT_EQ(resumed.load(), rounds) << "a waiter was lost";
  EXPECT_EQ(b.waiting(), 0u);
}

}  // namespace
}  // namespace csk
