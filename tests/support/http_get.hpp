#pragma once
// HTTP/1.1 by hand against 127.0.0.1 for tests (header-only): one request on a fresh
// connection, the whole answer read until the server closes. Reads time out after 10 s
// (a server that never closes gives what came before).

#include <cstdint>
#include <string>

#include "tests/support/raw_socket.hpp"

namespace csk::test {

/// Sends `request` (a head, and a body if any) to 127.0.0.1:port as it is; everything the
/// server answered ("" if the connection or the send failed).
inline std::string http_request(std::uint16_t port, const std::string& request) {
  socket_options o;
  o.send_timeout = std::chrono::seconds(0);
  o.nodelay = false;
  const raw_socket s = raw_socket::try_connect(port, o);
  std::string out;
  if (!s.valid() ||
      ::send(s.fd(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return out;
  }
  char buf[65536];
  for (ssize_t n; (n = ::recv(s.fd(), buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

/// GET http://127.0.0.1:port/path; the whole answer ("" if the connection failed).
inline std::string http_get(std::uint16_t port, const std::string& path) {
  return http_request(port, "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n");
}

}  // namespace csk::test
