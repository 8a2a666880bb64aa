#include "services/io_pool/pool.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <csignal>

#include "common/log/log.hpp"

namespace csk::io_pool {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds first_backoff{50};
constexpr milliseconds max_backoff{1000};

std::shared_ptr<spdlog::logger> log() { return csk::logger("service"); }

/// True when the server closed an idle connection (or sent something unasked): a
/// server answers only what was asked, so a readable idle socket is a dead one.
bool closed_by_server(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

void connection::drop() { core_->drop(*this); }

void connection::lost() {
  core_->reset(*this);
  down_logged_ = true;
}

bool connection::timed_out() const {
  std::lock_guard lock(core_->io_mu_);
  return timed_out_;
}

bool connection::stopping() const {
  std::lock_guard lock(core_->io_mu_);
  return core_->halt_;
}

std::string connection::lost_error(std::string_view why) const {
  const settings& s = core_->config();
  return s.service + ": connection lost: " + std::string(why) + " (" + s.where + ")";
}

std::string connection::timeout_error(milliseconds after) const {
  const settings& s = core_->config();
  return s.service + ": " + s.job + " timed out after " + std::to_string(after.count()) + " ms (" + s.where +
         "); the connection was reset";
}

core::core(settings s, const std::vector<connection*>& conns) : settings_(std::move(s)), conns_(conns) {
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    conns_[i]->core_ = this;
    conns_[i]->index_ = i;
  }
  if (settings_.deadline.count() > 0) watchdog_ = std::thread([this] { watch(); });
}

core::~core() {
  interrupt();
  join();
}

void core::interrupt() {
  {
    std::lock_guard lock(io_mu_);
    halt_ = true;
    for (connection* c : conns_) {
      if (c->fd_ >= 0) ::shutdown(c->fd_, SHUT_RDWR);  // wakes a blocked read/write
    }
  }
  io_cv_.notify_all();
}

void core::join() {
  if (watchdog_.joinable()) watchdog_.join();
}

void core::watch() {
  std::unique_lock lock(io_mu_);
  while (!halt_) {
    const auto now = clock::now();
    auto next = clock::time_point::max();
    for (connection* c : conns_) {
      if (c->deadline_ <= now) {
        if (c->fd_ >= 0) ::shutdown(c->fd_, SHUT_RDWR);  // the blocked read fails at once
        c->timed_out_ = true;
        c->deadline_ = clock::time_point::max();
      }
      next = std::min(next, c->deadline_);
    }
    if (next == clock::time_point::max()) {
      io_cv_.wait(lock);
    } else {
      io_cv_.wait_until(lock, next);
    }
  }
}

void core::begin_thread(connection& c) {
  // SIGPIPE from write(2) goes to the writing thread, so blocking it here is enough.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
  c.thread_begin();
  (void)connect(c);  // eager: the first jobs find the pool ready
}

void core::end_thread(connection& c) {
  drop(c);
  c.thread_end();
}

bool core::connect(connection& c) {
  int fd = -1;
  std::string error = c.open(fd);
  const bool opened = error.empty();
  if (opened) {
    {
      std::lock_guard lock(io_mu_);
      c.fd_ = fd;
      if (halt_) error = "pool stopping";
    }
    if (error.empty()) error = c.setup();
  }
  if (error.empty()) {
    c.connected_ = true;
    c.backoff_ = milliseconds{0};
    c.connects_seen_ = connects_.fetch_add(1) + 1;
    if (c.down_logged_) log()->info("{} {} connection {} is back", settings_.service, settings_.where, c.index_);
    c.down_logged_ = false;
    return true;
  }
  if (opened) {
    {
      std::lock_guard lock(io_mu_);
      c.fd_ = -1;
    }
    c.close();
  }
  c.last_error_ = error;
  c.backoff_ = c.backoff_.count() == 0 ? first_backoff : std::min(2 * c.backoff_, max_backoff);
  c.retry_at_ = clock::now() + c.backoff_;
  c.connects_seen_ = connects_.load();
  if (!c.down_logged_) {
    log()->warn("{}: cannot connect to {} (connection {}): {}", settings_.service, settings_.where, c.index_, error);
  }
  c.down_logged_ = true;
  return false;
}

void core::drop(connection& c) {
  if (!c.connected_) return;
  {
    std::lock_guard lock(io_mu_);
    c.fd_ = -1;
  }
  c.close();
  c.connected_ = false;
}

void core::reset(connection& c) {
  drop(c);
  c.retry_at_ = {};  // the next job reconnects at once
}

reply core::execute(connection& c, const std::function<reply()>& run) {
  if (c.connected_ && closed_by_server(c.fd_)) {
    log()->info("{} {} closed idle connection {}; reconnecting", settings_.service, settings_.where, c.index_);
    reset(c);
  }
  if (!c.connected_) {
    const bool waiting = clock::now() < c.retry_at_ && connects_.load() == c.connects_seen_;
    if (waiting || !connect(c)) {
      return unexpected(settings_.service + ": cannot connect to " + settings_.where + ": " + c.last_error_);
    }
  }
  if (settings_.deadline.count() == 0) return run();

  {
    std::lock_guard lock(io_mu_);
    c.deadline_ = clock::now() + settings_.deadline;
    c.timed_out_ = false;
  }
  io_cv_.notify_all();
  reply r = run();
  bool fired = false;
  {
    std::lock_guard lock(io_mu_);
    c.deadline_ = clock::time_point::max();
    fired = std::exchange(c.timed_out_, false);
  }
  if (fired) {  // the watchdog shut the socket down
    reset(c);
    if (!r) {
      r = unexpected(c.timeout_error(settings_.deadline));
      log()->warn("{} (connection {})", r.error(), c.index_);
    }
  }
  return r;
}

}  // namespace csk::io_pool
