#pragma once
// csk::net::core: what net, listeners and connections share (private to common/net):
// the io_contexts and their threads, the id -> connection/listener registry, counters.
//
// Ownership: net owns the core; the registry owns open connections and listeners
// (shared_ptr); pending asio handlers own them too (each captures `self`). Connections
// and listeners refer to the core by reference: the core outlives them all, because it
// clears the registry and then destroys the io_contexts (and with them every pending
// handler) before any other member.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "common/net/asio.hpp"
#include "common/net/handler.hpp"

namespace csk::net {

class connection;
class listener;

/// Relaxed counters behind net::stats.
struct counters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> detached{0};
  std::atomic<std::uint64_t> adopted{0};
  // gauges (connection.cpp's read buffer pool)
  std::atomic<std::uint64_t> read_buffer_bytes{0};
  std::atomic<std::uint64_t> read_buffers{0};
  std::atomic<std::uint64_t> pooled_bytes{0};

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  static void sub(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_sub(n, std::memory_order_relaxed);
  }
};

class core {
 public:
  explicit core(int threads);
  /// stop(), then drops the registry, then the io_contexts. Owner thread.
  ~core();
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  /// See net::start / net::stop for the contracts.
  void start();
  void stop(std::chrono::milliseconds flush = std::chrono::milliseconds(0));
  /// True once start() (or stop()) launched the net threads. Any thread.
  bool started() const noexcept { return threads_started_.load(std::memory_order_acquire); }
  /// True on one of this core's net threads.
  bool in_net_thread() const noexcept;

  /// The io_context for the next connection or listener (round robin). Any thread.
  asio::io_context& next_context() noexcept;

  conn_id new_conn_id() noexcept { return next_conn_.fetch_add(1, std::memory_order_relaxed); }
  listener_id new_listener_id() noexcept { return next_listener_.fetch_add(1, std::memory_order_relaxed); }

  // -- registry (any thread) ---------------------------------------------------------

  /// False once stop() has begun: the caller drops the connection without any hook.
  [[nodiscard]] bool add_connection(std::shared_ptr<connection> c);
  void remove_connection(conn_id id);
  /// Calls f(connection&) under the registry's shared lock; false if the id is unknown.
  template <class F>
  bool with_connection(conn_id id, F&& f) const {
    std::shared_lock lock(registry_mu_);
    const auto it = connections_.find(id);
    if (it == connections_.end()) return false;
    return std::forward<F>(f)(*it->second);
  }

  [[nodiscard]] bool add_listener(std::shared_ptr<listener> l);
  /// Removes the listener and posts its close; the future is ready once it is closed.
  /// Posted under the registry lock, so a concurrent stop() runs it before joining.
  std::optional<std::future<void>> close_listener(listener_id id);
  std::optional<std::uint16_t> listener_port(listener_id id) const;

  counters& stats() noexcept { return stats_; }
  const counters& stats() const noexcept { return stats_; }
  spdlog::logger& log() const noexcept { return *log_; }

 private:
  using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;

  void start_threads();  // life_mu_ held
  void run(asio::io_context& ctx);

  // Declared first, destroyed last: connections and listeners (in the registry and in
  // pending handlers) hold sockets of these contexts.
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<work_guard> guards_;
  std::vector<std::thread> threads_;

  mutable std::shared_mutex registry_mu_;
  std::unordered_map<conn_id, std::shared_ptr<connection>> connections_;
  std::unordered_map<listener_id, std::shared_ptr<listener>> listeners_;
  bool stopping_ = false;  // guarded by registry_mu_
  std::condition_variable_any registry_empty_;  // notified as connections leave the registry

  std::mutex life_mu_;  // start/stop; held through stop's join
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> threads_started_{false};

  std::atomic<std::size_t> next_context_{0};
  std::atomic<conn_id> next_conn_{1};
  std::atomic<listener_id> next_listener_{1};
  counters stats_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace csk::net
