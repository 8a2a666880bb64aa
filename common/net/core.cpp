#include "common/net/core.hpp"

#include <exception>
#include <stdexcept>

#include "common/log/log.hpp"
#include "common/net/connection.hpp"
#include "common/net/listener.hpp"

namespace csk::net {

namespace {
// The core whose net thread this is (set by run(), for in_net_thread()).
thread_local const core* current_core = nullptr;
}  // namespace

core::core(int threads) : log_(csk::logger("net")) {
  const auto n = static_cast<std::size_t>(threads < 1 ? 1 : threads);
  contexts_.reserve(n);
  // Hint 1: each context is run by exactly one thread, so asio can skip some locking.
  for (std::size_t i = 0; i < n; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
}

core::~core() {
  stop();
  std::unique_lock lock(registry_mu_);
  connections_.clear();
  listeners_.clear();
}

void core::start() {
  std::lock_guard life(life_mu_);
  if (started_ || stopped_) return;
  start_threads();
}

void core::start_threads() {
  started_ = true;
  for (auto& ctx : contexts_) guards_.push_back(asio::make_work_guard(*ctx));
  for (auto& ctx : contexts_) threads_.emplace_back([this, c = ctx.get()] { run(*c); });
  threads_started_.store(true, std::memory_order_release);
}

void core::run(asio::io_context& ctx) {
  current_core = this;
  for (;;) {
    try {
      ctx.run();
      return;
    } catch (const std::exception& e) {
      // Hooks are guarded by their connection; this is asio or the allocator. The
      // context can run on; whatever threw has been abandoned.
      log_->error("net thread: uncaught exception: {}", e.what());
    }
  }
}

bool core::in_net_thread() const noexcept { return current_core == this; }

void core::stop(std::chrono::milliseconds flush) {
  if (in_net_thread()) throw std::logic_error("csk::net::net::stop called from a net thread");
  std::lock_guard life(life_mu_);
  if (stopped_) return;
  if (!started_) start_threads();  // queued work and hooks still run on net threads

  std::vector<std::shared_ptr<connection>> open;
  std::unordered_map<listener_id, std::shared_ptr<listener>> listening;
  {
    std::unique_lock lock(registry_mu_);
    stopping_ = true;  // from here on no connection joins the registry
    listening.swap(listeners_);
    open.reserve(connections_.size());
    for (const auto& [id, c] : connections_) open.push_back(c);
  }
  for (auto& [id, l] : listening) l->close();
  if (flush.count() > 0 && !open.empty()) {
    // Graceful first: each connection writes what is queued (bounded by its own
    // flush_timeout too), then closes; whatever is still open at the deadline is aborted
    // below like the rest.
    for (auto& c : open) c->request_close("shutdown", true);
    const auto deadline = std::chrono::steady_clock::now() + flush;
    std::unique_lock lock(registry_mu_);
    registry_empty_.wait_until(lock, deadline, [&] { return connections_.empty(); });
  }
  for (auto& c : open) c->request_close("shutdown", false);
  open.clear();
  listening.clear();

  // Without the guards each context returns from run() once the closes above (and
  // every completion they cause) have run.
  guards_.clear();
  for (auto& t : threads_) t.join();
  threads_.clear();
  stopped_ = true;
}

asio::io_context& core::next_context() noexcept {
  const auto i = next_context_.fetch_add(1, std::memory_order_relaxed);
  return *contexts_[i % contexts_.size()];
}

bool core::add_connection(std::shared_ptr<connection> c) {
  std::unique_lock lock(registry_mu_);
  if (stopping_) return false;
  const auto id = c->id();
  connections_.emplace(id, std::move(c));
  return true;
}

void core::remove_connection(conn_id id) {
  std::shared_ptr<connection> gone;  // released after the lock
  std::unique_lock lock(registry_mu_);
  const auto it = connections_.find(id);
  if (it == connections_.end()) return;
  gone = std::move(it->second);
  connections_.erase(it);
  if (connections_.empty()) registry_empty_.notify_all();
}

bool core::add_listener(std::shared_ptr<listener> l) {
  std::unique_lock lock(registry_mu_);
  if (stopping_) return false;
  const auto id = l->id();
  listeners_.emplace(id, std::move(l));
  return true;
}

std::optional<std::future<void>> core::close_listener(listener_id id) {
  std::unique_lock lock(registry_mu_);
  const auto it = listeners_.find(id);
  if (it == listeners_.end()) return std::nullopt;
  auto closed = it->second->close();
  listeners_.erase(it);
  return closed;
}

std::optional<std::uint16_t> core::listener_port(listener_id id) const {
  std::shared_lock lock(registry_mu_);
  const auto it = listeners_.find(id);
  if (it == listeners_.end()) return std::nullopt;
  return it->second->port();
}

}  // namespace csk::net
