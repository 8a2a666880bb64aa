#include "common/net/connection.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>

#include <spdlog/logger.h>

#include "common/net/core.hpp"
#include "common/net/endpoint.hpp"

namespace csk::net {

namespace {
using clock = std::chrono::steady_clock;

constexpr std::size_t min_read_chunk = 256;
// See connection::direct_now.
constexpr std::chrono::microseconds direct_write_gap{10};
// A write buffer that grew past this is freed after use instead of kept for reuse.
constexpr std::size_t keep_write_capacity = 1u << 20;
// The pause bit of a detach in progress (beside the pause_reason bits).
constexpr std::uint8_t detach_pause = 0x80;
// Receive buffers each net thread keeps for reuse, per size (beyond: freed).
constexpr std::size_t pool_keep = 16;

/// The receive buffers of one net thread not lent to a connection. Only connections of
/// the core whose thread this is use it (one io_context per thread); on another thread,
/// or for a buffer of another size, take/give allocate and free.
struct buffer_pool {
  counters* owner = nullptr;
  std::size_t size = 0;
  std::vector<byte_buffer> free;
  ~buffer_pool() {
    if (owner != nullptr) counters::sub(owner->pooled_bytes, free.size() * size);
  }
};
thread_local buffer_pool this_thread_pool;

std::string too_large(std::size_t size, std::size_t max) {
  return "message too large: " + std::to_string(size) + " bytes (max " + std::to_string(max) + ")";
}
}  // namespace

template <class F>
bool connection::guarded(const char* hook, F&& f) {
  try {
    std::forward<F>(f)();
    return true;
  } catch (const std::exception& e) {
    finish(std::string("handler error in ") + hook + ": " + e.what(), false, spdlog::level::err);
  } catch (...) {
    finish(std::string("handler error in ") + hook, false, spdlog::level::err);
  }
  return false;
}

connection::connection(asio::io_context& ctx, core& owner, conn_id id, std::shared_ptr<handler> h,
                       conn_options o, role r)
    : ctx_(ctx),
      core_(owner),
      id_(id),
      handler_(std::move(h)),
      options_(o),
      socket_(ctx),
      idle_timer_(ctx),
      deadline_(ctx),
      state_(r == role::connecting ? state::connecting : state::starting) {}

// ------------------------------------------------------------------- accept side --

void connection::start_accepted(unique_fd fd, const asio::ip::tcp& protocol) {
  std::error_code ec;
  socket_.assign(protocol, fd.get(), ec);
  if (ec) {
    core_.log().warn("conn {}: cannot adopt an accepted socket: {}", id_, ec.message());
    state_ = state::closed;
    return;
  }
  fd.release();
  const auto ep = socket_.remote_endpoint(ec);
  if (!ec) peer_ = format_endpoint(ep);
  if (options_.no_delay) socket_.set_option(asio::ip::tcp::no_delay(true), ec);

  state_ = state::open;
  if (!core_.add_connection(shared_from_this())) {  // stopping: drop it silently
    state_ = state::closed;
    socket_.close(ec);
    return;
  }
  counters::add(core_.stats().accepted);
  core_.log().debug("conn {}: accepted from {}", id_, peer_);
  if (!guarded("on_accept", [&] { handler_->on_accept(id_, peer_); })) return;
  established();
}

// ------------------------------------------------------------------ connect side --

void connection::start_connect(std::string host, std::uint16_t port, connect_done done) {
  asio::post(ctx_, [self = shared_from_this(), host = std::move(host), port, done = std::move(done)]() mutable {
    self->done_ = std::move(done);
    self->do_connect(host, port);
  });
}

void connection::do_connect(const std::string& host, std::uint16_t port) {
  if (state_ != state::connecting) {  // closed (stop) before it began
    report_failure(asio::error::operation_aborted);
    return;
  }
  peer_ = host + ":" + std::to_string(port);
  if (options_.connect_timeout.count() > 0) {
    deadline_.expires_after(options_.connect_timeout);
    deadline_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec || self->state_ != state::connecting) return;
      self->connect_timed_out_ = true;  // the aborted resolve/connect reports timed_out
      std::error_code ignored;
      self->socket_.close(ignored);
      if (self->resolver_) self->resolver_->cancel();
    });
  }
  std::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints_.emplace_back(addr, port);
    try_endpoint(0);
    return;
  }
  resolver_ = std::make_unique<asio::ip::tcp::resolver>(ctx_);
  resolver_->async_resolve(host, std::to_string(port),
                           [self = shared_from_this()](std::error_code rec,
                                                       const asio::ip::tcp::resolver::results_type& found) {
                             if (self->state_ != state::connecting) return;
                             if (self->connect_timed_out_) return self->fail_connect(asio::error::timed_out);
                             if (rec) return self->fail_connect(rec);
                             for (const auto& entry : found) self->endpoints_.push_back(entry.endpoint());
                             self->try_endpoint(0);
                           });
}

void connection::try_endpoint(std::size_t index) {
  if (state_ != state::connecting) return;
  if (connect_timed_out_) return fail_connect(asio::error::timed_out);
  if (index >= endpoints_.size()) {
    return fail_connect(last_connect_error_ ? last_connect_error_ : asio::error::host_not_found);
  }
  const auto ep = endpoints_[index];
  std::error_code ec;
  socket_.close(ec);
  auto fd = open_tcp_socket(ep.protocol());
  if (!fd) {
    last_connect_error_ = fd.error();
    return try_endpoint(index + 1);
  }
  socket_.assign(ep.protocol(), fd->get(), ec);
  if (ec) {
    last_connect_error_ = ec;
    return try_endpoint(index + 1);
  }
  fd->release();
  socket_.async_connect(ep, [self = shared_from_this(), index](std::error_code cec) {
    if (self->state_ != state::connecting) return;
    if (self->connect_timed_out_) return self->fail_connect(asio::error::timed_out);
    if (cec) {
      self->last_connect_error_ = cec;
      return self->try_endpoint(index + 1);
    }
    self->on_connected();
  });
}

void connection::on_connected() {
  deadline_.cancel();
  resolver_.reset();
  std::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  if (!ec) peer_ = format_endpoint(ep);
  if (options_.no_delay) socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  endpoints_.clear();

  state_ = state::open;
  counters::add(core_.stats().connected);
  core_.log().debug("conn {}: connected to {}", id_, peer_);
  auto done = std::exchange(done_, nullptr);
  guarded("on_connect", [&] { handler_->on_connect(id_, peer_); });
  if (done) guarded("connect done", [&] { done(id_, {}); });
  if (state_ == state::open) established();
}

void connection::stop_sending() {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    direct_fd_ = -1;  // before the socket is closed
    if (close_mode_ == close_mode::none) close_mode_ = close_mode::abort;
    pending_ = byte_buffer{};
    dropped = std::exchange(outbound_, 0);
  }
  byte_buffer{}.swap(writing_);
  written_ = 0;
  if (options_.budget != nullptr) options_.budget->release(dropped);
  close_requested_.store(true, std::memory_order_relaxed);
}

void connection::fail_connect(std::error_code ec) {
  if (state_ != state::connecting) return;
  state_ = state::closed;
  stop_sending();
  deadline_.cancel();
  if (resolver_) resolver_->cancel();
  std::error_code ignored;
  socket_.close(ignored);
  core_.remove_connection(id_);
  core_.log().debug("conn {}: connect to {} failed: {}", id_, peer_, ec.message());
  report_failure(ec);
}

void connection::report_failure(std::error_code ec) {
  auto done = std::exchange(done_, nullptr);
  if (!done) return;
  try {
    done(0, to_std_error(ec));
  } catch (const std::exception& e) {
    core_.log().error("conn {}: connect done callback threw: {}", id_, e.what());
  } catch (...) {
    core_.log().error("conn {}: connect done callback threw", id_);
  }
}

// ----------------------------------------------------------------------- receive --

void connection::established() {
  {
    std::lock_guard lock(mu_);
    if (accepting_) direct_fd_ = socket_.native_handle();
  }
  last_read_ = clock::now();
  arm_idle();
  // Whatever came before the socket joined the reactor may have no edge left to wake a
  // wait: look now (a read that finds nothing gives the buffer back and waits).
  read_in_flight_ = true;
  on_readable({});
  do_write();  // bytes queued by the hook, or while connecting
}

// Reading, in two ways. A connection that holds bytes (a partial message) or whose last
// read filled what it offered reads with a buffer (async_read_some, which first tries
// the socket at once). One that holds nothing and whose last read took all the socket had
// gives its buffer back and waits for readability (async_wait: an edge of the reactor),
// then borrows a buffer and reads once (on_readable). Invariant behind the wait: it is
// only armed after a read that left the socket empty, so the next byte to arrive makes a
// new edge.
void connection::do_read() {
  if (state_ != state::open || read_in_flight_ || peer_eof_) return;
  if (reading_held()) {
    read_held_ = true;
    return;
  }
  read_in_flight_ = true;
  if (rstart_ == rend_ && drained_) {
    rstart_ = rend_ = 0;
    give_back_buffer();
    socket_.async_wait(asio::ip::tcp::socket::wait_read,
                       [self = shared_from_this()](std::error_code ec) { self->on_readable(ec); });
    return;
  }
  make_room();
  asked_ = rbuf_.size() - rend_;
  socket_.async_read_some(asio::buffer(rbuf_.data() + rend_, asked_),
                          [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void connection::on_readable(std::error_code ec) {
  if (ec || state_ != state::open || detach_read_cancelled_) return on_read(ec, 0);
  make_room();
  asked_ = rbuf_.size() - rend_;
  const ssize_t n = ::recv(socket_.native_handle(), rbuf_.data() + rend_, asked_, MSG_DONTWAIT);
  if (n > 0) return on_read({}, static_cast<std::size_t>(n));
  if (n == 0) return on_read(asio::error::eof, 0);
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {  // woken for nothing: wait again
    read_in_flight_ = false;
    drained_ = true;
    return do_read();
  }
  on_read(std::error_code(err, std::system_category()), 0);
}

void connection::borrow_buffer() {
  const std::size_t chunk = std::max(options_.read_chunk, min_read_chunk);
  auto& pool = this_thread_pool;
  if (pool.owner == nullptr && pool.free.empty()) {
    pool.owner = &core_.stats();
    pool.size = chunk;
  }
  if (pool.owner == &core_.stats() && pool.size == chunk && !pool.free.empty()) {
    rbuf_ = std::move(pool.free.back());
    pool.free.pop_back();
    counters::sub(core_.stats().pooled_bytes, chunk);
  } else {
    rbuf_.resize(chunk);
  }
  counters::add(core_.stats().read_buffer_bytes, rbuf_.size());
  counters::add(core_.stats().read_buffers);
}

void connection::give_back_buffer() {
  if (rbuf_.empty()) return;
  counters::sub(core_.stats().read_buffer_bytes, rbuf_.size());
  counters::sub(core_.stats().read_buffers);
  auto& pool = this_thread_pool;
  if (pool.owner == &core_.stats() && pool.size == rbuf_.size() && pool.free.size() < pool_keep) {
    pool.free.push_back(std::move(rbuf_));
    counters::add(core_.stats().pooled_bytes, pool.size);
  }
  byte_buffer{}.swap(rbuf_);
  rstart_ = rend_ = 0;
}

// Invariants: rstart_ <= rend_ <= rbuf_.size(); want_ <= max_message (checked by deliver).
void connection::make_room() {
  const std::size_t held = rend_ - rstart_;
  const std::size_t chunk = std::max(options_.read_chunk, min_read_chunk);
  if (held == 0) {
    rstart_ = rend_ = 0;
    if (rbuf_.size() > 2 * chunk) give_back_buffer();  // one big message has passed
    if (rbuf_.empty()) borrow_buffer();
    return;
  }
  const std::size_t want = std::max(want_, held + 1);
  if (rstart_ > 0 && (rstart_ + want > rbuf_.size() || rbuf_.size() - rend_ < chunk / 2)) {
    std::memmove(rbuf_.data(), rbuf_.data() + rstart_, held);
    rstart_ = 0;
    rend_ = held;
  }
  if (want > rbuf_.size()) {
    // Known size: exactly that. Unknown: double, up to max_message (held < max_message).
    const std::size_t cap = std::max(want, options_.max_message);
    const std::size_t before = rbuf_.size();
    rbuf_.resize(want_ > held ? want_ : std::clamp(rbuf_.size() * 2, want, cap));
    counters::add(core_.stats().read_buffer_bytes, rbuf_.size() - before);
  }
}

void connection::on_read(std::error_code ec, std::size_t n) {
  read_in_flight_ = false;
  if (state_ != state::open) return;
  if (detach_read_cancelled_ && (!ec || ec == asio::error::operation_aborted)) {  // net::detach
    detach_read_cancelled_ = false;
    if (!ec) {  // it completed before the cancel: keep the bytes, undelivered
      counters::add(core_.stats().bytes_in, n);
      counters::add(core_.stats().reads);
      rend_ += n;
    }
    if (detach_done_) return try_finish_detach();
    if (deliver_and_write()) do_read();  // the detach failed meanwhile: go on as before
    return;
  }
  if (ec) {
    if (ec == asio::error::eof) {
      if (draining_) {
        peer_eof_ = true;  // the peer may still read what we are flushing
        return;
      }
      return finish(requested_reason_or("peer closed"), false, spdlog::level::debug);
    }
    return finish(requested_reason_or("read error: " + ec.message()), false, spdlog::level::debug);
  }
  counters::add(core_.stats().bytes_in, n);
  counters::add(core_.stats().reads);
  drained_ = n < asked_;
  if (options_.idle_timeout.count() > 0) last_read_ = clock::now();
  if (close_requested_.load(std::memory_order_relaxed)) {
    rstart_ = rend_ = 0;  // closing: nothing more is delivered
    return do_read();
  }
  rend_ += n;
  if (deliver_and_write()) do_read();
}

bool connection::reading_held() {
  if (paused_.load(std::memory_order_acquire) != 0) return true;
  if (options_.pause_reading_above == 0) return false;
  std::lock_guard lock(mu_);
  return outbound_ > options_.pause_reading_above;
}

void connection::set_paused(bool paused, std::uint8_t reasons) {
  if (paused) {
    paused_.fetch_or(reasons, std::memory_order_acq_rel);
    return;
  }
  const std::uint8_t before = paused_.fetch_and(static_cast<std::uint8_t>(~reasons), std::memory_order_acq_rel);
  if ((before & ~reasons) == 0) asio::post(ctx_, [self = shared_from_this()] { self->resume(); });
}

void connection::resume() {
  if (state_ != state::open || !read_held_ || reading_held()) return;
  read_held_ = false;
  if (options_.idle_timeout.count() > 0) last_read_ = clock::now();  // the pause was ours
  if (close_requested_.load(std::memory_order_relaxed)) return do_read();
  if (deliver_and_write()) do_read();
}

bool connection::deliver_and_write() {
  delivering_.store(true, std::memory_order_relaxed);
  const bool go_on = deliver();
  delivering_.store(false, std::memory_order_relaxed);
  bool write_now = false;
  {
    // Under mu_: a send either saw delivering_ set and left the write to us (seen here),
    // or comes after this section, sees it clear and posts do_write itself.
    std::lock_guard lock(mu_);
    write_now = std::exchange(write_deferred_, false);
  }
  if (write_now) do_write();
  return go_on && state_ == state::open;
}

bool connection::deliver() {
  const std::size_t max = options_.max_message;
  while (rstart_ < rend_ && !close_requested_.load(std::memory_order_relaxed)) {
    if (paused_.load(std::memory_order_acquire) != 0) {
      read_held_ = true;  // what is buffered waits for resume()
      return false;
    }
    const bytes_view buffered(rbuf_.data() + rstart_, rend_ - rstart_);
    unpack_result r;
    if (!guarded("unpack", [&] { r = handler_->unpack(id_, buffered); })) return false;

    if (r.what == unpack_result::status::error) {
      fail(r.error.empty() ? std::string("unpack error") : r.error);
      return false;
    }
    const std::size_t total = r.length > std::numeric_limits<std::size_t>::max() - r.header
                                  ? std::numeric_limits<std::size_t>::max()
                                  : r.header + r.length;
    if (total > max) {  // checked before a byte more is buffered for it
      fail(too_large(total, max));
      return false;
    }
    if (r.what == unpack_result::status::need_more) {
      if (buffered.size() >= max) {  // the message would be longer than everything held
        fail(too_large(std::max(total, buffered.size() + 1), max));
        return false;
      }
      want_ = total > buffered.size() ? total : 0;
      break;
    }
    if (total == 0 || total > buffered.size()) {
      fail("unpack hook returned a message of " + std::to_string(total) + " bytes with " +
           std::to_string(buffered.size()) + " buffered");
      return false;
    }
    want_ = 0;
    counters::add(core_.stats().messages);  // before the hook: exact whenever a hook looks
    if (!guarded("on_message", [&] { handler_->on_message(id_, buffered.subspan(r.header, r.length)); })) {
      return false;
    }
    rstart_ += total;
  }
  if (rstart_ == rend_) rstart_ = rend_ = 0;
  return true;
}

// -------------------------------------------------------------------------- send --

bool connection::direct_now() {
  // A stream of sends (a producer pushing as fast as it can) is better coalesced by the
  // net thread than written one syscall each: after a direct write, the next send within
  // direct_write_gap is queued, and the net thread writes it with whatever follows.
  const auto now = clock::now();
  if (now - last_direct_ < direct_write_gap) return false;
  last_direct_ = now;
  return true;
}

std::size_t connection::write_directly(bytes_view bytes) {
  const ssize_t n = ::send(direct_fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n <= 0) return 0;  // EAGAIN, or an error the net thread will meet on its own write
  counters::add(core_.stats().bytes_out, static_cast<std::uint64_t>(n));
  counters::add(core_.stats().writes);
  return static_cast<std::size_t>(n);
}

template <class Append>
bool connection::enqueue(bytes_view bytes, Append&& append) {
  const std::size_t size = bytes.size();
  bool post_write = false;
  bool overflow = false;
  {
    std::lock_guard lock(mu_);
    if (!accepting_) return false;
    if (size <= options_.max_outbound_bytes - outbound_) {
      if (size == 0) return true;
      if (!writer_active_ && direct_fd_ >= 0 && !delivering_.load(std::memory_order_relaxed) && direct_now()) {
        const std::size_t done = write_directly(bytes);
        if (done == size) return true;
        if (done > 0) {  // the rest is queued for the net thread
          pending_.insert(pending_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(done), bytes.end());
          outbound_ += size - done;
          if (options_.budget != nullptr) options_.budget->charge(size - done);
          writer_active_ = true;
          post_write = true;
        }
      }
      if (!post_write) {
        std::forward<Append>(append)(pending_);
        outbound_ += size;
        if (options_.budget != nullptr) options_.budget->charge(size);
        post_write = !writer_active_;
        writer_active_ = true;
        if (post_write && delivering_.load(std::memory_order_relaxed)) {
          write_deferred_ = true;  // the net thread writes once it has delivered
          post_write = false;
        }
      }
    } else {  // over the cap: abort; what is queued is dropped
      overflow = true;
      accepting_ = false;
      close_mode_ = close_mode::abort;
      close_reason_ = "send buffer full";
      close_level_ = spdlog::level::warn;
    }
  }
  if (overflow) {
    close_requested_.store(true, std::memory_order_relaxed);
    asio::post(ctx_, [self = shared_from_this()] { self->do_close(); });
    return false;
  }
  if (post_write) asio::post(ctx_, [self = shared_from_this()] { self->do_write(); });
  return true;
}

bool connection::send(bytes_view bytes) {
  return enqueue(bytes, [&](byte_buffer& out) { out.insert(out.end(), bytes.begin(), bytes.end()); });
}

bool connection::send(byte_buffer&& bytes) {
  return enqueue(bytes, [&](byte_buffer& out) {
    if (out.empty() && bytes.size() >= out.capacity()) {
      out = std::move(bytes);
    } else {
      out.insert(out.end(), bytes.begin(), bytes.end());
    }
  });
}

void connection::do_write() {
  if (write_in_flight_ || state_ != state::open) return;
  if (written_ == writing_.size()) {
    writing_.clear();
    written_ = 0;
    bool idle = false;
    {
      std::lock_guard lock(mu_);
      if (pending_.empty()) {
        writer_active_ = false;
        idle = true;
        byte_buffer{}.swap(pending_);  // an idle connection keeps no write buffer
      } else {
        writing_.swap(pending_);  // pending_ keeps the old buffer's capacity
      }
    }
    if (idle) {
      byte_buffer{}.swap(writing_);
      if (draining_) finish(requested_reason_or("closed"), true, spdlog::level::debug);
      if (detach_done_) try_finish_detach();  // net::detach waits for this
      return;
    }
  }
  write_in_flight_ = true;
  socket_.async_write_some(asio::buffer(writing_.data() + written_, writing_.size() - written_),
                           [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_written(ec, n); });
}

void connection::on_written(std::error_code ec, std::size_t n) {
  write_in_flight_ = false;
  if (state_ != state::open) return;
  if (ec) return finish(requested_reason_or("write error: " + ec.message()), false, spdlog::level::debug);
  counters::add(core_.stats().bytes_out, n);
  counters::add(core_.stats().writes);
  written_ += n;
  bool drained = false;
  {
    std::lock_guard lock(mu_);
    outbound_ -= n;
    drained = outbound_ <= options_.pause_reading_above / 2;
  }
  if (options_.budget != nullptr) options_.budget->release(n);
  if (read_held_ && drained && options_.pause_reading_above > 0) resume();
  if (state_ != state::open) return;  // resume() delivered and something closed us
  if (written_ == writing_.size() && writing_.capacity() > keep_write_capacity) {
    byte_buffer{}.swap(writing_);
    written_ = 0;
  }
  do_write();
}

// ------------------------------------------------------------------------- close --

void connection::request_close(std::string reason, bool flush) {
  {
    std::lock_guard lock(mu_);
    if (close_mode_ == close_mode::none) {
      close_mode_ = flush ? close_mode::graceful : close_mode::abort;
      close_reason_ = std::move(reason);
    } else if (close_mode_ == close_mode::graceful && !flush) {
      close_mode_ = close_mode::abort;  // cut a graceful close short; keep its reason
    } else {
      return;
    }
    accepting_ = false;
  }
  close_requested_.store(true, std::memory_order_relaxed);
  asio::post(ctx_, [self = shared_from_this()] { self->do_close(); });
}

void connection::do_close() {
  if (state_ == state::connecting) return fail_connect(asio::error::operation_aborted);
  if (state_ != state::open) return;
  close_mode mode = close_mode::none;
  std::string reason;
  spdlog::level::level_enum level = spdlog::level::debug;
  {
    std::lock_guard lock(mu_);
    mode = close_mode_;
    reason = close_reason_;
    level = close_level_;
  }
  if (mode == close_mode::abort) return finish(reason, false, level);
  if (!draining_) {
    draining_ = true;
    if (options_.flush_timeout.count() > 0) {
      deadline_.expires_after(options_.flush_timeout);
      deadline_.async_wait([self = shared_from_this(), reason](std::error_code ec) {
        if (ec || self->state_ != state::open) return;
        self->finish(reason + " (flush timed out)", false, spdlog::level::warn);
      });
    }
  }
  do_write();  // closes once nothing is left
}

void connection::arm_idle() {
  if (options_.idle_timeout.count() <= 0 || state_ != state::open) return;
  idle_timer_.expires_at(last_read_ + options_.idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->state_ != state::open) return;
    if (self->read_held_) self->last_read_ = clock::now();  // we are not reading: not idle
    if (clock::now() - self->last_read_ >= self->options_.idle_timeout) {
      self->finish("idle timeout", false, spdlog::level::info);
    } else {
      self->arm_idle();
    }
  });
}

void connection::fail(const std::string& reason) { finish(reason, false, spdlog::level::warn); }

std::string connection::requested_reason_or(std::string fallback) {
  std::lock_guard lock(mu_);
  return close_mode_ == close_mode::none ? std::move(fallback) : close_reason_;
}

void connection::finish(const std::string& reason, bool graceful, spdlog::level::level_enum level) {
  if (state_ != state::open) return;
  state_ = state::closed;
  stop_sending();
  idle_timer_.cancel();
  deadline_.cancel();
  std::error_code ignored;
  if (graceful) socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
  give_back_buffer();
  core_.remove_connection(id_);
  counters::add(core_.stats().closed);
  core_.log().log(level, "conn {} ({}): closed: {}", id_, peer_, reason);
  try {
    handler_->on_close(id_, reason);
  } catch (const std::exception& e) {
    core_.log().error("conn {} ({}): on_close threw: {}", id_, peer_, e.what());
  } catch (...) {
    core_.log().error("conn {} ({}): on_close threw", id_, peer_);
  }
  if (detach_done_) fail_detach("connection closed: " + reason, false);
}

// ---------------------------------------------------------------------- hand-over --
//
// detach: paused_ stops delivery at a message boundary (deliver checks it before each
// message), so rbuf_[rstart_, rend_) is always "undelivered, from a message start". The
// detach then waits for: the send queue written (do_write going idle calls
// try_finish_detach), the read in flight cancelled and completed (its bytes, if it got
// any, are appended, not delivered). With nothing in flight on the socket, one
// synchronous step on the net thread asks before_detach, refuses further sends, takes
// the fd out of asio and forgets the id: no byte can be read, written or delivered in
// between.

result<void, std::string> connection::adopt_socket(int fd) {
  const auto what = "adopt connection fd " + std::to_string(fd);
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0) {
    return unexpected{what + ": " + std::system_category().message(errno)};
  }
  if (type != SOCK_STREAM) return unexpected{what + ": not a stream socket"};
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return unexpected{what + ": " + std::system_category().message(errno)};
  }
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return unexpected{what + ": not a TCP/IP socket"};
  std::error_code ec;
  socket_.assign(addr.ss_family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
  if (ec) return unexpected{what + ": " + ec.message()};
  const auto ep = socket_.remote_endpoint(ec);
  const int fd_flags = ::fcntl(fd, F_GETFD);
  const int fl_flags = ::fcntl(fd, F_GETFL);
  if (ec || fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0 || fl_flags < 0 ||
      ::fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) != 0) {
    const std::string why = ec ? "not connected: " + ec.message() : "fcntl: " + std::system_category().message(errno);
    std::error_code ignored;
    (void)socket_.release(ignored);  // give the fd back, not closed
    return unexpected{what + ": " + why};
  }
  peer_ = format_endpoint(ep);
  if (options_.no_delay) socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  return {};
}

bool connection::start_adopted(byte_buffer unread) {
  if (!core_.add_connection(shared_from_this())) {
    std::error_code ignored;
    (void)socket_.release(ignored);
    state_ = state::closed;
    return false;
  }
  asio::post(ctx_, [self = shared_from_this(), unread = std::move(unread)]() mutable {
    self->adopted(std::move(unread));
  });
  return true;
}

void connection::adopted(byte_buffer unread) {
  if (state_ != state::starting) return;
  if (close_requested_.load(std::memory_order_relaxed)) {  // closed (stop) before it began
    state_ = state::closed;
    std::error_code ignored;
    socket_.close(ignored);
    core_.remove_connection(id_);
    return;
  }
  state_ = state::open;
  counters::add(core_.stats().adopted);
  core_.log().debug("conn {}: adopted, peer {}, {} unread bytes", id_, peer_, unread.size());
  if (!guarded("on_adopt", [&] { handler_->on_adopt(id_, peer_); })) return;
  // established(), with the unread bytes in front as if they had just been read.
  if (!unread.empty()) {
    borrow_buffer();
    if (rbuf_.size() < unread.size()) {
      counters::add(core_.stats().read_buffer_bytes, unread.size() - rbuf_.size());
      rbuf_.resize(unread.size());
    }
    std::copy(unread.begin(), unread.end(), rbuf_.begin());
  }
  rstart_ = 0;
  rend_ = unread.size();
  drained_ = false;  // what waits in the socket may have made its edge in the old process
  last_read_ = clock::now();
  {
    std::lock_guard lock(mu_);  // as established(): direct writes may use the socket
    if (accepting_) direct_fd_ = socket_.native_handle();
  }
  arm_idle();
  if (deliver_and_write()) do_read();
  do_write();
}

void connection::start_detach(std::chrono::milliseconds timeout, detach_done done) {
  asio::post(ctx_, [self = shared_from_this(), timeout, done = std::move(done)]() mutable {
    self->do_detach(timeout, std::move(done));
  });
}

void connection::do_detach(std::chrono::milliseconds timeout, detach_done done) {
  const auto refuse = [&](const std::string& why) {
    if (done) done(unexpected("detach: connection " + std::to_string(id_) + ": " + why));
  };
  if (state_ != state::open) return refuse(state_ == state::closed ? "closed" : "not established");
  if (close_requested_.load(std::memory_order_relaxed)) return refuse("closing");
  if (detach_done_) return refuse("a detach is already in progress");
  detach_done_ = done ? std::move(done) : detach_done([](result<detached_connection, std::string>) {});
  paused_.fetch_or(detach_pause, std::memory_order_acq_rel);
  const std::uint64_t seq = ++detach_seq_;
  if (timeout.count() > 0) {
    detach_timer_.expires_after(timeout);
    detach_timer_.async_wait([self = shared_from_this(), seq](std::error_code ec) {
      // Not this detach's any more (it ended; a stale expiry), done, or about to be.
      if (ec || seq != self->detach_seq_ || !self->detach_done_ || self->detach_read_cancelled_) return;
      self->fail_detach("the send queue was not written in time (" + std::to_string(self->outbound()) +
                            " bytes left)",
                        true);
    });
  }
  try_finish_detach();
}

void connection::try_finish_detach() {
  if (!detach_done_ || state_ != state::open) return;
  if (write_in_flight_) return;  // do_write going idle calls again
  {
    std::lock_guard lock(mu_);
    if (outbound_ != 0 || writer_active_) return;  // a do_write is posted or will be
  }
  if (read_in_flight_) {
    if (!detach_read_cancelled_) {
      detach_read_cancelled_ = true;
      std::error_code ignored;
      socket_.cancel(ignored);  // no write is in flight: only the read is cancelled
    }
    return;  // on_read calls again
  }
  std::string refused;
  if (!guarded("before_detach", [&] { refused = handler_->before_detach(id_); })) return;  // closed: failed
  if (!refused.empty()) return fail_detach("refused: " + refused, true);
  {
    std::lock_guard lock(mu_);
    if (outbound_ != 0) return;  // before_detach sent something: write it first
    accepting_ = false;
    direct_fd_ = -1;  // no direct write may reach the fd once it has left
    if (close_mode_ == close_mode::none) close_mode_ = close_mode::abort;
  }
  std::error_code ec;
  const int fd = socket_.release(ec);
  if (ec) {
    std::lock_guard lock(mu_);
    accepting_ = true;
    direct_fd_ = socket_.native_handle();
    close_mode_ = close_mode::none;
    return fail_detach("cannot release the socket: " + ec.message(), true);
  }
  close_requested_.store(true, std::memory_order_relaxed);
  state_ = state::closed;
  idle_timer_.cancel();
  deadline_.cancel();
  detach_timer_.cancel();
  detached_connection out;
  out.fd = unique_fd(fd);
  out.unread.assign(rbuf_.begin() + static_cast<std::ptrdiff_t>(rstart_),
                    rbuf_.begin() + static_cast<std::ptrdiff_t>(rend_));
  out.peer = peer_;
  give_back_buffer();
  core_.remove_connection(id_);
  counters::add(core_.stats().detached);
  core_.log().debug("conn {} ({}): detached with {} unread bytes", id_, peer_, out.unread.size());
  try {
    handler_->on_detach(id_);
  } catch (const std::exception& e) {
    core_.log().error("conn {} ({}): on_detach threw: {}", id_, peer_, e.what());
  } catch (...) {
    core_.log().error("conn {} ({}): on_detach threw", id_, peer_);
  }
  auto done = std::exchange(detach_done_, nullptr);
  try {
    done(std::move(out));
  } catch (const std::exception& e) {
    core_.log().error("conn {}: detach done callback threw: {}", id_, e.what());
  } catch (...) {
    core_.log().error("conn {}: detach done callback threw", id_);
  }
}

void connection::fail_detach(std::string why, bool restore) {
  auto done = std::exchange(detach_done_, nullptr);
  if (!done) return;
  detach_timer_.cancel();
  core_.log().info("conn {} ({}): detach failed: {}", id_, peer_, why);
  if (restore && state_ == state::open) {
    paused_.fetch_and(static_cast<std::uint8_t>(~detach_pause), std::memory_order_acq_rel);
    // As resume(), and also when no read was held (the cancelled read just completed).
    if (!reading_held()) {
      read_held_ = false;
      if (options_.idle_timeout.count() > 0) last_read_ = clock::now();  // the pause was ours
      if (deliver_and_write()) do_read();
    } else if (!read_in_flight_) {
      read_held_ = true;  // resume() (or on_written draining) restarts it
    }
  }
  try {
    done(unexpected("detach: connection " + std::to_string(id_) + ": " + why));
  } catch (const std::exception& e) {
    core_.log().error("conn {}: detach done callback threw: {}", id_, e.what());
  } catch (...) {
    core_.log().error("conn {}: detach done callback threw", id_);
  }
}

}  // namespace csk::net
