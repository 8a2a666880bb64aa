#pragma once
// csk::mysql::pool: N MariaDB connections, one dedicated I/O thread each, fed from one
// shared queue, using Connector/C's blocking API; plus one watchdog thread for query
// timeouts. The only Connector/C user (pool.cpp).
//
// Threads and ownership:
//  * submit() and stop() may be called from any thread (the mysql service calls them
//    from its handlers). The pool owns its threads and their connections; each I/O
//    thread alone touches its MYSQL* and its prepared statements.
//  * `done` runs on an I/O thread, once per submitted job (also for jobs failed because
//    the server is away), and must be short and must not block: the service pushes the
//    answer to its own inbox and wakes itself.
//  * stop() (and the destructor) interrupts statements in progress (shutdown(2) on their
//    sockets), joins the threads and drops jobs not yet started without calling `done`.
//    A connect in progress is not interrupted (it ends within connect_timeout_ms).
//
// Connection states, per connection: connected, or down with a retry time. A statement
// on a down connection connects first; if that fails, it fails with "cannot connect"
// and further statements fail at once until the retry time (backoff 50 ms doubling to
// 1 s; no thread ever loops without a job), unless another connection of the pool has
// connected since (then it retries at once). A connection that broke under a statement
// (EOF, I/O error, query timeout) fails that statement and is reconnected by the next
// one. Before each statement an idle connection is checked for a close by the server
// (poll), so a server restart costs no call that came after it.
//
// Query timeout: the I/O thread arms a deadline before each statement; the watchdog
// shuts the socket down when it passes, which fails the blocked read at once; the
// statement fails with "query timed out" and the connection is reconnected.
//
// Prepared statements are cached per connection by SQL text (up to 128; the cache is
// emptied when full), and dropped with the connection.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/result.hpp"
#include "common/wire/lua_value.hpp"
#include "services/mysql/mysql.hpp"

namespace csk::mysql {

/// A reply as a Lua value (the result table), or the error text ("mysql: ...").
using reply = result<lua_value, std::string>;

class pool {
 public:
  using done_fn = std::function<void(std::uint64_t id, reply r)>;

  /// Starts `o.pool` I/O threads and the watchdog; each I/O thread connects at once
  /// (failures are logged, not fatal).
  pool(const options& o, done_fn done);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Queues one statement; `done(id, ...)` reports its reply later.
  void submit(std::uint64_t id, request req);
  /// Ends the threads (see above). Idempotent.
  void stop();

 private:
  struct job {
    std::uint64_t id = 0;
    request req;
  };
  struct connection;
  using clock = std::chrono::steady_clock;

  void run(connection& c);
  void watch();
  bool connect(connection& c);
  void drop(connection& c);
  reply execute(connection& c, const request& req);
  reply run_query(connection& c, const request& req);
  reply run_prepared(connection& c, const request& req);
  reply run_transaction(connection& c, const request& req);
  /// The error reply for the connection's last error; drops the connection when the
  /// error means it is unusable (lost, timed out, killed).
  reply fail(connection& c, unsigned int err, const char* sqlstate, const char* text);
  void arm(connection& c);
  /// Disarms; true when the watchdog fired for this statement.
  bool disarm(connection& c);

  options opts_;
  done_fn done_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;  // mu_
  bool stopping_ = false;  // mu_

  // The watchdog's view of every connection (socket, deadline): io_mu_.
  std::mutex io_mu_;
  std::condition_variable io_cv_;
  bool io_halt_ = false;  // io_mu_

  std::vector<std::unique_ptr<connection>> conns_;
  std::vector<std::thread> threads_;
  std::thread watchdog_;
  std::atomic<bool> halt_{false};  // set by stop() before it interrupts the sockets
  /// Bumped whenever a connection of the pool connects: a connection in backoff that
  /// sees a newer value than at its failure retries at once.
  std::atomic<std::uint64_t> connects_{0};
};

}  // namespace csk::mysql
