#pragma once
// The composition root's building blocks: configuration in, a running runtime out.
// (The worker process of the supervisor issue is assembled from these.)

#include <csignal>
#include <chrono>
#include <functional>
#include <optional>
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
/// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP; returns the signal, or 0.
int wait_for_signal(std::chrono::milliseconds timeout);
/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and threads it starts later).
void block_stop_signals();

/// Watches a node table file: reports a new table when the file's modification time or
/// size changed since the last look (how a running node picks up an edited clustername.yaml).
class names_watcher {
 public:
  explicit names_watcher(std::string path);
  /// The new table if the file changed (and loads), nullopt otherwise. A file that
  /// changed but does not load gives its error in `error` and keeps the old stamp, so
  /// the edit is retried at the next look.
  std::optional<cluster_names> poll(std::string& error);

 private:
  std::string path_;
  std::int64_t stamp_ = -1;
  std::int64_t size_ = -1;
};

}  // namespace csk
