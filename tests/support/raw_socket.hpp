#pragma once
// Raw POSIX TCP sockets on 127.0.0.1 for tests and test tools (header-only, no library):
// the peers that play clients and misbehaving servers in front of the code under test.
// Every blocking call is bounded (SO_RCVTIMEO / SO_SNDTIMEO, or poll() with a deadline),
// so that a broken test fails instead of hanging.
//
// Framing: the 2-byte big-endian length prefix of skynet's cluster protocol, of
// csk::net's default unpacker and of the gate's test protocol: [len_hi len_lo] body.
//
// Thread rules: a socket belongs to one thread at a time; nothing here locks.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "common/base/bytes.hpp"

namespace csk::test {

/// 127.0.0.1:port.
inline sockaddr_in loopback_address(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/// The port a socket is bound to (its own end), 0 on failure.
inline std::uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

/// SO_RCVTIMEO / SO_SNDTIMEO; a zero duration leaves that direction unbounded.
inline void set_timeouts(int fd, std::chrono::seconds recv, std::chrono::seconds send) {
  if (recv.count() > 0) {
    timeval tv{static_cast<time_t>(recv.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  if (send.count() > 0) {
    timeval tv{static_cast<time_t>(send.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
}

/// Writes all of `b`, `piece` bytes per send() (0 = as few sends as the kernel takes).
/// False on error or send timeout.
inline bool send_all(int fd, bytes_view b, std::size_t piece = 0) {
  while (!b.empty()) {
    const std::size_t n = piece == 0 ? b.size() : std::min(piece, b.size());
    const ssize_t w = ::send(fd, b.data(), n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b = b.subspan(static_cast<std::size_t>(w));
  }
  return true;
}

/// Reads exactly `n` bytes into `out`. False on EOF, error or receive timeout.
inline bool recv_exact(int fd, std::size_t n, byte_buffer& out) {
  out.resize(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

/// Waits until `fd` is readable (data, EOF or an error to collect). False at `deadline`.
inline bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

/// `body` with its 2-byte big-endian length prefix.
inline byte_buffer frame(std::string_view body) {
  // Sized once (GCC 12 -O2 sees a 2-byte vector grown by insert as a write out of bounds).
  byte_buffer out(2 + body.size());
  out[0] = static_cast<std::uint8_t>(body.size() >> 8);
  out[1] = static_cast<std::uint8_t>(body.size() & 0xff);
  std::copy(body.begin(), body.end(), out.begin() + 2);
  return out;
}

/// The length a frame's 2-byte prefix at `p` announces.
inline std::size_t frame_length(const std::uint8_t* p) { return (std::size_t{p[0]} << 8) | p[1]; }

/// How to set up a client socket before its connect().
struct socket_options {
  std::chrono::seconds recv_timeout{10};  ///< 0: reads may block forever
  std::chrono::seconds send_timeout{10};  ///< 0: writes may block forever
  bool nodelay = true;                    ///< TCP_NODELAY: small writes go out at once
  int rcvbuf = 0;                         ///< > 0: SO_RCVBUF (a slow reader's small window)
};

/// An owned blocking socket. Reads and writes are bounded by the timeouts set when it
/// was made; failures of the throwing calls are std::runtime_error.
class raw_socket {
 public:
  /// Adopts `fd` (-1: none) and bounds its reads and writes by `timeout`.
  explicit raw_socket(int fd = -1, std::chrono::seconds timeout = std::chrono::seconds(10)) : fd_(fd) {
    if (fd_ >= 0) set_timeouts(fd_, timeout, timeout);
  }
  ~raw_socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_socket(raw_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  raw_socket& operator=(raw_socket&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  /// A client of 127.0.0.1:port; !valid() if the connect failed.
  static raw_socket try_connect(std::uint16_t port, const socket_options& o = {}) {
    raw_socket s;
    s.fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.fd_ < 0) return s;
    set_timeouts(s.fd_, o.recv_timeout, o.send_timeout);
    if (o.nodelay) {
      const int one = 1;
      ::setsockopt(s.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (o.rcvbuf > 0) ::setsockopt(s.fd_, SOL_SOCKET, SO_RCVBUF, &o.rcvbuf, sizeof o.rcvbuf);
    const auto a = loopback_address(port);
    if (::connect(s.fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) s.close();
    return s;
  }
  /// The same, throwing if the connect failed.
  static raw_socket connect_to(std::uint16_t port, const socket_options& o = {}) {
    auto s = try_connect(port, o);
    if (!s.valid()) throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed");
    return s;
  }
  /// Bound to 127.0.0.1:0; listening if `listen`.
  static raw_socket bound(bool listen) {
    raw_socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto a = loopback_address(0);
    if (::bind(s.fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    if (listen && ::listen(s.fd_, 16) != 0) throw std::runtime_error("listen");
    return s;
  }

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  /// Gives the fd up (the caller closes it).
  int release() { return std::exchange(fd_, -1); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// This end's port (a listener's port, or a client's own).
  std::uint16_t port() const { return local_port(fd_); }

  /// The next connection of a listening socket, with the default timeouts.
  raw_socket accept() const { return raw_socket(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)); }

  /// Writes everything; throws on error or send timeout.
  void write_all(bytes_view b) const {
    if (!send_all(fd_, b)) throw std::runtime_error("send failed");
  }
  /// False on EOF, error or timeout.
  bool read_exact(std::size_t n, byte_buffer& out) const { return recv_exact(fd_, n, out); }
  /// The next frame's body; nullopt on EOF, error or timeout.
  std::optional<std::string> read_frame() const {
    byte_buffer header, body;
    if (!read_exact(2, header) || !read_exact(frame_length(header.data()), body)) return std::nullopt;
    return std::string(as_chars(body));
  }
  /// The next line without its '\n'; nullopt on EOF, error or timeout.
  std::optional<std::string> read_line() const {
    std::string line;
    char c = 0;
    for (;;) {
      const ssize_t r = ::recv(fd_, &c, 1, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r != 1) return std::nullopt;
      if (c == '\n') return line;
      line.push_back(c);
    }
  }
  /// True when the peer closed (EOF or reset) before the receive timeout; data is skipped.
  bool wait_closed() const {
    char buf[4096];
    for (;;) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r > 0) continue;
      if (r == 0) return true;
      if (errno == EINTR) continue;
      return errno != EAGAIN && errno != EWOULDBLOCK;
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace csk::test
