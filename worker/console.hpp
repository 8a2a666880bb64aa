#pragma once
// skynet's debug console verbs, answered inside the worker: one implementation for the
// two ways in, rendered two ways (console_text.hpp):
//   - `cppskynet console` -> the supervisor's control socket -> channel `console` -> run()
//     -> console_reply (the value as JSON) -> the CLI prints skynet's text, or --json;
//   - the worker's own listener (config `debug_console:`, debug_console.hpp), skynet's
//     protocol on TCP: run() -> skynet's text.
// The supervisor answers `generations` and `upgrade` itself; from the worker's listener
// they go to it through parts::supervisor.
//
// Each verb, its JSON value, and the text lines skynet's shape gives it:
//   help                 {verb: description}         verb\tdescription (sorted)
//   list                 [service]                   :0000000a\t<type> <names...>
//   stat                 {runtime counters, uptime_s, cluster_connections, by_service: [service]}
//                                                    :0000000a\tcpu:<s>\tmessage:N\tmqlen:N\ttask:N
//   mem                  {VmRSS_kb, VmHWM_kb, VmSize_kb}  VmRSS\t%.2f Kb (process resident), ...
//                        (a C++ service has no heap of its own to count: the process's figures)
//   gc                   as mem, after giving the allocator's free memory back to the system
//   cmem                 {block: 0, total: bytes}    block\t0, total\tN (the allocator's bytes
//                        in use; blocks are not counted)
//   info ADDR            service                     key\tvalue per field
//   call ADDR ARGS...    [results]                   1\t<v1> ... n\t<count> (table.pack)
//   send ADDR ARGS...    null                        (nothing)
//   ping ADDR            {alive, round_trip_us}      <centiseconds> (skynet.now() ticks)
//   kill ADDR            {handle, description}       :0000000a\t<type> <names...>
//   exit ADDR            null                        (nothing; the service retires as on kill)
//   start TYPE ARGS...   {handle, type}              :0000000b\t<type>
//   service              {name: [handles]}           <name>\t:0000000a (every named service)
//   task ADDR            {handle, tasks}             handle\t..., tasks\tN (handlers suspended)
//   netstat              {cluster, gates, gate_stats, budget, net}
//                        N\tkey:value... per listener, accepted cluster connection and
//                        connected node called (skynet's keys: type, id, peer, read, write,
//                        wbuffer, accept; sizes in skynet's bytes() form), then budget\t...
//                        and net\t...
//   getenv NAME          {NAME: value|null}          NAME\t<value> ("nil" when unset)
//   setenv NAME VALUE    null                        (error "Can't setenv exist key : NAME")
//   profactive [on|off]  {active}                    heap profilling is active|deactive
//   dumpheap             {file}                      <the heap profile's file>
//   journal              [store]                     <id>\tkey:value... per entity store
//   checkpoint [ID]      {id: started}               <id>\ttrue|false
//   generations          [worker] (the supervisor's) <gen>\tbinary:..\tpid:..\tstate:..
//   upgrade [--worker PATH] [--timeout S]            the verdict, key\tvalue; from the
//                        worker's listener: "upgrade started: gen A -> gen B; ..." (that
//                        worker exits once the new one serves, so it cannot wait)
// service = {handle, type, names, mailbox, messages, busy_ms, cpu_ms, tasks}.
// Verbs skynet has that mean nothing here (inject, snax, clearcache, debug, jmem, dbgcmd,
// killtask, uniqtask, log, logon, logoff, signal, trace) answer why, as an error.
//
// ADDR: ".name", "@name", ":0000000a", or hex digits without the colon (skynet's
// adjust_address; the node's harbor is added). ARGS (call, send, start): JSON if they
// parse, else strings, as `cppskynet call`; commas between them (skynet's Lua syntax)
// are ignored. Errors (a bad address, a failed call) come back as answer::error.
//
// Threads: run() blocks for at most the call timeout (call, ping, checkpoint, kill of a
// busy service) or a supervisor round trip; call it off the node's main loop and off the
// runtime's threads. Any number of run()s may go at once.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "worker/console_text.hpp"

namespace csk::cluster {
class node;
}
namespace csk::entity {
class directory;
}

namespace csk::console {

/// getenv/setenv: a node-level table of strings (skynet.getenv/setenv), seeded by the
/// worker from its config; a key once set is never changed (skynet refuses that too).
/// Lives as long as the worker process: an upgrade or restart starts from the seed again.
/// Threads: any.
class env_table {
 public:
  std::optional<std::string> get(const std::string& name) const;
  /// False when `name` is set already.
  bool set(const std::string& name, std::string value);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> values_;
};

struct parts {
  actor::runtime* rt = nullptr;
  cluster::node* cluster = nullptr;  ///< nullptr without cluster.self
  std::vector<std::string> gates;    ///< config gate names
  std::chrono::steady_clock::time_point started;
  std::chrono::milliseconds call_timeout{5000};
  const entity::directory* entities = nullptr;  ///< the entity stores, for journal/checkpoint
  env_table* env = nullptr;                     ///< getenv/setenv; nullptr: they say so
  /// logon's directory when the env table has no `logpath` (skynet's key).
  std::string log_dir = ".";
  /// generations and upgrade from the worker's own listener: the line to the supervisor
  /// (its control socket), its control reply back. Empty when standalone.
  std::function<result<nlohmann::json, std::string>(const std::string& line)> supervisor;
  /// gc: gives the allocator's free memory back to the system. Empty: gc only reports.
  std::function<void()> release_memory;
};

/// Answers one console line (see the header comment). Never throws for a bad line.
answer run(const parts& p, std::string_view line);

/// The words of a line: split on blanks; "double quotes" keep blanks (backslash escapes
/// the next character inside them).
std::vector<std::string> split_words(std::string_view line);

/// help's table: every verb run() knows, with its one-line description.
nlohmann::json help_table();

}  // namespace csk::console
