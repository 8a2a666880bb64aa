#include "services/gate/gate.hpp"

#include "services/gate/directory.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <future>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/base/random_key.hpp"
#include "common/config/gate_options.hpp"
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

namespace {

std::string errno_text(int e) { return std::system_category().message(e); }

/// A bound, listening TCP socket for host:port (SO_REUSEADDR, CLOEXEC), as net::listen
/// would make it; the gate keeps it and gives the net a dup (see gate_state::spare).
unique_fd bind_listener(const std::string& host, std::uint16_t port) {
  const std::string where = "gate: listen " + host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = host.empty() ? AF_INET : AF_UNSPEC;  // "" = 0.0.0.0
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found); e != 0) {
    throw std::runtime_error(where + ": cannot resolve " + host + ": " + ::gai_strerror(e));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, ::freeaddrinfo);
  unique_fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) throw std::runtime_error(where + ": socket: " + errno_text(errno));
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
    throw std::runtime_error(where + ": " + errno_text(errno));
  }
  return fd;
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

/// Why `fd` cannot be a gate's listening socket ("" if it can).
std::string not_a_listener(int fd) {
  int type = 0;
  int accepting = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return errno_text(errno);
  if (type != SOCK_STREAM) return "not a stream socket";
  len = sizeof(accepting);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || accepting == 0) return "not listening";
  return {};
}

const char* const handover_verbs = "freeze, in_flight, detach, resume, adopt, start";

}  // namespace

namespace detail {

/// Everything the net layer's hooks and the service share. It is the net handler of
/// every connection of the gate, so it lives as long as the last of them.
///
/// Events reach the service as sends/calls carrying {marker, token}; the payload stays
/// here under the token (bytes are never copied into Lua values, and nobody outside can
/// forge an event: a message must carry this object's address and a live token).
///
/// Locking: mu guards conns, msgs, events, next_token and the hand-over flags.
/// net::send/pause/resume/adopt_connection are called with mu held (they take only the
/// connection's own lock or the registry's and post to its thread; no net hook is
/// waited for), which keeps one connection's answers in order across runtime threads.
/// net::close_listener and adopt_listener are called without it (close_listener waits
/// for the listener's net thread, whose on_accept takes mu).
///
/// Hand-over: while `frozen` (freeze .. resume) or `standby` (spawned so .. start), every
/// connection is paused (net::pause_reading) and nothing resumes it: finish() leaves
/// c.paused connections alone, and new connections are paused as they come.
struct gate_state final : net::handler {
  struct conn_state {
    bool accepted = false;        // counts against max_connections
    bool outgoing = false;        // made by connect() (handed over as such)
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
  enum class event_kind : std::uint8_t { accept, connect, close, adopt };
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
    if (held()) net->pause_reading(id);  // frozen: read nothing (from our hook: before any message)
    post_event(event_kind::accept, id, peer);
  }

  void on_connect(conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu);
    if (closed) {
      net->close(id, "gate closed", false);
      return;
    }
    ++connected;
    conns[id].outgoing = true;
    if (held()) net->pause_reading(id);
    post_event(event_kind::connect, id, peer);
  }

  /// Only the gate's own "__handover", "adopt" uses this handler for adopt_connection,
  /// and it holds mu until the connection's state is in place: announce it.
  void on_adopt(conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu);
    if (closed || conns.count(id) == 0) {
      net->close(id, "gate closed", false);
      return;
    }
    post_event(event_kind::adopt, id, peer);
  }

  /// The net thread's last word before the socket leaves: reading has stopped at a
  /// message boundary, so nothing can come in after this check.
  std::string before_detach(conn_id id) override {
    std::lock_guard lock(mu);
    auto it = conns.find(id);
    if (it == conns.end()) return "not a connection of this gate";
    const std::size_t n = it->second.in_flight + it->second.done.size();
    if (n != 0) return std::to_string(n) + " message(s) in flight";
    return {};
  }

  /// Detached: the connection leaves without on_close.
  void on_detach(conn_id id) override {
    std::lock_guard lock(mu);
    auto it = conns.find(id);
    if (it == conns.end()) return;
    if (it->second.accepted) --accepted_open;
    conns.erase(it);
    ++detached;
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
      held_bytes += message_charge(body.size());
      if (memory_budget* b = rt->options().budget) b->charge(message_charge(body.size()));
      ++messages;
      if (++c.in_flight >= opts.max_in_flight && !c.paused) {
        c.paused = true;
        ++pauses;
        net->pause_reading(id);  // from our own hook: no further message before resume
      }
    }
    rt->call(self, actor::values{marker(), static_cast<std::int64_t>(token)}, opts.message_timeout,
             [s = shared(), token](actor::call_result r) { s->finish(token, std::move(r)); });
    push_back(id);
  }

  /// Back-pressure after a delivery (net thread of `id`): the gate's mailbox past
  /// mailbox_high, or the node's memory budget past its high mark, pause this connection
  /// (pause_reason bits of their own: the gate's in-flight pauses and freezes are not
  /// touched) until the mailbox drains to mailbox_low or the budget to its low mark.
  void push_back(conn_id id) {
    std::weak_ptr<net::handler> w = self_ref;
    const auto resume = [w, id](net::pause_reason why) {
      if (auto h = w.lock()) static_cast<gate_state&>(*h).net->resume_reading(id, why);
    };
    if (rt->mailbox_full(self)) {
      mailbox_pauses.fetch_add(1, std::memory_order_relaxed);
      net->pause_reading(id, net::pause_reason::mailbox);
      rt->when_mailbox_drains(self, [resume] { resume(net::pause_reason::mailbox); });
    }
    memory_budget* b = rt->options().budget;
    if (b != nullptr && b->over()) {
      memory_pauses.fetch_add(1, std::memory_order_relaxed);
      net->pause_reading(id, net::pause_reason::memory);
      b->when_below_low([resume] { resume(net::pause_reason::memory); });
    }
  }

  /// A message's bytes, held from its arrival until its handler finishes.
  static std::size_t message_charge(std::size_t body) { return body + sizeof(pending_message) + 64; }

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
    held_bytes -= message_charge(m->second.body.size());
    if (memory_budget* b = rt->options().budget) b->release(message_charge(m->second.body.size()));
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
    if (c.paused && !c.close_at && c.in_flight < opts.max_in_flight && !held()) {
      c.paused = false;
      net->resume_reading(id);
    }
  }

  // -- helpers (mu held) -------------------------------------------------------------

  /// Reading is held on every connection (a freeze, or standby before "start").
  bool held() const { return frozen || standby; }

  /// Messages received and not yet answered, all connections.
  std::size_t unanswered() const {
    std::size_t n = 0;
    for (const auto& [id, c] : conns) n += c.in_flight + c.done.size();
    return n;
  }

  /// The end of a freeze/standby: every connection reads again, except those paused at
  /// max_in_flight (finish() resumes them) or closing after their answers.
  void release_held() {
    for (auto& [id, c] : conns) {
      if (c.close_at || c.in_flight >= opts.max_in_flight) continue;
      c.paused = false;
      net->resume_reading(id);
    }
  }

  net::conn_options conn_options() const {
    net::conn_options co;
    co.max_outbound_bytes = opts.max_outbound_bytes;
    co.pause_reading_above = opts.max_outbound_bytes / 4;
    co.max_message = opts.max_message;
    co.idle_timeout = opts.idle_timeout;
    co.budget = rt != nullptr ? rt->options().budget : nullptr;
    return co;
  }

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
  net::listener_id listener = 0;  // service thread; 0 = not accepting
  std::uint16_t port = 0;
  /// The gate's own copy of its listening socket (bound by the gate or adopted): the
  /// net's listener is a dup of it, so a freeze can close the listener and a resume (or
  /// "start") reopen it. Service thread; closed by stop().
  unique_fd spare;

  mutable std::mutex mu;
  bool closed = false;
  bool frozen = false;     // "__handover", "freeze" .. "resume"
  bool standby = false;    // gate_options::standby, until "__handover", "start"
  bool detaching = false;  // a "__handover", "detach" is waiting for the net
  std::unordered_map<conn_id, conn_state> conns;
  std::unordered_map<std::uint64_t, pending_message> msgs;
  std::unordered_map<std::uint64_t, pending_event> events;
  std::uint64_t next_token = 1;
  std::size_t accepted_open = 0;
  // stats (mu)
  std::uint64_t accepted = 0, refused = 0, connected = 0, messages = 0, answers = 0, failures = 0, pauses = 0;
  std::uint64_t detached = 0, adopted = 0;
  std::atomic<std::uint64_t> mailbox_pauses{0}, memory_pauses{0};  // any thread
  std::size_t held_bytes = 0;  // mu: message bodies held until answered (message_charge each)
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

gate_service::~gate_service() { leave_directory(); }

void gate_service::leave_directory() {
  if (state_->rt == nullptr) return;
  if (auto* d = state_->rt->extension<directory>()) d->remove(state_->self);
}

void gate_service::init(actor::context& ctx, const actor::values& args) {
  auto& s = *state_;
  s.rt = &ctx.rt();
  s.self = ctx.self();
  if (s.net == nullptr) s.net = ctx.rt().extension<net::net>();
  if (s.net == nullptr) throw std::runtime_error("gate: this node has no net (runtime extension net::net)");
  if (auto* d = ctx.rt().extension<directory>()) d->add(s.self, this);
  actor::values rest = args;
  if (!s.configured) {
    auto o = gate_options_from(args.empty() ? lua_value{} : args[0]);
    if (!o) throw std::runtime_error(o.error());
    s.opts = std::move(*o);
    if (s.opts.max_in_flight == 0) s.opts.max_in_flight = 1;
    if (!rest.empty()) rest.erase(rest.begin());
  }
  on_init(ctx, rest);
  {
    std::lock_guard lock(s.mu);
    s.standby = s.opts.standby;
  }
  if (!s.opts.listen) return;
  // The gate keeps the listening socket itself and lends the net a dup (see spare).
  unique_fd own;
  if (s.opts.adopt_fd >= 0) {
    if (auto why = not_a_listener(s.opts.adopt_fd); !why.empty()) {
      throw std::runtime_error("gate: adopt listener fd " + std::to_string(s.opts.adopt_fd) + ": " + why);
    }
    own.reset(s.opts.adopt_fd);
  } else {
    own = bind_listener(s.opts.host, s.opts.port);
  }
  s.spare = std::move(own);
  s.port = bound_port(s.spare.get());
  if (s.opts.standby) {
    logger("service")->info("gate {}: standby on port {} (accepting after \"start\")", actor::handle_string(s.self),
                            s.port);
    return;
  }
  try {
    start_listening();
  } catch (...) {
    if (s.opts.adopt_fd >= 0) (void)s.spare.release();  // a failed init leaves the fd the caller's
    s.spare.reset();
    throw;
  }
  logger("service")->info("gate {}: listening on port {}", actor::handle_string(s.self), s.port);
}

void gate_service::start_listening() {
  auto& s = *state_;
  if (!s.spare || s.listener != 0) return;
  unique_fd copy(::fcntl(s.spare.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) throw std::runtime_error("gate: dup of the listening socket: " + errno_text(errno));
  auto id = s.net->adopt_listener(copy.get(), state_, s.conn_options());
  if (!id) throw std::runtime_error("gate: " + id.error());  // copy is still ours: closed here
  (void)copy.release();  // the net's now
  s.listener = *id;
}

void gate_service::stop(actor::context& /*ctx*/) {
  leave_directory();
  std::vector<conn_id> open;
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
    for (const auto& [id, c] : state_->conns) open.push_back(id);
  }
  if (state_->listener != 0) state_->net->close_listener(state_->listener);
  state_->listener = 0;
  state_->spare.reset();  // frozen or in standby: the only copy the gate had
  // Frozen connections too: a close flushes what is queued whatever the read pause.
  for (const conn_id id : open) state_->net->close(id, "gate stopped", true);
}

actor::task<actor::values> gate_service::handle(actor::context& ctx, actor::message& msg) {
  auto& s = *state_;
  if (!s.is_event(msg)) {
    if (!msg.args.empty() && msg.args[0].is_string()) {
      const std::string& first = msg.args[0].as_string();
      if (first == handover_key()) co_return co_await handover(ctx, msg);
      if (first == "__handover" || first.starts_with("__handover:")) {
        throw std::runtime_error("gate " + actor::handle_string(s.self) +
                                 ": hand-over messages need this process's key (only the upgrade sends them)");
      }
    }
    co_return co_await on_request(ctx, msg);
  }
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
    case detail::gate_state::event_kind::adopt: on_adopt(ctx, ev->id, ev->text); break;
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

// -- hand-over ------------------------------------------------------------------------

actor::task<actor::values> gate_service::handover(actor::context& ctx, actor::message& msg) {
  auto& s = *state_;
  const auto& a = msg.args;
  const std::string verb = a.size() >= 2 && a[1].is_string() ? a[1].as_string() : std::string();
  const std::string who = "gate " + actor::handle_string(s.self) + ": __handover " + verb;
  if (verb == "adopt") co_return handover_adopt(msg);  // first: it owns an fd, whatever else is wrong
  if (verb == "detach") {
    // A send has nobody to take the fds: refuse before anything leaves.
    if (msg.type != actor::msg_type::call) throw std::runtime_error(who + ": must be a call (the reply owns fds)");
    if (a.size() != 3 || !a[2].is_integer() || a[2].as_integer() < 1 || a[2].as_integer() > 3'600'000) {
      throw std::runtime_error(who + ": expected a timeout in ms (1..3600000)");
    }
    co_return co_await handover_detach(ctx, a[2].as_integer());
  }
  if (verb != "freeze" && verb != "in_flight" && verb != "resume" && verb != "start") {
    throw std::runtime_error("gate " + actor::handle_string(s.self) + ": __handover: expected a verb (" +
                             handover_verbs + ")" + (verb.empty() ? std::string() : ", not " + verb));
  }
  if (a.size() != 2) throw std::runtime_error(who + ": takes no arguments");

  if (verb == "in_flight") {
    std::lock_guard lock(s.mu);
    co_return actor::values{static_cast<std::int64_t>(s.unanswered())};
  }
  net::listener_id to_close = 0;
  bool open_listener = false;
  std::vector<conn_id> paused;
  {
    std::lock_guard lock(s.mu);
    if (s.closed) throw std::runtime_error(who + ": the gate is stopped");
    if (s.detaching) throw std::runtime_error(who + ": a detach is in progress");
    if (verb == "freeze") {
      if (!s.frozen) {
        s.frozen = true;
        for (const auto& [id, c] : s.conns) {
          s.net->pause_reading(id);
          paused.push_back(id);
        }
        to_close = std::exchange(s.listener, 0);
      }
    } else if (verb == "resume") {
      if (s.frozen) {
        s.frozen = false;
        if (!s.standby) {
          s.release_held();
          open_listener = s.opts.listen;
        }
      }
    } else {  // start
      if (s.standby) {
        s.standby = false;
        if (!s.frozen) {
          s.release_held();
          open_listener = s.opts.listen;
        }
      }
    }
  }
  // Without mu: close_listener waits for the listener's net thread (its on_accept locks mu).
  if (to_close != 0) s.net->close_listener(to_close);
  if (!paused.empty()) {
    // The barrier: once each connection's net thread has passed it, the message it was
    // delivering at the pause (if any) is counted by in_flight (without mu: the net
    // threads' hooks lock it).
    if (!s.net->barrier(paused, std::chrono::seconds(5))) {
      logger("service")->warn("gate {}: __handover freeze: a net thread did not answer within 5 s",
                              actor::handle_string(s.self));
    }
  }
  if (open_listener) start_listening();  // throws: an error reply (the connections read again)
  logger("service")->info("gate {}: __handover {}: {} connection(s){}", actor::handle_string(s.self), verb,
                          stats().open, s.listener != 0 ? ", accepting" : ", not accepting");
  (void)ctx;
  co_return actor::values{};
}

actor::task<actor::values> gate_service::handover_detach(actor::context& ctx, std::int64_t timeout_ms) {
  auto& s = *state_;
  const std::string who = "gate " + actor::handle_string(s.self) + ": __handover detach";
  std::vector<conn_id> ids;
  {
    std::lock_guard lock(s.mu);
    if (s.closed) throw std::runtime_error(who + ": the gate is stopped");
    if (s.detaching) throw std::runtime_error(who + ": a detach is in progress");
    if (!s.frozen) throw std::runtime_error(who + ": freeze first");
    if (const auto n = s.unanswered(); n != 0) {
      throw std::runtime_error(who + ": " + std::to_string(n) + " message(s) in flight: wait for in_flight == 0");
    }
    for (const auto& [id, c] : s.conns) {
      if (!c.close_at) ids.push_back(id);  // closing after its answers (all given): it goes
    }
    s.detaching = true;
  }
  std::sort(ids.begin(), ids.end());

  // Every detach's outcome, gathered on the net threads; the last one answers the route.
  struct outcome {
    conn_id id = 0;
    bool outgoing = false;
    result<net::detached_connection, std::string> r = unexpected(std::string("not finished"));
  };
  struct gathering {
    std::mutex mu;
    std::vector<outcome> outcomes;
    std::size_t left = 0;
  };
  auto g = std::make_shared<gathering>();
  g->left = ids.size();
  {
    std::lock_guard lock(s.mu);
    // Built in place (reserved: never moved): GCC 12 at -O2 warns, wrongly, that a moved
    // temporary's result may be uninitialized.
    g->outcomes.reserve(ids.size());
    for (const conn_id id : ids) {
      auto it = s.conns.find(id);
      outcome& o = g->outcomes.emplace_back();
      o.id = id;
      o.outgoing = it != s.conns.end() && it->second.outgoing;
    }
  }
  if (!ids.empty()) {
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    actor::runtime* rt = s.rt;
    net::net* n = s.net;
    auto op = ctx.call_via(
        [g, ids, timeout, rt, n](actor::reply_route route) {
          for (std::size_t i = 0; i < ids.size(); ++i) {
            n->detach(ids[i], timeout, [g, i, rt, route](result<net::detached_connection, std::string> r) {
              bool last = false;
              {
                std::lock_guard lock(g->mu);
                g->outcomes[i].r = std::move(r);
                last = --g->left == 0;
              }
              if (last) rt->complete(route, actor::values{});
            });
          }
        },
        // Each detach ends within its timeout (the flush) plus a step on its net thread.
        std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(30));
    auto done = co_await op;
    if (!done) {
      // Not expected (the net answers every detach); the late ones close when g goes.
      std::lock_guard lock(s.mu);
      s.detaching = false;
      throw std::runtime_error(who + ": " + done.error().text);
    }
  }

  std::vector<outcome> outcomes;
  {
    std::lock_guard lock(g->mu);
    outcomes = std::move(g->outcomes);
  }
  std::vector<std::string> failures;
  std::size_t dropped = 0;
  {
    std::lock_guard lock(s.mu);
    s.detaching = false;
    for (auto& o : outcomes) {
      if (o.r) continue;
      const std::string& e = o.r.error();
      const bool closing = s.conns.count(o.id) == 0 ||  // on_close ran
                           e.ends_with(": closed") || e.ends_with(": closing") ||
                           e.find(": connection closed: ") != std::string::npos;
      if (closing) {
        ++dropped;  // not handed over: it gets (or got) its on_close
      } else {
        failures.push_back(e);
      }
    }
  }
  if (!failures.empty()) {
    // All or nothing: take back what left, so that the caller has no fd to look after
    // and the gate is as frozen as before (with new ids for the ones taken back).
    std::size_t back = 0;
    for (auto& o : outcomes) {
      if (!o.r) continue;
      auto& dc = *o.r;
      std::lock_guard lock(s.mu);
      auto id = s.closed ? result<conn_id, std::string>(unexpected(std::string("gate stopped")))
                         : s.net->adopt_connection(std::move(dc.fd), dc.unread, state_, s.conn_options());
      if (!id) {
        logger("service")->error("{}: conn {} ({}) lost: cannot take it back: {}", who, o.id, dc.peer, id.error());
        continue;  // dc.fd closes here: the peer sees a reset
      }
      auto& c = s.conns[*id];
      c.outgoing = o.outgoing;
      c.accepted = !o.outgoing;
      if (c.accepted) ++s.accepted_open;
      --s.detached;
      if (s.held()) s.net->pause_reading(*id);
      s.post_event(detail::gate_state::event_kind::close, o.id, "hand-over rolled back: now connection " +
                                                                   std::to_string(*id));
      ++back;
    }
    std::string text = who + ": " + std::to_string(failures.size()) + " connection(s) could not be detached (" +
                       failures.front() + "); " + std::to_string(back) +
                       " already detached were taken back; the gate stays frozen";
    throw std::runtime_error(text);
  }

  lua_table entries;
  for (auto& o : outcomes) {
    if (!o.r) continue;
    auto& dc = *o.r;
    lua_table e;
    e.set("fd", static_cast<std::int64_t>(dc.fd.release()));  // the reply owns it now
    e.set("unread", std::string(dc.unread.begin(), dc.unread.end()));
    e.set("peer", dc.peer);
    if (o.outgoing) e.set("outgoing", true);
    entries.array.emplace_back(std::move(e));
  }
  logger("service")->info("gate {}: __handover detach: {} connection(s) detached, {} closing dropped",
                          actor::handle_string(s.self), entries.array.size(), dropped);
  co_return actor::values{lua_value(std::move(entries))};
}

actor::values gate_service::handover_adopt(actor::message& msg) {
  auto& s = *state_;
  const auto& a = msg.args;
  const std::string who = "gate " + actor::handle_string(s.self) + ": __handover adopt";
  // The gate owns the fd from here: every failure below closes it.
  unique_fd fd;
  if (a.size() < 3 || !a[2].is_integer() || a[2].as_integer() < 0 || a[2].as_integer() > INT_MAX) {
    throw std::runtime_error(who + ": expected fd (an integer >= 0), unread (string), peer (string)[, outgoing]");
  }
  const int raw = static_cast<int>(a[2].as_integer());
  if (::fcntl(raw, F_GETFD) < 0) throw std::runtime_error(who + ": fd " + std::to_string(raw) + ": " + errno_text(errno));
  fd.reset(raw);
  if (a.size() < 5 || a.size() > 6 || !a[3].is_string() || !a[4].is_string() ||
      (a.size() == 6 && !a[5].is_boolean())) {
    throw std::runtime_error(who + ": expected fd (an integer >= 0), unread (string), peer (string)[, outgoing" +
                             " (boolean)]; fd " + std::to_string(raw) + " closed");
  }
  const std::string& unread = a[3].as_string();
  const std::string& peer = a[4].as_string();
  const bool outgoing = a.size() == 6 && a[5].as_boolean();
  const bytes_view bytes(reinterpret_cast<const std::uint8_t*>(unread.data()), unread.size());
  std::lock_guard lock(s.mu);  // on_adopt (net thread) waits until the state is in place
  if (s.closed) throw std::runtime_error(who + ": the gate is stopped; fd " + std::to_string(raw) + " closed");
  if (!outgoing && s.accepted_open >= s.opts.max_connections) {
    throw std::runtime_error(who + ": " + peer + ": too many connections (max " +
                             std::to_string(s.opts.max_connections) + "); fd " + std::to_string(raw) + " closed");
  }
  auto id = s.net->adopt_connection(std::move(fd), bytes, state_, s.conn_options());
  if (!id) throw std::runtime_error(who + ": " + id.error() + "; fd " + std::to_string(raw) + " closed");
  auto& c = s.conns[*id];
  c.outgoing = outgoing;
  c.accepted = !outgoing;
  if (c.accepted) ++s.accepted_open;
  ++s.adopted;
  if (s.held()) s.net->pause_reading(*id);  // before on_adopt delivers the unread bytes (it waits for mu)
  logger("service")->info("{}: {} is connection {} ({} unread bytes)", who, peer, *id, unread.size());
  return actor::values{static_cast<std::int64_t>(*id)};
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
  const auto co = state_->conn_options();
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
  out.detached = s.detached;
  out.adopted = s.adopted;
  out.mailbox_pauses = s.mailbox_pauses.load(std::memory_order_relaxed);
  out.memory_pauses = s.memory_pauses.load(std::memory_order_relaxed);
  out.held_bytes = s.held_bytes;
  for (const auto& [id, c] : s.conns) out.held_bytes += s.net->queued_bytes(id);
  return out;
}

std::size_t gate_service::in_flight(conn_id id) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->conns.find(id);
  return it == state_->conns.end() ? 0 : it->second.in_flight;
}

const std::string& handover_key() {
  static const std::string key = random_key("__handover:");
  return key;
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
    } else if (key == "max_connections") {  // ranges shared with the config loader
      err = count(key, val, o.max_connections, gate_limits::max_connections.min, gate_limits::max_connections.max);
    } else if (key == "max_in_flight") {
      err = count(key, val, o.max_in_flight, gate_limits::max_in_flight.min, gate_limits::max_in_flight.max);
    } else if (key == "max_outbound_kb") {
      err = count(key, val, kb, gate_limits::max_outbound_kb.min, gate_limits::max_outbound_kb.max);
      o.max_outbound_bytes = static_cast<std::size_t>(kb) << 10;
    } else if (key == "idle_timeout_ms") {
      err = count(key, val, ms, gate_limits::idle_timeout_ms.min, gate_limits::idle_timeout_ms.max);
      o.idle_timeout = std::chrono::milliseconds(ms);
    } else if (key == "max_message") {
      err = count(key, val, o.max_message, gate_limits::max_message.min, gate_limits::max_message.max);
    } else if (key == "message_timeout_ms") {
      err = count(key, val, ms, gate_limits::message_timeout_ms.min, gate_limits::message_timeout_ms.max);
      o.message_timeout = std::chrono::milliseconds(ms);
    } else if (key == "standby") {
      if (!val.is_boolean()) return unexpected(std::string("gate options: standby must be true or false"));
      o.standby = val.as_boolean();
    } else {
      return unexpected("gate options: unknown key " + key);
    }
    if (err) return unexpected(std::move(*err));
  }
  return o;
}

}  // namespace csk::gate
