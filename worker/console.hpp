#pragma once
// The worker's half of `cppskynet console`: skynet's debug console verbs, answered from
// inside the worker. The supervisor relays each line (channel message console) and the
// answer (console_reply, JSON text); it answers `generations`, `upgrade` and `help` itself.
//
//   list                 every service: handle, names, mailbox, messages, busy ms
//   stat                 the runtime's counters (refusals at mailbox_limit, mailbox pauses
//                        too), uptime, cluster connections
//   mem                  the process's memory (VmRSS, VmHWM, VmSize from /proc/self/status)
//   info ADDR            one service's list entry
//   call ADDR ARGS...    a call; ARGS are JSON if they parse, else strings (as `cppskynet call`)
//   send ADDR ARGS...    a send
//   ping ADDR            the round trip of a call through the service's mailbox (any reply,
//                        even an error, proves it is alive and not stuck)
//   netstat              cluster connections (inbound ids, in flight; per connection: bytes
//                        held for it, pauses for a full mailbox or memory; closes for a
//                        multi-part overrun), gates, the node's memory budget (held, high,
//                        low, feeders waiting, pauses), the net's receive buffers
//   journal              each entity store's journal: size, checkpoints, the last recovery
//   checkpoint [ID]      starts a checkpoint of store ID (of every store without one);
//                        answers which started (false: one is running, or no journal)
//   help                 the verbs
//
// ADDR: ".name", "@name" or ":0000000a". Errors (unknown verb, bad address, a failed call)
// throw std::runtime_error with a message for the operator.
//
// Threads: run() blocks for at most the call timeout; call it off the node's main loop.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/actor/runtime.hpp"

namespace csk::cluster {
class node;
}
namespace csk::entity {
class directory;
}

namespace csk::console {

struct parts {
  actor::runtime* rt = nullptr;
  cluster::node* cluster = nullptr;  ///< nullptr without cluster.self
  std::vector<std::string> gates;    ///< config gate names
  std::chrono::steady_clock::time_point started;
  std::chrono::milliseconds call_timeout{5000};
  const entity::directory* entities = nullptr;  ///< the entity stores, for journal/checkpoint
};

/// Answers one console line: the JSON text of the answer.
std::string run(const parts& p, std::string_view line);

/// The words of a line: split on blanks; "double quotes" keep blanks (backslash escapes
/// the next character inside them).
std::vector<std::string> split_words(std::string_view line);

}  // namespace csk::console
