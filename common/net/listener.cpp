#include "common/net/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include "common/net/connection.hpp"
#include "common/net/core.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/unique_fd.hpp"

namespace csk::net {

namespace {
constexpr std::chrono::milliseconds accept_backoff{100};

bool get_int_option(int fd, int option, int& value) {
  socklen_t len = sizeof(value);
  return ::getsockopt(fd, SOL_SOCKET, option, &value, &len) == 0;
}
}  // namespace

listener::listener(asio::io_context& ctx, core& owner, listener_id id, std::shared_ptr<handler> h,
                   conn_options o)
    : ctx_(ctx),
      core_(owner),
      id_(id),
      handler_(std::move(h)),
      options_(o),
      acceptor_(ctx),
      backoff_timer_(ctx) {}

result<void, std::string> listener::open(const std::string& host, std::uint16_t port) {
  const auto where = host + ":" + std::to_string(port);
  auto ep = resolve_for_listen(host, port);
  if (!ep) return unexpected{"listen " + where + ": " + ep.error()};
  auto fd = open_tcp_socket(ep->protocol());
  if (!fd) return unexpected{"listen " + where + ": socket: " + fd.error().message()};

  std::error_code ec;
  acceptor_.assign(ep->protocol(), fd->get(), ec);
  if (ec) return unexpected{"listen " + where + ": " + ec.message()};
  fd->release();
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(*ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::error_code ignored;
    acceptor_.close(ignored);
    return unexpected{"listen " + where + ": " + ec.message()};
  }
  after_bind();
  return {};
}

result<void, std::string> listener::adopt(int fd) {
  const auto what = "adopt listener fd " + std::to_string(fd);
  int type = 0;
  int accepting = 0;
  if (!get_int_option(fd, SO_TYPE, type)) return unexpected{what + ": " + last_error().message()};
  if (type != SOCK_STREAM) return unexpected{what + ": not a stream socket"};
  if (!get_int_option(fd, SO_ACCEPTCONN, accepting) || accepting == 0) {
    return unexpected{what + ": not listening"};
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return unexpected{what + ": " + last_error().message()};
  }
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return unexpected{what + ": not a TCP/IP socket"};

  std::error_code ec;
  acceptor_.assign(addr.ss_family == AF_INET ? tcp::v4() : tcp::v6(), fd, ec);
  if (ec) return unexpected{what + ": " + ec.message()};
  // From here the fd is ours. accept4 must never block the net thread (another process
  // may hold the same socket and take the connection first), hence O_NONBLOCK.
  const int fd_flags = ::fcntl(fd, F_GETFD);
  const int fl_flags = ::fcntl(fd, F_GETFL);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0 || fl_flags < 0 ||
      ::fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) != 0) {
    const auto err = last_error();
    acceptor_.release(ec);  // give the fd back untouched by close
    return unexpected{what + ": fcntl: " + err.message()};
  }
  after_bind();
  return {};
}

void listener::after_bind() {
  std::error_code ec;
  const auto ep = acceptor_.local_endpoint(ec);
  port_ = ec ? 0 : ep.port();
  local_ = ec ? "?" : format_endpoint(ep);
}

void listener::start() {
  core_.log().info("listener {}: listening on {}", id_, local_);
  asio::post(ctx_, [self = shared_from_this()] { self->do_wait(); });
}

std::future<void> listener::close() {
  auto closed = std::make_shared<std::promise<void>>();
  auto f = closed->get_future();
  asio::post(ctx_, [self = shared_from_this(), closed] {
    if (!self->closed_) {
      self->closed_ = true;
      std::error_code ec;
      self->acceptor_.close(ec);
      self->backoff_timer_.cancel();
      self->core_.log().info("listener {}: closed {}", self->id_, self->local_);
    }
    closed->set_value();
  });
  return f;
}

void listener::do_wait() {
  if (closed_) return;
  acceptor_.async_wait(tcp::acceptor::wait_read, [self = shared_from_this()](std::error_code ec) {
    if (self->closed_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      self->core_.log().warn("listener {} ({}): wait failed: {}", self->id_, self->local_, ec.message());
      self->backoff();
      return;
    }
    self->accept_some();
  });
}

void listener::accept_some() {
  std::error_code ec;
  const auto protocol = acceptor_.local_endpoint(ec).protocol();
  for (int i = 0; i < accept_batch; ++i) {
    unique_fd fd(::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      const int e = errno;
      // Linux reports pending network errors of the new socket through accept: retry.
      if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
          e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH) {
        continue;
      }
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the backlog keeps the connection; try again later.
      core_.log().warn("listener {} ({}): accept failed: {}", id_, local_, last_error().message());
      backoff();
      return;
    }
    auto& target = core_.next_context();
    auto conn = std::make_shared<connection>(target, core_, core_.new_conn_id(), handler_, options_,
                                             connection::role::accepted);
    asio::post(target, [conn, fd = std::move(fd), protocol]() mutable {
      conn->start_accepted(std::move(fd), protocol);
    });
  }
  do_wait();
}

void listener::backoff() {
  backoff_timer_.expires_after(accept_backoff);
  backoff_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) self->do_wait();
  });
}

}  // namespace csk::net
