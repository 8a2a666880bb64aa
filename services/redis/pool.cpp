#include "services/redis/pool.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <utility>

#include "common/log/log.hpp"

namespace csk::redis {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds first_backoff{50};
constexpr milliseconds max_backoff{1000};

timeval to_timeval(milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

std::shared_ptr<spdlog::logger> log() { return csk::logger("service"); }

/// A hiredis reply as a Lua value. An error reply (also one nested in an array) fails
/// the whole reply with the server's text.
reply convert(const redisReply& r) {
  switch (r.type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      return lua_value(std::string(r.str, r.len));
    case REDIS_REPLY_INTEGER:
      return lua_value(static_cast<std::int64_t>(r.integer));
    case REDIS_REPLY_NIL:
      return lua_value();
    case REDIS_REPLY_ERROR:
      return unexpected(std::string("redis: ") + std::string(r.str, r.len));
    case REDIS_REPLY_ARRAY: {
      lua_table t;
      t.array.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        reply e = convert(*r.element[i]);
        if (!e) return e;
        t.array.push_back(std::move(*e));
      }
      return lua_value(std::move(t));
    }
    default:
      return unexpected("redis: unsupported reply type " + std::to_string(r.type));
  }
}

/// True when the server closed an idle connection (or sent something unasked): a
/// server answers only what was asked, so a readable idle socket is a dead one.
bool closed_by_server(const redisContext& c) {
  pollfd p{c.fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

struct pool::connection {
  std::size_t index = 0;
  std::mutex fd_mu;
  int fd = -1;  // fd_mu: the live socket, for stop() to interrupt

  // The I/O thread's own state.
  redisContext* ctx = nullptr;
  clock::time_point retry_at{};
  milliseconds backoff{0};
  std::uint64_t connects_seen = 0;
  std::string last_error;
  bool down_logged = false;
};

pool::pool(const options& o, done_fn done) : opts_(o), done_(std::move(done)) {
  const auto n = static_cast<std::size_t>(std::max(1, opts_.pool));
  for (std::size_t i = 0; i < n; ++i) {
    conns_.push_back(std::make_unique<connection>());
    conns_.back()->index = i;
  }
  for (auto& c : conns_) threads_.emplace_back([this, p = c.get()] { run(*p); });
}

pool::~pool() { stop(); }

void pool::submit(std::uint64_t id, std::vector<std::string> words) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(job{id, std::move(words)});
  }
  cv_.notify_one();
}

void pool::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    queue_.clear();
  }
  halt_.store(true);
  cv_.notify_all();
  for (auto& c : conns_) {
    std::lock_guard lock(c->fd_mu);
    if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);  // wakes a blocked read/write/connect
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void pool::run(connection& c) {
  // A write to a socket the server closed must fail with EPIPE, not kill the process:
  // SIGPIPE from write(2) goes to the writing thread, so blocking it here is enough.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);

  (void)connect(c);  // eager: the first commands find the pool ready
  for (;;) {
    job j;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    reply r = execute(c, j.words);
    done_(j.id, std::move(r));
  }
  drop(c);
}

bool pool::connect(connection& c) {
  const timeval ctv = to_timeval(opts_.connect_timeout);
  redisContext* x = opts_.unix_path.empty() ? redisConnectWithTimeout(opts_.host.c_str(), opts_.port, ctv)
                                            : redisConnectUnixWithTimeout(opts_.unix_path.c_str(), ctv);
  std::string error;
  if (x == nullptr) {
    error = "out of memory";
  } else if (x->err != 0) {
    error = x->errstr;
  } else {
    {
      std::lock_guard lock(c.fd_mu);
      c.fd = x->fd;
    }
    if (halt_.load()) {
      error = "pool stopping";
    } else {
      (void)redisSetTimeout(x, to_timeval(opts_.command_timeout));
      if (opts_.unix_path.empty()) (void)redisEnableKeepAlive(x);
      auto setup = [&](std::vector<std::string> words, const char* what) {
        if (!error.empty()) return;
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& w : words) {
          argv.push_back(w.data());
          lens.push_back(w.size());
        }
        auto* rep = static_cast<redisReply*>(redisCommandArgv(x, static_cast<int>(argv.size()), argv.data(), lens.data()));
        if (rep == nullptr) {
          error = std::string(what) + " failed: " + x->errstr;
          return;
        }
        if (rep->type == REDIS_REPLY_ERROR) error = std::string(what) + " failed: " + std::string(rep->str, rep->len);
        freeReplyObject(rep);
      };
      if (!opts_.password.empty()) setup({"AUTH", opts_.password}, "AUTH");
      if (opts_.db != 0) setup({"SELECT", std::to_string(opts_.db)}, "SELECT");
    }
  }
  if (error.empty()) {
    c.ctx = x;
    c.backoff = milliseconds{0};
    c.connects_seen = connects_.fetch_add(1) + 1;
    if (c.down_logged) log()->info("redis {} connection {} is back", opts_.where(), c.index);
    c.down_logged = false;
    return true;
  }
  if (x != nullptr) {
    {
      std::lock_guard lock(c.fd_mu);
      c.fd = -1;
    }
    redisFree(x);
  }
  c.last_error = error;
  c.backoff = c.backoff.count() == 0 ? first_backoff : std::min(2 * c.backoff, max_backoff);
  c.retry_at = clock::now() + c.backoff;
  c.connects_seen = connects_.load();
  if (!c.down_logged) log()->warn("redis: cannot connect to {} (connection {}): {}", opts_.where(), c.index, error);
  c.down_logged = true;
  return false;
}

void pool::drop(connection& c) {
  if (c.ctx == nullptr) return;
  {
    std::lock_guard lock(c.fd_mu);
    c.fd = -1;
  }
  redisFree(c.ctx);
  c.ctx = nullptr;
}

reply pool::execute(connection& c, const std::vector<std::string>& words) {
  if (c.ctx != nullptr && closed_by_server(*c.ctx)) {
    log()->info("redis {} closed idle connection {}; reconnecting", opts_.where(), c.index);
    drop(c);
    c.retry_at = {};
  }
  if (c.ctx == nullptr) {
    const bool waiting = clock::now() < c.retry_at && connects_.load() == c.connects_seen;
    if (waiting || !connect(c)) return unexpected("redis: cannot connect to " + opts_.where() + ": " + c.last_error);
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(words.size());
  lens.reserve(words.size());
  for (const auto& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  errno = 0;
  void* raw = redisCommandArgv(c.ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
  const int saved_errno = errno;
  if (raw == nullptr) {
    std::string text;
    if (c.ctx->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
      text = "redis: command timed out after " + std::to_string(opts_.command_timeout.count()) + " ms (" +
             opts_.where() + "); the connection was reset";
    } else {
      text = "redis: connection lost: " + std::string(c.ctx->errstr) + " (" + opts_.where() + ")";
    }
    log()->warn("{} (connection {})", text, c.index);
    drop(c);
    c.retry_at = {};  // the next command reconnects at once
    c.down_logged = true;
    return unexpected(std::move(text));
  }
  auto* rep = static_cast<redisReply*>(raw);
  reply out = convert(*rep);
  freeReplyObject(rep);
  return out;
}

}  // namespace csk::redis
