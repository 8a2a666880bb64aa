#pragma once
// csk::io_pool::pool: N connections to one server, one dedicated I/O thread each, fed from
// one shared queue; what the redis and mysql services share. A backend derives its
// connection from io_pool::driver<Job> and implements open / close / run with its client
// library's blocking API (services/redis/pool.cpp, services/mysql/pool.cpp).
//
// Threads and ownership:
//  * submit() and stop() may be called from any thread (a service calls them from its
//    handlers). The pool owns its threads and its connections; each I/O thread alone calls
//    its connection's hooks, so a driver needs no lock of its own.
//  * `done` runs on an I/O thread, once per submitted job (also for jobs failed because
//    the server is away), and must be short and must not block: the service pushes the
//    answer to its own inbox and wakes itself (service.hpp).
//  * stop() (and the destructor) interrupts jobs in progress (shutdown(2) on their
//    sockets), joins the threads and drops jobs not yet started without calling `done`.
//    A connect in progress (open()) is not interrupted: it ends within the driver's
//    connect timeout. setup() is: the socket is registered before it.
//
// Connection states, per connection: connected, or down with a retry time. A job on a
// down connection connects first; if that fails, the job fails with "<service>: cannot
// connect to <where>: <why>" and further jobs fail at once until the retry time (backoff
// 50 ms doubling to 1 s; no thread ever loops without a job), unless another connection
// of the pool has connected since (then it retries at once). A connection that broke
// under a job (the driver calls lost()) is reconnected by the next one. Before each job
// an idle connection is checked for a close by the server (poll), so a server restart
// costs no call that came after it.
//
// Deadline (settings::deadline, optional): the I/O thread arms it before each job; the
// watchdog thread shuts the socket down when it passes, which fails the blocked read at
// once; a failed job then fails with "<service>: <job> timed out after N ms (<where>); the
// connection was reset", and the connection is reconnected by the next job.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/base/result.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::io_pool {

/// A reply as a Lua value, or the error text ("<service>: ...").
using reply = result<lua_value, std::string>;

/// What a pool is, fixed at its start.
struct settings {
  std::string service;                     ///< "redis": the first word of errors and log lines
  std::string where;                       ///< the server ("unix:/path", "host:port"), for messages
  std::string job = "job";                 ///< what a job is called in messages ("command", "query")
  int connections = 1;                     ///< one I/O thread each; at least 1
  std::chrono::milliseconds deadline{0};   ///< per job, enforced by the watchdog; 0: no watchdog
};

class core;

/// One connection of a pool: the hooks a backend implements, and the state the pool keeps
/// for it. Every hook runs on the connection's own I/O thread; so do the helpers below.
class connection {
 public:
  virtual ~connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

 protected:
  connection() = default;

  /// Connects (blocking; stop() cannot interrupt it, so it must time out by itself). The
  /// error text, or empty with `fd` set to the connected socket. After an error nothing
  /// stays open.
  virtual std::string open(int& fd) = 0;
  /// After a successful open, the socket registered for stop(): the connection's own setup
  /// commands (AUTH, SELECT, ...). The error text, or empty. Then close() follows an error.
  virtual std::string setup() { return {}; }
  /// Closes what a successful open() opened (also when setup() failed).
  virtual void close() = 0;
  /// First and last on the I/O thread, for a client library's per-thread state.
  virtual void thread_begin() {}
  virtual void thread_end() {}

  /// Closes the connection now; the next job reconnects (after the backoff of an earlier
  /// failed connect, if that has not passed).
  void drop();
  /// The connection broke under the job: closed, the next job reconnects at once, and the
  /// reconnect is logged as "is back".
  void lost();
  /// True when the watchdog fired for the job in progress.
  bool timed_out() const;
  /// True once stop() has begun: a failure then is expected, not worth a warning.
  bool stopping() const;
  /// 0..connections-1, for log lines.
  std::size_t index() const { return index_; }
  /// "<service>: connection lost: <why> (<where>)".
  std::string lost_error(std::string_view why) const;
  /// "<service>: <job> timed out after N ms (<where>); the connection was reset".
  std::string timeout_error(std::chrono::milliseconds after) const;

 private:
  friend class core;
  using clock = std::chrono::steady_clock;

  core* core_ = nullptr;  // set once, before the I/O thread starts
  std::size_t index_ = 0;

  // core::io_mu_: what the watchdog and stop() see. fd_ is written only by the I/O thread.
  int fd_ = -1;
  clock::time_point deadline_ = clock::time_point::max();
  bool timed_out_ = false;

  // The I/O thread's own state.
  bool connected_ = false;
  clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
  std::uint64_t connects_seen_ = 0;
  std::string last_error_;
  bool down_logged_ = false;
};

/// A connection that runs jobs of type Job.
template <class Job>
class driver : public connection {
 public:
  /// Runs one job on the open connection (the pool has connected it). When the connection
  /// breaks under it: lost(), and an error reply (lost_error()).
  virtual reply run(const Job& job) = 0;
};

/// The part of a pool that does not depend on the job type: connects and backoff, the idle
/// check, the sockets stop() interrupts, the watchdog. Owned by pool<Job>; its connections
/// outlive it.
class core {
 public:
  /// Takes the connections (numbering them) and starts the watchdog if settings.deadline
  /// is set.
  core(settings s, const std::vector<connection*>& conns);
  ~core();
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  /// On a connection's I/O thread, first: SIGPIPE blocked (a write to a closed socket
  /// fails with EPIPE instead of killing the process), thread_begin(), an eager connect.
  void begin_thread(connection& c);
  /// On the I/O thread, last: closes the connection, thread_end().
  void end_thread(connection& c);
  /// On the I/O thread: one job (`run` calls the driver), with the idle check, the
  /// connect, and the deadline around it.
  reply execute(connection& c, const std::function<reply()>& run);
  /// From stop(): interrupts every job in progress (and every connect from now on) and
  /// wakes the watchdog to end. Idempotent.
  void interrupt();
  /// From stop(), after interrupt() and after the I/O threads ended: joins the watchdog.
  void join();

  const settings& config() const { return settings_; }

 private:
  friend class connection;
  using clock = std::chrono::steady_clock;

  bool connect(connection& c);
  void drop(connection& c);
  void reset(connection& c);
  void watch();

  const settings settings_;
  std::vector<connection*> conns_;

  std::mutex io_mu_;
  std::condition_variable io_cv_;
  bool halt_ = false;  // io_mu_: set by interrupt()
  std::thread watchdog_;
  /// Bumped whenever a connection of the pool connects: a connection in backoff that sees
  /// a newer value than at its failure retries at once.
  std::atomic<std::uint64_t> connects_{0};
};

template <class Job>
class pool {
 public:
  using done_fn = std::function<void(std::uint64_t id, reply r)>;
  using make_fn = std::function<std::unique_ptr<driver<Job>>()>;

  /// Makes settings.connections drivers with `make` and starts one I/O thread each; each
  /// connects at once (failures are logged, not fatal).
  pool(settings s, const make_fn& make, done_fn done)
      : conns_(make_all(s.connections, make)), core_(std::move(s), pointers(conns_)), done_(std::move(done)) {
    for (auto& c : conns_) threads_.emplace_back([this, p = c.get()] { run(*p); });
  }
  ~pool() { stop(); }
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Queues one job; `done(id, ...)` reports its reply later.
  void submit(std::uint64_t id, Job job) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      queue_.push_back(queued{id, std::move(job)});
    }
    cv_.notify_one();
  }

  /// Ends the threads (see above). Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      queue_.clear();
    }
    core_.interrupt();
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
    core_.join();
  }

 private:
  struct queued {
    std::uint64_t id = 0;
    Job job;
  };

  static std::vector<std::unique_ptr<driver<Job>>> make_all(int n, const make_fn& make) {
    std::vector<std::unique_ptr<driver<Job>>> out;
    for (int i = 0; i < std::max(1, n); ++i) out.push_back(make());
    return out;
  }
  static std::vector<connection*> pointers(const std::vector<std::unique_ptr<driver<Job>>>& conns) {
    std::vector<connection*> out;
    for (const auto& c : conns) out.push_back(c.get());
    return out;
  }

  void run(driver<Job>& c) {
    core_.begin_thread(c);
    for (;;) {
      queued q;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        q = std::move(queue_.front());
        queue_.pop_front();
      }
      reply r = core_.execute(c, [&] { return c.run(q.job); });
      done_(q.id, std::move(r));
    }
    core_.end_thread(c);
  }

  std::vector<std::unique_ptr<driver<Job>>> conns_;  // before core_, which points into it
  core core_;
  done_fn done_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<queued> queue_;  // mu_
  bool stopping_ = false;     // mu_
  std::vector<std::thread> threads_;
};

}  // namespace csk::io_pool
