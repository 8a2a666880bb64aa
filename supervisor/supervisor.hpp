#pragma once
// The supervisor: `cppskynet run -c node.yaml [--daemon]`.
//
// One process, one thread, one poll() loop. It binds every listener the config names
// (listeners_of) and keeps them open for its whole life, starts the worker program with
// posix_spawn and a channel (common/channel) on fd 3, passes it the listeners, restarts
// it with backoff when it dies or stops heartbeating, gives up on a crash loop, and
// answers the operator on the control socket (control.hpp) and to signals:
//   SIGTERM, SIGINT  stop: the workers get `stop` and stop_timeout_ms, then SIGKILL; exit 0
//   SIGHUP           reload: the workers reload the node table
//   SIGUSR1          reopen log files (its own; workers log through it, see below)
//   SIGUSR2          upgrade: not implemented yet (issue 6)
// It never reads cluster or gate traffic, links no actor runtime, net layer or wire codec.
//
// Logs: every line carries pid and role.generation ("supervisor.0", "worker.3"). With
// log.file set, the workers' stderr is a pipe to the supervisor, which appends their
// lines to the file: one process writes and reopens it. Without it, workers share the
// supervisor's stderr.
//
// Exit codes: 0 stopped; 1 gave up (crash loop, or a worker of another protocol
// version); 2 usage; 3 bad config; 4 could not start (bind, control socket, worker binary,
// pid file, daemon).

#include <string>
#include <vector>

namespace csk::supervisor {

inline constexpr int exit_stopped = 0;
inline constexpr int exit_gave_up = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_bad_config = 3;
inline constexpr int exit_start_failed = 4;

struct run_options {
  std::string config_path;
  bool daemon = false;  ///< detach (daemonize()); systemd users prefer Type=notify without it
};

/// Runs the supervisor in this process until it stops or gives up; returns the exit code.
/// Startup errors go to stderr (and the log). Call from main, before any thread starts.
int run(const run_options& options);

/// `cppskynet run -c CONFIG [--daemon]`: args[0] is "run". Returns the exit code.
int run_command(const std::vector<std::string>& args);

}  // namespace csk::supervisor
