#pragma once
// The admin HTTP endpoint (config `admin: {listen: "127.0.0.1:9090"}`): a gate service
// (services/gate) speaking just enough HTTP (http.hpp), one request per connection.
//
//   GET /metrics   Prometheus text format 0.0.4: the runtime (services, messages, errors),
//                  every service (mailbox, messages, busy and CPU seconds; labelled by
//                  handle and first name), the cluster (inbound connections and calls in
//                  flight; per peer node called: pending calls, calls, pushes, connects,
//                  failed calls, connected, frames and bytes each way; per accepted
//                  connection: calls in flight, calls, pushes, frames and bytes each way), the net (bytes, messages, connections), the process (RSS),
//                  this worker's generation, the supervisor's counters (worker restarts,
//                  upgrades by result, the last upgrade's duration and pause), and per entity
//                  store its journal (size, records, checkpoints, the last recovery).
//                  The budgets (docs/architecture.md "Where memory is held"): the node's
//                  memory budget (held, high and low marks, feeders waiting, pauses), the
//                  runtime's refusals at mailbox_limit and mailbox pauses, the net's receive
//                  buffers (held, pooled), per accepted cluster connection its incomplete
//                  multi-part bytes, queued bytes and pauses, the closes for a multi-part
//                  overrun, the bytes held for cluster inbound connections and for gates, and
//                  per gate (gate::directory) its pauses and held bytes
//   GET /status    the same as JSON
//   GET /debug/pprof/profile?seconds=N   a CPU profile over N s (default 5, 1..60), in
//                  gperftools' format (`google-pprof --text WORKER FILE`, or Go's pprof)
//   GET /debug/pprof/heap?seconds=N      the allocations made over N s (default 10), in the
//                  heap profile format of tcmalloc's heap profiler
//                  Both need the worker program linked with libprofiler and tcmalloc
//                  (cppskynet-worker is, outside sanitizer builds); otherwise 501. One
//                  profile at a time (503 while one is being taken).
//   anything else  404 (405 for a method other than GET)
//
// Upgrades and restarts are counted by the supervisor, which sends them to the worker
// (channel `counters`); run_node keeps them in a supervisor_counters extension.
//
// Spawned by the worker as ".admin" on the inherited "admin" listener: args[0] the gate
// options table (gate_options_from), args[1] {generation = N}. The cluster node and the net
// are found through the runtime's extensions. During an upgrade it is not handed over:
// both generations accept on the shared listener until the old one exits (a scrape in
// flight at that instant may be cut; Prometheus retries at the next interval).

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "services/cluster/node.hpp"

namespace csk::admin {

/// The supervisor's counters as its last `counters` message said (run_node fills it; a
/// runtime extension). Any thread.
struct supervisor_counters {
  std::atomic<bool> known{false};
  std::atomic<std::uint64_t> restarts{0}, upgrades_ok{0}, upgrades_failed{0};
  std::atomic<std::uint64_t> last_upgrade_total_us{0}, last_upgrade_frozen_us{0};
};

/// One entity store with a journal (services/entity/journal.hpp), as /metrics shows it.
struct store_stat {
  std::string id, type;
  std::uint64_t entities = 0, journal_bytes = 0, journal_capacity = 0, records = 0, records_since_checkpoint = 0;
  std::uint64_t checkpoints = 0, forced_checkpoints = 0, syncs = 0;
  std::int64_t last_checkpoint_unix_ms = 0;
  bool checkpointing = false;
  std::uint64_t recovered_entities = 0, recovered_records = 0, recovery_us = 0;
  bool recovery_stopped_at_bad_record = false;
  std::string recovery_note;
};

/// The node's memory budget (common/base/memory_budget.hpp) at one look.
struct budget_stat {
  std::uint64_t held = 0, high = 0, low = 0;
  std::uint64_t waiting = 0;  ///< feeders paused for memory now
  std::uint64_t pauses = 0;   ///< feeders that paused for memory, in all
};

/// One accepted cluster connection: its agent's figures and the answers queued to it.
struct inbound_conn : cluster::node::inbound_stat {
  std::uint64_t queued_bytes = 0;  ///< net::queued_bytes: written to the net, not yet sent
};

/// One gate service (services/gate): its back-pressure.
struct gate_stat {
  std::string name;
  std::uint64_t mailbox_pauses = 0, memory_pauses = 0;
  std::uint64_t held_bytes = 0;  ///< gate_stats::held_bytes
};

/// What /metrics and /status show, gathered at one request.
struct snapshot {
  std::uint32_t generation = 0;
  actor::runtime_stats runtime;
  std::vector<actor::service_info> services;
  bool cluster = false;
  std::size_t inbound_connections = 0, inbound_in_flight = 0;
  std::vector<cluster::node::peer_stat> peers;       ///< nodes this one calls, by name
  std::vector<inbound_conn> inbound;  ///< accepted connections, by id
  std::uint64_t inbound_overrun_closes = 0;  ///< node::inbound_overrun_closes
  std::uint64_t net_bytes_in = 0, net_bytes_out = 0, net_messages = 0, net_accepted = 0, net_connected = 0;
  std::uint64_t net_read_buffer_bytes = 0, net_read_buffers = 0, net_pooled_bytes = 0;
  bool has_budget = false;  ///< the runtime has a memory budget (runtime_options::budget)
  budget_stat budget;
  std::vector<gate_stat> gates;  ///< every gate in the runtime's gate::directory, by handle
  std::uint64_t resident_bytes = 0;
  std::vector<store_stat> stores;  ///< entity stores with a journal, by id
  bool supervised = false;  ///< the supervisor's counters below are known
  std::uint64_t restarts = 0, upgrades_ok = 0, upgrades_failed = 0, last_upgrade_total_us = 0, last_upgrade_frozen_us = 0;
};

/// Gathers a snapshot from a runtime (and its cluster node and net, if attached). Any thread.
snapshot gather(actor::runtime& rt, std::uint32_t generation);
/// Prometheus text exposition format 0.0.4. Pure.
std::string prometheus_text(const snapshot& s);
/// The same as JSON text. Pure.
std::string status_json(const snapshot& s);

/// Registers the service type "admin".
void register_types(actor::runtime& rt);

}  // namespace csk::admin
