#include "worker/node.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <typeindex>

#include "common/config/gate_options.hpp"
#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "services/admin/admin.hpp"
#include "services/cluster/node.hpp"
#include "services/entity/directory.hpp"
#include "services/gate/directory.hpp"
#include "services/entity/registry.hpp"
#include "services/entity/region.hpp"
#include "supervisor/control.hpp"
#include "worker/console.hpp"
#include "worker/debug_console.hpp"
#include "worker/state_regions.hpp"
#include "worker/upgrade.hpp"

namespace csk {

actor::runtime_options runtime_options_from(const runtime_config& c) {
  actor::runtime_options o;
  o.threads = c.threads;
  o.harbor = static_cast<std::uint32_t>(c.harbor);
  o.tick = std::chrono::milliseconds(c.tick_ms);
  o.call_timeout = std::chrono::milliseconds(c.call_timeout_ms);
  o.mailbox_warn = c.mailbox_warn;
  o.slow_handler = std::chrono::milliseconds(c.slow_handler_ms);
  o.shutdown_timeout = std::chrono::milliseconds(c.shutdown_timeout_ms);
  o.profile = c.profile;
  o.idle_spin = std::chrono::microseconds(c.idle_spin_us);
  o.mailbox_high = c.mailbox_high;
  o.mailbox_low = c.mailbox_low;
  o.mailbox_limit = c.mailbox_limit;
  return o;
}

result<void, std::string> boot_services(actor::runtime& rt, const std::vector<service_config>& services) {
  for (std::size_t i = 0; i < services.size(); ++i) {
    const service_config& s = services[i];
    std::vector<std::string> names = s.names;
    if (!s.name.empty()) names.insert(names.begin(), s.name);
    for (int k = 0; k < s.instances; ++k) {
      auto h = rt.spawn(s.type, actor::values(s.args.begin(), s.args.end()), names);
      if (!h) {
        return unexpected("services[" + std::to_string(i) + "] (" + s.type + "), instance " + std::to_string(k + 1) +
                          ": " + h.error());
      }
    }
  }
  return {};
}

namespace {

// After a burst, give the freed heap back to the system (the allocator keeps freed memory
// for reuse, and it stays in the process's RSS): once a second, if the node's memory budget
// held this much more at its peak since the last look than it holds now. Trimming walks
// the heap (a few ms for a big one): only after a burst.
constexpr std::size_t trim_after_burst_bytes = 32u << 20;

/// The programs link tcmalloc for /debug/pprof (services/admin/CMakeLists.txt), whose free
/// lists glibc's malloc_trim does not reach: its C API, found at run time, does. Without
/// it (sanitizer builds, a program that does not link it) glibc's trim.
void release_free_memory() {
  using release_fn = void (*)();
  static const auto tcmalloc_release =
      reinterpret_cast<release_fn>(::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
  if (tcmalloc_release != nullptr) {
    tcmalloc_release();
  } else {
    ::malloc_trim(0);
  }
}

void trim_after_burst(memory_budget& budget) {
  const std::size_t peak = budget.take_peak();
  const std::size_t held = budget.held();
  if (peak < held + trim_after_burst_bytes) return;
  const auto t0 = std::chrono::steady_clock::now();
  release_free_memory();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  logger("service")->info("memory: the budget held {} MiB at its peak, {} MiB now: heap trimmed in {} us", peak >> 20,
                          held >> 20, us);
}

// An orderly stop gives the connections this long, in all, to write what is queued before
// the net aborts the rest (net::stop(flush)). The supervisor's stop_timeout_ms must leave
// room for it after runtime.shutdown_timeout_ms.
constexpr std::chrono::milliseconds stop_flush_budget{2000};

// The signals block_stop_signals() blocks and the node's loop handles.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  return set;
}

// The node's main loop waits here: on stop signals (a signalfd over the signals
// block_stop_signals() blocked) and, under a supervisor, on its orders.
struct node_event {
  enum class what { none, stop, reload, log_reopen, drain, handover, console, counters };
  what is = what::none;
  std::string why;                ///< for the log: "signal 15", "supervisor: stop", ...
  std::uint32_t deadline_ms = 0;  ///< stop/drain/handover from the supervisor
  std::uint32_t to_generation = 0;  ///< handover
  std::uint64_t console_id = 0;     ///< console: the supervisor's id, and the line in `why`
  channel::counters counters{};     ///< counters
  unique_fd transfer{};             ///< handover: this worker's end of the transfer socket
};

class node_events {
 public:
  explicit node_events(supervisor_link* link) : link_(link) {
    const sigset_t set = stop_signals();
    sigfd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  }

  node_event wait(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{sigfd_.get(), POLLIN, 0}, {link_ != nullptr && !gone_ ? link_->fd() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(timeout.count()));
    if (n <= 0) return {};
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo si{};
      if (::read(sigfd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        const int sig = static_cast<int>(si.ssi_signo);
        const std::string why = "signal " + std::to_string(sig);
        if (sig == SIGINT || sig == SIGTERM) return {node_event::what::stop, why};
        if (sig == SIGHUP) return {node_event::what::reload, why};
        if (sig == SIGUSR1) return {node_event::what::log_reopen, why};
      }
    }
    if (fds[1].revents == 0) return {};
    auto got = link_->receive_with_fds(std::chrono::milliseconds(0));
    if (!got) {
      const auto& err = got.error();
      if (err.why == channel::recv_error::kind::timeout) return {};
      // The supervisor is gone (or talks nonsense): stop as it would have asked us to.
      gone_ = true;
      return {node_event::what::stop, "supervisor channel: " + err.text};
    }
    const channel::message* m = &got->msg;
    if (const auto* h = std::get_if<channel::handover>(m)) {
      node_event e{node_event::what::handover, "supervisor: handover", h->deadline_ms};
      e.to_generation = h->to_generation;
      e.transfer = std::move(got->fds.at(0));
      return e;
    }
    if (const auto* k = std::get_if<channel::counters>(m)) {
      node_event e{node_event::what::counters, "supervisor: counters"};
      e.counters = *k;
      return e;
    }
    if (const auto* c = std::get_if<channel::console>(m)) {
      node_event e{node_event::what::console, c->line};
      e.console_id = c->id;
      return e;
    }
    if (const auto* s = std::get_if<channel::stop>(&*m)) return {node_event::what::stop, "supervisor: stop", s->deadline_ms};
    if (const auto* d = std::get_if<channel::drain>(&*m)) return {node_event::what::drain, "supervisor: drain", d->deadline_ms};
    if (std::holds_alternative<channel::reload>(*m)) return {node_event::what::reload, "supervisor: reload"};
    if (std::holds_alternative<channel::log_reopen>(*m)) return {node_event::what::log_reopen, "supervisor: log_reopen"};
    logger("supervisor")->warn("channel: ignoring {} from the supervisor", channel::name_of(channel::kind_of(*m)));
    return {};
  }

  /// False once the supervisor's end is gone: nothing more to send.
  bool connected() const { return link_ != nullptr && !gone_; }

 private:
  supervisor_link* link_;
  unique_fd sigfd_;
  bool gone_ = false;
};

// The cluster listener: inherited from the supervisor (adopted, never bound here), or
// bound by the node itself when standalone.
result<std::uint16_t, std::string> open_cluster_listener(cluster::node& cluster,
                                                         std::map<std::string, unique_fd>& inherited,
                                                         bool supervised) {
  if (!supervised) return cluster.open();
  auto it = inherited.find("cluster");
  if (it == inherited.end()) {
    return unexpected(std::string("cluster.self is set but the supervisor passed no \"cluster\" listener"));
  }
  auto port = cluster.open_adopted(it->second.get());
  if (port) (void)it->second.release();  // the net owns it now
  inherited.erase(it);
  return port;
}

// One gate per `gates:` entry: the service type named there, configured at spawn (options
// table in args[0], its own args after it; see services/gate/gate.hpp), on the listener
// the supervisor passed as "gate:<name>", or bound here when standalone. Local name
// ".gate.<name>".
result<void, std::string> boot_gates(actor::runtime& rt, const std::vector<gate_config>& gates,
                                     std::map<std::string, unique_fd>& inherited, bool supervised, bool standby) {
  for (const auto& g : gates) {
    lua_table opts = gate_options_table(g);
    if (standby) opts.set("standby", true);  // a takeover worker: accept only at the cutover
    auto it = inherited.find("gate:" + g.name);
    if (supervised) {
      if (it == inherited.end()) {
        return unexpected("gate " + g.name + ": the supervisor passed no \"gate:" + g.name + "\" listener");
      }
      opts.set("fd", it->second.get());
    }
    actor::values args{lua_value(std::move(opts))};
    args.insert(args.end(), g.args.begin(), g.args.end());
    auto h = rt.spawn(g.type, std::move(args), {".gate." + g.name});
    if (!h) return unexpected("gate " + g.name + " (type " + g.type + "): " + h.error());
    if (it != inherited.end()) {
      (void)it->second.release();  // the gate's net listener owns it now
      inherited.erase(it);
    }
    logger("service")->info("gate {}: {} on {}", g.name, g.type, supervised ? "the inherited listener" : g.listen);
  }
  return {};
}

void reload_names(cluster::node& cluster, const std::string& file, const std::string& why) {
  auto table = load_cluster_names_file(file);
  if (table) {
    cluster.reload(*table);
    logger("cluster")->info("{}: node table reloaded from {}", why, file);
  } else {
    logger("cluster")->error("{}: node table not reloaded: {}", why, table.error());
  }
}

// One look at the node table file (every second): a changed file that loads is applied.
// A failure is logged once per distinct error, not at every look, and its end once.
// The first look only takes the file's stamp (and applies a table changed since boot
// loaded it) without logging a reload.
void watch_names(names_watcher& watcher, cluster::node& cluster, const std::string& file, bool first = false) {
  auto look = watcher.poll();
  if (look.new_error) {
    logger("cluster")->error("node table not reloaded: {} (the previous table stays; retried every second, "
                             "logged again only if the error changes)",
                             look.error);
  }
  if (look.recovered) logger("cluster")->info("node table {} loads again", file);
  if (look.table) {
    cluster.reload(*look.table);
    if (!first) logger("cluster")->info("node table reloaded: {} changed", file);
  }
}

// Each journaled store's counters, for the supervisor's status (channel stores).
channel::stores store_stats(const entity::directory& entities) {
  channel::stores out;
  for (const auto& e : entities.list()) {
    if (!e.journal || out.list.size() >= 200) continue;
    const auto& j = *e.journal;
    channel::store_stat st;
    st.id = e.id;
    st.type = e.type;
    st.entities = j.entities.load();
    st.ring_bytes = j.ring_bytes.load();
    st.used_bytes = j.used_bytes.load();
    st.records_since_checkpoint = j.records_since_checkpoint.load();
    st.checkpoints = j.checkpoints.load();
    st.last_checkpoint_unix_ms = j.last_checkpoint_unix_ms.load();
    st.checkpointing = j.checkpointing.load() ? 1 : 0;
    st.recovered_entities = j.recovered_entities.load();
    st.recovered_records = j.recovered_records.load();
    st.recovery_us = j.recovery_us.load();
    st.recovery_bad = j.recovery_stopped_at_bad_record.load() ? 1 : 0;
    st.note = j.note().substr(0, 1024);
    out.list.push_back(std::move(st));
  }
  return out;
}

// The console's view of the node (worker/console.hpp), for `cppskynet console` (relayed by
// the supervisor) and the debug_console listener alike.
console::parts console_parts_of(const node_config& cfg, const upgrade::node_parts& parts, console::env_table& env,
                                entity::directory& entities, supervisor_link* link,
                                std::chrono::steady_clock::time_point started) {
  console::parts p;
  p.rt = parts.rt;
  p.cluster = parts.cluster;
  p.gates = parts.gates;
  p.started = started;
  p.call_timeout = std::chrono::milliseconds(cfg.runtime.call_timeout_ms);
  p.entities = &entities;
  p.env = &env;
  // logon's files go beside the node's log, as skynet's logpath usually does.
  if (!cfg.log.file.empty()) p.log_dir = std::filesystem::path(cfg.log.file).parent_path().string();
  if (p.log_dir.empty()) p.log_dir = ".";
  p.release_memory = release_free_memory;
  if (link != nullptr) {
    // generations and upgrade, from the debug console: the supervisor's control socket (the
    // worker's config names it as the supervisor's did). An upgrade is answered once it has
    // started: this worker exits when it is done.
    p.supervisor = [path = cfg.supervisor.control_socket](const std::string& line) {
      const nlohmann::json request = {{"cmd", "console"}, {"args", {{"line", line}, {"reply_at_start", true}}}};
      return supervisor::control_call(path, request, std::chrono::seconds(30));
    };
  }
  return p;
}

// getenv's table starts with what skynet's config would hold.
void seed_env(console::env_table& env, const node_config& cfg, std::uint32_t generation) {
  const int threads = cfg.runtime.threads != 0 ? cfg.runtime.threads : static_cast<int>(std::thread::hardware_concurrency());
  env.set("thread", std::to_string(threads));
  env.set("harbor", std::to_string(cfg.runtime.harbor));
  env.set("profile", cfg.runtime.profile ? "true" : "false");
  if (!cfg.cluster.names_file.empty()) env.set("cluster", cfg.cluster.names_file);
  if (!cfg.cluster.self.empty()) env.set("cluster_self", cfg.cluster.self);
  env.set("generation", std::to_string(generation));
}

// skynet's debug console (config debug_console): on the inherited "debug_console" listener,
// or bound here when standalone; opened once this worker serves, like the admin endpoint.
// A console that cannot open is logged, and the node runs without it.
std::unique_ptr<console::debug_console> open_debug_console(const node_config& cfg, net::net& n, const console::parts& p,
                                                           std::map<std::string, unique_fd>& inherited, bool supervised) {
  if (cfg.debug_console.listen.empty()) return nullptr;
  auto dc = std::make_unique<console::debug_console>(n, p);
  result<std::uint16_t, std::string> port = unexpected(std::string("the supervisor passed no \"debug_console\" listener "
                                                                   "(added to the file after `cppskynet run` started?)"));
  if (auto it = inherited.find("debug_console"); supervised && it != inherited.end()) {
    port = dc->adopt(it->second.get());
    if (port) (void)it->second.release();  // the net owns it now
    inherited.erase(it);
  } else if (!supervised) {
    auto hp = parse_host_port(cfg.debug_console.listen, true);
    port = hp ? dc->listen(hp->host, hp->port) : unexpected("bad address " + cfg.debug_console.listen);
  }
  if (!port) {
    logger("service")->error("debug console: {}; the node runs without it", port.error());
    return nullptr;
  }
  logger("service")->info("debug console on {} (port {})", supervised ? "the inherited listener" : cfg.debug_console.listen,
                          *port);
  return dc;
}

}  // namespace

result<void, run_failure> run_node(const node_config& cfg,
                                   const std::function<void(actor::runtime&)>& register_types,
                                   supervisor_link* link) {
  const auto started = std::chrono::steady_clock::now();
  const bool takeover = link != nullptr && link->takeover();
  // The node's memory budget (common/base/memory_budget.hpp): declared first, it outlives
  // the runtime, the net and every connection that charges it.
  memory_budget budget(std::size_t{cfg.runtime.memory_high_mb} << 20, std::size_t{cfg.runtime.memory_low_mb} << 20);
  gate::directory gate_list;  // every gate, for /metrics and the console (outlives rt's services)
  actor::runtime_options ro = runtime_options_from(cfg.runtime);
  ro.budget = &budget;
  actor::runtime rt(ro);
  rt.set_extension(std::type_index(typeid(gate::directory)), &gate_list);
  entity::directory entities;  // the upgrade pairs entity services by id (outlives rt's services)
  entity::attach_directory(rt, &entities);
  admin::supervisor_counters sup_counters;  // the supervisor's, for /metrics (outlives rt's services)
  rt.set_extension(std::type_index(typeid(admin::supervisor_counters)), &sup_counters);
  register_types(rt);
  entity::install_service_types(rt);  // "entity:<type>" for every entity type registered
  admin::register_types(rt);
  net::net n(1);
  cluster::node_options co;
  co.self = cfg.cluster.self;
  if (!cfg.cluster.listen.empty()) {
    auto hp = parse_host_port(cfg.cluster.listen, true);
    if (!hp) return unexpected(run_failure{"cluster.listen: bad address " + cfg.cluster.listen});
    co.listen = cluster::endpoint{hp->host, hp->port};
  }
  co.limits.max_message_size = std::size_t{cfg.cluster.max_message_mb} << 20;
  co.limits.max_pending_bytes = cfg.cluster.max_pending_mb != 0 ? std::size_t{cfg.cluster.max_pending_mb} << 20
                                                                 : 4 * co.limits.max_message_size;  // per connection
  co.budget = &budget;
  co.max_connections = cfg.cluster.max_connections;
  co.idle_timeout = std::chrono::milliseconds(cfg.cluster.idle_timeout_ms);
  cluster::node cluster(rt, n, co);
  if (!cfg.cluster.names_file.empty()) {
    auto table = load_cluster_names_file(cfg.cluster.names_file);
    if (!table) return unexpected(run_failure{table.error()});
    cluster.reload(*table);
  }
  // The entity stores' journals (worker/state_regions.hpp): attached before any store is
  // spawned, since each recovers its state in its init.
  std::unique_ptr<state_regions> regions;
  {
    std::map<std::string, unique_fd> state;
    if (link != nullptr) {
      auto& fds = link->listeners();
      for (auto it = fds.begin(); it != fds.end();) {
        if (it->first.rfind("state:", 0) == 0) {
          state.emplace(it->first, std::move(it->second));
          it = fds.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (state_regions::wanted(cfg, link != nullptr)) {
      regions = std::make_unique<state_regions>(cfg, std::move(state), link);
      if (link == nullptr) {
        if (auto l = regions->lock_dir(); !l) return unexpected(run_failure{"persist.dir: " + l.error()});
      }
      entity::attach_region_source(rt, regions.get());
    } else {
      logger("service")->info("entity journal off: {}", !cfg.journal.enabled ? "journal.enabled is false"
                                                                             : "a standalone node keeps one only with persist.dir");
    }
  }
  const auto fail = [&](std::string why) -> result<void, run_failure> {
    n.stop();
    rt.shutdown();
    rt.set_extension(std::type_index(typeid(net::net)), nullptr);
    entity::attach_directory(rt, nullptr);
    entity::attach_region_source(rt, nullptr);
    const bool unreadable = regions && !regions->unreadable_reason().empty();
    return unexpected(run_failure{std::move(why), unreadable ? channel::exit_state_unreadable : 4});
  };
  if (auto r = boot_services(rt, cfg.services); !r) return fail(r.error());
  if (regions) {
    for (const auto& name : regions->unclaimed()) {
      logger("service")->warn("{}: held by the supervisor, but no store of this worker opened it (kept)", name);
    }
  }
  // A worker taking over (docs/upgrade.md): its system services (every boot service but
  // the entity stores) start once it serves, so none of them writes to a store that the
  // transfer keeps sealed; what is sent to them meanwhile waits in their mailboxes.
  std::vector<actor::handle_t> held;
  if (takeover) {
    std::set<actor::handle_t> stores;
    for (const auto& e : entities.list()) stores.insert(e.handle);
    for (const auto& s : rt.services()) {
      if (stores.count(s.handle) == 0 && rt.hold(s.handle)) held.push_back(s.handle);
    }
  }
  n.start();
  // Listening sockets: under a supervisor every one is inherited by name ("cluster",
  // "gate:<name>", "admin"; see listeners_of) and adopted, never bound here. A spare
  // copy of the cluster listener stays here: an upgrade closes the net's and opens it
  // again from the spare (rollback in the old worker, cutover in the new one).
  std::map<std::string, unique_fd> inherited;
  if (link != nullptr) inherited = std::move(link->listeners());
  unique_fd cluster_spare;
  if (!cfg.cluster.self.empty()) {
    if (link != nullptr) {
      auto it = inherited.find("cluster");
      if (it != inherited.end()) cluster_spare.reset(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
    }
    if (!takeover) {
      auto port = open_cluster_listener(cluster, inherited, link != nullptr);
      if (!port) return fail(port.error());
    }
  }
  rt.set_extension(std::type_index(typeid(net::net)), &n);  // gates find the net here
  if (auto r = boot_gates(rt, cfg.gates, inherited, link != nullptr, takeover); !r) return fail(r.error());
  rt.start();

  upgrade::node_parts parts;
  parts.rt = &rt;
  parts.cluster = cfg.cluster.self.empty() ? nullptr : &cluster;
  for (const auto& g : cfg.gates) parts.gates.push_back(g.name);
  parts.entities = &entities;
  parts.close_cluster_listener = [&cluster] { cluster.close_listener(); };
  parts.open_cluster_listener = [&cluster, &cluster_spare]() -> result<void, std::string> {
    if (!cluster_spare) return unexpected(std::string("no spare of the cluster listener"));
    unique_fd copy(::fcntl(cluster_spare.get(), F_DUPFD_CLOEXEC, 0));
    auto port = cluster.open_adopted(copy.get());
    if (!port) return unexpected(port.error());
    (void)copy.release();  // the net owns it now
    return {};
  };

  if (takeover) {
    const auto& order = link->takeover_order();
    logger("handover")->info("taking over from generation {} (budget {} ms)", order.from_generation, order.deadline_ms);
    auto t = upgrade::take_over(parts, link->transfer_socket().get(), std::chrono::milliseconds(order.deadline_ms));
    // On failure the transfer socket stays open until this process ends: the old worker
    // waits for it to close before it writes the entity journals again, which this one may
    // have written since the commit (docs/durability.md, "one writer").
    if (!t) return fail("takeover from generation " + std::to_string(order.from_generation) + " failed: " + t.error());
    link->transfer_socket().reset();
    logger("handover")->info("took over from generation {}: {} stores, {} pages, {} connections ({} lost); serving",
                            order.from_generation, t->stores, t->pages, t->connections, t->connections_lost);
    for (const auto h : held) (void)rt.release(h);
    if (!held.empty()) logger("handover")->info("{} system services started", held.size());
  }

  if (!cfg.admin.listen.empty()) {
    // The admin endpoint (/metrics, /status): a gate on the inherited "admin" listener,
    // spawned only now, so a new generation answers scrapes once it serves.
    lua_table opts;
    opts.set("listen", cfg.admin.listen)
        .set("max_connections", 64)
        .set("idle_timeout_ms", 10000)
        .set("message_timeout_ms", 70000);  // a profile takes up to 60 s
    auto it = inherited.find("admin");
    if (link != nullptr) {
      if (it == inherited.end()) return fail("admin: the supervisor passed no \"admin\" listener");
      opts.set("fd", it->second.get());
    }
    const std::uint32_t generation = link != nullptr ? link->generation() : 0;
    auto h = rt.spawn("admin", {lua_value(std::move(opts)), lua_value(lua_table{}.set("generation", generation))}, {".admin"});
    if (!h) return fail("admin: " + h.error());
    if (it != inherited.end()) {
      (void)it->second.release();  // the admin gate owns it now
      inherited.erase(it);
    }
  }

  console::env_table env;
  seed_env(env, cfg, link != nullptr ? link->generation() : 0);
  const console::parts console_parts = console_parts_of(cfg, parts, env, entities, link, started);
  std::unique_ptr<console::debug_console> debug_console = open_debug_console(cfg, n, console_parts, inherited, link != nullptr);

  node_events events(link);
  if (link != nullptr) {
    if (auto r = link->send(channel::ready{}); !r) logger("supervisor")->error("channel: {}", r.error());
    if (regions) (void)link->send(store_stats(entities));  // the recovery, at once in `cppskynet status`
  }
  logger("service")->info("node running ({} services{}); {}", cfg.services.size(),
                          link != nullptr ? ", under the supervisor" : "",
                          link != nullptr ? "the supervisor stops and reloads it"
                                          : "SIGINT or SIGTERM stops it, SIGHUP reloads the node table");
  std::optional<names_watcher> watcher;
  if (!cfg.cluster.names_file.empty()) {
    watcher.emplace(cfg.cluster.names_file);
    // Takes the file's stamp; if it changed since the load above, apply it now.
    watch_names(*watcher, cluster, cfg.cluster.names_file, true);
  }
  using clock = std::chrono::steady_clock;
  const auto heartbeat = link != nullptr ? link->heartbeat_interval() : std::chrono::milliseconds(1000);
  auto next_heartbeat = clock::now() + heartbeat;
  auto next_watch = clock::now() + std::chrono::milliseconds(1000);
  auto next_trim = clock::now() + std::chrono::milliseconds(1000);
  std::uint64_t seq = 0;
  node_event stop;
  // Console lines being answered, each on a thread of its own (a `call` may take the call
  // timeout; the loop must go on heartbeating). Joined before the runtime stops.
  std::vector<std::future<void>> consoles;
  // An upgrade in progress (this worker handing over): its thread and verdict.
  std::future<upgrade::hand_over_outcome> handing_over;
  bool handed_over = false;  // then the process exits at the end without freeing its state
  bool must_exit = false;    // an upgrade failed after its commit: exit without serving (exit_upgrade_unsafe)
  unique_fd transfer;
  for (;;) {
    // While handing over, look at the verdict often: the pause ends when we exit.
    const auto tick = handing_over.valid() ? std::chrono::milliseconds(1) : std::min(heartbeat, std::chrono::milliseconds(1000));
    node_event e = events.wait(tick);
    const auto now = clock::now();
    if (handing_over.valid() &&
        (e.is == node_event::what::stop || handing_over.wait_for(std::chrono::seconds(0)) == std::future_status::ready)) {
      const upgrade::hand_over_outcome outcome = handing_over.get();  // a stop waits for the verdict
      const channel::upgrade_result& verdict = outcome.verdict;
      transfer.reset();
      if (events.connected()) (void)link->send(verdict);
      if (verdict.ok != 0) {
        logger("handover")->info("handed over in {} us (frozen {} us): exiting", verdict.total_us, verdict.frozen_us);
        stop = node_event{node_event::what::stop, "handed over to the new worker"};
        handed_over = true;
        break;
      }
      logger("handover")->warn("upgrade abandoned in {}: {}", verdict.phase, verdict.reason);
      if (outcome.must_exit) {
        stop = node_event{node_event::what::stop, "the upgrade failed after its commit"};
        must_exit = true;
        break;
      }
    }
    if (e.is == node_event::what::stop) {
      stop = std::move(e);
      break;
    }
    std::erase_if(consoles, [](auto& f) { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    if (e.is == node_event::what::counters) {
      sup_counters.restarts = e.counters.restarts;
      sup_counters.upgrades_ok = e.counters.upgrades_ok;
      sup_counters.upgrades_failed = e.counters.upgrades_failed;
      sup_counters.last_upgrade_total_us = e.counters.last_upgrade_total_us;
      sup_counters.last_upgrade_frozen_us = e.counters.last_upgrade_frozen_us;
      sup_counters.known = true;
    } else if (e.is == node_event::what::console) {
      const std::uint64_t id = e.console_id;
      consoles.push_back(std::async(std::launch::async, [&console_parts, link, id, line = e.why] {
        const console::answer a = console::run(console_parts, line);
        channel::console_reply reply{id, static_cast<std::uint8_t>(a.ok ? 1 : 0), a.error};
        if (a.ok) reply.text = a.value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (reply.text.size() > channel::max_record - 64) {
          reply.ok = 0;
          reply.text = "the answer is " + std::to_string(reply.text.size()) + " bytes: too large for the console";
        }
        if (link != nullptr) (void)link->send(reply);
      }));
    } else if (e.is == node_event::what::handover) {
      if (handing_over.valid()) {
        logger("handover")->error("{}: an upgrade is already in progress: ignored", e.why);
      } else {
        logger("handover")->info("{}: handing over to generation {} (budget {} ms)", e.why, e.to_generation, e.deadline_ms);
        transfer = std::move(e.transfer);
        const int fd = transfer.get();
        const std::uint32_t generation = link != nullptr ? link->generation() : 0;
        const auto deadline = std::chrono::milliseconds(e.deadline_ms);
        handing_over = std::async(std::launch::async, [&parts, fd, generation, deadline] {
          return upgrade::hand_over(parts, fd, generation, deadline);
        });
      }
    } else if (e.is == node_event::what::reload) {
      if (watcher) {
        reload_names(cluster, cfg.cluster.names_file, e.why);
      } else {
        logger("cluster")->info("{}: no node table to reload (cluster.names_file is not set)", e.why);
      }
    } else if (e.is == node_event::what::log_reopen) {
      logger("service")->info("{}: logs reopened", e.why);  // stderr: the supervisor owns the file
    } else if (e.is == node_event::what::drain) {
      if (!handing_over.valid()) cluster.close_listener();  // new connections wait in the supervisor's backlog
      logger("service")->info("{}: stopped accepting", e.why);
      if (events.connected()) (void)link->send(channel::drained{});
    }
    if (events.connected() && now >= next_heartbeat) {
      const auto st = rt.stats();
      channel::heartbeat hb;
      hb.seq = ++seq;
      hb.uptime_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - started).count());
      hb.services = st.services;
      hb.dispatched = st.dispatched;
      hb.connections = cluster.inbound_connections();
      if (auto r = link->send(hb); !r) logger("supervisor")->warn("channel: {}", r.error());
      if (regions) (void)link->send(store_stats(entities));
      next_heartbeat = now + heartbeat;
    }
    if (watcher && now >= next_watch) {
      watch_names(*watcher, cluster, cfg.cluster.names_file);
      next_watch = now + std::chrono::milliseconds(1000);
    }
    if (now >= next_trim) {
      trim_after_burst(budget);
      next_trim = now + std::chrono::milliseconds(1000);
    }
  }
  // Orderly stop: stop accepting (a supervisor keeps the socket: new connections wait
  // for the next worker), let in-flight calls finish (up to runtime.shutdown_timeout_ms),
  // then close the connections.
  if (debug_console) {
    debug_console->stop(handed_over ? "this worker handed the node over to a new one (upgrade): connect again"
                                    : "the node is stopping (" + stop.why + ")");
  }
  for (auto& f : consoles) f.wait();
  logger("service")->info("{}: stopping{}", stop.why,
                          stop.deadline_ms != 0 ? " (deadline " + std::to_string(stop.deadline_ms) + " ms)" : "");
  cluster.close_listener();
  rt.shutdown();
  // The answers the last turns queued (and pushes to other nodes) leave before the
  // sockets close: graceful closes, bounded as a whole by stop_flush_budget.
  n.stop(stop_flush_budget);
  rt.set_extension(std::type_index(typeid(net::net)), nullptr);
  entity::attach_directory(rt, nullptr);
  entity::attach_region_source(rt, nullptr);
  rt.set_extension(std::type_index(typeid(admin::supervisor_counters)), nullptr);
  if (events.connected()) (void)link->send(channel::stopped{});
  if (handed_over) {
    // The state lives in the successor now: freeing it here (a million entities take
    // 0.1-0.5 s) would only delay the exit the upgrade command waits for.
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
    std::fflush(nullptr);
    std::_Exit(0);
  }
  if (must_exit) {
    return unexpected(run_failure{"an upgrade failed after its commit and the new worker did not go away: the next "
                                  "worker recovers the entity journals",
                                  exit_upgrade_unsafe});
  }
  return {};
}


void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) == 0 && (sig == SIGINT || sig == SIGTERM)) return sig;
  }
}

int wait_for_signal(std::chrono::milliseconds timeout) {
  const sigset_t set = stop_signals();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

names_watcher::names_watcher(std::string path) : path_(std::move(path)) {}

names_watcher::outcome names_watcher::poll() {
  outcome r;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    const int err = errno;
    r.error = path_ + ": cannot stat: " + std::error_code(err, std::generic_category()).message();
  } else {
    const std::int64_t stamp = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    const std::int64_t size = static_cast<std::int64_t>(st.st_size);
    if (stamp != stamp_ || size != size_) {
      auto table = load_cluster_names_file(path_);
      if (table) {
        stamp_ = stamp;
        size_ = size;
        r.table = std::move(*table);
      } else {
        r.error = std::move(table.error());
      }
    }
  }
  r.new_error = !r.error.empty() && r.error != last_error_;
  r.recovered = r.error.empty() && !last_error_.empty();
  last_error_ = r.error;
  return r;
}

}  // namespace csk
