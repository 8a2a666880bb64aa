#pragma once
// The supervisor's control socket: the operator's `cppskynet status|stop|reload` talk to it.
//
// Wire: AF_UNIX SOCK_STREAM, one request per connection. The client sends one line of JSON,
// `{"cmd":"status","args":{...}}\n`; the server answers one line of JSON and closes. A
// request line over 64 KiB, invalid JSON, or a request without a string "cmd" gets
// `{"error":"..."}` and the connection is closed; so is a client that sends nothing (or does
// not read its reply) for 5 s. Bytes after the request line are read and ignored (more than
// 64 KiB of them end the connection). A client that closes its end before the reply has
// gone: its reply, when it comes, is dropped silently.
//
// Access: the socket file is created mode 0600, and every accepted client's uid is read with
// SO_PEERCRED: only the server's own (effective) uid or root may command it. Others get
// `{"error":"permission denied: uid N"}`, are closed, and are logged (logger "supervisor").
//
// Threads: a control_server is single-threaded. Every member, the handler, and every reply
// callback run on the thread that polls it (the "loop thread"). Nothing blocks: accepted
// sockets are non-blocking and CLOEXEC. umask is changed around bind(), so open() must not
// race another thread that creates files.
//
// Driving it from a poll loop:
//   pollfd{srv->fd(), POLLIN}                          -> srv->on_readable()
//   for fd in srv->client_fds(): pollfd{fd, srv->client_events(fd)}
//                                                      -> srv->on_client_event(fd, revents)
// client_fds() also holds one timerfd (the idle timer) while any client is reading or
// writing; treat it like a client. Polling every client fd with plain POLLIN also works:
// a reply too large for the socket buffer is then finished by the idle timer's ticks.
// Do not destroy the server from inside the handler or a reply: do it after the on_* call
// returns.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.hpp"

namespace csk::supervisor {

struct control_request {
  std::string cmd;      ///< "status", "stop", "reload", ...
  nlohmann::json args;  ///< the request's "args" (an empty object when absent)
  uid_t uid;            ///< the caller's uid (SO_PEERCRED)
};

/// Sends the reply line and closes the client. Call exactly once, maybe later, on the loop
/// thread. A call after the client has gone, after the server is destroyed, or a second
/// call, does nothing.
using control_reply = std::function<void(nlohmann::json)>;

/// Called on the loop thread for each well-formed request from an allowed uid. It may call
/// the reply at once or keep it for later (deferred). If it throws, the client gets
/// {"error":"<what()>"}.
using control_handler = std::function<void(const control_request&, control_reply)>;

/// Limits; the defaults are the protocol's.
struct control_options {
  std::size_t max_request = 64 * 1024;                   ///< bytes in the request line (without '\n')
  std::chrono::milliseconds idle_timeout{5000};          ///< reading the request / writing the reply
  std::size_t max_clients = 64;                          ///< connections served at once; more get an error
};

class control_server {
 public:
  /// Binds and listens on `path`. Refuses a path where a live server answers, and a path
  /// that exists and is not a socket; removes a stale socket file (nobody listening).
  /// The error names the path and the reason.
  static result<std::unique_ptr<control_server>, std::string> open(const std::string& path,
                                                                   control_handler h);
  static result<std::unique_ptr<control_server>, std::string> open(const std::string& path,
                                                                   control_handler h,
                                                                   const control_options& options);

  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;
  /// Closes the listener and every client (pending deferred replies are dropped), and
  /// unlinks the path if the file there is still the one this server created.
  ~control_server();

  /// The listening socket: poll it for POLLIN.
  int fd() const;
  /// Accepts every waiting connection (non-blocking, CLOEXEC) and serves them.
  void on_readable();

  /// Clients waiting for a request or a reply, plus the idle timer when armed: poll them too.
  std::vector<int> client_fds() const;
  /// Connected clients (reading, waiting for a reply, or writing it).
  std::size_t client_count() const;
  /// The poll events that fd wants: POLLIN, or POLLOUT while a reply is being written.
  short client_events(int fd) const;
  /// Reads/writes a client (or handles the idle timer) non-blockingly. Unknown fds are ignored.
  void on_client_event(int fd, short revents);

  /// The path it listens on.
  const std::string& path() const;

  struct impl;  // the state; reply callbacks hold a weak reference to it

 private:
  explicit control_server(std::shared_ptr<impl> p);
  std::shared_ptr<impl> impl_;
};

/// Why a control_call failed.
struct control_error {
  enum class kind {
    unreachable,  ///< nothing to connect to: no socket file, refused, no permission on the file
    closed,       ///< connected, then the server closed the connection without a reply
    failed,       ///< connected, but no valid reply: timeout, garbage, too long
  };
  kind why = kind::failed;
  std::string text;  ///< unreachable: "no supervisor at PATH: <errno text>"
};

/// Client side (used by the CLI): connects, sends one request, waits for the reply line.
/// The reply is returned as sent, also when it is {"error":...}; the error side is for
/// transport failures only. `timeout` bounds the whole exchange.
result<nlohmann::json, std::string> control_call(const std::string& path, const nlohmann::json& request,
                                                 std::chrono::milliseconds timeout);

/// control_call with the failure's kind (the CLI exits 3 for `unreachable`).
result<nlohmann::json, control_error> control_call_ex(const std::string& path,
                                                      const nlohmann::json& request,
                                                      std::chrono::milliseconds timeout);

/// True when a server accepts connections on `path` right now (connect() succeeds; no
/// request is sent). Used by `cppskynet stop` to wait for the supervisor to go away.
bool control_answers(const std::string& path);

}  // namespace csk::supervisor
