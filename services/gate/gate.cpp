#include "services/gate/gate.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"

namespace csk::gate {

void framing::frame(byte_buffer& out, bytes_view body) const {
  if (body.size() > net::length16_max_body) {
    throw std::length_error("gate: body of " + std::to_string(body.size()) + " bytes does not fit a 2-byte length");
  }
  out.push_back(static_cast<std::uint8_t>(body.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(body.size() & 0xff));
  out.insert(out.end(), body.begin(), body.end());
}

namespace detail {

/// Everything the net layer's hooks and the service share. It is the net handler of
/// every connection of the gate, so it lives as long as the last of them.
///
/// Events reach the service as sends/calls carrying {marker, token}; the payload stays
/// here under the token (bytes are never copied into Lua values, and nobody outside can
/// forge an event: a message must carry this object's address and a live token).
///
/// Locking: mu guards conns, msgs, events and next_token. net::send/pause/resume are
/// called with mu held (they take only the connection's own lock and post to its
/// thread; no net hook is waited for), which keeps one connection's answers in order
/// across runtime threads.
struct gate_state final : net::handler {
  struct conn_state {
    bool accepted = false;        // counts against max_connections
    std::size_t in_flight = 0;    // messages handed to the service, not finished
    bool paused = false;          // reading paused by us at max_in_flight
    std::uint64_t next_seq = 0;   // sequence number of the next message
    std::uint64_t next_out = 0;   // sequence number of the next answer to write
    std::map<std::uint64_t, std::optional<byte_buffer>> done;  // finished, waiting for earlier ones
    std::optional<std::uint64_t> close_at;  // close_after_answers: once next_out reaches it
    std::string close_reason;
  };
  struct pending_message {
    conn_id id = 0;
    std::uint64_t seq = 0;
    byte_buffer body;
    std::optional<byte_buffer> answer;
  };
  enum class event_kind : std::uint8_t { accept, connect, close };
  struct pending_event {
    event_kind kind{};
    conn_id id = 0;
    std::string text;  // peer, or the close reason
  };

  gate_state(net::net* n, std::optional<gate_options> o, std::shared_ptr<const framing> f)
      : net(n), opts(o.value_or(gate_options{})), configured(o.has_value()), frames(std::move(f)) {
    if (!frames) frames = std::make_shared<framing>();
    if (opts.max_in_flight == 0) opts.max_in_flight = 1;
  }

  // -- net hooks (net threads) -------------------------------------------------------

  void on_accept(conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu);
    if (closed) {
      net->close(id, "gate closed", false);
      return;
    }
    if (accepted_open >= opts.max_connections) {
      ++refused;
      net->close(id, "too many connections (max " + std::to_string(opts.max_connections) + ")", false);
      return;
    }
    ++accepted_open;
    ++accepted;
    conns[id].accepted = true;
    post_event(event_kind::accept, id, peer);
  }

  void on_connect(conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu);
    ++connected;
    conns[id];
    post_event(event_kind::connect, id, peer);
  }

  net::unpack_result unpack(conn_id, bytes_view buffered) override { return frames->unpack(buffered); }

  void on_message(conn_id id, bytes_view body) override {
    std::uint64_t token = 0;
    {
      std::lock_guard lock(mu);
      auto it = conns.find(id);
      if (closed || it == conns.end()) return;
      conn_state& c = it->second;
      token = next_token++;
      msgs.emplace(token, pending_message{id, c.next_seq++, byte_buffer(body.begin(), body.end()), std::nullopt});
      ++messages;
      if (++c.in_flight >= opts.max_in_flight && !c.paused) {
        c.paused = true;
        ++pauses;
        net->pause_reading(id);  // from our own hook: no further message before resume
      }
    }
    rt->call(self, actor::values{marker(), static_cast<std::int64_t>(token)}, opts.message_timeout,
             [s = shared(), token](actor::call_result r) { s->finish(token, std::move(r)); });
  }

  void on_close(conn_id id, const std::string& reason) override {
    std::lock_guard lock(mu);
    auto it = conns.find(id);
    if (it == conns.end()) return;  // refused, or never announced
    if (it->second.accepted) --accepted_open;
    conns.erase(it);
    post_event(event_kind::close, id, reason);
  }

  // -- completions (runtime threads) -------------------------------------------------

  /// One message's handler finished (or failed, or timed out): write every answer of
  /// its connection that is now next in order.
  void finish(std::uint64_t token, actor::call_result r) {
    std::lock_guard lock(mu);
    auto m = msgs.find(token);
    if (m == msgs.end()) return;
    const conn_id id = m->second.id;
    const std::uint64_t seq = m->second.seq;
    std::optional<byte_buffer> answer;
    if (r) {
      answer = std::move(m->second.answer);
    } else {
      ++failures;
      logger("service")->warn("gate {}: conn {}: message {} failed: {}", actor::handle_string(self), id, seq,
                              r.error().text);
    }
    msgs.erase(m);
    auto it = conns.find(id);
    if (it == conns.end()) return;  // closed meanwhile: the answer has nowhere to go
    conn_state& c = it->second;
    --c.in_flight;
    c.done.emplace(seq, std::move(answer));
    byte_buffer out;
    while (!c.done.empty() && c.done.begin()->first == c.next_out) {
      if (auto& a = c.done.begin()->second) {
        try {
          frames->frame(out, *a);
          ++answers;
        } catch (const std::exception& e) {
          logger("service")->warn("gate {}: conn {}: answer to message {} dropped: {}", actor::handle_string(self), id,
                                  c.next_out, e.what());
        }
      }
      c.done.erase(c.done.begin());
      ++c.next_out;
    }
    if (!out.empty()) net->send(id, std::move(out));
    if (close_if_answered(id, c)) return;
    if (c.paused && !c.close_at && c.in_flight < opts.max_in_flight) {
      c.paused = false;
      net->resume_reading(id);
    }
  }

  // -- helpers (mu held) -------------------------------------------------------------

  bool close_if_answered(conn_id id, const conn_state& c) {
    if (!c.close_at || c.next_out < *c.close_at) return false;
    net->close(id, c.close_reason, true);
    return true;
  }

  void post_event(event_kind k, conn_id id, std::string text) {
    const std::uint64_t token = next_token++;
    events.emplace(token, pending_event{k, id, std::move(text)});
    if (!rt->send(self, actor::values{marker(), static_cast<std::int64_t>(token)})) events.erase(token);
  }

  lua_value marker() const { return lua_value::light_userdata(reinterpret_cast<std::uintptr_t>(this)); }
  bool is_event(const actor::message& m) const {
    return m.source == 0 && m.args.size() == 2 && m.args[0].is_light_userdata() &&
           m.args[0].as_light_userdata() == reinterpret_cast<std::uintptr_t>(this) && m.args[1].is_integer();
  }
  std::shared_ptr<gate_state> shared() { return std::static_pointer_cast<gate_state>(shared_from_this_()); }

  // The net holds handlers as shared_ptr<handler>; we keep a weak self for callbacks.
  std::shared_ptr<net::handler> shared_from_this_() { return self_ref.lock(); }

  net::net* net;      // set by the constructor or by init (the runtime's net extension)
  gate_options opts;  // fixed once init has run
  bool configured;    // opts came from the constructor (else from init's args[0])
  std::shared_ptr<const framing> frames;
  std::weak_ptr<net::handler> self_ref;
  actor::runtime* rt = nullptr;  // set by init, before any connection
  actor::handle_t self = 0;      // set by init
  net::listener_id listener = 0;
  std::uint16_t port = 0;

  mutable std::mutex mu;
  bool closed = false;
  std::unordered_map<conn_id, conn_state> conns;
  std::unordered_map<std::uint64_t, pending_message> msgs;
  std::unordered_map<std::uint64_t, pending_event> events;
  std::uint64_t next_token = 1;
  std::size_t accepted_open = 0;
  // stats (mu)
  std::uint64_t accepted = 0, refused = 0, connected = 0, messages = 0, answers = 0, failures = 0, pauses = 0;
};

}  // namespace detail

gate_service::gate_service(net::net& n, gate_options o, std::shared_ptr<const framing> f)
    : state_(std::make_shared<detail::gate_state>(&n, std::move(o), std::move(f))) {
  state_->self_ref = state_;
}

gate_service::gate_service(std::shared_ptr<const framing> f)
    : state_(std::make_shared<detail::gate_state>(nullptr, std::nullopt, std::move(f))) {
  state_->self_ref = state_;
}

gate_service::~gate_service() = default;

void gate_service::init(actor::context& ctx, const actor::values& args) {
  auto& s = *state_;
  s.rt = &ctx.rt();
  s.self = ctx.self();
  if (s.net == nullptr) s.net = ctx.rt().extension<net::net>();
  if (s.net == nullptr) throw std::runtime_error("gate: this node has no net (runtime extension net::net)");
  actor::values rest = args;
  if (!s.configured) {
    auto o = gate_options_from(args.empty() ? lua_value{} : args[0]);
    if (!o) throw std::runtime_error(o.error());
    s.opts = std::move(*o);
    if (s.opts.max_in_flight == 0) s.opts.max_in_flight = 1;
    if (!rest.empty()) rest.erase(rest.begin());
  }
  on_init(ctx, rest);
  if (!s.opts.listen) return;
  net::conn_options co;
  co.max_outbound_bytes = s.opts.max_outbound_bytes;
  co.pause_reading_above = s.opts.max_outbound_bytes / 4;
  co.max_message = s.opts.max_message;
  co.idle_timeout = s.opts.idle_timeout;
  auto id = s.opts.adopt_fd >= 0 ? s.net->adopt_listener(s.opts.adopt_fd, state_, co)
                                 : s.net->listen(s.opts.host, s.opts.port, state_, co);
  if (!id) throw std::runtime_error("gate: " + id.error());
  s.listener = *id;
  s.port = s.net->local_port(*id);
  logger("service")->info("gate {}: listening on port {}", actor::handle_string(s.self), s.port);
}

void gate_service::stop(actor::context& /*ctx*/) {
  std::vector<conn_id> open;
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
    for (const auto& [id, c] : state_->conns) open.push_back(id);
  }
  if (state_->listener != 0) state_->net->close_listener(state_->listener);
  for (const conn_id id : open) state_->net->close(id, "gate stopped", true);
}

actor::task<actor::values> gate_service::handle(actor::context& ctx, actor::message& msg) {
  auto& s = *state_;
  if (!s.is_event(msg)) co_return co_await on_request(ctx, msg);
  const auto token = static_cast<std::uint64_t>(msg.args[1].as_integer());
  std::optional<detail::gate_state::pending_event> ev;
  {
    std::lock_guard lock(s.mu);
    if (auto it = s.events.find(token); it != s.events.end()) {
      ev = std::move(it->second);
      s.events.erase(it);
    }
  }
  if (!ev) co_return co_await run_message(ctx, token);
  switch (ev->kind) {
    case detail::gate_state::event_kind::accept: on_accept(ctx, ev->id, ev->text); break;
    case detail::gate_state::event_kind::connect: on_connect(ctx, ev->id, ev->text); break;
    case detail::gate_state::event_kind::close: on_close(ctx, ev->id, ev->text); break;
  }
  co_return actor::values{};
}

actor::task<actor::values> gate_service::run_message(actor::context& ctx, std::uint64_t token) {
  auto& s = *state_;
  conn_id id = 0;
  byte_buffer body;
  {
    std::lock_guard lock(s.mu);
    auto it = s.msgs.find(token);
    if (it == s.msgs.end()) co_return actor::values{};  // timed out or closed before we started
    id = it->second.id;
    body = std::move(it->second.body);
  }
  auto answer = co_await on_message(ctx, id, std::move(body));  // a throw fails the call: finish() logs it
  {
    std::lock_guard lock(s.mu);
    if (auto it = s.msgs.find(token); it != s.msgs.end()) it->second.answer = std::move(answer);
  }
  co_return actor::values{};
}

actor::task<actor::values> gate_service::on_request(actor::context& /*ctx*/, actor::message& msg) {
  const std::string cmd = !msg.args.empty() && msg.args[0].is_string() ? msg.args[0].as_string() : "?";
  throw std::runtime_error("gate: unknown command " + cmd);
  co_return actor::values{};
}

bool gate_service::send(conn_id id, bytes_view body) {
  byte_buffer out;
  try {
    state_->frames->frame(out, body);
  } catch (const std::exception& e) {
    logger("service")->warn("gate {}: conn {}: push dropped: {}", actor::handle_string(state_->self), id, e.what());
    return false;
  }
  return state_->net->send(id, std::move(out));
}

void gate_service::close(conn_id id, std::string reason, bool flush) { state_->net->close(id, std::move(reason), flush); }

void gate_service::close_after_answers(conn_id id, std::string reason) {
  std::lock_guard lock(state_->mu);
  auto it = state_->conns.find(id);
  if (it == state_->conns.end()) return;
  auto& c = it->second;
  c.close_at = c.next_seq;
  c.close_reason = std::move(reason);
  c.paused = true;  // never resumed: nothing after this point is read
  state_->net->pause_reading(id);
  state_->close_if_answered(id, c);
}

conn_id gate_service::connect(const std::string& host, std::uint16_t port) {
  net::conn_options co;
  co.max_outbound_bytes = state_->opts.max_outbound_bytes;
  co.pause_reading_above = state_->opts.max_outbound_bytes / 4;
  co.max_message = state_->opts.max_message;
  co.idle_timeout = state_->opts.idle_timeout;
  auto s = state_;
  return state_->net->connect(host, port, state_, co, [s, host, port](conn_id id, std::error_code ec) {
    if (id != 0) return;
    logger("service")->warn("gate {}: connect {}:{} failed: {}", actor::handle_string(s->self), host, port,
                             ec.message());
  });
}

std::uint16_t gate_service::port() const noexcept { return state_->port; }

gate_stats gate_service::stats() const {
  std::lock_guard lock(state_->mu);
  const auto& s = *state_;
  gate_stats out;
  out.accepted = s.accepted;
  out.refused = s.refused;
  out.connected = s.connected;
  out.open = s.conns.size();
  out.messages = s.messages;
  out.answers = s.answers;
  out.failures = s.failures;
  out.pauses = s.pauses;
  return out;
}

std::size_t gate_service::in_flight(conn_id id) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->conns.find(id);
  return it == state_->conns.end() ? 0 : it->second.in_flight;
}

result<gate_options, std::string> gate_options_from(const lua_value& v) {
  gate_options o;
  if (v.is_nil()) return o;
  if (!v.is_table()) return unexpected(std::string("gate options: expected a table"));
  const auto& t = v.as_table();
  if (!t.array.empty()) return unexpected(std::string("gate options: expected key = value pairs only"));
  auto count = [&](const std::string& key, const lua_value& val, auto& out, std::int64_t min,
                   std::int64_t max) -> std::optional<std::string> {
    if (!val.is_integer() || val.as_integer() < min || val.as_integer() > max) {
      return "gate options: " + key + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max);
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(val.as_integer());
    return std::nullopt;
  };
  for (const auto& [k, val] : t.hash) {
    if (!k.is_string()) return unexpected(std::string("gate options: keys must be strings"));
    const std::string& key = k.as_string();
    std::optional<std::string> err;
    std::int64_t ms = 0;
    std::int64_t kb = 0;
    if (key == "listen") {
      if (!val.is_string()) return unexpected(std::string("gate options: listen must be \"host:port\""));
      auto hp = parse_host_port(val.as_string(), true);
      if (!hp) return unexpected("gate options: bad listen address " + val.as_string());
      o.host = hp->host;
      o.port = hp->port;
    } else if (key == "fd") {
      std::int64_t fd = -1;
      err = count(key, val, fd, 0, 1 << 30);
      o.adopt_fd = static_cast<int>(fd);
    } else if (key == "max_connections") {
      err = count(key, val, o.max_connections, 1, 1'000'000);
    } else if (key == "max_in_flight") {
      err = count(key, val, o.max_in_flight, 1, 1'000'000);
    } else if (key == "max_outbound_kb") {
      err = count(key, val, kb, 1, 1 << 21);
      o.max_outbound_bytes = static_cast<std::size_t>(kb) << 10;
    } else if (key == "idle_timeout_ms") {
      err = count(key, val, ms, 0, 1LL << 40);
      o.idle_timeout = std::chrono::milliseconds(ms);
    } else if (key == "max_message") {
      err = count(key, val, o.max_message, 1, 1LL << 31);
    } else if (key == "message_timeout_ms") {
      err = count(key, val, ms, 0, 1LL << 40);
      o.message_timeout = std::chrono::milliseconds(ms);
    } else {
      return unexpected("gate options: unknown key " + key);
    }
    if (err) return unexpected(std::move(*err));
  }
  return o;
}

}  // namespace csk::gate
