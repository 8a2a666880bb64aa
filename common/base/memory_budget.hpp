#pragma once
// csk::memory_budget: the bytes a node holds on its peers' behalf, counted in one place,
// with a high-water mark past which the feeders stop reading and a low-water mark at which
// they read again (Envoy's overload manager, reduced to the one action that keeps a node
// alive: TCP back-pressure instead of growth).
//
// Who charges what (docs/architecture.md "Where memory is held"):
//   - every connection of a net built with it: the bytes queued for writing;
//   - the cluster agents: the chunks of incomplete multi-part requests;
//   - the runtime: the messages that feeders (agents, gates) put in mailboxes, by their
//     wire size plus a fixed overhead (message::charge), until a service takes them.
// Feeders that can stop reading (cluster agents, gate connections) ask over() after each
// message they deliver and, if so, pause that connection and register when_below_low()
// to resume it. Nothing is dropped: the peers' bytes wait in their own socket buffers.
//
// Threads: every member is safe from any thread. charge/release are a relaxed atomic add
// and a compare; the waiters' list is locked only when a feeder pauses or the total falls
// to the low mark while feeders wait. Waiters run on the thread that releases (or
// registers), outside the lock: they must be short and must not block.
//
// Invariant: every charge is matched by exactly one release of the same size; held()
// never underflows (checked: a release past the total is clamped and counted).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace csk {

class memory_budget {
 public:
  /// `high` 0: never over (the counting still happens). `low` is clamped to <= high.
  memory_budget(std::size_t high, std::size_t low);
  memory_budget(const memory_budget&) = delete;
  memory_budget& operator=(const memory_budget&) = delete;

  void charge(std::size_t n) noexcept;
  /// Gives `n` back; if that brings the total to the low mark, runs every waiter.
  void release(std::size_t n);
  /// Bytes charged and not yet released.
  std::size_t held() const noexcept { return held_.load(std::memory_order_relaxed); }
  /// The largest held() since the last take_peak(); resets it to held().
  std::size_t take_peak() noexcept;
  /// Past the high-water mark.
  bool over() const noexcept { return high_ != 0 && held() > high_; }
  /// Runs `resume` once held() <= low: at once (on this thread) if it already is.
  void when_below_low(std::function<void()> resume);

  std::size_t high() const noexcept { return high_; }
  std::size_t low() const noexcept { return low_; }
  /// when_below_low calls that had to wait (feeders paused for memory).
  std::uint64_t pauses() const noexcept { return pauses_.load(std::memory_order_relaxed); }
  /// Feeders waiting now.
  std::size_t waiting() const;

 private:
  std::vector<std::function<void()>> take_waiters_if_low();

  const std::size_t high_;
  const std::size_t low_;
  std::atomic<std::size_t> held_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::uint64_t> pauses_{0};
  std::atomic<bool> has_waiters_{false};
  mutable std::mutex mu_;
  std::vector<std::function<void()>> waiters_;  // mu_
};

}  // namespace csk
