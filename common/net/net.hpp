#pragma once
// csk::net::net: TCP listeners and connections for skynet cluster traffic and the gate.
// It moves bytes and calls hooks (handler.hpp); it knows nothing of actors or protocols.
//
// Threads: `threads` net threads, each running its own io_context (asio's server2 model).
// Every connection and listener is pinned to one of them, round robin; everything that
// touches its socket, and every hook of its handler, runs there. Other threads reach a
// connection only through its id (send/close), which queue work for its thread.
//
// Receiving: each connection reads into one buffer (conn_options::read_chunk) and runs
// unpack/on_message for every whole message it holds before reading again; consumed bytes
// are compacted to the front, never reallocated per message. The buffer is borrowed from
// a per-thread pool: a connection that read all the socket had and holds no partial
// message gives it back and waits for readability without one (an idle connection costs
// its socket and a few hundred bytes of state, not a buffer). Sizes from unpack are checked
// against max_message before more is buffered for them; a bad size or an unpack error
// closes that connection only, logged on the "net" logger with peer and id.
//
// Sending: send() appends to the connection's pending buffer. While a write is in flight
// everything sent goes to that buffer and leaves in the next single write, so N frames
// sent during one write cost one syscall, not N. Bytes queued are capped
// (max_outbound_bytes): over it, send() returns false and the connection is aborted.
//
// Closing: a graceful close (net::close with flush) stops delivering at once, discards
// what arrives meanwhile, writes what was queued, then shutdown(SHUT_WR) and close. An
// abort (flush = false, errors, "send buffer full", idle timeout, stop) closes at once
// and drops what was queued. Each connection that was accepted or connected gets exactly
// one on_close; every close decided here is logged once with conn id, peer and reason
// (warn for a bad peer, info for idle timeouts, debug for ordinary closes).
//
// Sockets are opened with SOCK_CLOEXEC (socket/accept4: asio 1.22 sets no CLOEXEC
// itself), accepted and connected ones get TCP_NODELAY (conn_options::no_delay).
//
// Ownership: connections and listeners are shared_ptr objects held by the registry and
// by their pending async operations (every handler captures `self`); handlers are held by
// shared_ptr by each connection using them. Users hold ids only.
//
// Lifetime: start() once, stop() once (idempotent); a stopped net cannot be restarted.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "common/net/framing.hpp"
#include "common/net/handler.hpp"

namespace csk::net {

class core;

/// An established TCP connection taken out of a net by net::detach, to be adopted by
/// another net (net::adopt_connection), possibly in another process (pass `fd` with
/// SCM_RIGHTS, `unread` and `peer` as bytes).
///
/// The invariant: the connection stopped at a message boundary. Every message before
/// `unread` was delivered to on_message (whole), none of `unread` was: `unread` is the
/// received bytes from the first undelivered message's first byte to the last byte read
/// from the socket: zero or more whole messages (held back by a pause) followed by at
/// most one partial message. The socket's own receive buffer holds what follows, in
/// order. Every byte queued for sending was written to the socket before the detach
/// (the kernel may still be transmitting it), so the new owner starts with an empty
/// send queue. Nothing else (options, pause state, idle timer) travels.
struct detached_connection {
  unique_fd fd;         ///< the connected socket, close-on-exec
  byte_buffer unread;   ///< received, not delivered; starts at a message boundary
  std::string peer;     ///< "ip:port" of the remote end, for logs
};

class net {
 public:
  /// Counters since construction (relaxed: each is exact, they are not a snapshot together).
  struct stats {
    std::uint64_t accepted = 0;   ///< connections accepted
    std::uint64_t connected = 0;  ///< outgoing connections established
    std::uint64_t closed = 0;     ///< on_close calls
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t reads = 0;      ///< completed reads that returned bytes
    std::uint64_t writes = 0;     ///< completed writes (one write syscall each)
    std::uint64_t messages = 0;   ///< on_message calls
    std::uint64_t detached = 0;   ///< connections handed out by detach
    std::uint64_t adopted = 0;    ///< connections taken in by adopt_connection
    std::uint64_t read_buffer_bytes = 0;  ///< receive buffers held by connections now
    std::uint64_t read_buffers = 0;       ///< how many connections hold one now
    std::uint64_t pooled_bytes = 0;       ///< receive buffers kept for reuse by the net threads
  };

  /// Creates `threads` io_contexts (at least 1); no thread runs until start().
  explicit net(int threads = 1);
  /// Stops (see stop()) and joins. Owner thread; not from a net thread.
  ~net();
  net(const net&) = delete;
  net& operator=(const net&) = delete;

  /// Starts the net threads. Idempotent; after stop() it does nothing.
  /// Threads: the owner thread (the one that calls stop()).
  void start();
  /// Closes every listener, aborts every connection (on_close "shutdown"; a connect in
  /// progress gets done(0, operation_aborted)), lets those hooks run, joins the threads.
  /// Queued bytes are not flushed. Idempotent; a second caller waits for the first.
  /// Threads: any thread but a net thread (throws std::logic_error there: it would join
  /// itself). If start() was never called it starts the threads first, so that queued
  /// work and hooks still run on net threads.
  void stop();
  /// The same, but first closes every connection gracefully (what is queued is written,
  /// then the connection closes; on_close "shutdown") and waits up to `flush` for them
  /// all; those still open then are aborted as above. For an orderly process exit: the
  /// answers the last turns queued leave before the sockets close.
  void stop(std::chrono::milliseconds flush);

  // -- listeners --------------------------------------------------------------------

  /// Binds host:port (port 0 = ephemeral; host is an IP address or a name resolved here,
  /// blocking; "" = 0.0.0.0) with SO_REUSEADDR, listens, and accepts on a net thread.
  /// Connections accepted use `h` and `o`. Error text names the address and the cause.
  /// Threads: any thread.
  [[nodiscard]] result<listener_id, std::string> listen(const std::string& host, std::uint16_t port,
                                                        std::shared_ptr<handler> h, conn_options o = {});
  /// Adopts an already bound and listening TCP socket (e.g. received over SCM_RIGHTS).
  /// On success the net owns `fd` and sets FD_CLOEXEC and O_NONBLOCK on it (O_NONBLOCK
  /// is shared with every process holding the same open socket). On failure the fd is
  /// left open and still the caller's. Threads: any thread.
  [[nodiscard]] result<listener_id, std::string> adopt_listener(int fd, std::shared_ptr<handler> h,
                                                                conn_options o = {});
  /// The bound port, or 0 for an unknown/closed listener. Threads: any thread.
  std::uint16_t local_port(listener_id id) const;
  /// Stops accepting and closes the listening socket; connections already accepted stay.
  /// Called off the net threads (after start()), it returns once the socket is closed, so
  /// new connects are refused from then on; from a hook, the close happens after the hook
  /// returns. Unknown ids are ignored. Threads: any thread, but not while holding a lock
  /// that a hook may wait for (the wait needs the listener's net thread to run).
  void close_listener(listener_id id);

  // -- connections ------------------------------------------------------------------

  /// Starts an asynchronous connect (host resolved on the net thread; each address tried
  /// in turn) and returns the id the connection will have; 0 if the net is stopping (then
  /// `done` is never called). Bytes sent to the id before it connects are queued and go
  /// out once connected. On success: h->on_connect(id, peer), then done(id, {}). On
  /// failure or close() before connecting: done(0, error), no on_close. OS errors come
  /// in std::system_category (compare with std::errc: connection_refused, timed_out for
  /// connect_timeout, operation_canceled for close/stop); resolver errors in asio's
  /// netdb/addrinfo categories. `done` may be empty; it runs on the connection's net
  /// thread, exactly once.
  /// Threads: any thread.
  conn_id connect(const std::string& host, std::uint16_t port, std::shared_ptr<handler> h, conn_options o,
                  std::function<void(conn_id, std::error_code)> done);

  /// Queues bytes (already framed by the caller) for writing, in order. False if the id
  /// is unknown or closing, or the bytes would exceed max_outbound_bytes (the connection is
  /// then aborted with "send buffer full"). Empty bytes: true, nothing happens.
  /// Threads: any thread, including hooks.
  bool send(conn_id id, byte_buffer bytes);
  /// Same, copying from a view (saves the caller an allocation per frame).
  bool send(conn_id id, bytes_view bytes);

  /// Bytes queued on the connection and not yet written (0 for an unknown id): lets a
  /// producer slow down before max_outbound_bytes cuts the connection. Threads: any thread.
  std::size_t queued_bytes(conn_id id) const;
  /// Stops reading from the connection and delivering the messages it already holds,
  /// after the on_message in progress (if any) returns; the peer's further bytes wait in
  /// the kernel buffers (TCP flow control). Idle timeouts do not count while paused.
  /// Pauses do not nest: one resume_reading ends any number of pauses. Unknown ids are
  /// ignored. Threads: any thread, including hooks (from the connection's own on_message
  /// it takes effect before the next message).
  /// `why`: see pause_reason; a pause ends with a resume of the same reason.
  void pause_reading(conn_id id, pause_reason why = pause_reason::user);
  /// Runs `fn` on the connection's net thread once the work it has in hand is done (e.g.
  /// the on_message in progress when pause_reading was called): a barrier. False, and
  /// `fn` never runs, for an unknown id. Threads: any thread.
  bool run_after(conn_id id, std::function<void()> fn);
  /// run_after on every connection of `ids`, then waits until each has run it (unknown or
  /// closed ids count as done) or `timeout` passes. True if all ran. Threads: any thread
  /// but a net thread (it would wait for itself), and not while holding a lock a hook
  /// may wait for.
  bool barrier(const std::vector<conn_id>& ids, std::chrono::milliseconds timeout);
  /// Ends pause_reading: buffered messages are delivered, then reading goes on (unless
  /// conn_options::pause_reading_above holds it). Threads: any thread, including hooks.
  void resume_reading(conn_id id, pause_reason why = pause_reason::user);
  /// Closes the connection: flush = true writes what was queued first (at most
  /// flush_timeout), then shuts down and closes; flush = false closes at once. Nothing is
  /// received or delivered after the call; sends are refused. on_close gets `reason`
  /// (the first close requested wins; an abort may cut short an earlier graceful close).
  /// Unknown ids are ignored. Threads: any thread, including hooks.
  void close(conn_id id, std::string reason, bool flush = true);

  // -- hand-over of established connections ------------------------------------------

  using detach_done = std::function<void(result<detached_connection, std::string>)>;

  /// Takes an established connection out of this net without closing it, so that
  /// another net (another worker) can adopt it and the peer sees no disconnect. On the
  /// connection's thread: stops reading and delivering after the on_message in progress
  /// (as pause_reading), waits until every queued byte is written, cancels the read in
  /// flight (bytes it already got are kept), asks handler::before_detach, then takes the
  /// socket out of asio (no shutdown, no close), forgets the id without on_close, calls
  /// handler::on_detach(id) and done({fd, unread, peer}). See detached_connection.
  ///
  /// Fails, with the connection left as it was (reading resumes unless it was paused by
  /// pause_reading before): unknown id, a connection not established (connecting) or
  /// closing, another detach in progress, the queue not written within `timeout` (a peer
  /// that does not read; 0 = no limit), before_detach refused. If the connection closes
  /// meanwhile (peer gone, net::close, stop), done gets the error and on_close runs.
  /// Sends made while the detach waits are written first; sends after it succeeded are
  /// refused (the id is unknown): callers must have stopped producing for the id.
  /// Do not call resume_reading on the id while its detach is in progress.
  ///
  /// `done` runs exactly once: on the connection's net thread, or at once on the
  /// caller's thread for an unknown id. Threads: any thread, including hooks.
  void detach(conn_id id, std::chrono::milliseconds timeout, detach_done done);
  /// The same; the future is ready when done would run. Do not wait on it on a net thread.
  std::future<result<detached_connection, std::string>> detach(conn_id id, std::chrono::milliseconds timeout);

  /// Makes an established TCP socket (from detach, here or in another process) a
  /// connection of this net, served by `h` and `o`: h->on_adopt(id, peer) (default:
  /// on_accept), then `unread` is delivered as if it had just been read (unpack and
  /// on_message for each whole message, a partial one waits for the rest), then normal
  /// reading. The id is returned at once; the hooks run on its net thread, possibly
  /// before this returns. On success the net owns the socket (moved out of `fd`) and sets
  /// FD_CLOEXEC and O_NONBLOCK; on failure (not a connected TCP socket, net stopped)
  /// `fd` is left untouched and still the caller's. Threads: any thread.
  [[nodiscard]] result<conn_id, std::string> adopt_connection(unique_fd&& fd, bytes_view unread,
                                                              std::shared_ptr<handler> h, conn_options o = {});

  /// Threads: any thread.
  stats get_stats() const;

 private:
  std::unique_ptr<core> core_;
};

}  // namespace csk::net
