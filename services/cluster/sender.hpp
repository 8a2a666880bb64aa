#pragma once
// The connecting side towards one remote node: skynet's clustersender, in C++.
//
// One connection and one session counter per remote node. Sessions count from 1 and
// wrap after 0x7fffffff back to 1; every call and every multi-part push takes one
// (single pushes carry session 0), including calls that fail before anything is
// written. The connection opens on first use; while it is down, each request makes
// one new attempt (no background retry, no back-off, as skynet). When a connection
// fails or drops, every call waiting on it fails at once; nothing is replayed.
// A malformed response frame closes the connection (skynet does the same).
//
// Answers go to actor::reply_route (runtime::complete), so a service awaiting
// ctx.call_via(...) resumes in its own dispatch.
//
// Traces, as skynet's send_request: a traced call (a tag passed to call()) goes out right
// after a trace frame, on the same connection (before a multi-part header too). A tag not
// starting with '(' is first renamed "(<self>-<node>-<session>)<tag>", <session> being the
// counter after this call's (skynet's quirk: one more than the request's own session), and
// "session <new tag>" is logged under the old one; then "cluster <node>" under the tag
// sent. Lines carry the caller's handle (route.handle). Pushes are never traced (skynet's
// clustersender traces only requests).
//
// Thread rules: call()/send()/set_endpoint() from any thread; the on_* events from the
// transport's thread. One mutex guards the state; transport calls are made outside it
// except write(), which must not call back into the sender.

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/actor/session_map.hpp"
#include "common/wire/cluster_assembler.hpp"

namespace csk::cluster {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
  bool operator==(const endpoint&) const = default;
};

/// The byte pipe a sender drives (the node implements it on csk::net; tests fake it).
class transport {
 public:
  virtual ~transport() = default;
  /// Starts connecting; the sender later gets on_connected() or on_connect_failed().
  virtual void connect(const endpoint& ep) = 0;
  /// Queues bytes on the open connection.
  virtual void write(byte_buffer bytes) = 0;
  /// The same from a view: lets a transport copy straight into its send queue (the
  /// sender frames every request in a reused buffer). By default, write() of a copy.
  virtual void write_view(bytes_view bytes) { write(byte_buffer(bytes.begin(), bytes.end())); }
  /// Closes the connection; the sender gets on_closed() (or nothing if none is open).
  virtual void close(const std::string& reason) = 0;
  /// Bytes written and not yet sent on the open connection.
  virtual std::size_t queued() const { return 0; }
};

struct sender_stats {
  std::uint64_t calls = 0;
  std::uint64_t pushes = 0;
  std::uint64_t connects = 0;
  std::uint64_t failed_calls = 0;     ///< failed by connect failure, drop, or node down
  std::uint64_t unknown_responses = 0;
  std::uint64_t refused_pushes = 0;   ///< send() returned false: the connection is backed up
  // The wire, as the sender sees it: frames (and their bytes, 2-byte headers included)
  // handed to an open connection, and response frames received.
  std::uint64_t frames_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t frames_in = 0;
  std::uint64_t bytes_in = 0;
};

class sender {
 public:
  /// `self`: this node's name in trace tags; "" = skynet's cluster.nodename() (the host
  /// name and the pid), which is what a Lua skynet node always puts there.
  sender(std::string node, actor::runtime& rt, transport& t, wire::assembler_limits limits = {},
         std::string self = {});

  /// Where the node is; nullopt marks it down (calls fail at once). A changed address
  /// closes the current connection; the next request connects to the new one.
  void set_endpoint(std::optional<endpoint> ep);

  /// A call to `to` on the remote node; the answer (values or error) goes to `route`.
  /// `trace`: the caller's tag (context::current_trace); see the header comment.
  void call(const wire::target& to, const actor::values& args, actor::reply_route route,
            const actor::trace_ptr& trace = nullptr);
  /// A push. Returns false if it is not queued: node down, bad target, or the connection
  /// already holds `push_backlog` unsent bytes (pushes are not flow-controlled by the peer;
  /// refusing here keeps a fast producer from cutting the connection at the net layer's cap
  /// and losing everything queued). The caller may retry later.
  bool send(const wire::target& to, const actor::values& args);
  static constexpr std::size_t push_backlog = 16u << 20;

  // -- transport events --------------------------------------------------------
  void on_connected();
  void on_connect_failed(const std::string& reason);
  void on_frame(bytes_view body);
  void on_closed(const std::string& reason);

  sender_stats stats() const;
  /// Calls sent and not yet answered (skynet's pending sessions), and whether the
  /// connection is up now. Any thread.
  std::size_t pending_calls() const;
  bool connected() const;
  /// The session the next call will use (skynet's counter).
  std::uint32_t next_session() const;

 private:
  enum class state : std::uint8_t { idle, connecting, connected };

  using failed_calls = std::vector<std::pair<std::uint32_t, actor::reply_route>>;

  std::uint32_t take_session();  // mu_ held
  /// Logs a traced call's lines and appends its trace frame to `out` (mu_ held: the lines
  /// come before the bytes leave). False if the tag is too long for a frame.
  bool trace_call(const std::string& tag, std::uint32_t session, actor::handle_t caller, byte_buffer& out) const;
  void count_out(bytes_view bytes);  // frames handed to the open connection; mu_ held
  /// Writes framed bytes on the open connection, or queues them while connecting (from
  /// idle: start_connect is set, connect after unlocking). mu_ held.
  void queue_or_write(bytes_view bytes, bool& start_connect);
  /// Leaves the connection (state idle, nothing queued); returns the calls to fail. mu_ held.
  failed_calls leave_connection();
  void fail_all(failed_calls& calls, const std::string& why);

  const std::string node_;
  const std::string self_;
  actor::runtime& rt_;
  transport& t_;
  const wire::assembler_limits limits_;

  mutable std::mutex mu_;
  std::optional<endpoint> ep_;
  state state_ = state::idle;
  std::uint32_t session_ = 0;
  byte_buffer queued_;  // frames written while connecting
  actor::session_map<actor::reply_route> pending_;
  wire::response_assembler responses_;
  wire::response_event response_;  // reused by on_frame (the transport's thread only)
  sender_stats stats_;
  // Push flow control without asking the transport every time: the connection's queue
  // holds at most what it held when last asked plus what was written since, so while
  // that bound leaves room the answer cannot be "backed up". mu_.
  std::size_t queued_seen_ = 0;       // t_.queued() when last asked
  std::size_t written_unseen_ = 0;    // bytes written since
  bool queued_unknown_ = true;        // not asked yet on this connection
};

}  // namespace csk::cluster
