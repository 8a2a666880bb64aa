#pragma once
// The relay example (the node examples/cluster3): a service that calls the other two
// example nodes through the cluster API (services/cluster/cluster.hpp), and registers
// itself for cluster callers as "@relay" (skynet's cluster.register).
//
//   echo ARGS...      -> cluster1's @echo ARGS...             (cluster::call)
//   hello NAME        -> cluster2's @hello "hello" NAME       (through a cluster::proxy)
//                        -> "hello, NAME!", visitor number
//   both NAME ARGS... -> two tables: the echo reply, the hello reply
// A failed remote call is answered with an error naming the node.
//
// init args (optional): [{name: relay, echo_node: cluster1, hello_node: cluster2}]
// The node must have a cluster node attached (cluster.self in the config), or init fails.

#include "common/actor/runtime.hpp"

namespace csk::examples {

/// Registers the "relay" service type.
void register_relay_types(actor::runtime& rt);

}  // namespace csk::examples
