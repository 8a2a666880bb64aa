#pragma once
// skynet's debug console on a TCP listener of the worker (config `debug_console:`), so that
// `nc 127.0.0.1 8000`, `curl`-less HTTP scripts and operators' habits from Lua skynet work
// unchanged. The protocol is service/debug_console.lua's:
//
//   on connect       "Welcome to skynet console\n"
//   a line           bytes through "\n" (a "\r" before it is a blank, as Lua's %s): the
//                    verb's answer in skynet's text (console_text.hpp), then
//                    "<CMD OK>\n" or "<CMD Error>\n". An empty line gets nothing; a line of
//                    blanks is an unknown verb, as in skynet. One line at a time per
//                    connection, answered in order.
//   "GET /v/a/b ..." a request line starting "GET " (at any line) and its head through
//                    "\r\n\r\n": the line "v a b" (the path without its first '/', every
//                    '/' a blank, nothing decoded) is answered as above, then the connection
//                    closes. No status line, no headers: skynet sends the raw text.
//   "POST ..."       the same with the body (Content-Length bytes) as the line.
//
// Bounds (listener_limits): a line, an HTTP head and an HTTP body each at most max_line
// bytes; past that, or for a malformed HTTP request, the client gets one line saying why
// and "<CMD Error>", and only that connection closes. At most max_connections at once: one
// more is told so and closed. A connection that says nothing for idle_timeout is closed.
//
// Threads: the net's threads run the hooks; each line is answered by console::run on a
// thread of its own (a `call` may take the call timeout), while the connection's reading
// waits. stop() waits for those threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/net/framing.hpp"
#include "worker/console.hpp"

namespace csk::net {
class net;
}

namespace csk::console {

struct listener_limits {
  std::size_t max_line = 8192;  ///< bytes of a line, an HTTP head, an HTTP body (skynet's body limit)
  std::size_t max_connections = 8;
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};  ///< 0 = none
};

// --- the protocol, pure ---------------------------------------------------------------

/// The framing: one request at the front of a connection's bytes. A line is delivered
/// with its "\n"; an HTTP request (bytes starting "GET " or "POST ") as its head plus, for
/// POST, its Content-Length body. Whatever outgrows max_line is delivered as one message
/// of max_line + 1 bytes without its end, which parse_request refuses: the connection
/// can then say why before it closes.
net::unpack_result unpack_request(bytes_view buffered, std::size_t max_line);

/// One message of unpack_request, understood.
struct request {
  enum class kind : std::uint8_t {
    line,  ///< a console line (maybe empty: nothing to answer)
    http,  ///< an HTTP request: answer `line`, then close
    bad,   ///< tell the client `error`, then close
  };
  kind what = kind::line;
  std::string line;
  std::string error;
};
request parse_request(bytes_view message, std::size_t max_line);

// --- the listener -----------------------------------------------------------------------

/// The console's listener and its connections on a node's net. `n` and everything `p`
/// points to must outlive stop().
class debug_console {
 public:
  debug_console(net::net& n, parts p, listener_limits limits = {});
  ~debug_console();  ///< stop("") if not stopped yet
  debug_console(const debug_console&) = delete;
  debug_console& operator=(const debug_console&) = delete;

  /// Binds host:port (standalone node); the bound port.
  result<std::uint16_t, std::string> listen(const std::string& host, std::uint16_t port);
  /// Adopts a listening socket (from the supervisor); on success it is the net's.
  result<std::uint16_t, std::string> adopt(int fd);
  /// Stops accepting, sends `farewell` (a line, if not empty) to every connection and
  /// closes it after what is queued, then waits for the lines being answered. Idempotent.
  void stop(const std::string& farewell);

  struct state;  ///< shared with the net's handler and the answering threads

 private:
  net::net& net_;
  std::shared_ptr<state> state_;
  std::uint64_t listener_ = 0;
};

}  // namespace csk::console
