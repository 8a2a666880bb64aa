#include "common/base/memory_budget.hpp"

#include <algorithm>
#include <utility>

namespace csk {

memory_budget::memory_budget(std::size_t high, std::size_t low) : high_(high), low_(std::min(low, high)) {}

void memory_budget::charge(std::size_t n) noexcept {
  if (n == 0) return;
  const std::size_t now = held_.fetch_add(n, std::memory_order_relaxed) + n;
  std::size_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void memory_budget::release(std::size_t n) {
  if (n == 0) return;
  std::size_t before = held_.load(std::memory_order_relaxed);
  std::size_t after = 0;
  do {
    after = before >= n ? before - n : 0;  // never below 0 (a bug elsewhere, not a crash here)
  } while (!held_.compare_exchange_weak(before, after));  // seq_cst: see when_below_low
  if (after > low_ || !has_waiters_.load()) return;
  for (auto& resume : take_waiters_if_low()) resume();
}

std::size_t memory_budget::take_peak() noexcept { return peak_.exchange(held(), std::memory_order_relaxed); }

void memory_budget::when_below_low(std::function<void()> resume) {
  {
    std::lock_guard lock(mu_);
    if (held() > low_) {
      waiters_.push_back(std::move(resume));
      has_waiters_.store(true);  // seq_cst with release()'s exchange and load: one of
      // the two sees the other (the waiter's re-check below, or the releaser's flag)
      pauses_.fetch_add(1, std::memory_order_relaxed);
      resume = nullptr;
    }
  }
  if (resume) return resume();
  // A release between the check and the push may have seen no waiter: look again.
  for (auto& r : take_waiters_if_low()) r();
}

std::size_t memory_budget::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

std::vector<std::function<void()>> memory_budget::take_waiters_if_low() {
  std::lock_guard lock(mu_);
  if (held_.load() > low_ || waiters_.empty()) return {};
  has_waiters_.store(false);
  return std::exchange(waiters_, {});
}

}  // namespace csk
