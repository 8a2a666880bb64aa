#pragma once
// The composition root's building blocks: configuration in, a running runtime out.
// cppskynet-node (standalone) and cppskynet-worker (under `cppskynet run`) run run_node.

#include <csignal>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "common/config/config.hpp"
#include "worker/supervisor_link.hpp"

namespace csk {

/// The runtime's options as the config file gives them.
actor::runtime_options runtime_options_from(const runtime_config& c);

/// Spawns every configured service (all instances, with their names and args), in
/// file order. Fails on the first error, naming the service entry.
result<void, std::string> boot_services(actor::runtime& rt, const std::vector<service_config>& services);

/// The whole node: runtime, net, cluster membership (if configured) and services, run
/// until SIGINT/SIGTERM, then an orderly stop. `register_types` adds service types.
/// Errors (bad node table, listen failure, boot failure) come back before anything runs.
/// Entity stores keep their journals where worker/state_regions.hpp says (attached before
/// the first service is spawned) and recover from them in their init, before `ready`.
///
/// Standalone (link == nullptr) it binds its own listeners and obeys signals: SIGINT and
/// SIGTERM stop it, SIGHUP reloads the node table (so does an edit of the file, checked
/// every second). Under a supervisor (`link` after its handshake) it adopts the inherited
/// listeners by name and never binds one, sends ready once the services are booted and
/// started, heartbeats, and obeys the supervisor's stop, drain, reload and log_reopen as
/// well as the signals; a closed channel (supervisor gone) stops it like a stop order.
/// Signals must be blocked first (block_stop_signals()). A worker that handed over to its
/// successor in an upgrade does not return: it exits the process (status 0) once it has
/// said stopped, without freeing the state its successor now owns.
/// Why run_node did not run (or ended badly), and the exit code the worker ends with: 4
/// (boot failed), channel::exit_state_unreadable (6) when an entity store could not read
/// the state it was given (the supervisor then keeps it and starts nothing until told), or
/// exit_upgrade_unsafe (7).
struct run_failure {
  std::string text;
  int exit_code = 4;
};
/// run_node's exit code after an upgrade failed past its commit with the new worker still
/// there (its stores stayed sealed; the supervisor restarts a worker, which recovers).
inline constexpr int exit_upgrade_unsafe = 7;
result<void, run_failure> run_node(const node_config& cfg, const std::function<void(actor::runtime&)>& register_types,
                                   supervisor_link* link = nullptr);

/// Blocks the calling thread until SIGINT or SIGTERM (which must already be blocked
/// in every thread: call block_stop_signals() before starting any). Returns the signal.
int wait_for_stop_signal();
/// Waits up to `timeout` for SIGINT, SIGTERM, SIGHUP or SIGUSR1; returns the signal, or 0.
int wait_for_signal(std::chrono::milliseconds timeout);
/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread (and threads it
/// starts later).
void block_stop_signals();

/// Watches a node table file: reports a new table when the file's modification time or
/// size changed since the last look (how a running node picks up an edited clustername.yaml).
class names_watcher {
 public:
  /// What one look found. The node logs `error` only when `new_error`, and `recovered`
  /// once, so a file that keeps failing the same way is logged once, not at every look.
  struct outcome {
    std::optional<cluster_names> table;  ///< the file changed and loads: the new table
    std::string error;       ///< the file cannot be read or does not load ("" = it is fine)
    bool new_error = false;  ///< `error` differs from the previous look's (first failure, or another one)
    bool recovered = false;  ///< the previous look failed and this one did not
  };

  explicit names_watcher(std::string path);
  /// Looks at the file. A file that changed but does not load keeps the old stamp, so
  /// it is loaded again at every look until it loads (and the error is only new once).
  outcome poll();

 private:
  std::string path_;
  std::int64_t stamp_ = -1;
  std::int64_t size_ = -1;
  std::string last_error_;  ///< the previous look's error, "" if it had none
};

}  // namespace csk
