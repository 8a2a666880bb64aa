#pragma once
// A line-protocol client of examples/gate's kv_gate (one blocking socket; reads and
// writes time out after 10 s), for the gate's process tests.

#include <optional>
#include <string>

#include "tests/support/raw_socket.hpp"

namespace csk::test {

class line_client {
 public:
  explicit line_client(std::uint16_t port) : sock_(raw_socket::try_connect(port)) {}
  bool connected() const { return sock_.valid(); }
  /// Sends bytes as they are (a part of a line, say).
  bool send_raw(const std::string& bytes) { return connected() && send_all(sock_.fd(), as_bytes(bytes)); }
  /// Sends one line, returns the answer line; nullopt on EOF or timeout.
  std::optional<std::string> ask(const std::string& line) {
    if (!send_raw(line + "\n")) return std::nullopt;
    return sock_.read_line();
  }

 private:
  raw_socket sock_;
};

}  // namespace csk::test
