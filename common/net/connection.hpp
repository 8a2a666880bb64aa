#pragma once
// csk::net::connection: one TCP stream, its receive buffer, its send queue and its timers
// (private to common/net; users see only its conn_id).
//
// Threads: the connection is pinned to one io_context (ctx_). Everything marked "net
// thread" below runs only there; send() and request_close() may be called from any
// thread: they touch the fields guarded by mu_ and post work to ctx_.
//
// Lifetime: shared_ptr. The registry holds it while it is open; every pending async
// operation holds it too (handlers capture `self`), so the object outlives the last
// completion even after the registry dropped it.
//
// Send queue invariants (mu_): `outbound_` = bytes accepted by send() and not yet
// written (pending_ plus the unwritten part of writing_); `writer_active_` is true while a
// do_write is posted or a write is in flight, so send() posts at most one do_write per
// idle -> busy edge and everything sent meanwhile is coalesced into pending_.
//
// Direct writes: a send() from another thread that finds the writer idle (nothing queued,
// no write in flight) and the net thread not delivering writes the bytes itself, with a
// non-blocking send(2) under mu_, instead of posting do_write and waking the net thread
// for it (a cluster answer written by a runtime worker). Whatever the socket does not
// take at once is queued as usual. The net thread clears `direct_fd_` under mu_ before it
// closes the socket, so a direct write never reaches a closed (or reused) descriptor.
// A send within 10 us of the last direct write is queued instead: a producer streaming
// small sends is then coalesced by the net thread, not written one syscall each.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <spdlog/common.h>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/net/asio.hpp"
#include "common/net/handler.hpp"
#include "common/net/net.hpp"
#include "common/net/unique_fd.hpp"

namespace csk::net {

class core;

class connection : public std::enable_shared_from_this<connection> {
 public:
  enum class role : std::uint8_t { accepted, connecting };
  using connect_done = std::function<void(conn_id, std::error_code)>;

  connection(asio::io_context& ctx, core& owner, conn_id id, std::shared_ptr<handler> h, conn_options o,
             role r);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  conn_id id() const noexcept { return id_; }

  /// Takes an accepted socket: registers, on_accept, starts reading. Net thread.
  void start_accepted(unique_fd fd, const asio::ip::tcp& protocol);
  /// Resolves and connects (posts to the net thread). Any thread, once.
  void start_connect(std::string host, std::uint16_t port, connect_done done);

  /// See net::send. Any thread.
  bool send(bytes_view bytes);
  bool send(byte_buffer&& bytes);
  /// Bytes accepted by send() and not yet written. Any thread.
  std::size_t outbound() {
    std::lock_guard lock(mu_);
    return outbound_;
  }
  /// See net::close. Any thread.
  void request_close(std::string reason, bool flush);
  /// See net::pause_reading / resume_reading: sets or clears the pause_reason bits
  /// `reasons`. Any thread.
  void set_paused(bool paused, std::uint8_t reasons);
  /// Runs `fn` on this connection's net thread, after whatever it is doing now. Any thread.
  void post(std::function<void()> fn) { asio::post(ctx_, std::move(fn)); }

  // -- hand-over (net::detach / net::adopt_connection) --------------------------------
  using detach_done = std::function<void(result<detached_connection, std::string>)>;
  /// Takes an established socket handed over (assign, FD_CLOEXEC, O_NONBLOCK, no_delay,
  /// peer). On failure the fd is not taken. Caller's thread, before start_adopted.
  result<void, std::string> adopt_socket(int fd);
  /// Registers, then on its net thread: on_adopt, delivers `unread`, reads. False (the
  /// socket gave its fd back, not closed) if the net is stopping. Caller's thread, once.
  bool start_adopted(byte_buffer unread);
  /// See net::detach. Any thread (posts to the net thread).
  void start_detach(std::chrono::milliseconds timeout, detach_done done);

 private:
  enum class state : std::uint8_t { starting, connecting, open, closed };
  enum class close_mode : std::uint8_t { none, graceful, abort };

  // -- any thread ----------------------------------------------------------------------
  template <class Append>
  bool enqueue(bytes_view bytes, Append&& append);
  /// The direct write (mu_ held): bytes the socket took at once, 0 if none.
  std::size_t write_directly(bytes_view bytes);
  /// Whether a send finding the writer idle may write directly now (mu_ held).
  bool direct_now();

  // -- net thread ----------------------------------------------------------------------
  void do_connect(const std::string& host, std::uint16_t port);
  void try_endpoint(std::size_t index);
  void on_connected();
  void fail_connect(std::error_code ec);
  /// Refuses further sends and drops what is queued (both close paths). Net thread.
  void stop_sending();
  void report_failure(std::error_code ec);  // done(0, ec), once

  void do_read();
  /// do_read's wait without a buffer: the socket is readable (or the wait failed).
  void on_readable(std::error_code ec);
  /// The receive buffer: borrowed from the thread's pool (borrow), given back when it
  /// holds nothing (give_back). Net thread.
  void borrow_buffer();
  void give_back_buffer();
  /// True while reading must wait: paused by the user, or too much queued outbound.
  bool reading_held();
  /// Delivers what is buffered and reads again, if nothing holds reading any more.
  void resume();
  void make_room();
  void on_read(std::error_code ec, std::size_t n);
  bool deliver();  // false: closed, or paused (read_held_ set): do not read now
  /// deliver(), then the write that sends made meanwhile left to this thread.
  bool deliver_and_write();

  void do_write();
  void on_written(std::error_code ec, std::size_t n);

  void do_close();
  void arm_idle();
  void established();
  void fail(const std::string& reason);  // a bad peer: closes at once, logged as a warning
  void finish(const std::string& reason, bool graceful, spdlog::level::level_enum level);
  std::string requested_reason_or(std::string fallback);

  template <class F>
  bool guarded(const char* hook, F&& f);

  // hand-over, net thread
  void adopted(byte_buffer unread);
  void do_detach(std::chrono::milliseconds timeout, detach_done done);
  /// Completes the detach once nothing is in flight; waits otherwise (re-entered from
  /// do_write going idle and from on_read of the cancelled read).
  void try_finish_detach();
  /// Ends a detach with an error; `restore` = the connection is still open: reading
  /// goes on as before the detach.
  void fail_detach(std::string why, bool restore);

  asio::io_context& ctx_;
  core& core_;
  const conn_id id_;
  const std::shared_ptr<handler> handler_;
  const conn_options options_;

  // net thread
  asio::ip::tcp::socket socket_;
  asio::steady_timer idle_timer_;
  asio::steady_timer deadline_;  // connect timeout, then flush timeout
  std::unique_ptr<asio::ip::tcp::resolver> resolver_;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::error_code last_connect_error_;
  connect_done done_;
  bool connect_timed_out_ = false;
  state state_;
  std::string peer_ = "?";
  byte_buffer rbuf_;        // empty while nothing is held (see borrow_buffer)
  std::size_t asked_ = 0;   // free bytes offered to the read in flight
  bool drained_ = true;     // the last read took all the socket had: wait without a buffer
  std::size_t rstart_ = 0;  // first unconsumed byte
  std::size_t rend_ = 0;    // end of received bytes
  std::size_t want_ = 0;    // whole size of the front message once known, else 0
  bool read_in_flight_ = false;
  bool read_held_ = false;  // do_read found reading_held(): resume() must restart it
  bool peer_eof_ = false;
  byte_buffer writing_;     // the buffer of the write in flight
  std::size_t written_ = 0; // bytes of writing_ already written
  bool write_in_flight_ = false;
  bool draining_ = false;   // graceful close: writing what is queued, then closing
  std::chrono::steady_clock::time_point last_read_;

  // any thread
  std::atomic<bool> close_requested_{false};  // stop delivering; set with close_mode_
  // net::pause_reading: pause_reason bits, plus detach_pause while a detach is in progress
  std::atomic<std::uint8_t> paused_{0};
  std::mutex mu_;
  byte_buffer pending_;          // mu_
  std::size_t outbound_ = 0;     // mu_
  bool writer_active_ = false;   // mu_
  // While the net thread delivers messages, a send that finds the writer idle leaves the
  // write to it (it writes right after delivering) instead of posting do_write: requests
  // answered from on_message, or by another thread meanwhile, cost no post each.
  std::atomic<bool> delivering_{false};  // net thread writes; senders read under mu_
  bool write_deferred_ = false;  // mu_: a send left its write to the delivering net thread
  int direct_fd_ = -1;           // mu_: the socket while direct writes may use it
  std::chrono::steady_clock::time_point last_direct_{};  // mu_: the last direct write
  bool accepting_ = true;        // mu_: send() takes bytes
  close_mode close_mode_ = close_mode::none;  // mu_
  std::string close_reason_;     // mu_
  spdlog::level::level_enum close_level_ = spdlog::level::debug;  // mu_: how to log it

  // hand-over, net thread. A detach is in progress while detach_done_ is set.
  detach_done detach_done_;
  asio::steady_timer detach_timer_{ctx_};
  bool detach_read_cancelled_ = false;  // the read in flight was cancelled for the detach
  std::uint64_t detach_seq_ = 0;        // which detach a timer completion belongs to
};

}  // namespace csk::net
