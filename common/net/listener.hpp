#pragma once
// csk::net::listener: one listening socket and its accept loop (private to common/net).
//
// Threads: open/adopt run on the caller's thread before the listener is published;
// after start() the acceptor is touched only on its net thread (ctx_). Accepts with
// accept4(SOCK_CLOEXEC | SOCK_NONBLOCK), up to accept_batch per wake-up, and hands each
// socket to a connection pinned to the next io_context (round robin).

#include <cstdint>
#include <future>
#include <memory>
#include <string>

#include "common/base/result.hpp"
#include "common/net/asio.hpp"
#include "common/net/handler.hpp"

namespace csk::net {

class core;

class listener : public std::enable_shared_from_this<listener> {
 public:
  listener(asio::io_context& ctx, core& owner, listener_id id, std::shared_ptr<handler> h, conn_options o);
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  /// Binds and listens. Caller's thread, before start().
  result<void, std::string> open(const std::string& host, std::uint16_t port);
  /// Takes a bound, listening TCP socket; on failure the fd stays the caller's.
  /// Caller's thread, before start().
  result<void, std::string> adopt(int fd);

  listener_id id() const noexcept { return id_; }
  /// Fixed once open/adopt succeeded. Any thread.
  std::uint16_t port() const noexcept { return port_; }

  /// Begins accepting. Any thread (posts to the net thread).
  void start();
  /// Closes the socket on its net thread; accepted connections are not affected. The
  /// future is ready once it is closed. Any thread; idempotent.
  std::future<void> close();

 private:
  static constexpr int accept_batch = 64;

  void after_bind();
  void do_wait();
  void accept_some();
  void backoff();

  asio::io_context& ctx_;
  core& core_;
  const listener_id id_;
  std::shared_ptr<handler> handler_;
  const conn_options options_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer backoff_timer_;
  std::uint16_t port_ = 0;
  std::string local_;    // for logs
  bool closed_ = false;  // net thread
};

}  // namespace csk::net
