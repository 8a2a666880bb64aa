#include "services/cluster/sender.hpp"

#include "common/log/log.hpp"
#include "common/wire/seri.hpp"

namespace csk::cluster {
namespace {

std::shared_ptr<spdlog::logger> log() { return csk::logger("cluster"); }

actor::call_result fail(std::string text) {
  return unexpected(actor::call_error{actor::call_errc::remote_error, std::move(text)});
}

}  // namespace

sender::sender(std::string node, actor::runtime& rt, transport& t, wire::assembler_limits limits)
    : node_(std::move(node)), rt_(rt), t_(t), limits_(limits), responses_(limits) {}

void sender::set_endpoint(std::optional<endpoint> ep) {
  bool close = false;
  std::unordered_map<std::uint32_t, actor::reply_route> failed;
  const std::string why = ep ? "node " + node_ + " moved" : "node " + node_ + " is down";
  {
    std::lock_guard lock(mu_);
    if (ep_ == ep) return;
    ep_ = std::move(ep);
    close = state_ != state::idle;
    if (close) {
      // Leave the old connection now: calls on it fail, the next request connects to
      // the new address; the transport drops the old connection's late events.
      state_ = state::idle;
      queued_.clear();
      failed.swap(pending_);
    }
  }
  if (close) t_.close(why);
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

bool sender::queue_or_write(byte_buffer bytes, bool& start_connect, bool& write_now, byte_buffer& out) {
  switch (state_) {
    case state::connected:
      write_now = true;
      out = std::move(bytes);
      return true;
    case state::connecting:
      queued_.insert(queued_.end(), bytes.begin(), bytes.end());
      return true;
    case state::idle:
      queued_.insert(queued_.end(), bytes.begin(), bytes.end());
      state_ = state::connecting;
      ++stats_.connects;
      start_connect = true;
      return true;
  }
  return false;
}

void sender::call(const wire::target& to, const actor::values& args, actor::reply_route route) {
  byte_buffer payload;
  auto packed = seri::pack(args, payload);
  bool start_connect = false;
  bool write_now = false;
  byte_buffer out;
  endpoint ep;
  std::optional<std::string> failure;  // answered after unlocking: complete() may re-enter
  {
    std::lock_guard lock(mu_);
    const std::uint32_t s = take_session();  // skynet takes it even if the call fails
    ++stats_.calls;
    byte_buffer frames;
    if (!packed) {
      failure = packed.error().message();
    } else if (!ep_) {
      ++stats_.failed_calls;
      failure = "cluster node " + node_ + " is down";
    } else if (auto enc = wire::encode_request(to, s, false, payload, frames); !enc) {
      failure = enc.error().message();
    } else {
      pending_.emplace(s, route);
      queue_or_write(std::move(frames), start_connect, write_now, out);
      ep = *ep_;
      if (write_now) t_.write(std::move(out));
    }
  }
  if (failure) {
    rt_.complete(route, fail(*failure));
    return;
  }
  if (start_connect) t_.connect(ep);
}

bool sender::send(const wire::target& to, const actor::values& args) {
  byte_buffer payload;
  if (!seri::pack(args, payload)) return false;
  bool start_connect = false;
  bool write_now = false;
  byte_buffer out;
  endpoint ep;
  {
    std::lock_guard lock(mu_);
    ++stats_.pushes;
    if (!ep_) return false;
    if (state_ == state::connected ? t_.queued() + payload.size() > push_backlog
                                   : queued_.size() + payload.size() > push_backlog) {
      ++stats_.refused_pushes;
      return false;
    }
    const std::uint32_t s = wire::request_uses_session(true, payload.size()) ? take_session() : 0;
    byte_buffer frames;
    if (!wire::encode_request(to, s, true, payload, frames)) return false;
    queue_or_write(std::move(frames), start_connect, write_now, out);
    ep = *ep_;
    if (write_now) t_.write(std::move(out));
  }
  if (start_connect) t_.connect(ep);
  return true;
}

void sender::on_connected() {
  std::lock_guard lock(mu_);
  state_ = state::connected;
  responses_ = wire::response_assembler{limits_};
  log()->info("cluster node {}: connected to {}", node_, ep_ ? ep_->to_string() : "?");
  if (!queued_.empty()) t_.write(std::exchange(queued_, byte_buffer{}));
}

void sender::on_connect_failed(const std::string& reason) {
  std::unordered_map<std::uint32_t, actor::reply_route> failed;
  {
    std::lock_guard lock(mu_);
    state_ = state::idle;
    queued_.clear();
    failed.swap(pending_);
  }
  log()->warn("cluster node {}: connect failed: {}", node_, reason);
  fail_all(failed, "connect to cluster node " + node_ + " failed: " + reason);
}

void sender::on_closed(const std::string& reason) {
  std::unordered_map<std::uint32_t, actor::reply_route> failed;
  {
    std::lock_guard lock(mu_);
    state_ = state::idle;
    queued_.clear();
    failed.swap(pending_);
  }
  if (!failed.empty()) log()->warn("cluster node {}: connection lost ({}), {} calls fail", node_, reason, failed.size());
  fail_all(failed, "connection to cluster node " + node_ + " lost: " + reason);
}

void sender::fail_all(std::unordered_map<std::uint32_t, actor::reply_route>& calls, const std::string& why) {
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
    std::unordered_map<std::uint32_t, actor::reply_route> failed;
    {
      std::lock_guard lock(mu_);
      state_ = state::idle;
      queued_.clear();
      failed.swap(pending_);
      t_.close(reason);
    }
    fail_all(failed, "connection to cluster node " + node_ + " lost: " + reason);
  };
  auto f = wire::decode_response_frame(body);
  if (!f) {
    log()->error("cluster node {}: bad response frame, closing: {}", node_, f.error().message());
    drop_connection("bad response frame: " + f.error().message());
    return;
  }
  wire::response_event ev;
  actor::reply_route route{};
  bool found = false;
  {
    std::lock_guard lock(mu_);
    ev = responses_.push(*f);
    if (ev.what != wire::response_event::kind::response) {
      if (ev.what == wire::response_event::kind::fatal) {
        // closing below, outside the lock
      } else {
        if (ev.what == wire::response_event::kind::dropped) log()->warn("cluster node {}: {}", node_, ev.reason);
        return;
      }
    } else {
      auto it = pending_.find(ev.message.session);
      if (it != pending_.end()) {
        route = it->second;
        pending_.erase(it);
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

}  // namespace csk::cluster
