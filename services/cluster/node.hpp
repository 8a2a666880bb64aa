#pragma once
// A cppskynet node's cluster membership: skynet's clusterd, on csk::net.
//
//   - the node table (clustername.yaml), reloadable: reload() changes only the names it
//     mentions and never deletes one; a changed address makes the next request reconnect,
//     `false` marks the node down (its calls fail at once);
//   - inbound: open() listens on this node's address; each accepted connection gets an
//     agent (agent.hpp) that dispatches into the runtime;
//   - outbound: one sender (sender.hpp) and one connection per remote node, made on first
//     use. A call from a traced handler carries its tag (sender.hpp: the trace frame names
//     this node by `self`).
//
// Calls to a node name that the table does not have fail at once ("cluster node X is
// absent"). skynet makes such callers wait for a reload unless __nowaiting is set; we do
// not park callers without a deadline.
//
// A node attaches itself to its runtime (runtime::extension<node>()) for its lifetime, so
// services reach it through the free functions of cluster.hpp. It must therefore outlive
// the runtime's services: shut the runtime down before destroying the node.
//
// Thread rules: every public method is safe from any thread, but call(ctx, ...) must be
// awaited from the service that owns ctx.

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/config/config.hpp"
#include "common/net/net.hpp"
#include "services/cluster/agent.hpp"
#include "services/cluster/sender.hpp"

namespace csk::cluster {

struct node_options {
  std::string self;                     ///< this node's name in the table ("" = no listener)
  std::optional<endpoint> listen;       ///< overrides the table's address for `self`
  wire::assembler_limits limits;        ///< per connection, both directions
  std::chrono::milliseconds inbound_call_timeout{0};  ///< 0 = the runtime's call timeout
  std::size_t max_connections = 1023;   ///< accepted connections served at once
  std::chrono::milliseconds idle_timeout{0};
  /// The node's memory budget (queued bytes of every connection, incomplete multi-part
  /// requests, requests waiting in mailboxes); past its high mark inbound connections stop
  /// reading. nullptr = none. Must outlive the node and its net.
  memory_budget* budget = nullptr;
};

class node {
 public:
  node(actor::runtime& rt, net::net& n, node_options o);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// skynet's cluster.reload(table).
  void reload(const cluster_names& table);

  /// Listens on `listen`, or on the table's address for `self`. Returns the bound port.
  result<std::uint16_t, std::string> open();
  /// Serves an already bound and listening socket instead (a supervisor's, received over
  /// the channel). On success the net owns `fd`; on failure it is still the caller's.
  result<std::uint16_t, std::string> open_adopted(int fd);
  /// Stops accepting: the listener opened above is closed; accepted connections stay.
  /// (A supervisor's copy of an adopted socket stays open: new connections wait in its
  /// backlog.) Threads: the thread that opened it.
  void close_listener();
  std::uint16_t port() const noexcept { return port_; }

  /// `co_await cluster.call(ctx, "db", wire::target::named("@echo"), {...})` from a service.
  actor::routed_call_awaiter call(actor::context& ctx, std::string_view node, wire::target to,
                                  actor::values args, std::chrono::milliseconds timeout = {});
  /// From outside any service (tools): `done` runs once, on some runtime or net thread.
  void call(std::string_view node, wire::target to, actor::values args, std::chrono::milliseconds timeout,
            std::function<void(actor::call_result)> done);
  std::future<actor::call_result> call(std::string_view node, wire::target to, actor::values args,
                                       std::chrono::milliseconds timeout = {});
  /// A push (skynet's cluster.send). False if the node is unknown or down.
  bool send(std::string_view node, const wire::target& to, const actor::values& args);

  /// skynet's cluster.proxy (cluster.hpp): the handle of a local service that forwards
  /// calls and sends to `to` on `node`. One per (node, address), spawned on first use.
  result<actor::handle_t, std::string> proxy(std::string_view node, const wire::target& to);

  /// Connections accepted and served now.
  std::size_t inbound_connections() const;
  /// Accepted connections closed because their agent passed a multi-part limit
  /// (agent_stats::overrun: max_pending_bytes, or too many incomplete requests), since
  /// the node was made. Any thread.
  std::uint64_t inbound_overrun_closes() const;

  /// One remote node this node has called or pushed to (its sender), for metrics.
  struct peer_stat {
    std::string name;
    sender_stats stats;
    std::size_t pending = 0;  ///< calls waiting for their answer
    bool connected = false;
  };
  /// Every remote made so far, by name. Any thread.
  std::vector<peer_stat> peers() const;

  /// One accepted connection (a peer calling this node: its agent), for metrics. skynet's
  /// connecting side does not say which node it is, so it is known by its address.
  struct inbound_stat {
    net::conn_id id = 0;
    std::string peer;  ///< "ip:port" of the connecting side
    agent_stats stats;
    std::size_t in_flight = 0;  ///< its calls being handled now
  };
  /// The connections served now, by id. Any thread.
  std::vector<inbound_stat> inbound_peers() const;

  // -- hand-over of inbound connections (issue 6, docs/upgrade.md) ---------------------
  //
  // The old worker: pause_inbound() (the freeze; close_listener() too), wait until
  // inbound_in_flight() == 0, then detach_inbound(id) for every inbound_ids(); pass each
  // handover to the new worker, which calls adopt_inbound(). Rollback before the socket
  // left: resume_inbound().

  /// One inbound connection on its way to another node object (another worker).
  struct inbound_handover {
    net::detached_connection connection;  ///< the socket, its unread bytes, the peer
    byte_buffer agent_state;              ///< agent::export_state (versioned)
  };
  /// The ids of the inbound connections served now, ascending. Any thread.
  std::vector<net::conn_id> inbound_ids() const;
  /// The freeze: every inbound connection, and every one accepted from now on, stops
  /// reading and delivering after the message in progress (net::pause_reading: a frame
  /// boundary). Returns once the message being delivered at the call (if any) has been
  /// handled on every connection (a barrier on the net threads), so a call it dispatched
  /// is counted by inbound_in_flight(): wait for that to reach 0 afterwards
  /// (detach_inbound re-checks on the net thread). Any thread but a net thread.
  void pause_inbound();
  /// Ends the freeze (the upgrade was abandoned). Any thread.
  void resume_inbound();
  /// Calls from inbound connections dispatched and not yet answered (answers still in
  /// an agent's outbox count). Any thread.
  std::size_t inbound_in_flight() const;
  /// net::detach of inbound connection `id`, with its agent's state exported on the net
  /// thread right before the socket leaves; refused (the connection stays, reading as
  /// before the detach) if the agent has calls in flight or the connection is not an
  /// inbound one. `done` runs once, on the net thread (or at once for an unknown id).
  void detach_inbound(net::conn_id id, std::chrono::milliseconds timeout,
                      std::function<void(result<inbound_handover, std::string>)> done);
  std::future<result<inbound_handover, std::string>> detach_inbound(net::conn_id id,
                                                                    std::chrono::milliseconds timeout);
  /// Serves a handed-over connection with a new agent that takes `agent_state` over;
  /// its unread bytes are processed first (a multi-part request half received completes
  /// with the next chunks). On failure (bad state, not a connected TCP socket, too many
  /// connections) nothing was taken: `c.fd` is still the caller's. Any thread.
  result<net::conn_id, std::string> adopt_inbound(net::detached_connection& c, bytes_view agent_state);

 private:
  class remote;
  class inbound;

  /// The remote for `name`, created on first use; nullptr (with `error`) if absent.
  /// Remotes live as long as the node (remotes_ never drops one).
  remote* remote_for(std::string_view name, std::string& error);
  /// `trace`: the calling handler's tag (nullptr for calls from outside any service).
  void start_call(std::string_view node, wire::target to, actor::values args, actor::reply_route route,
                  const actor::trace_ptr& trace = nullptr);

  static inline std::atomic<std::uint64_t> next_id_{0};
  const std::uint64_t id_ = ++next_id_;  // unique per node made in this process (remote_for's cache)
  actor::runtime& rt_;
  net::net& net_;
  const node_options opts_;
  std::shared_ptr<inbound> inbound_;
  net::listener_id listener_ = 0;
  std::uint16_t port_ = 0;

  mutable std::mutex mu_;
  cluster_names table_;
  std::map<std::string, std::shared_ptr<remote>, std::less<>> remotes_;

  std::mutex proxy_mu_;  // held while a proxy is spawned (its init touches no node state)
  std::map<std::string, actor::handle_t> proxies_;  // "node\0address" -> proxy service
};

}  // namespace csk::cluster
