#pragma once
// csk::gate: a service that serves a custom TCP protocol (skynet's gate + watchdog, as one
// C++ class). Subclass gate_service, override the hooks, spawn it: it listens (or adopts a
// listening socket from the supervisor), and every connection's events arrive in the
// service like any other message.
//
//   framing (net threads)      unpack: whole messages out of the byte stream
//                              frame:  a body into bytes for the wire
//                              default: len:u16 BIG-endian | body (skynet's gate)
//   events (the service)       on_accept, on_connect, on_message, on_close
//
// on_message is a coroutine: it may co_await calls to other services. Its return value,
// if any, is framed and written back as the answer. While it awaits, the next message of
// the same connection may start (up to max_in_flight per connection), but answers always
// leave in the order the messages came in. At max_in_flight the gate stops reading that
// connection (TCP pushes back on the client) until a handler finishes.
//
// Back-pressure from the node: a connection also stops reading while the gate's own mailbox
// is past the runtime's mailbox_high (until mailbox_low) and while the node's memory
// budget (runtime_options::budget: the message bodies held until answered, the queued
// bytes) is past its high mark (until its low mark).
//
// Backpressure on the way out: the gate stops reading a connection while more than a
// quarter of max_outbound_bytes waits to be written to it, and cuts the connection
// ("send buffer full") if a send would go over max_outbound_bytes.
//
// Ordering: on_accept/on_connect come before that connection's first on_message, and
// on_close after its last one started; handlers still suspended when on_close runs may
// finish, but their answers are dropped. A handler that throws or outlives
// message_timeout is logged; its answer slot is skipped (nothing is written for it) and
// the connection stays open.
//
// Threads: framing runs on net threads, concurrently for different connections: it must
// be pure. Event hooks run in the service (one at a time). send/close/connect/stats are
// safe from any thread.
//
// Lifetime: the gate's connection state is shared with the net layer's handler, so net
// events that race with the service's exit find a closed gate and are dropped; the net
// must be stopped before the runtime is destroyed (as run_node does).
//
// Hand-over (hot upgrade, docs/upgrade.md "Gate connections"): the worker's orchestrator
// moves every established connection of a gate to the same gate in the new worker with
// calls to the gate's address whose args[0] is handover_key() ("__handover:" and a random
// number chosen once per process: a remote cluster peer can address ".gate.kv" too, but
// cannot know the key; a plain "__handover" is refused). They are handled before
// on_request (a user command cannot be named "__handover..."); a bad verb or argument is an
// error reply. Replies:
//
//   "__handover", "freeze"       -> nothing. Stops accepting (the listener is closed; the
//                                   gate keeps its own copy of the listening socket) and
//                                   pauses reading on every connection, and on every one
//                                   accepted, connected or adopted later, at a message
//                                   boundary. Idempotent.
//   "__handover", "in_flight"    -> integer: messages received and not yet answered
//                                   (handlers running + answers waiting for an earlier
//                                   one), all connections. Poll until 0 after a freeze.
//   "__handover", "detach", ms   -> one table, an array of {fd = int, unread = string
//                                   (raw bytes), peer = "ip:port"} (plus outgoing = true
//                                   for a connection made by connect()), ascending conn
//                                   id. Frozen only; ms (1..3600000) bounds each
//                                   connection's flush. The fds now belong to the caller:
//                                   one that drops the reply leaks them. The connections
//                                   leave the gate without on_close. Rules: in_flight
//                                   must be 0 (else an error, nothing detached); a
//                                   connection closing at the time is not handed over (it
//                                   gets its on_close); a connection whose detach fails
//                                   otherwise (a message slipped in at the freeze, a peer
//                                   that does not read its answers within ms) fails the
//                                   whole call: the connections already detached are
//                                   adopted back by this gate (new ids: on_close(old id,
//                                   "hand-over rolled back"), then on_adopt(new id)) and
//                                   the error says so; the gate stays frozen.
//   "__handover", "resume"       -> nothing. Rollback of a freeze: the listener reopens
//                                   from the gate's copy, every connection reads again.
//   "__handover", "adopt", fd, unread, peer [, outgoing]
//                                -> integer: the new conn id. In the new worker: the
//                                   connection joins this gate (net::adopt_connection with
//                                   the gate's framing and options), on_adopt runs (not
//                                   on_accept), `unread` is processed first. The gate owns
//                                   `fd` from the moment the message arrives: on any
//                                   failure it is closed and the reply is an error.
//   "__handover", "start"        -> nothing. A gate spawned with `standby` opens its
//                                   listener now (and serves the connections adopted
//                                   meanwhile, which wait paused until then); otherwise a
//                                   no-op.
//
// A gate in standby (gate_options::standby) has its listening socket (bound or adopted)
// but accepts nothing until "start"; connections it adopts meanwhile are not read either,
// so an upgrade abandoned before "start" has consumed no byte of them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/net/net.hpp"

namespace csk::gate {

using net::conn_id;

/// How messages are cut out of the stream and put on it. Shared by every connection
/// of a gate; called on net threads concurrently, so implementations must be pure.
class framing {
 public:
  virtual ~framing() = default;
  /// The front of the receive buffer (see net::unpack_result).
  virtual net::unpack_result unpack(bytes_view buffered) const { return net::unpack_length16(buffered); }
  /// Appends one framed body to `out`. Throws std::length_error when the body cannot
  /// be framed (default: over 65535 bytes).
  virtual void frame(byte_buffer& out, bytes_view body) const;
};

struct gate_options {
  std::string host = "127.0.0.1";   ///< where to listen ("" = 0.0.0.0)
  std::uint16_t port = 0;           ///< 0 = ephemeral
  /// A listening socket to adopt instead of binding (passed by the supervisor); -1 = bind.
  /// On success the gate owns it.
  int adopt_fd = -1;
  bool listen = true;               ///< false: outgoing connections only (connect())
  std::size_t max_connections = 1024;   ///< accepted connections open at once; more are closed at once
  std::size_t max_in_flight = 16;       ///< per connection: messages being handled (>= 1)
  std::size_t max_outbound_bytes = 1u << 20;  ///< per connection (see the header comment)
  std::chrono::milliseconds idle_timeout{0};  ///< 0 = none
  std::size_t max_message = net::length16_max_body + net::length16_header;  ///< header + body
  std::chrono::milliseconds message_timeout{0};  ///< per on_message; 0 = the node's call timeout
  /// Hand-over target: the listener is ready but accepts nothing, and adopted connections
  /// are not read, until the "__handover", "start" message (see the header comment).
  bool standby = false;
};

struct gate_stats {
  std::uint64_t accepted = 0;   ///< connections accepted (and kept)
  std::uint64_t refused = 0;    ///< accepted, then closed: over max_connections
  std::uint64_t connected = 0;  ///< outgoing connections made
  std::uint64_t open = 0;       ///< connections open now
  std::uint64_t messages = 0;   ///< messages handed to on_message
  std::uint64_t answers = 0;    ///< answers written
  std::uint64_t failures = 0;   ///< on_message threw or timed out
  std::uint64_t pauses = 0;     ///< times a connection hit max_in_flight
  std::uint64_t detached = 0;   ///< connections handed over ("__handover", "detach")
  std::uint64_t adopted = 0;    ///< connections taken over ("__handover", "adopt")
  std::uint64_t mailbox_pauses = 0;  ///< reads paused: the gate's mailbox past mailbox_high
  std::uint64_t memory_pauses = 0;   ///< reads paused: the node's memory budget past its high mark
  /// Bytes held for the gate's connections now: message bodies until answered, plus what
  /// waits to be written to them.
  std::uint64_t held_bytes = 0;
};

namespace detail {
struct gate_state;
}

class gate_service : public actor::service {
 public:
  /// Configured in code: `n` must outlive the service's connections (the node's net).
  /// init's args all go to on_init.
  gate_service(net::net& n, gate_options o, std::shared_ptr<const framing> f = nullptr);
  /// Configured at spawn (how a config's `gates:` entry starts one): init's args[0] is
  /// the options table (gate_options_from), the rest go to on_init; the net is the
  /// runtime's extension net::net (run_node registers it).
  explicit gate_service(std::shared_ptr<const framing> f = nullptr);
  ~gate_service() override;

  // -- hooks (run in this service) -----------------------------------------------------

  /// Runs in init, before the listener opens, with the service's own arguments.
  virtual void on_init(actor::context& /*ctx*/, const actor::values& /*args*/) {}
  virtual void on_accept(actor::context& /*ctx*/, conn_id /*id*/, const std::string& /*peer*/) {}
  virtual void on_connect(actor::context& /*ctx*/, conn_id /*id*/, const std::string& /*peer*/) {}
  virtual void on_close(actor::context& /*ctx*/, conn_id /*id*/, const std::string& /*reason*/) {}
  /// A connection handed over by another worker's gate ("__handover", "adopt"), instead
  /// of on_accept/on_connect: the client is already talking to us (no greeting). Runs
  /// before the connection's first message.
  virtual void on_adopt(actor::context& /*ctx*/, conn_id /*id*/, const std::string& /*peer*/) {}
  /// One message (the body, header stripped). Returns the answer's body, or nullopt for
  /// none. Throwing skips the answer (logged).
  virtual actor::task<std::optional<byte_buffer>> on_message(actor::context& ctx, conn_id id, byte_buffer msg) = 0;
  /// Calls and sends addressed to the service itself (its own API, e.g. a broadcast
  /// command). Default: an error "unknown command".
  virtual actor::task<actor::values> on_request(actor::context& ctx, actor::message& msg);

  // -- API (any thread) ------------------------------------------------------------------

  /// Frames `body` and queues it on the connection (a push). False if the connection is
  /// unknown or closing, the body cannot be framed, or the queue is full (then cut).
  bool send(conn_id id, bytes_view body);
  /// Closes a connection (flush: what is queued is written first).
  void close(conn_id id, std::string reason = "closed by service", bool flush = true);
  /// Closes the connection gracefully once every message received on it so far has been
  /// answered (e.g. a QUIT: its own answer goes out first). Reading stops at once.
  void close_after_answers(conn_id id, std::string reason = "closed by service");
  /// An outgoing connection served by the same hooks (on_connect, then messages). 0 if
  /// the net is stopping; a failed connect is logged and reported through on_close
  /// with the error.
  conn_id connect(const std::string& host, std::uint16_t port);
  /// The bound port (0 before init or without a listener).
  std::uint16_t port() const noexcept;
  gate_stats stats() const;
  std::size_t in_flight(conn_id id) const;

  // -- service -------------------------------------------------------------------------

  /// Takes its options (see the constructors), runs on_init, opens the listener; a
  /// failure throws, so spawn() fails with the reason.
  void init(actor::context& ctx, const actor::values& args) override;
  /// Closes the listener and every connection (queued answers are flushed).
  void stop(actor::context& ctx) override;
  actor::task<actor::values> handle(actor::context& ctx, actor::message& msg) final;

 private:
  actor::task<actor::values> run_message(actor::context& ctx, std::uint64_t token);
  actor::task<actor::values> handover(actor::context& ctx, actor::message& msg);
  actor::task<actor::values> handover_detach(actor::context& ctx, std::int64_t timeout_ms);
  actor::values handover_adopt(actor::message& msg);
  /// Opens the net listener from a dup of the gate's listening socket. Service thread.
  void start_listening();
  /// Leaves the runtime's gate::directory (if any). Idempotent.
  void leave_directory();

  std::shared_ptr<detail::gate_state> state_;
};

/// The gate options a config's `gates:` entry or a spawn argument table gives:
/// {listen = "host:port", fd = N (a listening socket to adopt), max_connections,
///  max_in_flight, max_outbound_kb, idle_timeout_ms, max_message, message_timeout_ms,
///  standby = true|false}.
/// Unknown keys are errors; nil gives the defaults. The limits' ranges are the config
/// loader's too (common/config/gate_options.hpp).
result<gate_options, std::string> gate_options_from(const lua_value& table);

/// args[0] of the hand-over messages: "__handover:" and 16 hex digits, random per process.
/// Only code in this process can know it (the upgrade machinery, tests).
const std::string& handover_key();

}  // namespace csk::gate
