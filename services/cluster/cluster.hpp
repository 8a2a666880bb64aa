#pragma once
// The cluster API for any service: skynet's cluster.call / send / query / register /
// proxy, as free functions that find the node's cluster::node from the context.
//
//   auto op = cluster::call(ctx, "cluster1", "@echo", values{"hi", 42});
//   auto r = co_await op;                      // actor::call_result
//   cluster::send(ctx, "cluster1", "@counter", values{"incr"});
//   auto q = cluster::query(ctx, "cluster1", "echo");
//   auto h = co_await q;                       // result<handle_t, call_error>: the remote handle
//   cluster::register_name(ctx, "relay");      // peers may now call "@relay" here
//   auto p = cluster::proxy(ctx, "cluster1", "@echo");   // a local handle; calls go to cluster1
//
// A cluster::node registers itself with its runtime (runtime::set_extension) when it is
// made and clears the slot when it goes. Without one, call/query answer the error
// "cluster is not configured on this node", send returns false and proxy fails alike.
// register_name needs no node: it only names a local service for cluster callers.
//
// Addresses (remote_address): a wire::target, a handle number, or a string: "@name"
// (the peer's cluster names), ".name" (the peer's local names), ":0000000a", or a handle
// written in decimal or 0x-hex. Anything else fails the call at once ("bad cluster address").
//
// Traces: a call made by a traced handler (actor::context::trace) carries its tag to the
// remote node in a trace frame (sender.hpp); pushes are never traced, as in skynet.
//
// Thread rules: the ctx overloads are for the service that owns ctx (call and query must
// be awaited there); the runtime overloads are safe from any thread.

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "common/wire/cluster_codec.hpp"
#include "services/cluster/node.hpp"

namespace csk::cluster {

/// The error text when the runtime has no cluster node.
inline constexpr std::string_view not_configured = "cluster is not configured on this node";

/// The cluster node attached to `rt`, or nullptr.
node* node_of(const actor::runtime& rt);

/// A remote service's address as the API takes it; see the header comment.
struct remote_address {
  wire::target target;
  std::string error;  ///< not empty: the address did not parse, and says why

  remote_address(wire::target t) : target(std::move(t)) {}  // NOLINT: implicit by design
  remote_address(std::string_view s);                        // NOLINT
  remote_address(const char* s) : remote_address(std::string_view(s)) {}         // NOLINT
  remote_address(const std::string& s) : remote_address(std::string_view(s)) {}  // NOLINT
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  remote_address(I h) {  // NOLINT
    bool negative = false;
    if constexpr (std::is_signed_v<I>) negative = h < 0;
    if (negative || static_cast<std::uint64_t>(h) > 0xffffffffu) {
      error = "bad cluster address " + std::to_string(h) + ": not a 32-bit handle";
    } else {
      target = wire::target::handle(static_cast<std::uint32_t>(h));
    }
  }
  bool ok() const noexcept { return error.empty(); }
};

/// skynet's cluster.call: `auto op = cluster::call(ctx, "db", "@name", args); auto r = co_await op;`.
/// timeout 0 = the runtime's call timeout.
actor::routed_call_awaiter call(actor::context& ctx, std::string_view node, const remote_address& to,
                                actor::values args, std::chrono::milliseconds timeout = {});

/// skynet's cluster.send (a push, no answer). False if there is no cluster, the address is
/// bad, the node is unknown or down, or the connection holds too much unsent (see sender).
bool send(actor::context& ctx, std::string_view node, const remote_address& to, const actor::values& args);
bool send(actor::runtime& rt, std::string_view node, const remote_address& to, const actor::values& args);

/// What `co_await cluster::query(...)` gives: the remote handle, or why not
/// ("name not found" from the peer when it has no such cluster name).
using query_result = result<actor::handle_t, actor::call_error>;

class query_awaiter {
 public:
  explicit query_awaiter(actor::routed_call_awaiter op) : op_(std::move(op)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { op_.await_suspend(h); }
  query_result await_resume();

 private:
  actor::routed_call_awaiter op_;
};

/// skynet's cluster.query: the handle that `node` registered as "@name" (a leading '@' in
/// `name` is optional). A call to address 0, as skynet's clusteragent answers it.
query_awaiter query(actor::context& ctx, std::string_view node, std::string_view name,
                    std::chrono::milliseconds timeout = {});

/// skynet's cluster.register: makes "@name" (a leading '@' is optional) reach `handle`
/// for cluster callers and queries. Several services may share a name (round robin).
result<void, std::string> register_name(actor::context& ctx, std::string_view name);
result<void, std::string> register_name(actor::context& ctx, std::string_view name, actor::handle_t handle);
result<void, std::string> register_name(actor::runtime& rt, std::string_view name, actor::handle_t handle);

/// skynet's cluster.proxy: the local handle of a service that forwards to `to` on `node`:
/// calls to it are answered with the remote reply (or its error text), sends to it become
/// pushes. One proxy per (node, address), made on first use and kept until shutdown.
result<actor::handle_t, std::string> proxy(actor::context& ctx, std::string_view node, const remote_address& to);
result<actor::handle_t, std::string> proxy(actor::runtime& rt, std::string_view node, const remote_address& to);

}  // namespace csk::cluster
