#pragma once
// The supervisor's small dealings with the operating system: starting a worker with
// posix_spawn, describing how it ended, finding its binary, the pid file, --daemon and
// systemd's readiness notification (without libsystemd).

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"

namespace csk::supervisor {

/// What a worker process gets.
struct spawn_request {
  std::string binary;        ///< the worker program
  std::string config_path;   ///< its only argument
  std::uint32_t generation = 0;
  int channel_fd = -1;       ///< becomes fd 3 in the child (CSK_CHANNEL_FD=3), close-on-exec cleared there only
  int stderr_fd = -1;        ///< becomes fd 2 in the child; -1 = inherit ours
  bool takeover = false;     ///< CSK_TAKEOVER=1: the new generation of an upgrade
};

/// The fd number the worker finds its channel on.
inline constexpr int worker_channel_fd = 3;

/// posix_spawn (no fork of the supervisor) of `binary config_path` with our environment
/// plus CSK_CHANNEL_FD and CSK_GENERATION (and CSK_TAKEOVER=1 for an upgrade's new worker;
/// minus NOTIFY_SOCKET), an empty signal mask,
/// default signal dispositions, in its own process group (a terminal's Ctrl-C reaches the
/// supervisor only, which then stops the worker in order). Every other fd of ours is
/// close-on-exec, so the worker inherits nothing else.
result<pid_t, std::string> spawn_worker(const spawn_request& r);

/// "exited with code 3", "killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);

/// The worker binary: `configured` if not empty, else cppskynet-worker beside the running
/// program, else the one in this build tree (for running from a build directory). Error
/// if the chosen file is not executable.
result<std::string, std::string> find_worker_binary(const std::string& configured);

/// Writes "<pid>\n" (mode 0644, replacing the file).
result<void, std::string> write_pid_file(const std::string& path);
/// Removes the pid file if it still holds this process's pid.
void remove_pid_file(const std::string& path);

/// sd_notify: sends `state` ("READY=1", "STOPPING=1", ...) as one datagram to
/// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). False when unset or
/// the send failed.
bool notify_systemd(const std::string& state);

/// --daemon: fork, setsid, fork; the daemon's cwd is "/" and its stdin, stdout and
/// stderr are /dev/null. Returns only in the daemon, with the write end of a pipe: write
/// one byte to it once the node is ready (then the original process exits 0), or close it
/// on failure (the original process prints that the supervisor failed and exits 1).
/// Call before any thread or other child exists.
result<unique_fd, std::string> daemonize();

}  // namespace csk::supervisor
