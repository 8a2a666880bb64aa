#pragma once
// The accepting side of one cluster connection: skynet's clusteragent, in C++.
//
// Frames in (from the connection), calls and sends into the runtime, response
// frames out (through `write`). Addressing, as skynet's receiver does it:
//   numeric 0        name query: payload skynet.pack(name) -> OK pack(handle) | ERROR "name not found"
//   numeric handle   that service
//   "@name"          a name registered for cluster callers  (unknown: ERROR "Invalid name")
//   ".name"          a node-local name                      (unknown: ERROR "call to invalid address")
//   ":0000000a"      a handle written in hex
// Pushes get no answer, except a push to an unknown @name (ERROR "Invalid name" with the
// push's session, as skynet does).
//
// Traces: a call that came after a trace frame is made as skynet's agent makes it, with
// skynet.tracecall: "tracecall begin" and "tracecall end" are logged under the tag (with
// handle 0: the agent is not a service) and the handler it reaches runs traced (see
// actor::context::trace_tag). A push's tag is dropped (skynet's agent traces calls only).
//
// Deviations, on purpose (skynet leaves the caller waiting forever in these cases):
//   - a bare name (no '@', '.' or ':') is answered ERROR "Invalid name";
//   - a call whose payload is not seri data is answered with the unpack error;
//   - a call not answered within the node's call timeout is answered ERROR "call timed out".
//
// Back-pressure (flow_control): after each request it delivers, the agent pauses its
// connection's reading while the target service's mailbox is past mailbox_high (resumed
// when it drains to mailbox_low), and while the node's memory budget is past its high mark
// (resumed at the low mark). The chunks of incomplete multi-part requests are charged to
// the budget; past the per-connection cap (assembler_limits::max_pending_bytes) the peer
// is closed with the reason. Nothing read is dropped: the peer's bytes wait in TCP.
//
// Thread rules: on_frame() runs on the connection's net thread only. Answers are written
// from whichever runtime thread completes the call; `write` must be safe from any thread.
//
// Batching: answers to calls are encoded into one outbox per agent; the first answer of
// a service turn asks the runtime to flush the outbox when that turn ends, so the
// answers a turn produces leave in one `write` (one net send) instead of one each.
// Answers that no turn produces (timeouts, shutdown) are written at once. Errors found
// on the net thread (bad address, bad payload) are written directly.

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/actor/runtime.hpp"
#include "common/base/memory_budget.hpp"
#include "common/net/handler.hpp"
#include "common/wire/cluster_assembler.hpp"

namespace csk::cluster {

struct agent_stats {
  std::uint64_t calls = 0;
  std::uint64_t pushes = 0;
  std::uint64_t queries = 0;
  std::uint64_t error_replies = 0;  ///< answered with ERROR
  std::uint64_t dropped = 0;        ///< frames or pushes dropped (logged)
  // The wire: request frames received, response frames written (bytes include the
  // 2-byte headers). A handed-over connection's new agent counts from 0.
  std::uint64_t frames_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t bytes_out = 0;
  // Back-pressure: reads paused for a full mailbox or the node's memory, and the bytes
  // of incomplete multi-part requests held now.
  std::uint64_t mailbox_pauses = 0;
  std::uint64_t memory_pauses = 0;
  std::uint64_t pending_bytes = 0;
  bool overrun = false;  ///< closed for passing max_pending_bytes
};

/// How an agent pushes back on its connection. Every member is optional.
struct flow_control {
  /// Stops reading the connection for `why` (called on the connection's net thread,
  /// from on_frame: no further frame arrives until the matching resume).
  std::function<void(net::pause_reason why)> pause;
  /// Ends that pause. Runs on any thread, possibly after the agent is gone: it must
  /// reach the connection through something that outlives the agent (its id).
  std::function<void(net::pause_reason why)> resume;
  memory_budget* budget = nullptr;  ///< the node's; must outlive the agent
};

class agent {
 public:
  using write_fn = std::function<void(byte_buffer)>;
  using close_fn = std::function<void(const std::string& reason)>;

  agent(actor::runtime& rt, std::string peer, write_fn write, close_fn close,
        wire::assembler_limits limits = {}, std::chrono::milliseconds call_timeout = {}, flow_control flow = {});
  ~agent();
  agent(const agent&) = delete;
  agent& operator=(const agent&) = delete;

  /// One frame body as the connection delivered it.
  void on_frame(bytes_view body);

  agent_stats stats() const;
  /// The peer's address as the connection gave it.
  const std::string& peer() const noexcept { return peer_; }

  // -- hand-over (a connection moving to another worker) -------------------------------
  /// Calls dispatched and not yet answered, counting an answer as given once it has been
  /// handed to `write` (0 = this agent owes its peer nothing). Any thread.
  std::size_t in_flight() const noexcept;
  /// The connection's protocol state (layout and version in agent.cpp): the multi-part
  /// requests half received and the trace tag. Precondition, checked: no call in flight
  /// (the orchestration stops delivery, then waits for in_flight() == 0); fails
  /// otherwise, or once the agent closed its connection. The agent itself is unchanged.
  /// Net thread of the connection (no on_frame may run meanwhile).
  result<byte_buffer, std::string> export_state() const;
  /// Takes over an exported state. Call it on a fresh agent, before its first frame; on
  /// error nothing changed. Net thread of the connection (or before it is published).
  result<void, std::string> import_state(bytes_view state);
  static constexpr std::uint8_t state_version = 1;

 private:
  /// Returns the handle the request went to (0: answered here or dropped).
  actor::handle_t dispatch(wire::request_message& m);
  /// A call that came after a trace frame (its outbox reference already taken).
  void traced_call(actor::handle_t to, actor::values args, wire::request_message& m);
  /// After a delivery: pause for `to`'s mailbox or the node's memory (see flow_control).
  void push_back(actor::handle_t to);
  /// Charges (or releases) the budget for what the assembler holds now.
  void sync_charge();
  void answer_error(std::uint32_t session, std::string_view text);
  actor::handle_t resolve(const wire::request_message& m, std::string_view& error_text);
  actor::handle_t resolve_name(std::string_view name);

  /// What the completions of this agent's calls share with it: the outbox, `write` and
  /// the counters. Reference-counted by hand (the agent holds one reference, each call
  /// in flight one more), so that a completion is a pointer and a session: small enough
  /// for std::function to hold without allocating.
  class outbox;

  actor::runtime& rt_;
  std::string peer_;
  close_fn close_;
  wire::request_assembler assembler_;
  wire::request_event event_;  // reused for every frame (no allocation per request)
  std::array<actor::runtime::name_cache, 4> names_{};  // the names called lately (net thread)
  std::size_t next_name_slot_ = 0;
  std::chrono::milliseconds call_timeout_;
  bool closed_ = false;
  flow_control flow_;
  std::size_t charged_ = 0;  // assembler bytes charged to flow_.budget (net thread)
  std::atomic<std::size_t> pending_bytes_{0};  // charged_, for stats() on any thread
  std::atomic<std::uint64_t> mailbox_pauses_{0}, memory_pauses_{0};
  std::atomic<bool> overrun_{false};
  outbox* out_;
};

}  // namespace csk::cluster
