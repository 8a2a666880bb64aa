#pragma once
// A cppskynet node's cluster membership: skynet's clusterd, on csk::net.
//
//   - the node table (clustername.yaml), reloadable: reload() changes only the names it
//     mentions and never deletes one; a changed address makes the next request reconnect,
//     `false` marks the node down (its calls fail at once);
//   - inbound: open() listens on this node's address; each accepted connection gets an
//     agent (agent.hpp) that dispatches into the runtime;
//   - outbound: one sender (sender.hpp) and one connection per remote node, made on first
//     use.
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

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

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

 private:
  class remote;
  class inbound;

  /// The remote for `name`, created on first use; nullptr (with `error`) if absent.
  std::shared_ptr<remote> remote_for(std::string_view name, std::string& error);
  void start_call(std::string_view node, wire::target to, actor::values args, actor::reply_route route);

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
