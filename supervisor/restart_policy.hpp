#pragma once
// When to start a worker again after one died, and when to give up (a crash loop).
// Pure: time comes in as arguments, so the tests need no clock.
//
//   - Backoff: the first restart after a ready worker waits `backoff`; each further death
//     before a worker reports ready again doubles the wait, up to `backoff_max`.
//   - Crash loop: at most `max_restarts` restarts within any `window`; the death that
//     would need one more gives up.

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>

namespace csk::supervisor {

class restart_policy {
 public:
  using clock = std::chrono::steady_clock;
  using ms = std::chrono::milliseconds;

  restart_policy(ms backoff, ms backoff_max, std::size_t max_restarts, ms window);

  /// A worker died without being asked to: the delay before starting the next one, or
  /// nullopt when that would be a crash loop (give up).
  std::optional<ms> on_death(clock::time_point now);
  /// A worker reported ready: the next death waits `backoff` again.
  void on_ready();
  /// Restarts counted in the window ending at `now`.
  std::size_t restarts_in_window(clock::time_point now);

 private:
  void forget_before(clock::time_point now);

  const ms backoff_;
  const ms backoff_max_;
  const std::size_t max_restarts_;
  const ms window_;
  ms next_;
  std::deque<clock::time_point> restarts_;
};

}  // namespace csk::supervisor
