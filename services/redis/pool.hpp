#pragma once
// csk::redis::pool: N redis connections, one dedicated I/O thread each, fed from one
// shared queue, using hiredis's blocking API. The only hiredis user (pool.cpp).
//
// Threads and ownership:
//  * submit() and stop() may be called from any thread (the redis service calls them
//    from its handlers). The pool owns its threads and their connections; each thread
//    alone touches its redisContext.
//  * `done` runs on an I/O thread, once per submitted job (also for jobs failed because
//    the server is away), and must be short and must not block: the service pushes the
//    answer to its own inbox and wakes itself.
//  * stop() (and the destructor) interrupts commands in progress (shutdown(2) on their
//    sockets), joins the threads and drops jobs not yet started without calling `done`.
//
// Connection states, per connection: connected, or down with a retry time. A command
// on a down connection connects first; if that fails, the command fails with
// "cannot connect" and further commands fail at once until the retry time (backoff
// 50 ms doubling to 1 s; no thread ever loops without a command), unless another
// connection of the pool has connected since (then it retries at once). A connection
// that broke under a command (EOF, I/O error, timeout) fails that command and is
// reconnected by the next one. Before each command an idle connection is checked for a
// close by the server (poll), so a server restart costs no call that came after it.

#include <atomic>
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
#include "services/redis/redis.hpp"

namespace csk::redis {

/// A reply as a Lua value, or the error text ("redis: ...").
using reply = result<lua_value, std::string>;

class pool {
 public:
  using done_fn = std::function<void(std::uint64_t id, reply r)>;

  /// Starts `o.pool` threads; each connects at once (failures are logged, not fatal).
  pool(const options& o, done_fn done);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Queues one command; `done(id, ...)` reports its reply later.
  void submit(std::uint64_t id, std::vector<std::string> words);
  /// Ends the threads (see above). Idempotent.
  void stop();

 private:
  struct job {
    std::uint64_t id;
    std::vector<std::string> words;
  };
  struct connection;

  void run(connection& c);
  bool connect(connection& c);
  void drop(connection& c);
  reply execute(connection& c, const std::vector<std::string>& words);

  options opts_;
  done_fn done_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;  // mu_
  bool stopping_ = false;  // mu_

  std::vector<std::unique_ptr<connection>> conns_;
  std::vector<std::thread> threads_;
  std::atomic<bool> halt_{false};  // set by stop() before it interrupts the sockets
  /// Bumped whenever a connection of the pool connects: a connection in backoff that
  /// sees a newer value than at its failure retries at once.
  std::atomic<std::uint64_t> connects_{0};
};

}  // namespace csk::redis
