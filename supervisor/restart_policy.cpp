#include "supervisor/restart_policy.hpp"

#include <algorithm>

namespace csk::supervisor {

restart_policy::restart_policy(ms backoff, ms backoff_max, std::size_t max_restarts, ms window)
    : backoff_(backoff), backoff_max_(std::max(backoff, backoff_max)), max_restarts_(max_restarts),
      window_(window), next_(backoff) {}

std::optional<restart_policy::ms> restart_policy::on_death(clock::time_point now) {
  forget_before(now);
  if (restarts_.size() >= max_restarts_) return std::nullopt;
  restarts_.push_back(now);
  const ms delay = next_;
  next_ = std::min(backoff_max_, next_ * 2);
  return delay;
}

void restart_policy::on_ready() { next_ = backoff_; }

std::size_t restart_policy::restarts_in_window(clock::time_point now) {
  forget_before(now);
  return restarts_.size();
}

void restart_policy::forget_before(clock::time_point now) {
  while (!restarts_.empty() && now - restarts_.front() >= window_) restarts_.pop_front();
}

}  // namespace csk::supervisor
