#pragma once
// The operator verbs of `cppskynet`: they talk to a supervisor's control socket, or check a
// config without running anything.
//
//   cppskynet status [-c node.yaml | --socket PATH] [--json] [--timeout S]
//   cppskynet stop   [-c node.yaml | --socket PATH] [--json] [--timeout S]   (waits until it has gone)
//   cppskynet reload [-c node.yaml | --socket PATH] [--json] [--timeout S]
//   cppskynet check  -c node.yaml [--json]
//
// The control socket: --socket PATH, else the config's supervisor.control_socket (relative to
// the config's directory; default cppskynet.sock there).
// check loads the config, its node table and listeners_of(config) (every listener the
// supervisor would bind) and lists every problem with its file and key path.
// Exit codes: 0 ok; 1 an error reply, a failed check, or a stop that did not finish in time;
// 2 usage; 3 cannot reach the supervisor ("no supervisor at PATH: <errno text>").

#include <string>
#include <string_view>
#include <vector>

namespace csk::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3;

/// status, stop, reload, check.
bool is_ops_verb(std::string_view verb);

/// Runs one operator verb; args[0] is the verb. Prints to stdout/stderr; returns the exit code.
int run_ops(const std::vector<std::string>& args);

/// The usage lines of the operator verbs (for the main usage text).
const char* ops_usage();

}  // namespace csk::cli
