#pragma once
// Test helpers for the control socket: a poll loop that drives a control_server on its own
// thread, and a raw client that sends bytes and reads until the server closes.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "supervisor/control.hpp"

namespace csk::test {

using namespace std::chrono_literals;

/// One pass of a poll loop over a control server (and extra fds): waits up to `wait_ms`,
/// dispatches what is ready. Returns the revents of each extra fd.
inline std::vector<short> pump_once(supervisor::control_server* srv, const std::vector<int>& extra, int wait_ms) {
  std::vector<pollfd> pfds;
  for (int fd : extra) pfds.push_back({fd, POLLIN, 0});
  const std::size_t first = pfds.size();
  if (srv != nullptr) {
    pfds.push_back({srv->fd(), POLLIN, 0});
    for (int fd : srv->client_fds()) pfds.push_back({fd, srv->client_events(fd), 0});
  }
  std::vector<short> out(extra.size(), 0);
  if (::poll(pfds.data(), pfds.size(), wait_ms) <= 0) return out;
  for (std::size_t i = 0; i < first; ++i) out[i] = pfds[i].revents;
  for (std::size_t i = first; i < pfds.size(); ++i) {
    if (pfds[i].revents == 0 || srv == nullptr) continue;
    if (i == first) {
      srv->on_readable();
    } else {
      srv->on_client_event(pfds[i].fd, pfds[i].revents);
    }
  }
  return out;
}

/// Runs a control_server on a helper thread. Everything that touches the server (its
/// handler, replies, inspection) runs on that thread; post()/run()/wait_until() get there.
class server_loop {
 public:
  explicit server_loop(std::unique_ptr<supervisor::control_server> srv)
      : srv_(std::move(srv)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~server_loop() {
    post([this] { stop_ = true; });
    thread_.join();
    srv_.reset();
    ::close(wake_);
  }
  server_loop(const server_loop&) = delete;
  server_loop& operator=(const server_loop&) = delete;

  /// Runs f on the loop thread, soon.
  void post(std::function<void()> f) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(f));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
  }

  /// Runs f on the loop thread and returns its result (waits at most 10 s).
  template <class F>
  auto run(F f) -> decltype(f()) {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto fut = task->get_future();
    post([task] { (*task)(); });
    if (fut.wait_for(10s) != std::future_status::ready) throw std::runtime_error("loop did not run the task");
    return fut.get();
  }

  /// Waits until pred() (evaluated on the loop thread after every pass) holds, or the deadline.
  bool wait_until(std::function<bool(supervisor::control_server*)> pred, std::chrono::milliseconds deadline = 10s) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    post([this, pred = std::move(pred), done] { waiters_.push_back({pred, done}); check_waiters(); });
    return fut.wait_for(deadline) == std::future_status::ready;
  }

  /// From the loop thread (a handler): destroy the server once the current event is handled.
  void destroy_server_later() { destroy_ = true; }

  /// The server, for use on the loop thread only.
  supervisor::control_server* server() { return srv_.get(); }

 private:
  struct waiter {
    std::function<bool(supervisor::control_server*)> pred;
    std::shared_ptr<std::promise<void>> done;
  };

  void check_waiters() {
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->pred(srv_.get())) {
        it->done->set_value();
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void loop() {
    while (!stop_) {
      auto rev = pump_once(srv_.get(), {wake_}, -1);
      if (rev[0] != 0) {
        std::uint64_t n = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_, &n, sizeof n);
        std::vector<std::function<void()>> tasks;
        {
          std::lock_guard lock(mu_);
          tasks.swap(tasks_);
        }
        for (auto& t : tasks) t();
      }
      if (destroy_) {
        srv_.reset();
        destroy_ = false;
      }
      check_waiters();
    }
  }

  std::unique_ptr<supervisor::control_server> srv_;
  int wake_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  std::vector<waiter> waiters_;  // loop thread only
  bool stop_ = false;            // loop thread only
  bool destroy_ = false;         // loop thread only
  std::thread thread_;
};

/// A raw client socket (blocking), connected to path; -1 on failure.
inline int raw_connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Writes bytes (stopping quietly if the server closes first).
inline void raw_send(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

/// Reads until the server closes (EOF or reset) or the deadline; `closed` says which.
inline std::string raw_read_all(int fd, std::chrono::milliseconds deadline, bool& closed) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  std::string out;
  closed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    closed = true;
    return out;
  }
}

}  // namespace csk::test
