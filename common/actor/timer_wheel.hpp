#pragma once
// csk::actor::timer_wheel: the runtime's pending timeouts (skynet.timeout, skynet.sleep),
// a hierarchical timing wheel in the spirit of skynet_timer.c.
//
// Time is an abstract 64-bit tick counter moved only by advance_to(); the wheel never
// reads a clock. A timer added with delay d at now() == t expires at tick t + d
// (saturated at UINT64_MAX) and fn sees now() == t + d when it fires, delay 0 included:
// a delay-0 timer fires at the start of the next advance_to(), before time moves.
//
// Layout (slot = which list a pending timer is on, chosen from expiry ^ now()):
//   near      256 slots, one per tick of the current 256-tick block   (bits 0..7)
//   level 0-3  64 slots each, one per 2^(8+6L)-tick block              (bits 8..31)
//   level 4-9  64 slots each, same rule, for expiries beyond 2^32      (bits 32..63)
// Levels 0-3 are skynet's wheel. Instead of parking far timers in level 3 and
// re-cascading them every 2^32 ticks, six more levels cover the whole 64-bit range:
// a timer moves down at most 10 times whatever its delay, and a jump never has to
// visit an epoch just to re-park timers.
// Invariants: a timer with expiry e sits at the highest level where e and now() differ,
// in the slot of e's digit at that level (so that digit is greater than now()'s); hence
// all timers with the same expiry share one slot, and every list is in insertion order.
// A bitmap mirrors which slots are non-empty, so empty stretches are skipped.
//
// Storage: one slab of 32-byte nodes (vector) with a free list; the slot lists are
// intrusive, doubly linked by slab index. No allocation per timer once the slab has
// grown to the peak number of pending timers.
//
// Costs: add O(1); cancel O(1); advance_to O(1 + fired + moved), where a timer moves
// down at most 4 times for delays below 2^32 and at most 10 times in all; the
// distance in ticks does not matter (a jump of 2^64 ticks with nothing pending is
// O(1)). next_expiry O(1) if something is due within the current 256-tick block, else
// O(length of one slot list).
//
// Thread rule: not synchronised. One owner thread (the runtime's timer thread) calls
// everything, including the fn passed to advance_to.

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace csk::actor {

/// What fires: the runtime turns an expired timer into a message (handle, session).
struct timer_event {
  std::uint64_t id;
  std::uint32_t handle;
  std::uint32_t session;
};

class timer_wheel {
 public:
  using timer_id = std::uint64_t;  // 0 is never a valid id

  explicit timer_wheel(std::uint64_t start_tick = 0) noexcept : now_(start_tick) {}

  /// Schedules an event `delay_ticks` ticks after now() (0 = fires at the next advance).
  /// Expiry is now() + delay_ticks, saturated at UINT64_MAX.
  /// Throws std::length_error past 2^32 - 1 pending timers, std::bad_alloc if out of memory.
  timer_id add(std::uint64_t delay_ticks, std::uint32_t handle, std::uint32_t session);

  /// Cancels a pending timer. False if it already fired, was cancelled, or never existed
  /// (ids are never reused: a stale id can never cancel a newer timer).
  bool cancel(timer_id id) noexcept;

  /// Moves time forward to `tick` (no-op if tick <= now()) and calls fn(const timer_event&)
  /// once for each timer that expires, in expiry order; timers expiring on the same tick
  /// fire in the order they were added. During the call now() is the expiry of the event.
  ///
  /// fn may call add() and cancel() on this wheel. A timer added from fn whose expiry is
  /// <= tick fires within this same call; in particular delay 0 fires on the current tick,
  /// after the timers already due on it (so an fn that always re-adds delay 0 never
  /// returns, as in skynet). Cancelling a due timer from fn stops it from firing.
  /// If fn throws, the event it was given counts as fired, now() stays at its tick and
  /// the wheel stays valid; the next advance_to() continues where this one stopped.
  template <class F>
  void advance_to(std::uint64_t tick, F&& fn);

  std::uint64_t now() const noexcept { return now_; }
  std::size_t size() const noexcept { return size_; }  // pending timers

  /// Earliest pending expiry tick, if any (lets an idle timer thread sleep longer).
  /// May be now() (delay-0 timers not yet fired).
  std::optional<std::uint64_t> next_expiry() const;

 private:
  static constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();
  static constexpr unsigned near_bits = 8;
  static constexpr unsigned level_bits = 6;
  static constexpr unsigned near_slots = 1u << near_bits;
  static constexpr unsigned level_slots = 1u << level_bits;
  static constexpr unsigned level_count = 10;  // 8 + 6 * 10 >= 64
  static constexpr unsigned slot_count = near_slots + level_count * level_slots;
  static constexpr std::uint16_t free_slot = std::numeric_limits<std::uint16_t>::max();

  struct node {
    std::uint64_t expiry = 0;
    std::uint32_t next = nil;  // slot list while pending, free list while free
    std::uint32_t prev = nil;
    std::uint32_t handle = 0;
    std::uint32_t session = 0;
    std::uint32_t generation = 1;  // id = generation << 32 | index; bumped when freed
    std::uint16_t slot = free_slot;
  };
  static_assert(sizeof(node) == 32);

  struct slot_list {
    std::uint32_t first = nil;
    std::uint32_t last = nil;
  };

  std::uint16_t slot_for(std::uint64_t expiry) const noexcept;
  void link(std::uint32_t index) noexcept;
  void unlink(std::uint32_t index) noexcept;
  void release(std::uint32_t index) noexcept;
  /// Pops the first timer due on now() into `out`; false when none is left.
  bool pop_due(timer_event& out) noexcept;
  /// Moves now() to the next tick where something happens, at most `tick`, and
  /// cascades the slot that starts there. Requires now() < tick.
  void step_toward(std::uint64_t tick) noexcept;
  std::optional<unsigned> first_near_slot() const noexcept;
  std::optional<std::uint64_t> next_event_tick() const noexcept;
  void cascade(std::uint16_t slot) noexcept;

  std::vector<node> nodes_;
  std::array<slot_list, slot_count> slots_{};
  std::array<std::uint64_t, slot_count / 64> occupied_{};  // bit per non-empty slot
  std::uint32_t free_head_ = nil;
  std::size_t size_ = 0;
  std::uint64_t now_;
};

template <class F>
void timer_wheel::advance_to(std::uint64_t tick, F&& fn) {
  if (tick <= now_) return;
  for (;;) {
    timer_event ev;
    while (pop_due(ev)) fn(std::as_const(ev));
    if (now_ == tick) return;
    step_toward(tick);
  }
}

}  // namespace csk::actor
