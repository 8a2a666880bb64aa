#pragma once
// The clock of entity timers. Deadlines are absolute milliseconds on this clock, in the
// store and in snapshots.
//
// The default is CLOCK_MONOTONIC (std::chrono::steady_clock on Linux): one clock for every
// process of the host, so a snapshot moved from one worker to the next keeps its deadlines
// as they were. Tests run the runtime in manual mode and use a manual_clock, moved together
// with the runtime's time (manual_clock::advance(rt, d)). A service finds the clock through
// the runtime extension slot of `entity::clock` (entity::use_clock in service.hpp), else
// uses the monotonic one.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace csk::entity {

class clock {
 public:
  virtual ~clock() = default;
  virtual std::int64_t now_ms() const noexcept = 0;
};

/// CLOCK_MONOTONIC in milliseconds.
class monotonic_clock final : public clock {
 public:
  std::int64_t now_ms() const noexcept override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

inline const clock& default_clock() noexcept {
  static const monotonic_clock c;
  return c;
}

/// A clock that moves only when told (tests, benchmarks). Safe to read from any thread.
class manual_clock final : public clock {
 public:
  explicit manual_clock(std::int64_t start_ms = 0) noexcept : now_(start_ms) {}
  std::int64_t now_ms() const noexcept override { return now_.load(std::memory_order_acquire); }
  void set(std::int64_t ms) noexcept { now_.store(ms, std::memory_order_release); }
  void advance(std::chrono::milliseconds d) noexcept { now_.fetch_add(d.count(), std::memory_order_acq_rel); }
  /// Moves this clock and a manual-mode runtime's time together (timers are queued,
  /// run them with rt.run_until_idle()).
  template <class Runtime>
  void advance(Runtime& rt, std::chrono::milliseconds d) {
    advance(d);
    rt.advance_time(d);
  }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace csk::entity
