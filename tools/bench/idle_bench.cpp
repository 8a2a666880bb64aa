// cppskynet-idle-bench: what a quiet node costs (issue 14): CPU per call with one caller,
// CPU while idle, and memory per idle connection, each beside its baseline in the same run.
//
//   cppskynet-idle-bench [--parts call,idle,conns] [--rounds R] [--seconds S]
//                        [--idle-seconds S] [--conns N] [--spins US,US] [--old-node PATH]
//                        [--skynet-peer PEER] [--dir DIR] [--json FILE] [--keep]
//   defaults: --parts idle,conns,call --rounds 3 --seconds 10 --idle-seconds 10
//             --conns 10000 --spins 0,50 --skynet-peer <source>/../shared/skynet-peer
//
// Servers, started once in DIR and kept for the idle and call parts:
//   csk-spinN  a standalone cppskynet-node with examples/cluster1/config.yaml (its services
//              and its kv gate) plus runtime.idle_spin_us: N and cluster/gate
//              max_connections of --conns + 100; ports from CSK_CLUSTER_LISTEN and
//              CSK_GATE_KV_LISTEN (the debug console's ephemeral). One node per --spins value.
//   csk-old    --old-node PATH: the same config (without idle_spin_us) run by another build
//              of cppskynet-node, e.g. the commit before issue 14's;
//   lua        Lua skynet's own server (skynet-peer: `lab/bin/skynode server`), serving @echo.
//
// Parts:
//   idle   every server's CPU (sum of its threads' schedstat run time, ns resolution)
//          and context switches over one window of --idle-seconds with no traffic at all;
//          once right after start and once more at the end, after the other parts' traffic;
//   conns  VmRSS of a fresh node before and after N idle connections to the kv gate,
//          then after each of them made one request (PING) and got its answer, and after
//          they closed; the same on another fresh node for N cluster connections (a call
//          of @echo); for the first --spins value's program and for csk-old;
//   call   skynet-peer's Lua benchmark client (`skynode bench`, cluster.call of @echo from
//          one coroutine) against every server in turn, R rounds alternating: calls/s,
//          p50 and the server's CPU per call (its utime + stime from /proc over the
//          client's measured window, as the client reports it); also the server's context
//          switches (all its threads) per call over the whole client run: its wake-ups.
// The Lua server and the call part are skipped, saying why, when the skynet peer
// (PEER/lab/bin/skynode, and SKYNET_ROOT or PEER/build.sh to build skynet) is not there.
//
// The process raises its RLIMIT_NOFILE to the hard limit first; the nodes inherit it.
// Prints a table per part, then one line `JSON {...}` with every figure (also written to
// --json FILE). Exits 1 if a server does not start or a request fails.

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"
#include "tests/support/skynet_client.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using csk::test::child_process;
using csk::test::eventually;
using csk::test::raw_socket;
using csk::test::read_file;
using csk::test::skynet_client;
using namespace std::chrono_literals;

struct options {
  std::vector<std::string> parts{"idle", "conns", "call"};
  int rounds = 3;
  double seconds = 10;
  double idle_seconds = 10;
  int conns = 10000;
  std::vector<int> spins{0, 50};
  fs::path peer = fs::path(CSK_SOURCE_DIR) / ".." / "shared" / "skynet-peer";
  fs::path dir;
  fs::path json_file;
  std::string old_node;  ///< --old-node: another cppskynet-node build, run as csk-old
  bool keep = false;
  bool has(const std::string& part) const { return std::find(parts.begin(), parts.end(), part) != parts.end(); }
};

// ------------------------------------------------------------------- /proc readings --

/// Calls f(text) with /proc/PID/task/TID/<file> of every thread.
template <class F>
void for_each_task(pid_t pid, const char* file, F f) {
  std::error_code ec;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) f(read_file(t.path() / file));
}

/// Time on a CPU of all the threads of `pid`, in seconds (schedstat: nanoseconds).
double task_cpu_seconds(pid_t pid) {
  double ns = 0;
  for_each_task(pid, "schedstat", [&](const std::string& s) { ns += std::atof(s.c_str()); });
  return ns / 1e9;
}

/// The number after `key` in a /proc status text, 0 if absent.
long status_field(const std::string& status, const std::string& key) {
  const auto at = status.find(key);
  return at == std::string::npos ? 0 : std::atol(status.c_str() + at + key.size());
}

/// Context switches (voluntary + involuntary) of all the threads of `pid`: its wake-ups.
long context_switches(pid_t pid) {
  long n = 0;
  for_each_task(pid, "status", [&](const std::string& s) {
    n += status_field(s, "\nvoluntary_ctxt_switches:") + status_field(s, "\nnonvoluntary_ctxt_switches:");
  });
  return n;
}

long rss_kb(pid_t pid) { return status_field(read_file("/proc/" + std::to_string(pid) + "/status"), "\nVmRSS:"); }

std::size_t open_fds(pid_t pid) {
  std::error_code ec;
  const fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
  return ec ? 0 : static_cast<std::size_t>(std::distance(it, fs::directory_iterator()));
}

/// VmRSS once two readings 300 ms apart agree (at most 5 s): the node has settled.
long settled_rss_kb(pid_t pid) {
  long last = rss_kb(pid);
  for (int i = 0; i < 16; ++i) {
    std::this_thread::sleep_for(300ms);  // sampling interval, not a wait for an event
    const long now = rss_kb(pid);
    if (now == last) break;
    last = now;
  }
  return last;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// ------------------------------------------------------------------------- servers --

struct server {
  std::string name;  ///< csk-spin0, csk-spin50, csk-old, lua
  std::string bin;   ///< the cppskynet-node program; empty for the Lua server
  int spin = -1;     ///< runtime.idle_spin_us; -1: not in the config (the program's default)
  std::uint16_t cluster_port = 0, gate_port = 0;
  std::unique_ptr<child_process> proc;
  std::vector<json> rounds;  ///< the Lua client's BENCH lines
  pid_t pid() const { return proc->pid(); }
};

std::uint16_t free_port() { return raw_socket::bound(false).port(); }

/// True if `@echo` on 127.0.0.1:port answers a call.
bool echo_answers(std::uint16_t port) {
  skynet_client c(port);
  return c.connected() && c.call("@echo", {std::string("up")}, 2s).ok;
}

/// True if the kv gate on 127.0.0.1:port answers PING.
bool gate_answers(std::uint16_t port) {
  auto s = raw_socket::try_connect(port);
  if (!s.valid() || !csk::test::send_all(s.fd(), csk::as_bytes(std::string_view("PING\n")))) return false;
  const auto line = s.read_line();
  return line && line->starts_with("PONG");
}

/// Puts `add` after the first `anchor` of `text`; false if there is none.
bool insert_after(std::string& text, const std::string& anchor, const std::string& add) {
  const auto at = text.find(anchor);
  if (at == std::string::npos) return false;
  text.insert(at + anchor.size(), add);
  return true;
}

/// examples/cluster1/config.yaml with the node table made absolute, the idle spin (unless
/// `spin` < 0) and room for the connections; nullopt if the example's keys have moved.
std::optional<std::string> node_config(const options& o, int spin) {
  const fs::path example = fs::path(CSK_SOURCE_DIR) / "examples" / "cluster1" / "config.yaml";
  std::string text = read_file(example);
  const std::string limit = std::to_string(o.conns + 100);
  const std::string table = (example.parent_path() / ".." / "clustername.lua").lexically_normal().string();
  const std::string spin_key = spin < 0 ? "" : "  idle_spin_us: " + std::to_string(spin) + "\n";
  const bool ok = insert_after(text, "\nruntime:\n", spin_key) &&
                  insert_after(text, "\ncluster:\n", "  max_connections: " + limit + "\n") &&
                  insert_after(text, "    type: kv_gate\n", "    max_connections: " + limit + "\n") &&
                  insert_after(text, "names_file: ", table + " # was: ");
  if (!ok) std::cerr << "examples/cluster1/config.yaml has changed: cannot add the bench's keys\n";
  return ok ? std::optional(text) : std::nullopt;
}

bool start_csk(server& s, const options& o) {
  const auto cfg = node_config(o, s.spin);
  if (!cfg) return false;
  const fs::path dir = o.dir / s.name;
  fs::create_directories(dir);
  std::ofstream(dir / "node.yaml") << *cfg;
  s.cluster_port = free_port();
  s.gate_port = free_port();
  s.proc = std::make_unique<child_process>(
      std::vector<std::string>{s.bin, (dir / "node.yaml").string()}, dir / "node.out",
      std::vector<std::string>{"CSK_CLUSTER_LISTEN=127.0.0.1:" + std::to_string(s.cluster_port),
                               "CSK_GATE_KV_LISTEN=127.0.0.1:" + std::to_string(s.gate_port),
                               "CSK_DEBUG_CONSOLE_LISTEN=127.0.0.1:0"});
  if (eventually([&] { return echo_answers(s.cluster_port) && gate_answers(s.gate_port); }, 30s)) return true;
  std::cerr << s.name << ": did not come up:\n" << read_file(dir / "node.out") << "\n";
  return false;
}

void stop(server& s) {
  if (!s.proc) return;
  s.proc->signal(SIGTERM);
  (void)s.proc->wait_exit(20s);
}

fs::path skynode(const options& o) { return o.peer / "lab" / "bin" / "skynode"; }

/// Why the Lua parts cannot run ("" if they can); sets SKYNET_ROOT (building the peer's
/// bundled skynet once, ~30 s, if it is unset) and SKYNET_LAB_RUN for the skynode runs.
std::string prepare_skynet(const options& o) {
  if (::access(skynode(o).c_str(), X_OK) != 0) return "no skynet peer at " + o.peer.string() + " (--skynet-peer DIR)";
  if (const char* root = std::getenv("SKYNET_ROOT"); root == nullptr || *root == '\0') {
    const auto r = csk::test::run_command({(o.peer / "build.sh").string()}, o.dir, "skynet-build", 600s);
    std::string root_dir = r.output.substr(0, r.output.find('\n'));
    if (r.exit_code != 0 || ::access((root_dir + "/skynet").c_str(), X_OK) != 0) {
      return "SKYNET_ROOT is unset and the peer's build.sh failed: " + r.output;
    }
    ::setenv("SKYNET_ROOT", root_dir.c_str(), 1);
  }
  ::setenv("SKYNET_LAB_RUN", (o.dir / "skynet-lab-run").c_str(), 1);
  return "";
}

bool start_lua(server& s, const options& o) {
  fs::create_directories(o.dir / s.name);
  s.cluster_port = free_port();
  const std::string listen = "127.0.0.1:" + std::to_string(s.cluster_port);
  s.proc = std::make_unique<child_process>(
      std::vector<std::string>{skynode(o).string(), "server", "--listen", listen, "--thread", "2", "--quiet"},
      o.dir / s.name / "server.out");
  if (eventually([&] { return echo_answers(s.cluster_port); }, 60s)) return true;
  std::cerr << "lua: skynet did not come up:\n" << read_file(o.dir / s.name / "server.out") << "\n";
  return false;
}

// ----------------------------------------------------------------- part: idle CPU --

/// CPU and context switches of every server over one window of `seconds` (all at once).
json part_idle(const std::vector<server*>& servers, const options& o, const char* when) {
  std::printf("\nidle CPU, no traffic, %.0f s (%s):\n", o.idle_seconds, when);
  std::vector<double> cpu0;
  std::vector<long> sw0;
  for (auto* s : servers) {
    cpu0.push_back(task_cpu_seconds(s->pid()));
    sw0.push_back(context_switches(s->pid()));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));  // the measured idle window
  json out = json::array();
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const double cpu = task_cpu_seconds(servers[i]->pid()) - cpu0[i];
    const double sw = static_cast<double>(context_switches(servers[i]->pid()) - sw0[i]) / o.idle_seconds;
    std::printf("  %-12s CPU %8.2f ms (%.3f%% of a core)   %7.1f context switches/s\n", servers[i]->name.c_str(),
                cpu * 1e3, cpu * 100 / o.idle_seconds, sw);
    out.push_back({{"server", servers[i]->name}, {"cpu_ms", cpu * 1e3}, {"switches_per_s", sw}});
  }
  return out;
}

// ------------------------------------------------------- part: idle connections RSS --

bool is_open(const raw_socket& s) { return s.valid(); }
bool is_open(const std::unique_ptr<skynet_client>& c) { return c->connected(); }

/// n connections made by `open()`, 500 at a time, each batch waiting until the node holds
/// its fds (accepted), so the listen backlog never overflows. Fewer if a connect failed.
template <class Open>
auto open_idle(pid_t node, int n, Open open) {
  std::vector<decltype(open())> out;
  const std::size_t fds0 = open_fds(node);
  while (out.size() < static_cast<std::size_t>(n)) {
    for (int k = 0; k < 500 && out.size() < static_cast<std::size_t>(n); ++k) {
      out.push_back(open());
      if (!is_open(out.back())) {
        out.pop_back();
        return out;
      }
    }
    if (!eventually([&] { return open_fds(node) >= fds0 + out.size(); }, 30s)) break;
  }
  return out;
}

bool ask(raw_socket& s) {
  if (!csk::test::send_all(s.fd(), csk::as_bytes(std::string_view("PING\n")))) return false;
  const auto line = s.read_line();
  return line && *line == "PONG";
}
bool ask(std::unique_ptr<skynet_client>& c) { return c->call("@echo", {std::string("idle-bench")}, 10s).ok; }

/// RSS of `node` before, with the connections idle, after one request each, after closing.
template <class Open>
json conns_rss(const server& node, const std::string& kind, int n, Open open) {
  const pid_t pid = node.pid();
  const std::size_t fds0 = open_fds(pid);
  const long before = settled_rss_kb(pid);
  auto conns = open_idle(pid, n, open);
  const long idle = settled_rss_kb(pid);
  std::size_t answered = 0;
  for (auto& c : conns) answered += ask(c) ? 1u : 0u;
  const long used = settled_rss_kb(pid);
  const std::size_t opened = conns.size();
  conns.clear();
  eventually([&] { return open_fds(pid) <= fds0; }, 60s);
  const long closed = settled_rss_kb(pid);
  const auto per = [&](long kb) { return opened ? static_cast<double>(kb - before) * 1024 / static_cast<double>(opened) : 0; };
  std::printf("  %-18s %6zu open, %6zu answered   RSS kB: before %7ld  idle %7ld  used %7ld  closed %7ld   "
              "per connection: idle %7.0f B, after a request %7.0f B\n",
              node.name.c_str(), opened, answered, before, idle, used, closed, per(idle), per(used));
  return {{"kind", kind},        {"opened", opened},      {"answered", answered},      {"rss_before_kb", before},
          {"rss_idle_kb", idle}, {"rss_used_kb", used},   {"rss_closed_kb", closed},   {"idle_bytes_per_conn", per(idle)},
          {"used_bytes_per_conn", per(used)}, {"ok", opened == static_cast<std::size_t>(n) && answered == opened}};
}

/// One kind of connection on a fresh node of `proto`'s program and spin (freed memory of
/// an earlier measurement would serve the next one's allocations without new RSS).
json fresh_node_conns(const server& proto, const std::string& kind, const options& o, bool& ok) {
  server s;
  s.name = proto.name + "-" + kind;
  s.bin = proto.bin;
  s.spin = proto.spin;
  if (!start_csk(s, o)) {
    ok = false;
    return {{"server", proto.name}, {"kind", kind}, {"ok", false}};
  }
  const auto gate = [&] { return raw_socket::try_connect(s.gate_port); };
  const auto cluster = [&] { return std::make_unique<skynet_client>(s.cluster_port); };
  json r = kind == "gate" ? conns_rss(s, kind, o.conns, gate) : conns_rss(s, kind, o.conns, cluster);
  stop(s);
  r["server"] = proto.name;
  ok = ok && r["ok"].get<bool>();
  return r;
}

json part_conns(const std::vector<server>& csk, const options& o, bool& ok) {
  std::printf("\nRSS per idle connection (%d connections, each kind on a fresh node):\n", o.conns);
  json out = json::array();
  for (const auto& proto : csk) {
    if (&proto != &csk.front() && proto.name != "csk-old") continue;  // a spin changes no memory
    for (const char* kind : {"gate", "cluster"}) out.push_back(fresh_node_conns(proto, kind, o, ok));
  }
  return out;
}

// ------------------------------------------------- part: one caller, CPU per call --

/// One run of the Lua benchmark client against `s`: its BENCH json (plus the server's CPU
/// and context switches per call), or nullopt. The client calls for 1 s before its window.
std::optional<json> lua_bench(const server& s, const options& o, int round) {
  const long switches0 = context_switches(s.pid());
  const auto r = csk::test::run_command(
      {skynode(o).string(), "bench", "--targets", "skynet1=127.0.0.1:" + std::to_string(s.cluster_port), "--set",
       "lab_bench_conc=1", "--set", "lab_bench_warm=1", "--set", "lab_bench_secs=" + std::to_string(o.seconds),
       "--set", "lab_bench_server_pid=" + std::to_string(s.pid()), "--set", "lab_bench_label=" + s.name},
      o.dir, s.name + "-bench-" + std::to_string(round), std::chrono::seconds(static_cast<int>(o.seconds) + 120));
  const auto switches = static_cast<double>(context_switches(s.pid()) - switches0);
  const auto at = r.output.find("BENCH {");
  if (at == std::string::npos) {
    std::cerr << s.name << ": no BENCH line from the Lua client:\n" << r.output << "\n";
    return std::nullopt;
  }
  auto j = json::parse(r.output.substr(at + 6, r.output.find('\n', at) - at - 6), nullptr, false);
  if (j.is_discarded() || j.value("calls", 0) <= 0 || !j.contains("server_cpu_s")) return std::nullopt;
  const double calls = j["calls"].get<double>();
  j["server_cpu_us_per_call"] = j["server_cpu_s"].get<double>() * 1e6 / calls;
  // Over the whole client run (its warm-up second included, and the idle ticks).
  j["server_switches_per_call"] = switches / (calls * (o.seconds + 1) / o.seconds);
  return j;
}

json medians_of(const server& s) {
  std::vector<double> rate, cpu, p50, switches;
  for (const auto& r : s.rounds) {
    rate.push_back(r["calls_per_sec"].get<double>());
    cpu.push_back(r["server_cpu_us_per_call"].get<double>());
    p50.push_back(r["lat_us"]["p50"].get<double>());
    switches.push_back(r["server_switches_per_call"].get<double>());
  }
  return {{"server", s.name},       {"calls_per_sec", median(rate)}, {"server_cpu_us_per_call", median(cpu)},
          {"p50_us", median(p50)}, {"server_switches_per_call", median(switches)}, {"rounds", s.rounds}};
}

json part_call(const std::vector<server*>& servers, const options& o, bool& ok) {
  std::printf("\none caller (skynet-peer's Lua client, cluster.call @echo), %.0f s per server and round:\n", o.seconds);
  for (int r = 1; r <= o.rounds; ++r) {
    for (auto* s : servers) {
      auto j = lua_bench(*s, o, r);
      ok = ok && j.has_value();
      if (!j) continue;
      s->rounds.push_back(*j);
      std::printf("  round %d  %-12s %8.0f calls/s   p50 %5.0f us   server CPU %6.2f us/call   %4.1f switches/call\n",
                  r, s->name.c_str(), (*j)["calls_per_sec"].get<double>(), (*j)["lat_us"]["p50"].get<double>(),
                  (*j)["server_cpu_us_per_call"].get<double>(), (*j)["server_switches_per_call"].get<double>());
      std::fflush(stdout);
    }
  }
  json out = json::array();
  for (auto* s : servers) out.push_back(medians_of(*s));
  const double lua = out.back()["server_cpu_us_per_call"].get<double>();  // the Lua server is last
  std::printf("medians of %d rounds:\n", o.rounds);
  for (auto& m : out) {
    m["cpu_vs_lua"] = lua > 0 ? m["server_cpu_us_per_call"].get<double>() / lua : 0;
    std::printf("  %-12s %8.0f calls/s   p50 %5.0f us   server CPU %6.2f us/call (%5.2f x lua)   %4.1f switches/call\n",
                m["server"].get<std::string>().c_str(), m["calls_per_sec"].get<double>(), m["p50_us"].get<double>(),
                m["server_cpu_us_per_call"].get<double>(), m["cpu_vs_lua"].get<double>(),
                m["server_switches_per_call"].get<double>());
  }
  return out;
}

// ------------------------------------------------------------------------- main --

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    ++i;
    if (a == "--parts") o.parts = split(v);
    else if (a == "--rounds") o.rounds = std::max(1, std::atoi(v.c_str()));
    else if (a == "--seconds") o.seconds = std::max(1.0, std::atof(v.c_str()));
    else if (a == "--idle-seconds") o.idle_seconds = std::max(0.1, std::atof(v.c_str()));
    else if (a == "--conns") o.conns = std::max(1, std::atoi(v.c_str()));
    else if (a == "--spins") {
      o.spins.clear();
      for (const auto& s : split(v)) o.spins.push_back(std::atoi(s.c_str()));
    } else if (a == "--skynet-peer") o.peer = v;
    else if (a == "--dir") o.dir = v;
    else if (a == "--json") o.json_file = v;
    else if (a == "--old-node") o.old_node = v;
    else return false;
  }
  return !o.spins.empty();
}

/// Raises the soft RLIMIT_NOFILE to the hard one (the nodes inherit it); the limit.
rlim_t raise_fd_limit() {
  rlimit l{};
  ::getrlimit(RLIMIT_NOFILE, &l);
  l.rlim_cur = l.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &l);
  return l.rlim_cur;
}

/// Starts Lua skynet's server and appends it to `servers`, or says why it cannot.
std::string add_lua(std::vector<server*>& servers, server& lua, const options& o) {
  std::string why = prepare_skynet(o);
  if (why.empty() && !start_lua(lua, o)) why = "the Lua skynet server did not start";
  if (why.empty()) servers.push_back(&lua);
  return why;
}

/// The cppskynet nodes: one per --spins value, then csk-old (--old-node) with its default.
std::vector<server> csk_servers(const options& o) {
  std::vector<server> csk(o.spins.size() + (o.old_node.empty() ? 0 : 1));
  for (std::size_t i = 0; i < o.spins.size(); ++i) {
    csk[i].spin = o.spins[i];
    csk[i].name = "csk-spin" + std::to_string(o.spins[i]);
    csk[i].bin = CSK_NODE_BIN;
  }
  if (!o.old_node.empty()) {
    csk.back().name = "csk-old";
    csk.back().bin = o.old_node;
  }
  return csk;
}

/// The parts asked for, in order: idle (fresh), conns, call, idle again.
json run_parts(std::vector<server>& csk, server& lua, const options& o, bool& ok) {
  json out{{"idle_spin_us", o.spins}, {"old_node", o.old_node}, {"conns", o.conns}, {"idle_seconds", o.idle_seconds}};
  std::vector<server*> all;
  for (auto& s : csk) all.push_back(&s);
  if (o.has("call") || o.has("idle")) {
    if (const std::string why = add_lua(all, lua, o); !why.empty()) {
      std::printf("Lua skynet parts skipped: %s\n", why.c_str());
      out["lua_skipped"] = why;
    }
  }
  if (o.has("idle")) out["idle_fresh"] = part_idle(all, o, "fresh servers");
  if (o.has("conns")) out["conns"] = part_conns(csk, o, ok);
  if (o.has("call") && lua.proc) out["call"] = part_call(all, o, ok);
  if (o.has("idle") && (out.contains("call") || o.has("conns"))) out["idle_after"] = part_idle(all, o, "after the traffic above");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    std::cerr << "usage: cppskynet-idle-bench [--parts call,idle,conns] [--rounds R] [--seconds S] [--idle-seconds S] "
                 "[--conns N] [--spins US,US] [--old-node PATH] [--skynet-peer DIR] [--dir DIR] [--json FILE] [--keep]\n";
    return 2;
  }
  if (o.dir.empty()) o.dir = fs::temp_directory_path() / ("csk-idle-bench-" + std::to_string(::getpid()));
  fs::remove_all(o.dir);
  fs::create_directories(o.dir);
  const rlim_t fds = raise_fd_limit();
  if (o.has("conns") && fds < static_cast<rlim_t>(o.conns) + 200) {
    std::cerr << "RLIMIT_NOFILE hard limit " << fds << " is below --conns + 200\n";
    return 1;
  }
  std::vector<server> csk = csk_servers(o);
  for (auto& s : csk) {
    if (!start_csk(s, o)) return 1;
  }
  std::printf("cppskynet-idle-bench: node %s%s%s; RLIMIT_NOFILE %llu; files in %s\n", CSK_NODE_BIN,
              o.old_node.empty() ? "" : ", old node ", o.old_node.c_str(), static_cast<unsigned long long>(fds),
              o.dir.c_str());
  bool ok = true;
  server lua;
  lua.name = "lua";
  const json out = run_parts(csk, lua, o, ok);
  std::printf("\nJSON %s\n", out.dump().c_str());
  if (!o.json_file.empty()) std::ofstream(o.json_file) << out.dump(2) << "\n";
  for (auto& s : csk) stop(s);
  stop(lua);
  if (!o.keep) fs::remove_all(o.dir);
  return ok ? 0 : 1;
}
