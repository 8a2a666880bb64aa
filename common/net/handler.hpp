#pragma once
// What a user of csk::net plugs in: options per listener/connection, and the hooks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/base/bytes.hpp"
#include "common/base/memory_budget.hpp"
#include "common/net/framing.hpp"

namespace csk::net {

/// Connection id: never reused within one net; 0 = none.
using conn_id = std::uint64_t;
/// Listener id: never reused within one net; 0 = none.
using listener_id = std::uint64_t;

/// Why a connection's reading is paused (net::pause_reading). Each reason is its own bit:
/// a resume ends only the pause of its reason, and reading goes on once none holds it, so
/// the owner's pauses (an upgrade's freeze, the gate's in-flight limit) and the node's
/// back-pressure never undo each other.
enum class pause_reason : std::uint8_t {
  user = 1,     ///< the connection's owner
  mailbox = 2,  ///< the service this connection feeds is past its mailbox_high
  memory = 4,   ///< the node is past its memory budget's high-water mark
};

struct conn_options {
  /// Bytes queued and not yet written. A send() that would go over it is refused (returns
  /// false) and the connection is aborted with reason "send buffer full": a frame cannot
  /// be skipped without corrupting the stream, so the peer that cannot keep up is cut.
  std::size_t max_outbound_bytes = 64u << 20;
  /// Largest header + body one message may take. An unpack result over it, or a
  /// need_more with this many bytes buffered, closes the connection ("message too large").
  std::size_t max_message = length16_max_body + length16_header;
  /// No bytes received for this long closes the connection ("idle timeout"); 0 = never.
  std::chrono::milliseconds idle_timeout{0};
  /// connect(): give up after this long (done gets asio's timed_out); 0 = the kernel's.
  std::chrono::milliseconds connect_timeout{10000};
  /// Graceful close: abort if queued bytes are not written within this long; 0 = never.
  std::chrono::milliseconds flush_timeout{5000};
  /// Receive buffer size (it grows up to max_message for one message that needs it).
  /// The buffer is borrowed from its net thread's pool only while there are bytes to
  /// read or a partial message to keep: an idle connection holds none (it waits for
  /// readability without a buffer), and one that read everything gives it back.
  std::size_t read_chunk = 64u << 10;
  /// TCP_NODELAY on accepted and connected sockets.
  bool no_delay = true;
  /// Read backpressure: while more than this many bytes are queued for writing, the
  /// connection stops reading (and delivering what it already holds); it starts again
  /// once the queue has drained to half of it. A peer that sends requests without
  /// reading the answers then fills its own socket buffers instead of our memory.
  /// 0 = never pause for this reason. Keep it under max_outbound_bytes.
  std::size_t pause_reading_above = 0;
  /// The node's memory budget: the bytes queued for writing are charged to it while
  /// they wait. nullptr = not counted. Must outlive the net.
  memory_budget* budget = nullptr;
};

/// Hooks of one listener's connections, or of one outgoing connection. Held by
/// shared_ptr by every connection that uses it.
///
/// Threads: every hook of one connection runs on the net thread that owns the connection,
/// one at a time. One handler shared by connections on different net threads (net built
/// with threads > 1) is called concurrently for different ids. Hooks may call
/// net::send/close (any id); they must not call net::stop. Keep them short: they hold up
/// every connection of that thread. An exception escaping a hook closes that connection
/// ("handler error: ...").
class handler {
 public:
  virtual ~handler() = default;
  /// Server side, before any message. Sends made here go out first.
  virtual void on_accept(conn_id /*id*/, const std::string& /*peer*/) {}
  /// Client side, connected (before `done` of net::connect is called).
  virtual void on_connect(conn_id /*id*/, const std::string& /*peer*/) {}
  /// Looks at the front of the receive buffer (never empty). See unpack_result.
  virtual unpack_result unpack(conn_id /*id*/, bytes_view buffered) {
    return unpack_length16(buffered);
  }
  /// One message: the body only (header stripped); the view is valid during the call.
  virtual void on_message(conn_id id, bytes_view message) = 0;
  /// Exactly once per connection that was accepted or connected, after which the id is
  /// unknown to net::send. `reason`: "peer closed", "shutdown", the reason given to
  /// net::close, or the error that closed it.
  virtual void on_close(conn_id /*id*/, const std::string& /*reason*/) {}

  // -- hand-over (net::detach / net::adopt_connection) ------------------------------

  /// net::adopt_connection: an established connection handed over from another net (or
  /// another process) joins this one. Runs before its unread bytes are delivered. The
  /// default treats it as accepted: on_accept(id, peer).
  virtual void on_adopt(conn_id id, const std::string& peer) { on_accept(id, peer); }
  /// net::detach, on the connection's thread, once reading has stopped at a message
  /// boundary and every queued byte is written, just before the socket is taken out.
  /// Returning a non-empty reason refuses the detach: the connection goes on as before
  /// (e.g. calls still in flight whose answers would be lost). Default: "" (agree).
  virtual std::string before_detach(conn_id /*id*/) { return {}; }
  /// net::detach succeeded: the socket has left this net, which forgets the id. There is
  /// no on_close for it: drop the per-connection state here. Runs before detach's `done`.
  virtual void on_detach(conn_id /*id*/) {}
};

}  // namespace csk::net
