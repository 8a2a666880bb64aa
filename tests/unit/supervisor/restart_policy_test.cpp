// Backoff and crash-loop detection, with time passed in by hand.

#include <gtest/gtest.h>

#include "supervisor/restart_policy.hpp"

namespace csk::supervisor {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

TEST(RestartPolicy, BackoffDoublesUntilReadyAndStopsAtTheMax) {
  restart_policy p(100ms, 500ms, 100, 60s);
  const auto t = restart_policy::clock::time_point{};
  EXPECT_EQ(p.on_death(t), ms(100));
  EXPECT_EQ(p.on_death(t + 1s), ms(200));
  EXPECT_EQ(p.on_death(t + 2s), ms(400));
  EXPECT_EQ(p.on_death(t + 3s), ms(500));
  EXPECT_EQ(p.on_death(t + 4s), ms(500));
  p.on_ready();
  EXPECT_EQ(p.on_death(t + 5s), ms(100));
}

TEST(RestartPolicy, GivesUpAfterMaxRestartsWithinTheWindow) {
  restart_policy p(0ms, 0ms, 3, 10s);
  const auto t = restart_policy::clock::time_point{};
  EXPECT_TRUE(p.on_death(t).has_value());
  EXPECT_TRUE(p.on_death(t + 1s).has_value());
  EXPECT_TRUE(p.on_death(t + 2s).has_value());
  EXPECT_EQ(p.restarts_in_window(t + 2s), 3u);
  EXPECT_FALSE(p.on_death(t + 3s).has_value());  // a fourth within 10 s: crash loop
}

TEST(RestartPolicy, OldRestartsLeaveTheWindow) {
  restart_policy p(0ms, 0ms, 2, 10s);
  const auto t = restart_policy::clock::time_point{};
  EXPECT_TRUE(p.on_death(t).has_value());
  EXPECT_TRUE(p.on_death(t + 5s).has_value());
  EXPECT_TRUE(p.on_death(t + 10s).has_value());  // the first has left the window
  EXPECT_EQ(p.restarts_in_window(t + 10s), 2u);
  EXPECT_FALSE(p.on_death(t + 11s).has_value());
  EXPECT_EQ(p.restarts_in_window(t + 30s), 0u);
}

}  // namespace
}  // namespace csk::supervisor
