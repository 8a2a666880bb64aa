#include "services/cluster/sender.hpp"

#include <unistd.h>

#include "common/log/log.hpp"
#include "common/wire/seri.hpp"

namespace csk::cluster {
namespace {

std::shared_ptr<spdlog::logger> log() { return csk::logger("cluster"); }

actor::call_result fail(std::string text) {
  return unexpected(actor::call_error{actor::call_errc::remote_error, std::move(text)});
}

// Per-thread buffers for packing and framing: a request costs no allocation of its own
// (the transport copies the frames into its send queue).
constexpr std::size_t scratch_keep_capacity = 1u << 20;
struct scratch_buffers {
  byte_buffer payload;
  byte_buffer frames;
};
thread_local scratch_buffers scratch;

void trim(byte_buffer& b) {
  b.clear();
  if (b.capacity() > scratch_keep_capacity) byte_buffer{}.swap(b);
}

/// skynet's cluster.nodename() (lua-cluster.c lnodename): the host name, every byte up to
/// ' ' (as a signed char, so bytes >= 0x80 too) made '_', then the pid.
std::string host_and_pid() {
  char host[256] = {};
  std::string out = "noname";
  if (::gethostname(host, sizeof host - 1) == 0) {
    for (char* p = host; *p != 0; ++p) {
      if (static_cast<signed char>(*p) <= ' ') *p = '_';
    }
    out = host;
  }
  return out + std::to_string(::getpid());
}

}  // namespace

sender::sender(std::string node, actor::runtime& rt, transport& t, wire::assembler_limits limits, std::string self)
    : node_(std::move(node)),
      self_(self.empty() ? host_and_pid() : std::move(self)),
      rt_(rt),
      t_(t),
      limits_(limits),
      responses_(limits) {}

sender::failed_calls sender::leave_connection() {
  state_ = state::idle;
  queued_.clear();
  queued_unknown_ = true;
  return pending_.drain();
}

void sender::set_endpoint(std::optional<endpoint> ep) {
  failed_calls failed;
  const std::string why = ep ? "node " + node_ + " moved" : "node " + node_ + " is down";
  {
    std::lock_guard lock(mu_);
    if (ep_ == ep) return;
    ep_ = std::move(ep);
    if (state_ != state::idle) {
      // Leave the old connection now: calls on it fail, the next request connects to
      // the new address; the transport drops the old connection's late events. close()
      // runs under the lock (as in on_frame): a request made after the unlock would
      // otherwise start a new connection that this close() then abandons, leaving the
      // sender "connecting" for good.
      failed = leave_connection();
      t_.close(why);
    }
  }
  fail_all(failed, why);
}

std::uint32_t sender::take_session() {
  ++session_;
  if (session_ > 0x7fffffff) session_ = 1;
  return session_;
}

std::uint32_t sender::next_session() const {
  std::lock_guard lock(mu_);
  return session_ + 1 > 0x7fffffff ? 1 : session_ + 1;
}

void sender::queue_or_write(bytes_view bytes, bool& start_connect) {
  switch (state_) {
    case state::connected:
      t_.write_view(bytes);
      written_unseen_ += bytes.size();
      count_out(bytes);
      return;
    case state::connecting:
      queued_.insert(queued_.end(), bytes.begin(), bytes.end());
      return;
    case state::idle:
      queued_.insert(queued_.end(), bytes.begin(), bytes.end());
      state_ = state::connecting;
      ++stats_.connects;
      start_connect = true;
      return;
  }
}

bool sender::trace_call(const std::string& tag, std::uint32_t session, actor::handle_t caller, byte_buffer& out) const {
  std::string renamed;
  const std::string* sent = &tag;
  if (tag.empty() || tag[0] != '(') {
    const std::uint32_t next = session >= 0x7fffffff ? 1 : session + 1;  // skynet's counter after this call
    renamed = "(" + self_ + "-" + node_ + "-" + std::to_string(next) + ")" + tag;
    actor::trace_log(caller, tag, "session " + renamed);
    sent = &renamed;
  }
  actor::trace_log(caller, *sent, "cluster " + node_);
  return static_cast<bool>(wire::encode_trace(*sent, out));
}

void sender::call(const wire::target& to, const actor::values& args, actor::reply_route route,
                  const actor::trace_ptr& trace) {
  scratch_buffers& sc = scratch;
  sc.payload.clear();
  auto packed = seri::pack(args, sc.payload);
  bool start_connect = false;
  endpoint ep;
  std::optional<std::string> failure;  // answered after unlocking: complete() may re-enter
  {
    std::lock_guard lock(mu_);
    const std::uint32_t s = take_session();  // skynet takes it even if the call fails
    ++stats_.calls;
    sc.frames.clear();
    if (!packed) {
      failure = packed.error().message();
    } else if (!ep_) {
      ++stats_.failed_calls;
      failure = "cluster node " + node_ + " is down";
    } else if (trace && !trace_call(*trace, s, route.handle, sc.frames)) {
      failure = "trace tag is too long";  // skynet's packtrace refuses it alike
    } else if (auto enc = wire::encode_request(to, s, false, sc.payload, sc.frames); !enc) {
      failure = enc.error().message();
    } else {
      pending_.insert(s, route);
      queue_or_write(sc.frames, start_connect);
      ep = *ep_;
    }
  }
  trim(sc.payload);
  trim(sc.frames);
  if (failure) {
    rt_.complete(route, fail(*failure));
    return;
  }
  if (start_connect) t_.connect(ep);
}

bool sender::send(const wire::target& to, const actor::values& args) {
  scratch_buffers& sc = scratch;
  sc.payload.clear();
  if (!seri::pack(args, sc.payload)) return false;
  const std::size_t size = sc.payload.size();
  bool start_connect = false;
  endpoint ep;
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    ++stats_.pushes;
    if (ep_) {
      bool backed_up = false;
      if (state_ == state::connected) {
        if (queued_unknown_ || queued_seen_ + written_unseen_ + size > push_backlog) {
          queued_seen_ = t_.queued();
          written_unseen_ = 0;
          queued_unknown_ = false;
          backed_up = queued_seen_ + size > push_backlog;
        }
      } else {
        backed_up = queued_.size() + size > push_backlog;
      }
      if (backed_up) {
        ++stats_.refused_pushes;
      } else {
        const std::uint32_t s = wire::request_uses_session(true, size) ? take_session() : 0;
        sc.frames.clear();
        if (wire::encode_request(to, s, true, sc.payload, sc.frames)) {
          queue_or_write(sc.frames, start_connect);
          ep = *ep_;
          queued = true;
        }
      }
    }
  }
  trim(sc.payload);
  trim(sc.frames);
  if (start_connect) t_.connect(ep);
  return queued;
}

void sender::on_connected() {
  std::lock_guard lock(mu_);
  state_ = state::connected;
  responses_ = wire::response_assembler{limits_};
  queued_unknown_ = true;
  written_unseen_ = 0;
  log()->info("cluster node {}: connected to {}", node_, ep_ ? ep_->to_string() : "?");
  if (!queued_.empty()) {
    count_out(queued_);
    t_.write(std::exchange(queued_, byte_buffer{}));
  }
}

void sender::count_out(bytes_view bytes) {
  stats_.frames_out += wire::count_frames(bytes);
  stats_.bytes_out += bytes.size();
}

void sender::on_connect_failed(const std::string& reason) {
  failed_calls failed;
  {
    std::lock_guard lock(mu_);
    failed = leave_connection();
  }
  log()->warn("cluster node {}: connect failed: {}", node_, reason);
  fail_all(failed, "connect to cluster node " + node_ + " failed: " + reason);
}

void sender::on_closed(const std::string& reason) {
  failed_calls failed;
  {
    std::lock_guard lock(mu_);
    failed = leave_connection();
  }
  if (!failed.empty()) log()->warn("cluster node {}: connection lost ({}), {} calls fail", node_, reason, failed.size());
  fail_all(failed, "connection to cluster node " + node_ + " lost: " + reason);
}

void sender::fail_all(failed_calls& calls, const std::string& why) {
  {
    std::lock_guard lock(mu_);
    stats_.failed_calls += calls.size();
  }
  for (auto& [s, route] : calls) rt_.complete(route, fail(why));
}

void sender::on_frame(bytes_view body) {
  // Closing the connection ourselves: leave it now, as set_endpoint() does. The transport
  // does not report a close it was asked for (node::remote drops the old connection's
  // events), so the calls waiting on it fail here, not at their timeouts, and the next
  // request connects anew. close() runs under the lock, like write(), so that a request
  // made meanwhile cannot start a new connection that this close() would then abandon;
  // like write(), it must not call back into the sender (node::remote's only posts).
  auto drop_connection = [this](const std::string& reason) {
    failed_calls failed;
    {
      std::lock_guard lock(mu_);
      failed = leave_connection();
      t_.close(reason);
    }
    fail_all(failed, "connection to cluster node " + node_ + " lost: " + reason);
  };
  auto f = wire::decode_response_frame(body);
  if (!f) {
    {
      std::lock_guard lock(mu_);
      ++stats_.frames_in;
      stats_.bytes_in += wire::frame_header_size + body.size();
    }
    log()->error("cluster node {}: bad response frame, closing: {}", node_, f.error().message());
    drop_connection("bad response frame: " + f.error().message());
    return;
  }
  wire::response_event& ev = response_;
  actor::reply_route route{};
  bool found = false;
  {
    std::lock_guard lock(mu_);
    ++stats_.frames_in;
    stats_.bytes_in += wire::frame_header_size + body.size();
    responses_.push(*f, ev);
    if (ev.what != wire::response_event::kind::response) {
      if (ev.what == wire::response_event::kind::fatal) {
        // closing below, outside the lock
      } else {
        if (ev.what == wire::response_event::kind::dropped) log()->warn("cluster node {}: {}", node_, ev.reason);
        return;
      }
    } else {
      if (auto r = pending_.take(ev.message.session)) {
        route = *r;
        found = true;
      } else {
        ++stats_.unknown_responses;
      }
    }
  }
  if (ev.what == wire::response_event::kind::fatal) {
    drop_connection(ev.reason);
    return;
  }
  if (!found) {
    // skynet logs "unknown session" (including the session-0 error of a bad push) and goes on.
    log()->warn("cluster node {}: response for unknown session {}{}", node_, ev.message.session,
                ev.message.ok ? "" : ": " + std::string(ev.message.payload.begin(), ev.message.payload.end()));
    return;
  }
  if (!ev.message.ok) {
    rt_.complete(route, fail(std::string(ev.message.payload.begin(), ev.message.payload.end())));
    return;
  }
  auto values = seri::unpack(ev.message.payload);
  if (!values) {
    rt_.complete(route, fail(values.error().message()));
    return;
  }
  rt_.complete(route, std::move(*values));
}

sender_stats sender::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::size_t sender::pending_calls() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

bool sender::connected() const {
  std::lock_guard lock(mu_);
  return state_ == state::connected;
}

}  // namespace csk::cluster
