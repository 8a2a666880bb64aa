#include "common/net/net.hpp"

#include <atomic>
#include <stdexcept>
#include <utility>

#include "common/net/connection.hpp"
#include "common/net/core.hpp"
#include "common/net/listener.hpp"

namespace csk::net {

namespace {
void require(const std::shared_ptr<handler>& h) {
  if (!h) throw std::invalid_argument("csk::net: null handler");
}
}  // namespace

net::net(int threads) : core_(std::make_unique<core>(threads)) {}

// Stopped here, not by ~core, so that hooks running during the stop may still call
// send/close on this net.
net::~net() { core_->stop(); }

void net::start() { core_->start(); }

void net::stop() { core_->stop(); }

void net::stop(std::chrono::milliseconds flush) { core_->stop(flush); }

result<listener_id, std::string> net::listen(const std::string& host, std::uint16_t port,
                                             std::shared_ptr<handler> h, conn_options o) {
  require(h);
  auto l = std::make_shared<listener>(core_->next_context(), *core_, core_->new_listener_id(), std::move(h), o);
  if (auto opened = l->open(host, port); !opened) return unexpected{opened.error()};
  if (!core_->add_listener(l)) return unexpected{std::string("listen: the net is stopped")};
  l->start();
  return l->id();
}

result<listener_id, std::string> net::adopt_listener(int fd, std::shared_ptr<handler> h, conn_options o) {
  require(h);
  auto l = std::make_shared<listener>(core_->next_context(), *core_, core_->new_listener_id(), std::move(h), o);
  if (auto adopted = l->adopt(fd); !adopted) return unexpected{adopted.error()};
  if (!core_->add_listener(l)) return unexpected{std::string("adopt listener: the net is stopped")};
  l->start();
  return l->id();
}

std::uint16_t net::local_port(listener_id id) const { return core_->listener_port(id).value_or(0); }

void net::close_listener(listener_id id) {
  auto closed = core_->close_listener(id);
  // Off the net threads, wait so that the port refuses connections once this returns.
  // A net thread must not wait (its own or another's queue may need it to return).
  if (closed && !core_->in_net_thread() && core_->started()) closed->wait();
}

conn_id net::connect(const std::string& host, std::uint16_t port, std::shared_ptr<handler> h, conn_options o,
                     std::function<void(conn_id, std::error_code)> done) {
  require(h);
  const auto id = core_->new_conn_id();
  auto c = std::make_shared<connection>(core_->next_context(), *core_, id, std::move(h), o,
                                        connection::role::connecting);
  if (!core_->add_connection(c)) return 0;
  c->start_connect(host, port, std::move(done));
  return id;
}

bool net::send(conn_id id, byte_buffer bytes) {
  return core_->with_connection(id, [&](connection& c) { return c.send(std::move(bytes)); });
}

bool net::send(conn_id id, bytes_view bytes) {
  return core_->with_connection(id, [&](connection& c) { return c.send(bytes); });
}

std::size_t net::queued_bytes(conn_id id) const {
  std::size_t n = 0;
  core_->with_connection(id, [&](connection& c) {
    n = c.outbound();
    return true;
  });
  return n;
}

void net::pause_reading(conn_id id, pause_reason why) {
  core_->with_connection(id, [&](connection& c) {
    c.set_paused(true, static_cast<std::uint8_t>(why));
    return true;
  });
}

bool net::run_after(conn_id id, std::function<void()> fn) {
  return core_->with_connection(id, [&](connection& c) {
    c.post(std::move(fn));
    return true;
  });
}

bool net::barrier(const std::vector<conn_id>& ids, std::chrono::milliseconds timeout) {
  if (core_->in_net_thread()) throw std::logic_error("csk::net::net::barrier called from a net thread");
  if (ids.empty()) return true;
  // Shared with the posted functions, which may run after a timed-out wait returned.
  auto left = std::make_shared<std::atomic<std::size_t>>(ids.size());
  auto all = std::make_shared<std::promise<void>>();
  auto done = all->get_future();
  const auto one = [left, all] {
    if (left->fetch_sub(1) == 1) all->set_value();
  };
  for (const conn_id id : ids) {
    if (!run_after(id, one)) one();
  }
  return done.wait_for(timeout) == std::future_status::ready;
}

void net::resume_reading(conn_id id, pause_reason why) {
  core_->with_connection(id, [&](connection& c) {
    c.set_paused(false, static_cast<std::uint8_t>(why));
    return true;
  });
}

void net::close(conn_id id, std::string reason, bool flush) {
  core_->with_connection(id, [&](connection& c) {
    c.request_close(std::move(reason), flush);
    return true;
  });
}

void net::detach(conn_id id, std::chrono::milliseconds timeout, detach_done done) {
  const bool known = core_->with_connection(id, [&](connection& c) {
    c.start_detach(timeout, std::move(done));
    return true;
  });
  if (!known && done) done(unexpected(std::string("detach: unknown connection ") + std::to_string(id)));
}

std::future<result<detached_connection, std::string>> net::detach(conn_id id, std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<result<detached_connection, std::string>>>();
  auto f = p->get_future();
  detach(id, timeout, [p](result<detached_connection, std::string> r) { p->set_value(std::move(r)); });
  return f;
}

result<conn_id, std::string> net::adopt_connection(unique_fd&& fd, bytes_view unread, std::shared_ptr<handler> h,
                                                   conn_options o) {
  require(h);
  const auto id = core_->new_conn_id();
  auto c = std::make_shared<connection>(core_->next_context(), *core_, id, std::move(h), o,
                                        connection::role::accepted);
  if (auto adopted = c->adopt_socket(fd.get()); !adopted) return unexpected(adopted.error());
  if (!c->start_adopted(byte_buffer(unread.begin(), unread.end()))) {  // the socket gave the fd back
    return unexpected(std::string("adopt connection: the net is stopped"));
  }
  (void)fd.release();  // the connection's socket owns it now
  return id;
}

net::stats net::get_stats() const {
  const auto& s = core_->stats();
  const auto get = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  stats out;
  out.accepted = get(s.accepted);
  out.connected = get(s.connected);
  out.closed = get(s.closed);
  out.bytes_in = get(s.bytes_in);
  out.bytes_out = get(s.bytes_out);
  out.reads = get(s.reads);
  out.writes = get(s.writes);
  out.messages = get(s.messages);
  out.detached = get(s.detached);
  out.adopted = get(s.adopted);
  out.read_buffer_bytes = get(s.read_buffer_bytes);
  out.read_buffers = get(s.read_buffers);
  out.pooled_bytes = get(s.pooled_bytes);
  return out;
}

}  // namespace csk::net
