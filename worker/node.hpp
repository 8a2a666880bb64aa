#pragma once
// The composition root's building blocks: configuration in, a running runtime out.
// (The worker process of the supervisor issue is assembled from these.)

#include <csignal>
#include <functional>
#include <string>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "common/config/config.hpp"

namespace csk {

/// The runtime's options as the config file gives them.
actor::runtime_options runtime_options_from(const runtime_config& c);

/// Spawns every configured service (all instances, with their names and args), in
/// file order. Fails on the first error, naming the service entry.
result<void, std::string> boot_services(actor::runtime& rt, const std::vector<service_config>& services);

/// The whole node: runtime, net, cluster membership (if configured) and services, run
/// until SIGINT/SIGTERM, then an orderly stop. `register_types` adds service types.
/// Errors (bad node table, listen failure, boot failure) come back before anything runs.
result<void, std::string> run_node(const node_config& cfg, const std::function<void(actor::runtime&)>& register_types);

/// Blocks the calling thread until SIGINT or SIGTERM (which must already be blocked
/// in every thread: call block_stop_signals() before starting any). Returns the signal.
int wait_for_stop_signal();
/// Blocks SIGINT and SIGTERM in the calling thread (and threads it starts later).
void block_stop_signals();

}  // namespace csk
