#include "services/admin/admin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "services/admin/http.hpp"
#include "services/cluster/node.hpp"
#include "services/entity/directory.hpp"
#include "services/gate/directory.hpp"
#include "services/gate/gate.hpp"

namespace csk::admin {
namespace {

using json = nlohmann::ordered_json;

// Label values: backslash, double quote and newline escaped (the format's rule).
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

class text_writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  template <class N>
  void sample(const char* name, const std::string& labels, N value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    if constexpr (std::is_floating_point_v<N>) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", value);
      out_ += buf;
    } else {
      out_ += std::to_string(value);
    }
    out_ += '\n';
  }
  /// The two samples of a per-direction counter: `labels` plus direction="out" / "in".
  template <class N>
  void directions(const char* name, const std::string& labels, N out, N in) {
    sample(name, labels + ",direction=\"out\"", out);
    sample(name, labels + ",direction=\"in\"", in);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::uint64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

budget_stat budget_of(const memory_budget& b) {
  return {b.held(), b.high(), b.low(), b.waiting(), b.pauses()};
}

std::string service_labels(const actor::service_info& i) {
  return "handle=\"" + actor::handle_string(i.handle) + "\",name=\"" + label(i.names.empty() ? "" : i.names.front()) + "\"";
}

// gperftools, found at run time: a worker program linked with libprofiler and tcmalloc
// (cppskynet-worker outside sanitizer builds) serves /debug/pprof; others answer 501.
struct gperftools {
  int (*profiler_start)(const char*) = nullptr;
  void (*profiler_stop)() = nullptr;
  void (*heap_start)(const char*) = nullptr;
  void (*heap_stop)() = nullptr;
  char* (*heap_profile)() = nullptr;
  int (*heap_running)() = nullptr;

  static const gperftools& get() {
    static const gperftools g = [] {
      gperftools t;
      const auto sym = [](const char* name) { return ::dlsym(RTLD_DEFAULT, name); };
      t.profiler_start = reinterpret_cast<int (*)(const char*)>(sym("ProfilerStart"));
      t.profiler_stop = reinterpret_cast<void (*)()>(sym("ProfilerStop"));
      t.heap_start = reinterpret_cast<void (*)(const char*)>(sym("HeapProfilerStart"));
      t.heap_stop = reinterpret_cast<void (*)()>(sym("HeapProfilerStop"));
      t.heap_profile = reinterpret_cast<char* (*)()>(sym("GetHeapProfile"));
      t.heap_running = reinterpret_cast<int (*)()>(sym("IsHeapProfilerRunning"));
      return t;
    }();
    return g;
  }
  bool cpu() const { return profiler_start != nullptr && profiler_stop != nullptr; }
  bool heap() const { return heap_start != nullptr && heap_stop != nullptr && heap_profile != nullptr && heap_running != nullptr; }
};

// One profile at a time per process (gperftools' profilers are process-wide).
std::atomic<bool> g_profiling{false};

// ?seconds=N (1..60), default `def`.
int seconds_of(const std::string& query, int def) {
  std::istringstream in(query);
  std::string kv;
  while (std::getline(in, kv, '&')) {
    if (kv.rfind("seconds=", 0) == 0) {
      const int n = std::atoi(kv.c_str() + 8);
      return n >= 1 && n <= 60 ? n : -1;
    }
  }
  return def;
}

std::string read_and_remove(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  return out;
}

/// HTTP over the gate: the head of one request is one message; raw bytes out.
class http_framing final : public gate::framing {
 public:
  net::unpack_result unpack(bytes_view buffered) const override { return unpack_http(buffered); }
  void frame(byte_buffer& out, bytes_view body) const override { out.insert(out.end(), body.begin(), body.end()); }
};

class admin_service final : public gate::gate_service {
 public:
  admin_service() : gate_service(std::make_shared<http_framing>()) {}

  void on_init(actor::context&, const actor::values& args) override {
    if (!args.empty() && args[0].is_table()) {
      if (const auto* g = args[0].as_table().find("generation"); g != nullptr && g->is_integer()) {
        generation_ = static_cast<std::uint32_t>(g->as_integer());
      }
    }
  }

  // A CPU profile (SIGPROF sampling, gperftools' format that `pprof`/`google-pprof` read) or
  // a heap profile (the allocations made during the window, tcmalloc's heap profile format)
  // over `seconds`. The service awaits a timer meanwhile: other requests are served.
  actor::task<std::string> profile(actor::context& ctx, bool cpu, int seconds) {
    const auto& g = gperftools::get();
    const std::string base = "/tmp/csk_pprof_" + std::to_string(::getpid());
    if (cpu) {
      const std::string path = base + ".prof";
      if (g.profiler_start(path.c_str()) == 0) co_return response(500, "text/plain; charset=utf-8", "ProfilerStart failed\n");
      co_await ctx.sleep(std::chrono::seconds(seconds));
      g.profiler_stop();
      co_return response(200, "application/octet-stream", read_and_remove(path));
    }
    if (g.heap_running() != 0) co_return response(503, "text/plain; charset=utf-8", "the heap profiler is running already\n");
    g.heap_start(base.c_str());
    co_await ctx.sleep(std::chrono::seconds(seconds));
    char* text = g.heap_profile();
    g.heap_stop();
    std::string body = text != nullptr ? text : "";
    std::free(text);
    co_return response(200, "text/plain; charset=utf-8", body);
  }

  actor::task<std::optional<byte_buffer>> on_message(actor::context& ctx, net::conn_id id, byte_buffer msg) override {
    close_after_answers(id, "HTTP: one request per connection");
    auto req = parse_request(msg);
    std::string out;
    if (!req) {
      out = response(400, "text/plain; charset=utf-8", req.error() + "\n");
    } else if (req->method != "GET") {
      out = response(405, "text/plain; charset=utf-8", "only GET\n");
    } else if (req->path == "/metrics") {
      out = response(200, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(snap(ctx)));
    } else if (req->path == "/status") {
      out = response(200, "application/json", status_json(snap(ctx)) + "\n");
    } else if (req->path == "/debug/pprof/profile" || req->path == "/debug/pprof/heap") {
      const bool cpu = req->path == "/debug/pprof/profile";
      const auto& g = gperftools::get();
      const int seconds = seconds_of(req->query, cpu ? 5 : 10);
      if (cpu ? !g.cpu() : !g.heap()) {
        out = response(501, "text/plain; charset=utf-8",
                       "this worker is not linked with gperftools (libprofiler, tcmalloc): no profiles\n");
      } else if (seconds < 0) {
        out = response(400, "text/plain; charset=utf-8", "seconds must be 1..60\n");
      } else if (g_profiling.exchange(true)) {
        out = response(503, "text/plain; charset=utf-8", "a profile is being taken already\n");
      } else {
        out = co_await profile(ctx, cpu, seconds);
        g_profiling = false;
      }
    } else {
      out = response(404, "text/plain; charset=utf-8", "not found: " + req->path + " (try /metrics or /status)\n");
    }
    co_return byte_buffer(out.begin(), out.end());
  }

 private:
  snapshot snap(actor::context& ctx) const { return gather(ctx.rt(), generation_); }

  std::uint32_t generation_ = 0;
};

}  // namespace

namespace {
/// A service's first name (".gate.kv"), or its handle written as skynet does.
std::string first_name(const std::vector<actor::service_info>& services, actor::handle_t h) {
  for (const auto& i : services) {
    if (i.handle == h && !i.names.empty()) return i.names.front();
  }
  return actor::handle_string(h);
}
}  // namespace

snapshot gather(actor::runtime& rt, std::uint32_t generation) {
  snapshot s;
  s.generation = generation;
  s.runtime = rt.stats();
  s.services = rt.services();
  auto* n = rt.extension<net::net>();
  if (auto* c = rt.extension<cluster::node>()) {
    s.cluster = true;
    s.inbound_connections = c->inbound_connections();
    s.inbound_in_flight = c->inbound_in_flight();
    s.peers = c->peers();
    for (auto& i : c->inbound_peers()) {
      const std::uint64_t queued = n != nullptr ? n->queued_bytes(i.id) : 0;
      s.inbound.push_back({std::move(i), queued});
    }
    s.inbound_overrun_closes = c->inbound_overrun_closes();
  }
  if (n != nullptr) {
    const auto st = n->get_stats();
    s.net_bytes_in = st.bytes_in;
    s.net_bytes_out = st.bytes_out;
    s.net_messages = st.messages;
    s.net_accepted = st.accepted;
    s.net_connected = st.connected;
    s.net_read_buffer_bytes = st.read_buffer_bytes;
    s.net_read_buffers = st.read_buffers;
    s.net_pooled_bytes = st.pooled_bytes;
  }
  if (const memory_budget* b = rt.options().budget) {
    s.has_budget = true;
    s.budget = budget_of(*b);
  }
  if (const auto* gates = rt.extension<gate::directory>()) {
    gates->each([&](actor::handle_t h, const gate::gate_service& g) {
      const auto st = g.stats();
      s.gates.push_back({first_name(s.services, h), st.mailbox_pauses, st.memory_pauses, st.held_bytes});
    });
  }
  s.resident_bytes = resident_bytes();
  if (auto* dir = rt.extension<entity::directory>()) {
    for (const auto& e : dir->list()) {
      if (!e.journal) continue;
      const auto& j = *e.journal;
      store_stat st;
      st.id = e.id;
      st.type = e.type;
      st.entities = j.entities.load();
      st.journal_bytes = j.used_bytes.load();
      st.journal_capacity = j.ring_bytes.load();
      st.records = j.records.load();
      st.records_since_checkpoint = j.records_since_checkpoint.load();
      st.checkpoints = j.checkpoints.load();
      st.forced_checkpoints = j.forced_checkpoints.load();
      st.syncs = j.syncs.load();
      st.last_checkpoint_unix_ms = j.last_checkpoint_unix_ms.load();
      st.checkpointing = j.checkpointing.load();
      st.recovered_entities = j.recovered_entities.load();
      st.recovered_records = j.recovered_records.load();
      st.recovery_us = j.recovery_us.load();
      st.recovery_stopped_at_bad_record = j.recovery_stopped_at_bad_record.load();
      st.recovery_note = j.note();
      s.stores.push_back(std::move(st));
    }
  }
  if (auto* c = rt.extension<supervisor_counters>(); c != nullptr && c->known.load()) {
    s.supervised = true;
    s.restarts = c->restarts.load();
    s.upgrades_ok = c->upgrades_ok.load();
    s.upgrades_failed = c->upgrades_failed.load();
    s.last_upgrade_total_us = c->last_upgrade_total_us.load();
    s.last_upgrade_frozen_us = c->last_upgrade_frozen_us.load();
  }
  return s;
}

namespace {

// The entity stores' journals (docs/durability.md), labelled store="<id>".
void write_stores(text_writer& w, const std::vector<store_stat>& stores) {
  if (stores.empty()) return;
  const auto each = [&](const char* name, const char* type, const char* help, auto value) {
    w.family(name, type, help);
    for (const auto& st : stores) w.sample(name, "store=\"" + label(st.id) + "\"", value(st));
  };
  each("csk_entity_entities", "gauge", "Entities in an entity store.", [](const store_stat& st) { return st.entities; });
  each("csk_entity_journal_bytes", "gauge", "Journal ring bytes holding records after the last checkpoint.",
       [](const store_stat& st) { return st.journal_bytes; });
  each("csk_entity_journal_capacity_bytes", "gauge", "The journal ring's size.",
       [](const store_stat& st) { return st.journal_capacity; });
  each("csk_entity_journal_records_total", "counter", "Journal records this worker appended.",
       [](const store_stat& st) { return st.records; });
  each("csk_entity_journal_records_since_checkpoint", "gauge", "Records a recovery would replay now.",
       [](const store_stat& st) { return st.records_since_checkpoint; });
  each("csk_entity_checkpoints_total", "counter", "Checkpoints committed in the store's region (every worker).",
       [](const store_stat& st) { return st.checkpoints; });
  each("csk_entity_forced_checkpoints_total", "counter", "Checkpoints this worker wrote at once because the ring was full.",
       [](const store_stat& st) { return st.forced_checkpoints; });
  each("csk_entity_checkpoint_in_progress", "gauge", "1 while a background checkpoint is being written.",
       [](const store_stat& st) { return st.checkpointing ? 1 : 0; });
  each("csk_entity_last_checkpoint_timestamp_seconds", "gauge", "Wall clock of the last checkpoint's commit (0: none).",
       [](const store_stat& st) { return st.last_checkpoint_unix_ms / 1000; });
  each("csk_entity_journal_syncs_total", "counter", "msync/fdatasync calls on the store's files (persist.dir).",
       [](const store_stat& st) { return st.syncs; });
  each("csk_entity_recovered_entities", "gauge", "Entities the last recovery (this worker's start) loaded.",
       [](const store_stat& st) { return st.recovered_entities; });
  each("csk_entity_recovered_records", "gauge", "Journal records the last recovery replayed.",
       [](const store_stat& st) { return st.recovered_records; });
  each("csk_entity_recovery_seconds", "gauge", "How long the last recovery took (checkpoint and records).",
       [](const store_stat& st) { return static_cast<double>(st.recovery_us) / 1e6; });
  each("csk_entity_recovery_stopped_at_bad_record", "gauge",
       "1 if the last recovery stopped at a bad record before the writer's tail: acknowledged writes were lost.",
       [](const store_stat& st) { return st.recovery_stopped_at_bad_record ? 1 : 0; });
}

// Bytes held for accepted cluster connections: incomplete multi-part requests and
// answers queued for writing.
std::uint64_t cluster_inbound_held(const snapshot& s) {
  std::uint64_t n = 0;
  for (const auto& i : s.inbound) n += i.stats.pending_bytes + i.queued_bytes;
  return n;
}

// The node's memory budget (common/base/memory_budget.hpp), and what it is held for.
void write_budget(text_writer& w, const snapshot& s) {
  if (s.has_budget) {
    w.family("csk_memory_budget_held_bytes", "gauge",
             "Bytes held on peers' behalf: queued outbound bytes, incomplete multi-part requests, "
             "messages fed into mailboxes.");
    w.sample("csk_memory_budget_held_bytes", "", s.budget.held);
    w.family("csk_memory_budget_high_bytes", "gauge",
             "The budget's high-water mark: past it connections stop reading (runtime.memory_high_mb; 0: never).");
    w.sample("csk_memory_budget_high_bytes", "", s.budget.high);
    w.family("csk_memory_budget_low_bytes", "gauge", "The budget's low-water mark: paused connections read again at it.");
    w.sample("csk_memory_budget_low_bytes", "", s.budget.low);
    w.family("csk_memory_budget_waiting_feeders", "gauge", "Connections paused for memory now, waiting for the low mark.");
    w.sample("csk_memory_budget_waiting_feeders", "", s.budget.waiting);
    w.family("csk_memory_budget_pauses_total", "counter", "Times a connection paused reading for memory.");
    w.sample("csk_memory_budget_pauses_total", "", s.budget.pauses);
  }
  if (!s.cluster && s.gates.empty()) return;
  w.family("csk_connections_held_bytes", "gauge",
           "Bytes held for a class of connections (cluster_inbound: incomplete multi-part requests and queued "
           "answers; gate: message bodies until answered and queued answers, all gates).");
  if (s.cluster) w.sample("csk_connections_held_bytes", "class=\"cluster_inbound\"", cluster_inbound_held(s));
  if (!s.gates.empty()) {
    std::uint64_t gates = 0;
    for (const auto& g : s.gates) gates += g.held_bytes;
    w.sample("csk_connections_held_bytes", "class=\"gate\"", gates);
  }
}

// Back-pressure on accepted cluster connections, per connection and in all.
void write_inbound_pressure(text_writer& w, const snapshot& s) {
  if (!s.cluster) return;
  w.family("csk_cluster_inbound_overrun_closes_total", "counter",
           "Accepted connections closed for passing a multi-part limit (max_pending_bytes, incomplete requests).");
  w.sample("csk_cluster_inbound_overrun_closes_total", "", s.inbound_overrun_closes);
  const auto each = [&](const char* name, const char* type, const char* help, auto value) {
    w.family(name, type, help);
    for (const auto& i : s.inbound) {
      w.sample(name, "peer=\"" + label(i.peer) + "\",connection=\"" + std::to_string(i.id) + "\"", value(i));
    }
  };
  each("csk_cluster_inbound_peer_pending_bytes", "gauge",
       "Bytes of incomplete multi-part requests held for one accepted connection.",
       [](const inbound_conn& i) { return i.stats.pending_bytes; });
  each("csk_cluster_inbound_peer_queued_bytes", "gauge", "Bytes queued to one accepted connection, not yet written.",
       [](const inbound_conn& i) { return i.queued_bytes; });
  each("csk_cluster_inbound_peer_mailbox_pauses_total", "counter",
       "Times one accepted connection paused reading for a full mailbox (runtime.mailbox_high).",
       [](const inbound_conn& i) { return i.stats.mailbox_pauses; });
  each("csk_cluster_inbound_peer_memory_pauses_total", "counter",
       "Times one accepted connection paused reading for the node's memory budget.",
       [](const inbound_conn& i) { return i.stats.memory_pauses; });
}

// Back-pressure on gates, labelled gate="<name>".
void write_gates(text_writer& w, const std::vector<gate_stat>& gates) {
  if (gates.empty()) return;
  w.family("csk_gate_mailbox_pauses_total", "counter", "Times a gate connection paused reading for the gate's full mailbox.");
  for (const auto& g : gates) w.sample("csk_gate_mailbox_pauses_total", "gate=\"" + label(g.name) + "\"", g.mailbox_pauses);
  w.family("csk_gate_memory_pauses_total", "counter", "Times a gate connection paused reading for the node's memory budget.");
  for (const auto& g : gates) w.sample("csk_gate_memory_pauses_total", "gate=\"" + label(g.name) + "\"", g.memory_pauses);
}

// Receive buffers (borrowed from a per-thread pool; idle connections hold none).
void write_net_buffers(text_writer& w, const snapshot& s) {
  w.family("csk_net_read_buffer_bytes", "gauge", "Receive buffers held by connections now.");
  w.sample("csk_net_read_buffer_bytes", "", s.net_read_buffer_bytes);
  w.family("csk_net_read_buffers", "gauge", "Connections holding a receive buffer now (an idle one holds none).");
  w.sample("csk_net_read_buffers", "", s.net_read_buffers);
  w.family("csk_net_pooled_buffer_bytes", "gauge", "Receive buffers kept for reuse by the net threads.");
  w.sample("csk_net_pooled_buffer_bytes", "", s.net_pooled_bytes);
}

}  // namespace

std::string prometheus_text(const snapshot& s) {
  text_writer w;
  w.family("csk_worker_generation", "gauge", "This worker's generation (1, 2, ...: one per process the supervisor started).");
  w.sample("csk_worker_generation", "", s.generation);
  w.family("csk_process_resident_bytes", "gauge", "Resident memory of the worker process.");
  w.sample("csk_process_resident_bytes", "", s.resident_bytes);
  w.family("csk_runtime_services", "gauge", "Live services.");
  w.sample("csk_runtime_services", "", s.runtime.services);
  w.family("csk_runtime_messages_total", "counter", "Messages handed to services.");
  w.sample("csk_runtime_messages_total", "", s.runtime.dispatched);
  w.family("csk_runtime_dropped_total", "counter", "Messages to dead or unknown services, and late replies.");
  w.sample("csk_runtime_dropped_total", "", s.runtime.dropped);
  w.family("csk_runtime_handler_errors_total", "counter", "Errors raised by service handlers.");
  w.sample("csk_runtime_handler_errors_total", "", s.runtime.handler_errors);
  w.family("csk_runtime_overload_refused_total", "counter",
           "Calls and sends refused: the target's mailbox was at runtime.mailbox_limit.");
  w.sample("csk_runtime_overload_refused_total", "", s.runtime.overload_refused);
  w.family("csk_runtime_mailbox_pauses_total", "counter",
           "Times a feeder (cluster agent, gate) paused reading for a mailbox past runtime.mailbox_high.");
  w.sample("csk_runtime_mailbox_pauses_total", "", s.runtime.mailbox_pauses);
  w.family("csk_service_mailbox", "gauge", "Messages waiting in a service's mailbox.");
  for (const auto& i : s.services) w.sample("csk_service_mailbox", service_labels(i), i.mailbox);
  w.family("csk_service_messages_total", "counter", "Messages a service has handled.");
  for (const auto& i : s.services) w.sample("csk_service_messages_total", service_labels(i), i.messages);
  w.family("csk_service_busy_seconds_total", "counter", "Time a service spent handling messages.");
  for (const auto& i : s.services) {
    w.sample("csk_service_busy_seconds_total", service_labels(i), static_cast<double>(i.busy_ns) / 1e9);
  }
  w.family("csk_service_cpu_seconds_total", "counter",
           "CPU time a service spent handling messages (0 with runtime.profile off).");
  for (const auto& i : s.services) {
    w.sample("csk_service_cpu_seconds_total", service_labels(i), static_cast<double>(i.cpu_ns) / 1e9);
  }
  if (s.cluster) {
    w.family("csk_cluster_inbound_connections", "gauge", "Cluster connections accepted and served now.");
    w.sample("csk_cluster_inbound_connections", "", s.inbound_connections);
    w.family("csk_cluster_inbound_in_flight", "gauge", "Calls from cluster peers being handled now.");
    w.sample("csk_cluster_inbound_in_flight", "", s.inbound_in_flight);
    const auto peer_labels = [](const cluster::node::peer_stat& p) { return "peer=\"" + label(p.name) + "\""; };
    w.family("csk_cluster_peer_pending_calls", "gauge", "Calls to a peer node waiting for their answer.");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_pending_calls", peer_labels(p), p.pending);
    w.family("csk_cluster_peer_calls_total", "counter", "Calls made to a peer node.");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_calls_total", peer_labels(p), p.stats.calls);
    w.family("csk_cluster_peer_pushes_total", "counter", "Pushes (cluster.send) to a peer node.");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_pushes_total", peer_labels(p), p.stats.pushes);
    w.family("csk_cluster_peer_connects_total", "counter", "Connections made to a peer node.");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_connects_total", peer_labels(p), p.stats.connects);
    w.family("csk_cluster_peer_failed_calls_total", "counter", "Calls to a peer that failed (connect, drop, node down).");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_failed_calls_total", peer_labels(p), p.stats.failed_calls);
    w.family("csk_cluster_peer_connected", "gauge", "1 while the connection to a peer node is up.");
    for (const auto& p : s.peers) w.sample("csk_cluster_peer_connected", peer_labels(p), p.connected ? 1 : 0);
    w.family("csk_cluster_peer_frames_total", "counter",
             "Frames on the connection to a peer node: requests out, responses in.");
    for (const auto& p : s.peers) {
      w.directions("csk_cluster_peer_frames_total", peer_labels(p), p.stats.frames_out, p.stats.frames_in);
    }
    w.family("csk_cluster_peer_bytes_total", "counter",
             "Bytes (frame headers included) on the connection to a peer node.");
    for (const auto& p : s.peers) {
      w.directions("csk_cluster_peer_bytes_total", peer_labels(p), p.stats.bytes_out, p.stats.bytes_in);
    }
    // Accepted connections: skynet's caller does not name its node, so they are known by
    // address and connection id. The series of a closed connection disappears with it.
    const auto in_labels = [](const cluster::node::inbound_stat& i) {
      return "peer=\"" + label(i.peer) + "\",connection=\"" + std::to_string(i.id) + "\"";
    };
    w.family("csk_cluster_inbound_peer_in_flight", "gauge", "Calls from one accepted connection being handled now.");
    for (const auto& i : s.inbound) w.sample("csk_cluster_inbound_peer_in_flight", in_labels(i), i.in_flight);
    w.family("csk_cluster_inbound_peer_calls_total", "counter", "Calls received on one accepted connection.");
    for (const auto& i : s.inbound) w.sample("csk_cluster_inbound_peer_calls_total", in_labels(i), i.stats.calls);
    w.family("csk_cluster_inbound_peer_pushes_total", "counter", "Pushes received on one accepted connection.");
    for (const auto& i : s.inbound) w.sample("csk_cluster_inbound_peer_pushes_total", in_labels(i), i.stats.pushes);
    w.family("csk_cluster_inbound_peer_frames_total", "counter",
             "Frames on one accepted connection: responses out, requests in.");
    for (const auto& i : s.inbound) {
      w.directions("csk_cluster_inbound_peer_frames_total", in_labels(i), i.stats.frames_out, i.stats.frames_in);
    }
    w.family("csk_cluster_inbound_peer_bytes_total", "counter",
             "Bytes (frame headers included) on one accepted connection.");
    for (const auto& i : s.inbound) {
      w.directions("csk_cluster_inbound_peer_bytes_total", in_labels(i), i.stats.bytes_out, i.stats.bytes_in);
    }
  }
  if (s.supervised) {
    w.family("csk_supervisor_worker_restarts_total", "counter", "Workers the supervisor restarted after a death.");
    w.sample("csk_supervisor_worker_restarts_total", "", s.restarts);
    w.family("csk_supervisor_upgrades_total", "counter", "Upgrades (cppskynet upgrade, SIGUSR2) by result.");
    w.sample("csk_supervisor_upgrades_total", "result=\"ok\"", s.upgrades_ok);
    w.sample("csk_supervisor_upgrades_total", "result=\"failed\"", s.upgrades_failed);
    w.family("csk_supervisor_last_upgrade_seconds", "gauge", "The last successful upgrade: old worker's whole hand-over.");
    w.sample("csk_supervisor_last_upgrade_seconds", "", static_cast<double>(s.last_upgrade_total_us) / 1e6);
    w.family("csk_supervisor_last_upgrade_pause_seconds", "gauge",
             "The last successful upgrade: freeze to the new worker serving (no request read meanwhile).");
    w.sample("csk_supervisor_last_upgrade_pause_seconds", "", static_cast<double>(s.last_upgrade_frozen_us) / 1e6);
  }
  write_inbound_pressure(w, s);
  write_budget(w, s);
  write_gates(w, s.gates);
  write_stores(w, s.stores);
  write_net_buffers(w, s);
  w.family("csk_net_bytes_in_total", "counter", "Bytes received on every connection.");
  w.sample("csk_net_bytes_in_total", "", s.net_bytes_in);
  w.family("csk_net_bytes_out_total", "counter", "Bytes sent on every connection.");
  w.sample("csk_net_bytes_out_total", "", s.net_bytes_out);
  w.family("csk_net_messages_total", "counter", "Frames received (cluster, gates, admin).");
  w.sample("csk_net_messages_total", "", s.net_messages);
  w.family("csk_net_accepted_total", "counter", "Connections accepted.");
  w.sample("csk_net_accepted_total", "", s.net_accepted);
  return w.take();
}

namespace {
json stores_json(const std::vector<store_stat>& stores) {
  json out = json::array();
  for (const auto& st : stores) {
    out.push_back({{"id", st.id},
                   {"type", st.type},
                   {"entities", st.entities},
                   {"journal_bytes", st.journal_bytes},
                   {"journal_capacity", st.journal_capacity},
                   {"records", st.records},
                   {"records_since_checkpoint", st.records_since_checkpoint},
                   {"checkpoints", st.checkpoints},
                   {"forced_checkpoints", st.forced_checkpoints},
                   {"checkpointing", st.checkpointing},
                   {"last_checkpoint_unix_ms", st.last_checkpoint_unix_ms},
                   {"recovered_entities", st.recovered_entities},
                   {"recovered_records", st.recovered_records},
                   {"recovery_ms", static_cast<double>(st.recovery_us) / 1000.0},
                   {"recovery_stopped_at_bad_record", st.recovery_stopped_at_bad_record},
                   {"recovery_note", st.recovery_note}});
  }
  return out;
}

json budget_json(const budget_stat& b) {
  return {{"held", b.held}, {"high", b.high}, {"low", b.low}, {"waiting", b.waiting}, {"pauses", b.pauses}};
}

json gates_json(const std::vector<gate_stat>& gates) {
  json out = json::array();
  for (const auto& g : gates) {
    out.push_back({{"name", g.name},
                   {"mailbox_pauses", g.mailbox_pauses},
                   {"memory_pauses", g.memory_pauses},
                   {"held_bytes", g.held_bytes}});
  }
  return out;
}
}  // namespace

std::string status_json(const snapshot& s) {
  json services = json::array();
  for (const auto& i : s.services) {
    services.push_back({{"handle", actor::handle_string(i.handle)}, {"names", i.names}, {"mailbox", i.mailbox},
                        {"messages", i.messages}, {"busy_s", static_cast<double>(i.busy_ns) / 1e9},
                        {"cpu_s", static_cast<double>(i.cpu_ns) / 1e9}});
  }
  json peers = json::array();
  for (const auto& p : s.peers) {
    peers.push_back({{"name", p.name},
                     {"connected", p.connected},
                     {"pending", p.pending},
                     {"calls", p.stats.calls},
                     {"pushes", p.stats.pushes},
                     {"connects", p.stats.connects},
                     {"failed_calls", p.stats.failed_calls},
                     {"frames_out", p.stats.frames_out},
                     {"bytes_out", p.stats.bytes_out},
                     {"frames_in", p.stats.frames_in},
                     {"bytes_in", p.stats.bytes_in}});
  }
  json inbound = json::array();
  for (const auto& i : s.inbound) {
    inbound.push_back({{"connection", i.id},
                       {"peer", i.peer},
                       {"in_flight", i.in_flight},
                       {"calls", i.stats.calls},
                       {"pushes", i.stats.pushes},
                       {"frames_in", i.stats.frames_in},
                       {"bytes_in", i.stats.bytes_in},
                       {"frames_out", i.stats.frames_out},
                       {"bytes_out", i.stats.bytes_out},
                       {"pending_bytes", i.stats.pending_bytes},
                       {"queued_bytes", i.queued_bytes},
                       {"mailbox_pauses", i.stats.mailbox_pauses},
                       {"memory_pauses", i.stats.memory_pauses}});
  }
  json out = {{"generation", s.generation},
              {"pid", ::getpid()},
              {"resident_bytes", s.resident_bytes},
              {"runtime",
               {{"services", s.runtime.services},
                {"messages", s.runtime.dispatched},
                {"dropped", s.runtime.dropped},
                {"handler_errors", s.runtime.handler_errors},
                {"overload_refused", s.runtime.overload_refused},
                {"mailbox_pauses", s.runtime.mailbox_pauses}}},
              {"budget", s.has_budget ? budget_json(s.budget) : json(nullptr)},
              {"services", services},
              {"supervisor", s.supervised ? json{{"restarts", s.restarts},
                                                 {"upgrades_ok", s.upgrades_ok},
                                                 {"upgrades_failed", s.upgrades_failed},
                                                 {"last_upgrade_total_us", s.last_upgrade_total_us},
                                                 {"last_upgrade_frozen_us", s.last_upgrade_frozen_us}}
                                          : json(nullptr)},
              {"stores", stores_json(s.stores)},
              {"cluster", s.cluster ? json{{"inbound_connections", s.inbound_connections},
                                           {"inbound_in_flight", s.inbound_in_flight},
                                           {"peers", peers},
                                           {"inbound", inbound},
                                           {"inbound_overrun_closes", s.inbound_overrun_closes},
                                           {"inbound_held_bytes", cluster_inbound_held(s)}}
                                    : json(nullptr)},
              {"gates", gates_json(s.gates)},
              {"net",
               {{"bytes_in", s.net_bytes_in},
                {"bytes_out", s.net_bytes_out},
                {"messages", s.net_messages},
                {"accepted", s.net_accepted},
                {"read_buffer_bytes", s.net_read_buffer_bytes},
                {"read_buffers", s.net_read_buffers},
                {"pooled_bytes", s.net_pooled_bytes}}}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

void register_types(actor::runtime& rt) {
  rt.register_type("admin", [] { return std::make_unique<admin_service>(); });
}

}  // namespace csk::admin
