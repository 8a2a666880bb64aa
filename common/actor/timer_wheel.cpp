#include "common/actor/timer_wheel.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace csk::actor {

namespace {

constexpr std::uint64_t low_mask(unsigned bits) noexcept {
  return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

}  // namespace

// Slot numbering: 0..255 near (by expiry & 255), then 256 + 64 * L + digit for level L.
std::uint16_t timer_wheel::slot_for(std::uint64_t expiry) const noexcept {
  const std::uint64_t diff = expiry ^ now_;
  if (diff < near_slots) return static_cast<std::uint16_t>(expiry & (near_slots - 1));
  const auto top_bit = static_cast<unsigned>(std::bit_width(diff)) - 1;
  const unsigned level = (top_bit - near_bits) / level_bits;
  const unsigned shift = near_bits + level * level_bits;
  const auto digit = static_cast<unsigned>((expiry >> shift) & (level_slots - 1));
  return static_cast<std::uint16_t>(near_slots + level * level_slots + digit);
}

void timer_wheel::link(std::uint32_t index) noexcept {
  node& n = nodes_[index];
  n.slot = slot_for(n.expiry);
  slot_list& list = slots_[n.slot];
  n.next = nil;
  n.prev = list.last;
  if (list.last == nil) {
    list.first = index;
    occupied_[n.slot / 64u] |= std::uint64_t{1} << (n.slot % 64u);
  } else {
    nodes_[list.last].next = index;
  }
  list.last = index;
}

void timer_wheel::unlink(std::uint32_t index) noexcept {
  node& n = nodes_[index];
  slot_list& list = slots_[n.slot];
  if (n.prev == nil) list.first = n.next; else nodes_[n.prev].next = n.next;
  if (n.next == nil) list.last = n.prev; else nodes_[n.next].prev = n.prev;
  if (list.first == nil) occupied_[n.slot / 64u] &= ~(std::uint64_t{1} << (n.slot % 64u));
}

void timer_wheel::release(std::uint32_t index) noexcept {
  node& n = nodes_[index];
  n.slot = free_slot;
  --size_;
  // A node whose generation is exhausted is retired (leaked, 32 bytes per 2^32 uses)
  // rather than recycled, so that no id is ever issued twice.
  if (n.generation == std::numeric_limits<std::uint32_t>::max()) return;
  ++n.generation;
  n.next = free_head_;
  free_head_ = index;
}

timer_wheel::timer_id timer_wheel::add(std::uint64_t delay_ticks, std::uint32_t handle,
                                       std::uint32_t session) {
  std::uint32_t index = free_head_;
  if (index != nil) {
    free_head_ = nodes_[index].next;
  } else {
    if (nodes_.size() >= nil) throw std::length_error("timer_wheel: too many pending timers");
    index = static_cast<std::uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  node& n = nodes_[index];
  const std::uint64_t max_tick = std::numeric_limits<std::uint64_t>::max();
  n.expiry = delay_ticks > max_tick - now_ ? max_tick : now_ + delay_ticks;
  n.handle = handle;
  n.session = session;
  link(index);
  ++size_;
  return (std::uint64_t{n.generation} << 32) | index;
}

bool timer_wheel::cancel(timer_id id) noexcept {
  const auto index = static_cast<std::uint32_t>(id & 0xffff'ffffu);
  const auto generation = static_cast<std::uint32_t>(id >> 32);
  if (index >= nodes_.size()) return false;
  const node& n = nodes_[index];
  if (n.slot == free_slot || n.generation != generation) return false;
  unlink(index);
  release(index);
  return true;
}

bool timer_wheel::pop_due(timer_event& out) noexcept {
  slot_list& list = slots_[now_ & (near_slots - 1)];
  const std::uint32_t index = list.first;
  if (index == nil) return false;
  const node& n = nodes_[index];
  out = timer_event{(std::uint64_t{n.generation} << 32) | index, n.handle, n.session};
  unlink(index);
  release(index);
  return true;
}

// Slots below now()'s digit are empty at every level (invariant), and so is now()'s own
// near slot whenever this is called, so the lowest occupied bit is the next event.
std::optional<unsigned> timer_wheel::first_near_slot() const noexcept {
  for (unsigned w = 0; w < near_slots / 64u; ++w)
    if (occupied_[w] != 0) return w * 64u + static_cast<unsigned>(std::countr_zero(occupied_[w]));
  return std::nullopt;
}

// The first tick after now() where a near slot fires or a level slot's block starts.
// Near slots beat level 0, level L beats level L + 1: each one's ticks all lie before
// the next block boundary of the one above it.
std::optional<std::uint64_t> timer_wheel::next_event_tick() const noexcept {
  if (const auto slot = first_near_slot()) return (now_ & ~low_mask(near_bits)) | *slot;
  for (unsigned level = 0; level < level_count; ++level) {
    const std::uint64_t bits = occupied_[near_slots / 64u + level];
    if (bits == 0) continue;
    const unsigned shift = near_bits + level * level_bits;
    const auto digit = static_cast<std::uint64_t>(std::countr_zero(bits));
    return (now_ & ~low_mask(shift + level_bits)) | (digit << shift);
  }
  return std::nullopt;
}

void timer_wheel::cascade(std::uint16_t slot) noexcept {
  slot_list& list = slots_[slot];
  std::uint32_t index = list.first;
  if (index == nil) return;
  list = slot_list{};
  occupied_[slot / 64u] &= ~(std::uint64_t{1} << (slot % 64u));
  while (index != nil) {
    const std::uint32_t next = nodes_[index].next;
    link(index);
    index = next;
  }
}

void timer_wheel::step_toward(std::uint64_t tick) noexcept {
  const std::optional<std::uint64_t> next = next_event_tick();
  now_ = next && *next < tick ? *next : tick;
  if ((now_ & low_mask(near_bits)) != 0) return;
  // now_ starts a block at every level whose lower bits are all zero; the slot of that
  // block (at most one is non-empty) moves down, relative to the new now_.
  const auto zeros = static_cast<unsigned>(std::countr_zero(now_));  // now_ > 0 here
  for (unsigned level = level_count; level-- > 0;) {
    const unsigned shift = near_bits + level * level_bits;
    if (zeros < shift) continue;
    const auto digit = static_cast<unsigned>((now_ >> shift) & (level_slots - 1));
    cascade(static_cast<std::uint16_t>(near_slots + level * level_slots + digit));
  }
}

std::optional<std::uint64_t> timer_wheel::next_expiry() const {
  if (const auto slot = first_near_slot()) return (now_ & ~low_mask(near_bits)) | *slot;
  // The lowest non-empty level's first non-empty slot holds the earliest timers, in
  // no particular expiry order.
  for (unsigned level = 0; level < level_count; ++level) {
    const std::uint64_t bits = occupied_[near_slots / 64u + level];
    if (bits == 0) continue;
    const auto slot = near_slots + level * level_slots + static_cast<unsigned>(std::countr_zero(bits));
    std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
    for (std::uint32_t i = slots_[slot].first; i != nil; i = nodes_[i].next)
      best = std::min(best, nodes_[i].expiry);
    return best;
  }
  return std::nullopt;
}

}  // namespace csk::actor
