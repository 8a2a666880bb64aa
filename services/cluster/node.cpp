#include "services/cluster/node.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <typeinfo>
#include <unordered_map>

#include "common/log/log.hpp"
#include "services/cluster/cluster.hpp"

namespace csk::cluster {
namespace {

std::shared_ptr<spdlog::logger> log() { return csk::logger("cluster"); }

net::conn_options conn_options_for(const node_options& o) {
  net::conn_options c;
  c.idle_timeout = o.idle_timeout;
  c.budget = o.budget;
  return c;
}

std::optional<endpoint> endpoint_of(const std::optional<cluster_node_address>& a) {
  if (!a) return std::nullopt;
  return endpoint{a->host, a->port};
}

/// skynet's clusterproxy: forwards every call and send to one remote address, through the
/// node attached to the runtime. Calls are answered with the remote reply (deferred, so
/// the proxy keeps serving while they are out); sends become pushes.
class proxy_service : public actor::service {
 public:
  proxy_service(std::string node_name, wire::target to) : node_(std::move(node_name)), to_(std::move(to)) {}

  actor::task<actor::values> handle(actor::context& ctx, actor::message& msg) override {
    node* n = node_of(ctx.rt());
    if (msg.type != actor::msg_type::call) {
      if (n == nullptr || !n->send(node_, to_, msg.args)) {
        log()->warn("cluster proxy {}: push to {} {} dropped", actor::handle_string(ctx.self()), node_, describe());
      }
      co_return actor::values{};
    }
    const actor::reply_token token = ctx.defer_reply();
    if (n == nullptr) {
      ctx.reply_error(token, std::string(not_configured));
      co_return actor::values{};
    }
    auto op = n->call(ctx, node_, to_, std::move(msg.args));
    auto r = co_await op;
    if (r) {
      ctx.reply(token, std::move(*r));
    } else {
      ctx.reply_error(token, std::move(r.error().text));
    }
    co_return actor::values{};
  }

 private:
  std::string describe() const { return to_.by_name ? to_.name : actor::handle_string(to_.address); }

  const std::string node_;
  const wire::target to_;
};

/// The proxy cache key of an address: ":0000000a" and 10 are the same service.
std::string address_key(const wire::target& to) {
  if (to.by_name && (to.name.size() != 9 || to.name[0] != ':')) return to.name;
  if (!to.by_name) return actor::handle_string(to.address);
  std::string key = to.name;
  for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return key;
}

}  // namespace

// ----------------------------------------------------------- outbound side --

/// One remote node: its sender and the connection (transport) the sender drives.
/// Net hooks arrive on the connection's net thread; only the current connection's
/// events reach the sender.
class node::remote : public transport, public net::handler, public std::enable_shared_from_this<remote> {
 public:
  remote(std::string name, actor::runtime& rt, net::net& n, net::conn_options o, wire::assembler_limits limits,
         std::string self)
      : net_(n), opts_(o), sender_(std::move(name), rt, *this, limits, std::move(self)) {}

  sender& s() { return sender_; }

  // -- transport (called by the sender) --
  void connect(const endpoint& ep) override {
    std::weak_ptr<remote> weak = weak_from_this();
    net::conn_id id = 0;
    {
      // `done` may run on the net thread before connect() returns the id: it takes
      // connect_mu_ too, so it sees conn_ set.
      std::lock_guard lock(connect_mu_);
      id = net_.connect(ep.host, ep.port, shared_from_this(), opts_, [weak](net::conn_id got, std::error_code ec) {
        auto self = weak.lock();
        if (!self) return;
        bool current = false;
        {
          std::lock_guard l(self->connect_mu_);
          current = self->attempt_ == self->attempts_started_;
        }
        if (!current) return;  // an attempt the sender has since given up on
        if (ec) {
          self->sender_.on_connect_failed(ec.message());
        } else {
          (void)got;
          self->sender_.on_connected();
        }
      });
      conn_.store(id);
      attempt_ = ++attempts_started_;
    }
    if (id == 0) sender_.on_connect_failed("net is stopping");
  }
  void write(byte_buffer bytes) override { net_.send(conn_.load(), std::move(bytes)); }
  void write_view(bytes_view bytes) override { net_.send(conn_.load(), bytes); }
  std::size_t queued() const override { return net_.queued_bytes(conn_.load()); }
  void close(const std::string& reason) override {
    // Events of the closed connection must not reach the sender any more: it already
    // considers itself disconnected (it may be connecting anew).
    const net::conn_id old = conn_.exchange(0);
    {
      std::lock_guard lock(connect_mu_);
      ++attempts_started_;  // a connect still in progress is abandoned
    }
    net_.close(old, reason, false);
  }

  // -- net hooks --
  void on_message(net::conn_id id, bytes_view body) override {
    if (id == conn_.load()) sender_.on_frame(body);
  }
  void on_close(net::conn_id id, const std::string& reason) override {
    if (id == conn_.load()) sender_.on_closed(reason);
  }

 private:
  net::net& net_;
  const net::conn_options opts_;
  std::atomic<net::conn_id> conn_{0};
  std::mutex connect_mu_;
  std::uint64_t attempts_started_ = 0;  // connect_mu_
  std::uint64_t attempt_ = 0;           // connect_mu_: the attempt conn_ belongs to
  sender sender_;
};

// ------------------------------------------------------------ inbound side --

/// The listener's handler: one agent per accepted connection.
class node::inbound : public net::handler, public std::enable_shared_from_this<node::inbound> {
 public:
  inbound(actor::runtime& rt, net::net& n, const node_options& o) : rt_(rt), net_(n), opts_(o) {}

  void on_accept(net::conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu_);
    if (agents_.size() >= opts_.max_connections) {
      log()->warn("cluster: refusing {} (connection {}): {} connections already", peer, id, agents_.size());
      net_.close(id, "too many connections", false);
      return;
    }
    net::net* n = &net_;
    agents_.emplace(id, std::make_unique<agent>(
                            rt_, peer, [n, id](byte_buffer b) { n->send(id, std::move(b)); },
                            [n, id](const std::string& reason) { n->close(id, reason, true); }, opts_.limits,
                            opts_.inbound_call_timeout, flow_of(std::make_shared<std::atomic<net::conn_id>>(id))));
    log()->info("cluster: accepted {} (connection {})", peer, id);
    if (frozen_.load()) net_.pause_reading(id);  // node::pause_inbound: read nothing
  }
  void on_message(net::conn_id id, bytes_view body) override {
    // Only this connection's net thread uses its agent, and on_close (same thread) is
    // the only place that removes it: a per-thread cache of the last one found is safe
    // (connection ids are never reused within a net, and a net thread serves one net).
    last_agent& cached = cache_of_this_thread();
    agent* a = nullptr;
    if (cached.owner == this && cached.id == id) {
      a = cached.a;
    } else {
      std::lock_guard lock(mu_);
      auto it = agents_.find(id);
      if (it == agents_.end()) return;
      a = it->second.get();
      cached = last_agent{this, id, a};
    }
    a->on_frame(body);
  }
  void on_close(net::conn_id id, const std::string& reason) override {
    forget_cached(id);
    std::unique_ptr<agent> gone;
    {
      std::lock_guard lock(mu_);
      auto it = agents_.find(id);
      if (it == agents_.end()) return;
      gone = std::move(it->second);
      agents_.erase(it);
    }
    if (gone->stats().overrun) overrun_closes_.fetch_add(1, std::memory_order_relaxed);
    log()->info("cluster: connection {} closed: {}", id, reason);
  }
  std::size_t count() const {
    std::lock_guard lock(mu_);
    return agents_.size();
  }

  // -- hand-over (node::detach_inbound / adopt_inbound) --
  void on_adopt(net::conn_id id, const std::string& peer) override {
    {
      std::lock_guard lock(mu_);  // adopt() holds it until the agent is in place
      if (agents_.count(id) != 0) {
        log()->info("cluster: adopted {} (connection {})", peer, id);
        return;
      }
    }
    on_accept(id, peer);  // adopted through the net directly: a fresh agent
  }
  std::string before_detach(net::conn_id id) override {
    std::lock_guard lock(mu_);
    auto it = agents_.find(id);
    if (it == agents_.end()) return "no agent for the connection";
    auto state = it->second->export_state();  // reading has stopped: no frame can come
    if (!state) return state.error();
    detached_states_[id] = std::move(*state);
    return {};
  }
  void on_detach(net::conn_id id) override {
    std::unique_ptr<agent> gone;
    {
      std::lock_guard lock(mu_);
      auto it = agents_.find(id);
      if (it == agents_.end()) return;
      gone = std::move(it->second);
      agents_.erase(it);
    }
    log()->info("cluster: connection {} handed over", id);
  }
  /// The state before_detach exported for `id` (once).
  std::optional<byte_buffer> take_state(net::conn_id id) {
    std::lock_guard lock(mu_);
    auto it = detached_states_.find(id);
    if (it == detached_states_.end()) return std::nullopt;
    auto out = std::move(it->second);
    detached_states_.erase(it);
    return out;
  }
  result<net::conn_id, std::string> adopt(const std::shared_ptr<net::handler>& self, net::detached_connection& c,
                                          bytes_view state, net::conn_options o) {
    // The agent's write/close learn the id once the net has given it.
    auto cid = std::make_shared<std::atomic<net::conn_id>>(0);
    net::net* n = &net_;
    auto a = std::make_unique<agent>(
        rt_, c.peer, [n, cid](byte_buffer b) { n->send(cid->load(), std::move(b)); },
        [n, cid](const std::string& reason) { n->close(cid->load(), reason, true); }, opts_.limits,
        opts_.inbound_call_timeout, flow_of(cid));
    if (auto imported = a->import_state(state); !imported) return unexpected(imported.error());
    std::lock_guard lock(mu_);  // on_adopt and the first on_message of the id wait for it
    if (agents_.size() >= opts_.max_connections) {
      return unexpected("cannot adopt " + c.peer + ": " + std::to_string(agents_.size()) + " connections already");
    }
    auto id = net_.adopt_connection(std::move(c.fd), c.unread, self, o);
    if (!id) return unexpected(id.error());
    cid->store(*id);
    agents_.emplace(*id, std::move(a));
    if (frozen_.load()) net_.pause_reading(*id);
    return *id;
  }
  bool has(net::conn_id id) const {
    std::lock_guard lock(mu_);
    return agents_.count(id) != 0;
  }
  std::vector<net::conn_id> ids() const {
    std::lock_guard lock(mu_);
    std::vector<net::conn_id> out;
    out.reserve(agents_.size());
    for (const auto& [id, a] : agents_) out.push_back(id);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<node::inbound_stat> stats() const {
    std::vector<node::inbound_stat> out;
    std::lock_guard lock(mu_);
    out.reserve(agents_.size());
    for (const auto& [id, a] : agents_) out.push_back({id, a->peer(), a->stats(), a->in_flight()});
    return out;
  }
  std::size_t in_flight() const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [id, a] : agents_) n += a->in_flight();
    return n;
  }
  /// Freeze (true) or thaw every inbound connection, and those accepted meanwhile.
  void set_frozen(bool frozen) {
    std::lock_guard lock(mu_);
    frozen_.store(frozen);
    for (const auto& [id, a] : agents_) {
      if (frozen) {
        net_.pause_reading(id);
      } else {
        net_.resume_reading(id);
      }
    }
  }
  std::atomic<bool> frozen_{false};
  std::unordered_map<net::conn_id, byte_buffer> detached_states_;  // mu_
  std::atomic<std::uint64_t> overrun_closes_{0};  // agents closed past a multi-part limit

 private:
  struct last_agent {
    const inbound* owner = nullptr;
    net::conn_id id = 0;
    agent* a = nullptr;
  };
  static last_agent& cache_of_this_thread();
  void forget_cached(net::conn_id id);
  /// An agent's back-pressure on connection *cid. A resume that comes after the node is
  /// gone (a mailbox drained at the runtime's shutdown) finds no inbound and does nothing.
  flow_control flow_of(std::shared_ptr<std::atomic<net::conn_id>> cid) {
    flow_control f;
    f.pause = [n = &net_, cid](net::pause_reason why) { n->pause_reading(cid->load(), why); };
    f.resume = [w = weak_from_this(), cid](net::pause_reason why) {
      if (auto self = w.lock()) self->net_.resume_reading(cid->load(), why);
    };
    f.budget = opts_.budget;
    return f;
  }

  actor::runtime& rt_;
  net::net& net_;
  const node_options opts_;  // a copy: the net may hold this handler after the node is gone
  mutable std::mutex mu_;
  std::unordered_map<net::conn_id, std::unique_ptr<agent>> agents_;
};

node::inbound::last_agent& node::inbound::cache_of_this_thread() {
  thread_local last_agent cached;
  return cached;
}

void node::inbound::forget_cached(net::conn_id id) {
  last_agent& cached = cache_of_this_thread();
  if (cached.owner == this && cached.id == id) cached = last_agent{};
}

// -------------------------------------------------------------------- node --

node::node(actor::runtime& rt, net::net& n, node_options o)
    : rt_(rt), net_(n), opts_(std::move(o)), inbound_(std::make_shared<inbound>(rt, n, opts_)) {
  rt_.set_extension(typeid(node), this);
}

node::~node() {
  if (rt_.extension<node>() == this) rt_.set_extension(typeid(node), nullptr);
  if (listener_ != 0) net_.close_listener(listener_);
}

void node::reload(const cluster_names& table) {
  std::vector<std::pair<std::shared_ptr<remote>, std::optional<endpoint>>> changes;
  {
    std::lock_guard lock(mu_);
    table_.nowaiting = table.nowaiting;
    for (const auto& [name, addr] : table.nodes) {
      table_.nodes[name] = addr;
      auto it = remotes_.find(name);
      if (it != remotes_.end()) changes.emplace_back(it->second, endpoint_of(addr));
    }
  }
  for (auto& [r, ep] : changes) r->s().set_endpoint(ep);
}

result<std::uint16_t, std::string> node::open() {
  std::optional<endpoint> ep = opts_.listen;
  if (!ep) {
    std::lock_guard lock(mu_);
    auto it = table_.nodes.find(opts_.self);
    if (it == table_.nodes.end()) return unexpected("cluster node " + opts_.self + " is not in the node table");
    if (!it->second) return unexpected("cluster node " + opts_.self + " is down");  // skynet's open() fails alike
    ep = endpoint_of(it->second);
  }
  auto id = net_.listen(ep->host, ep->port, inbound_, conn_options_for(opts_));
  if (!id) return unexpected(id.error());
  listener_ = *id;
  port_ = net_.local_port(listener_);
  log()->info("cluster: node {} listening on {}:{}", opts_.self, ep->host, port_);
  return port_;
}

result<std::uint16_t, std::string> node::open_adopted(int fd) {
  auto id = net_.adopt_listener(fd, inbound_, conn_options_for(opts_));
  if (!id) return unexpected(id.error());
  listener_ = *id;
  port_ = net_.local_port(listener_);
  log()->info("cluster: node {} serving the inherited listener (fd {}, port {})", opts_.self, fd, port_);
  return port_;
}

void node::close_listener() {
  if (listener_ == 0) return;
  net_.close_listener(std::exchange(listener_, 0));
}

node::remote* node::remote_for(std::string_view name, std::string& error) {
  // Every request looks its remote up: a per-thread cache of the last one found spares
  // the lock and the map search. Safe because a remote lives as long as its node, and
  // the cache is keyed by the node's id (a node made later at the same address differs).
  struct last_remote {
    std::uint64_t node = 0;
    std::string name;
    remote* r = nullptr;
  };
  thread_local last_remote cached;
  if (cached.node == id_ && cached.name == name) return cached.r;
  std::lock_guard lock(mu_);
  remote* found = nullptr;
  if (auto it = remotes_.find(name); it != remotes_.end()) {
    found = it->second.get();
  } else {
    auto t = table_.nodes.find(std::string(name));
    if (t == table_.nodes.end()) {
      error = "cluster node " + std::string(name) + " is absent";
      return nullptr;
    }
    auto r = std::make_shared<remote>(std::string(name), rt_, net_, conn_options_for(opts_), opts_.limits, opts_.self);
    r->s().set_endpoint(endpoint_of(t->second));
    found = r.get();
    remotes_.emplace(std::string(name), std::move(r));
  }
  cached.node = id_;
  cached.name.assign(name);
  cached.r = found;
  return found;
}

void node::start_call(std::string_view node_name, wire::target to, actor::values args, actor::reply_route route,
                      const actor::trace_ptr& trace) {
  std::string error;
  remote* r = remote_for(node_name, error);
  if (r == nullptr) {
    rt_.complete(route, unexpected(actor::call_error{actor::call_errc::invalid_address, error}));
    return;
  }
  r->s().call(to, args, route, trace);
}

actor::routed_call_awaiter node::call(actor::context& ctx, std::string_view node_name, wire::target to,
                                      actor::values args, std::chrono::milliseconds timeout) {
  // The start runs inside the awaiting handler's dispatch (routed_call_awaiter), so the
  // tag read there is that handler's.
  return ctx.call_via(
      [this, &ctx, n = std::string(node_name), to = std::move(to), args = std::move(args)](actor::reply_route route) mutable {
        start_call(n, std::move(to), std::move(args), route, ctx.current_trace());
      },
      timeout);
}

void node::call(std::string_view node_name, wire::target to, actor::values args, std::chrono::milliseconds timeout,
                std::function<void(actor::call_result)> done) {
  const actor::reply_route route = rt_.external_route(timeout, std::move(done));
  start_call(node_name, std::move(to), std::move(args), route);
}

std::future<actor::call_result> node::call(std::string_view node_name, wire::target to, actor::values args,
                                           std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<actor::call_result>>();
  auto f = p->get_future();
  call(node_name, std::move(to), std::move(args), timeout, [p](actor::call_result r) { p->set_value(std::move(r)); });
  return f;
}

bool node::send(std::string_view node_name, const wire::target& to, const actor::values& args) {
  std::string error;
  remote* r = remote_for(node_name, error);
  if (r == nullptr) {
    log()->warn("cluster: push dropped: {}", error);
    return false;
  }
  return r->s().send(to, args);
}

result<actor::handle_t, std::string> node::proxy(std::string_view node_name, const wire::target& to) {
  const std::string key = std::string(node_name) + '\0' + address_key(to);
  std::lock_guard lock(proxy_mu_);
  if (auto it = proxies_.find(key); it != proxies_.end() && rt_.alive(it->second)) return it->second;
  auto h = rt_.spawn(std::make_unique<proxy_service>(std::string(node_name), to));
  if (!h) return unexpected("cluster proxy for " + std::string(node_name) + " " + address_key(to) + ": " + h.error());
  proxies_[key] = *h;
  return *h;
}

std::size_t node::inbound_connections() const { return inbound_->count(); }

std::uint64_t node::inbound_overrun_closes() const { return inbound_->overrun_closes_.load(std::memory_order_relaxed); }

// ------------------------------------------------------------ hand-over --

std::vector<net::conn_id> node::inbound_ids() const { return inbound_->ids(); }

std::vector<node::peer_stat> node::peers() const {
  std::vector<std::pair<std::string, std::shared_ptr<remote>>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, r] : remotes_) all.emplace_back(name, r);
  }
  std::vector<peer_stat> out;
  for (auto& [name, r] : all) {
    out.push_back({name, r->s().stats(), r->s().pending_calls(), r->s().connected()});
  }
  return out;
}

std::vector<node::inbound_stat> node::inbound_peers() const {
  auto out = inbound_->stats();
  std::sort(out.begin(), out.end(), [](const inbound_stat& a, const inbound_stat& b) { return a.id < b.id; });
  return out;
}

void node::pause_inbound() {
  inbound_->set_frozen(true);
  // The barrier: once every connection's net thread has passed it, no on_message that
  // started before the pause is still running, so inbound_in_flight() counts every call
  // read before the freeze.
  if (!net_.barrier(inbound_->ids(), std::chrono::seconds(5))) {
    log()->warn("cluster: pause_inbound: a net thread did not answer within 5 s");
  }
}

void node::resume_inbound() { inbound_->set_frozen(false); }

std::size_t node::inbound_in_flight() const { return inbound_->in_flight(); }

void node::detach_inbound(net::conn_id id, std::chrono::milliseconds timeout,
                          std::function<void(result<inbound_handover, std::string>)> done) {
  if (!inbound_->has(id)) {  // never detach another handler's connection: its socket would be lost here
    return done(unexpected("connection " + std::to_string(id) + " is not an inbound cluster connection"));
  }
  auto in = inbound_;
  net_.detach(id, timeout, [in, id, done = std::move(done)](result<net::detached_connection, std::string> r) {
    auto state = in->take_state(id);  // exported by before_detach, or nothing
    if (!r) return done(unexpected(r.error()));
    if (!state) return done(unexpected("connection " + std::to_string(id) + " is not an inbound cluster connection"));
    done(inbound_handover{std::move(*r), std::move(*state)});
  });
}

std::future<result<node::inbound_handover, std::string>> node::detach_inbound(net::conn_id id,
                                                                             std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<result<inbound_handover, std::string>>>();
  auto f = p->get_future();
  detach_inbound(id, timeout, [p](result<inbound_handover, std::string> r) { p->set_value(std::move(r)); });
  return f;
}

result<net::conn_id, std::string> node::adopt_inbound(net::detached_connection& c, bytes_view agent_state) {
  return inbound_->adopt(inbound_, c, agent_state, conn_options_for(opts_));
}

}  // namespace csk::cluster
