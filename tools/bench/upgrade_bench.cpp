// cppskynet-upgrade-bench: how long a hot upgrade pauses a loaded node, and how long it
// takes, with N entities of about 100 bytes in one entity service.
//
//   cppskynet-upgrade-bench [--entities N[,N...]] [--upgrades K] [--clients C]
//                           [--settle-ms MS] [--gaps MS] [--worker PATH] [--keep]
//   defaults: --entities 10000,1000000 --upgrades 5 --clients 2 --settle-ms 300
//   --gaps MS      also list every gap longer than MS in each upgrade window, with its time
//                  of day (to match against the supervisor's log, kept with --keep)
//   --worker PATH  another build of upgrade_bench_worker.cpp (e.g. one with a modified
//                  worker/upgrade.cpp) for both generations
//
// For each N: starts a real supervisor (`cppskynet run -c DIR/node.yaml`) in a temp dir with
// the bench worker (upgrade_bench_worker.cpp: entity type "bench.item", filled with keys
// 0..N-1 at boot), waits until `count` says N, then C client threads each call
// `mutate k incr` on random keys, one call after another on ONE skynet-protocol TCP
// connection each, and record the completion time of every call. Meanwhile it runs
// `cppskynet upgrade --socket S --json` K times. For each upgrade:
//
//   pause     the longest gap between two consecutive completed calls (all clients merged)
//             that overlaps the upgrade window (the command's start to its end);
//   baseline  the same, over a window of the same length with no upgrade, measured right
//             after it (after --settle-ms): the ratio pause / baseline is the figure;
//   wall      the command's wall clock (process start of the CLI included);
//   elapsed   the supervisor's elapsed_ms (upgrade begun -> new worker serves and the old
//             one has exited; includes the new worker's process start and boot);
//   total, precopy, frozen, final_delta, state_bytes: the old worker's figures
//             (worker/upgrade.cpp: total = offer -> serving, frozen = freeze -> serving).
//
// After the K upgrades: every call succeeded, no connection closed (no reconnect), the
// store still holds N entities, and every key's counter equals the increments the clients
// saw succeed on it (the whole store is read back with `iterate`). Exits 1 on any failure.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <ctime>
#include <iostream>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"
#include "tests/support/skynet_client.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using csk::lua_value;
using csk::test::steady;
using namespace std::chrono_literals;

// One skynet-protocol TCP connection per caller (tests/support); calls get 30 s each.
using csk::test::skynet_client;
constexpr auto call_limit = 30s;

struct options {
  std::vector<std::int64_t> entities{10000, 1000000};
  int upgrades = 5;
  int clients = 2;
  int settle_ms = 300;
  bool keep = false;
  double gaps_ms = 0;  ///< > 0: list every gap longer than this in each upgrade window
  std::string worker = CSK_UPGRADE_BENCH_WORKER_BIN;  ///< the worker program (both generations)
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

// One caller: a tight loop of `mutate k incr` on random keys over one connection.
struct caller {
  std::vector<std::int64_t> done_ns;  // completion time of every successful call
  std::vector<std::uint32_t> per_key;  // successful increments per key
  std::int64_t failures = 0;
  bool closed = false;
  std::string first_failure;
  std::thread th;
};

void run_caller(caller& c, std::uint16_t port, std::int64_t n, std::uint64_t seed, const std::atomic<bool>& stop) {
  c.per_key.assign(static_cast<std::size_t>(n), 0);
  c.done_ns.reserve(1 << 22);
  skynet_client cl(port);
  if (!cl.connected()) {
    c.failures = 1;
    c.closed = true;
    c.first_failure = "connect failed";
    return;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> pick(0, n - 1);
  while (!stop.load(std::memory_order_relaxed)) {
    const std::int64_t k = pick(rng);
    auto a = cl.call("@items", {"mutate", k, "incr"}, call_limit);
    if (!a.ok) {
      if (c.first_failure.empty()) c.first_failure = a.error;
      ++c.failures;
      if (a.closed) {
        c.closed = true;
        return;  // a reconnect would be a failure anyway
      }
      continue;
    }
    c.done_ns.push_back(now_ns());
    ++c.per_key[static_cast<std::size_t>(k)];
  }
}

csk::test::command_result cppskynet(const fs::path& dir, std::vector<std::string> args, const std::string& tag) {
  args.insert(args.begin(), CSK_CLI_BIN);
  return csk::test::run_command(args, dir, tag, 300s);
}

// The longest gap between consecutive completions (sorted) that overlaps [a, b], and the
// number of completions inside [a, b].
struct gap_result {
  double longest_ms = 0;
  double at_ms = 0;  ///< where the longest gap starts, from the window's start
  std::size_t calls = 0;
};
gap_result longest_gap(const std::vector<std::int64_t>& t, std::int64_t a, std::int64_t b) {
  gap_result r;
  auto first = std::lower_bound(t.begin(), t.end(), a);
  auto last = std::upper_bound(t.begin(), t.end(), b);
  r.calls = static_cast<std::size_t>(last - first);
  // pairs (t[j], t[j+1]) with t[j+1] >= a and t[j] <= b
  auto j = first == t.begin() ? first : first - 1;
  std::int64_t worst = 0, at = a;
  for (; j != t.end() && j + 1 != t.end() && *j <= b; ++j) {
    if (*(j + 1) - *j > worst) {
      worst = *(j + 1) - *j;
      at = *j;
    }
  }
  r.longest_ms = static_cast<double>(worst) / 1e6;
  r.at_ms = static_cast<double>(at - a) / 1e6;
  return r;
}

// Wall-clock time of day (UTC, as the logs print it) of a steady-clock instant.
std::string time_of_day(std::int64_t steady_ns) {
  const auto sys = std::chrono::system_clock::now() +
                   std::chrono::nanoseconds(steady_ns - now_ns());
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(sys));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03lld", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ms));
  return buf;
}

// Prints every gap longer than `min_ms` that overlaps [a, b] (diagnostics: --gaps).
void list_gaps(const std::vector<std::int64_t>& t, std::int64_t a, std::int64_t b, double min_ms, const std::string& what) {
  std::printf("%s: window %s .. %s (%.1f ms); gaps > %.1f ms:", what.c_str(), time_of_day(a).c_str(),
              time_of_day(b).c_str(), static_cast<double>(b - a) / 1e6, min_ms);
  auto j = std::lower_bound(t.begin(), t.end(), a);
  if (j != t.begin()) --j;
  for (; j != t.end() && j + 1 != t.end() && *j <= b; ++j) {
    const double g = static_cast<double>(*(j + 1) - *j) / 1e6;
    if (g > min_ms) std::printf(" %.1f@+%.1f(%s)", g, static_cast<double>(*j - a) / 1e6, time_of_day(*j).c_str());
  }
  std::printf("\n");
}

// Milliseconds since midnight of the first log line matching `pattern` (the log's
// "[YYYY-MM-DD HH:MM:SS.mmm]" prefix), or -1.
double log_time(const std::string& log, const std::string& pattern) {
  std::smatch m;
  const std::regex re(R"(\[\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d)\.(\d{3})\][^\n]*)" + pattern);
  if (!std::regex_search(log, m, re)) return -1;
  return ((std::stod(m[1].str()) * 60 + std::stod(m[2].str())) * 60 + std::stod(m[3].str())) * 1000 + std::stod(m[4].str());
}

// From the supervisor's log, for the upgrade gen `from` -> from + 1: the new worker's
// start (spawned -> hello, its boot included) and the old worker's exit (its "handed over"
// line -> the supervisor reaped it). -1 where a line is missing.
struct log_phases {
  double start_ms = -1, exit_ms = -1;
};
log_phases phases_of(const std::string& log, int from) {
  const std::string to = std::to_string(from + 1), g = std::to_string(from);
  log_phases p;
  const double started = log_time(log, "worker gen " + to + " started: pid");
  const double hello = log_time(log, "worker gen " + to + R"( \(pid \d+\) said hello)");
  const double handed = log_time(log, R"(\[\d+ worker\.)" + g + R"(\] \[handover\] handed over in)");
  const double gone = log_time(log, "worker gen " + g + R"( \(pid \d+\) exited with code \d+: handed over)");
  if (started >= 0 && hello >= 0) p.start_ms = hello - started;
  if (handed >= 0 && gone >= 0) p.exit_ms = gone - handed;
  return p;
}

// CPU time (user + system) a process has used so far, in ms (clock-tick resolution,
// 10 ms), or -1 once it is gone.
double cpu_ms(pid_t pid) {
  if (pid <= 0) return -1;
  const std::string stat = csk::test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14 and 15 (1-based) are utime, stime
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Worker CPU time around one upgrade (ms): the old worker while the command ran (serving
// and handing over), the new one from its start to the command's end (boot and take-over,
// serving its first few ms), and the serving worker over the baseline window (serving only).
struct cpu_figures {
  double old_ms = -1, new_ms = -1, base_ms = -1;
};

struct upgrade_row {
  double pause_ms = 0, pause_at_ms = 0, baseline_ms = 0, wall_ms = 0, elapsed_ms = 0, total_ms = 0, precopy_ms = 0, frozen_ms = 0;
  double rate = 0, base_rate = 0;  // calls/s in the window
  double start_ms = -1, exit_ms = -1;  // from the supervisor's log (ms resolution)
  cpu_figures cpu;
  std::uint64_t final_delta = 0, delta_entities = 0, state_bytes = 0, entities = 0, connections = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}
double maximum(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
double minimum(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }

// Runs one configuration; returns false on any failure.
bool run_one(const options& o, std::int64_t n) {
  const fs::path dir = fs::temp_directory_path() / ("csk_upgrade_bench_" + std::to_string(::getpid()) + "_" + std::to_string(n));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string socket = (dir / "ctl.sock").string();
  std::ofstream(dir / "names.yaml") << "ub: \"127.0.0.1:1\"\n";  // the listen below wins
  std::ofstream(dir / "node.yaml") << "runtime: {threads: 2, call_timeout_ms: 60000}\n"
                                   << "log: {level: info}\n"
                                   << "cluster: {self: ub, listen: \"127.0.0.1:0\", names_file: names.yaml}\n"
                                   << "services:\n"
                                   << "  - {type: \"entity:bench.item\", names: [\"@items\", .items], args: [{id: items}]}\n"
                                   << "  - {type: bench.filler, args: [.items, " << n << "]}\n"
                                   << "  - {type: echo, names: [\"@echo\"]}\n"
                                   << "supervisor:\n"
                                   << "  worker: " << o.worker << "\n"
                                   << "  control_socket: " << socket << "\n"
                                   << "  upgrade_timeout_ms: 120000\n";
  std::printf("== %lld entities: %d upgrades, %d clients; dir %s\n", static_cast<long long>(n), o.upgrades, o.clients,
              dir.c_str());
  std::fflush(stdout);
  bool ok = true;
  std::vector<upgrade_row> rows;
  std::int64_t calls_total = 0, failures = 0;
  bool any_closed = false;
  {
    csk::test::supervisor_process sup(dir);
    if (!sup.wait_for("ready in", 1, 60s)) {
      std::cerr << "supervisor not ready:\n" << sup.output();
      return false;
    }
    const std::uint16_t port = sup.cluster_port();
    // Wait until the filler is done.
    const auto fill_start = steady::now();
    {
      skynet_client probe(port);
      bool filled = csk::test::eventually(
          [&] {
            auto a = probe.call("@items", {"count"}, call_limit);
            return a.ok && a.values.at(0).as_integer() == n;
          },
          600s);
      if (!filled) {
        std::cerr << "the store never reached " << n << " entities\n";
        return false;
      }
    }
    std::printf("filled in %.1f s (as seen by polling count)\n",
                std::chrono::duration<double>(steady::now() - fill_start).count());
    std::fflush(stdout);

    std::atomic<bool> stop{false};
    std::vector<caller> callers(static_cast<std::size_t>(o.clients));
    for (std::size_t i = 0; i < callers.size(); ++i) {
      callers[i].th = std::thread(run_caller, std::ref(callers[i]), port, n, 0x5eed + i, std::cref(stop));
    }
    std::this_thread::sleep_for(1s);  // warm up

    struct window {
      std::int64_t a = 0, b = 0, base_a = 0, base_b = 0;
    };
    std::vector<window> windows;
    std::vector<json> replies;
    std::vector<cpu_figures> cpus;
    pid_t serving = sup.worker_pid(1);
    for (int i = 0; i < o.upgrades; ++i) {
      window w;
      cpu_figures cpu;
      // The old worker's CPU time while it hands over: sampled until it is gone.
      const double old_before = cpu_ms(serving);
      std::atomic<bool> upgrading{true};
      double old_last = old_before;
      std::thread sampler([&] {
        while (upgrading) {
          const double c = cpu_ms(serving);
          if (c >= 0) old_last = c;
          std::this_thread::sleep_for(2ms);
        }
      });
      w.a = now_ns();
      auto r = cppskynet(dir, {"upgrade", "--socket", socket, "--json", "--timeout", "120"}, std::to_string(i + 1));
      w.b = now_ns();
      upgrading = false;
      sampler.join();
      const json v = json::parse(r.output, nullptr, false);
      if (r.exit_code != 0 || !v.is_object() || !v.value("ok", false)) {
        std::cerr << "upgrade " << i + 1 << " failed (exit " << r.exit_code << "): " << r.output << "\n";
        ok = false;
        break;
      }
      replies.push_back(v);
      serving = v.value("to_pid", pid_t{-1});
      cpu.old_ms = old_before >= 0 ? old_last - old_before : -1;
      cpu.new_ms = cpu_ms(serving);
      std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
      const double base_before = cpu_ms(serving);
      w.base_a = now_ns();
      std::this_thread::sleep_for(std::chrono::nanoseconds(w.b - w.a));
      w.base_b = now_ns();
      cpu.base_ms = cpu_ms(serving) - base_before;
      windows.push_back(w);
      cpus.push_back(cpu);
      std::printf("upgrade %d: %.0f ms\n", i + 1, static_cast<double>(w.b - w.a) / 1e6);
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(200ms);
    stop = true;
    std::vector<std::int64_t> all;
    std::vector<std::uint64_t> per_key(static_cast<std::size_t>(n), 0);
    for (auto& c : callers) {
      c.th.join();
      all.insert(all.end(), c.done_ns.begin(), c.done_ns.end());
      for (std::size_t k = 0; k < per_key.size(); ++k) per_key[k] += c.per_key[k];
      failures += c.failures;
      any_closed = any_closed || c.closed;
      if (c.failures > 0) std::cerr << "client failure: " << c.first_failure << "\n";
    }
    std::sort(all.begin(), all.end());
    const std::string sup_log = sup.output();
    calls_total = static_cast<std::int64_t>(all.size());
    for (std::size_t i = 0; i < windows.size(); ++i) {
      const auto& w = windows[i];
      const json& v = replies[i];
      upgrade_row row;
      const auto up = longest_gap(all, w.a, w.b);
      const auto base = longest_gap(all, w.base_a, w.base_b);
      row.pause_ms = up.longest_ms;
      row.pause_at_ms = up.at_ms;
      row.baseline_ms = base.longest_ms;
      row.wall_ms = static_cast<double>(w.b - w.a) / 1e6;
      row.rate = static_cast<double>(up.calls) / (static_cast<double>(w.b - w.a) / 1e9);
      row.base_rate = static_cast<double>(base.calls) / (static_cast<double>(w.base_b - w.base_a) / 1e9);
      row.elapsed_ms = v.value("elapsed_ms", 0.0);
      row.total_ms = v.value("total_us", 0.0) / 1000;
      row.precopy_ms = v.value("precopy_us", 0.0) / 1000;
      row.frozen_ms = v.value("frozen_us", 0.0) / 1000;
      row.final_delta = v.value("final_delta", std::uint64_t{0});
      row.delta_entities = v.value("delta_entities", std::uint64_t{0});
      row.state_bytes = v.value("state_bytes", std::uint64_t{0});
      row.entities = v.value("entities", std::uint64_t{0});
      row.connections = v.value("connections", std::uint64_t{0});
      row.cpu = cpus[i];
      const auto ph = phases_of(sup_log, static_cast<int>(i) + 1);
      row.start_ms = ph.start_ms;
      row.exit_ms = ph.exit_ms;
      rows.push_back(row);
      if (o.gaps_ms > 0) list_gaps(all, w.a, w.b, o.gaps_ms, "upgrade " + std::to_string(i + 1));
    }

    // Verify the state: count, then every key's counter.
    skynet_client check(port);
    auto cnt = check.call("@items", {"count"}, call_limit);
    if (!cnt.ok || cnt.values.at(0).as_integer() != n) {
      std::cerr << "count after the upgrades: " << (cnt.ok ? std::to_string(cnt.values.at(0).as_integer()) : cnt.error)
                << ", expected " << n << "\n";
      ok = false;
    }
    std::uint64_t seen = 0, wrong = 0, sum = 0, expect_sum = 0;
    for (auto x : per_key) expect_sum += x;
    lua_value cursor;
    std::string first_wrong;
    const auto check_entry = [&](std::int64_t k, const lua_value& v) {
      ++seen;
      const lua_value* a = v.is_table() ? v.as_table().find(lua_value("a")) : nullptr;
      const std::int64_t got = a != nullptr ? a->as_integer() : -1;
      sum += static_cast<std::uint64_t>(std::max<std::int64_t>(got, 0));
      if (k < 0 || k >= n || got != static_cast<std::int64_t>(per_key[static_cast<std::size_t>(k)])) {
        if (first_wrong.empty()) first_wrong = "key " + std::to_string(k) + ": a = " + std::to_string(got);
        ++wrong;
      }
    };
    for (;;) {
      auto page = check.call("@items", {"iterate", cursor, 10000}, 120s);
      if (!page.ok) {
        std::cerr << "iterate failed: " << page.error << "\n";
        ok = false;
        break;
      }
      const auto& t = page.values.at(0).as_table();
      for (std::size_t i = 0; i < t.array.size(); ++i) check_entry(static_cast<std::int64_t>(i + 1), t.array[i]);
      for (const auto& [k, v] : t.hash) check_entry(k.as_integer(), v);
      cursor = page.values.size() > 1 ? page.values[1] : lua_value{};
      if (cursor.is_nil()) break;
    }
    const bool state_ok = seen == static_cast<std::uint64_t>(n) && wrong == 0 && sum == expect_sum &&
                          expect_sum == static_cast<std::uint64_t>(calls_total);
    std::printf("verify: %llu calls, %lld failed, %s; %llu entities read back, %llu counters wrong, sum %llu (expected %llu)%s%s\n",
                static_cast<unsigned long long>(calls_total), static_cast<long long>(failures),
                any_closed ? "a connection closed" : "no reconnect", static_cast<unsigned long long>(seen),
                static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(sum),
                static_cast<unsigned long long>(expect_sum), first_wrong.empty() ? "" : "; first: ", first_wrong.c_str());
    if (!state_ok || failures != 0 || any_closed) ok = false;

    sup.proc().signal(SIGTERM);
    if (!sup.proc().wait_exit(60s)) std::cerr << "the supervisor did not stop\n";
  }

  // The table: one row per upgrade, then the median and the worst (max; min for rates).
  struct column {
    const char* name;
    int precision;
    bool higher_is_worse;
    std::function<double(const upgrade_row&)> get;
  };
  const std::vector<column> cols = {
      {"pause", 2, true, [](const upgrade_row& r) { return r.pause_ms; }},
      {"at", 1, true, [](const upgrade_row& r) { return r.pause_at_ms; }},
      {"base", 2, true, [](const upgrade_row& r) { return r.baseline_ms; }},
      {"ratio", 1, true, [](const upgrade_row& r) { return r.baseline_ms > 0 ? r.pause_ms / r.baseline_ms : 0; }},
      {"wall", 1, true, [](const upgrade_row& r) { return r.wall_ms; }},
      {"elapsed", 1, true, [](const upgrade_row& r) { return r.elapsed_ms; }},
      {"total", 1, true, [](const upgrade_row& r) { return r.total_ms; }},
      {"precopy", 1, true, [](const upgrade_row& r) { return r.precopy_ms; }},
      {"frozen", 2, true, [](const upgrade_row& r) { return r.frozen_ms; }},
      {"start", 0, true, [](const upgrade_row& r) { return r.start_ms; }},
      {"exit", 0, true, [](const upgrade_row& r) { return r.exit_ms; }},
      {"oldcpu", 0, true, [](const upgrade_row& r) { return r.cpu.old_ms; }},
      {"newcpu", 0, true, [](const upgrade_row& r) { return r.cpu.new_ms; }},
      {"basecpu", 0, true, [](const upgrade_row& r) { return r.cpu.base_ms; }},
      {"deltas", 0, true, [](const upgrade_row& r) { return static_cast<double>(r.delta_entities); }},
      {"final", 0, true, [](const upgrade_row& r) { return static_cast<double>(r.final_delta); }},
      {"MB", 1, true, [](const upgrade_row& r) { return static_cast<double>(r.state_bytes) / 1e6; }},
      {"calls/s", 0, false, [](const upgrade_row& r) { return r.rate; }},
      {"base/s", 0, false, [](const upgrade_row& r) { return r.base_rate; }},
  };
  std::printf("\n(ms unless named; pause/at/base: longest gap, where it began in the window, the no-upgrade gap;\n"
              " wall: the command; elapsed: the supervisor's; total/precopy/frozen: the old worker's; start: new worker\n"
              " spawned -> hello; exit: old worker handed over -> reaped; oldcpu/newcpu: CPU time of the old worker\n"
              " during the command, of the new one from its start to the end; basecpu: of the serving worker in the\n"
              " baseline window (10 ms ticks); deltas/final: keys moved by all delta\n"
              " rounds / by the frozen one; MB: state sent; calls/s: in the window, base/s: in the baseline one)\n");
  std::printf("%4s", "#");
  for (const auto& c : cols) std::printf(" %8s", c.name);
  std::printf("\n");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf("%4zu", i + 1);
    for (const auto& c : cols) std::printf(" %8.*f", c.precision, c.get(rows[i]));
    std::printf("\n");
  }
  std::vector<double> pause, wall;
  for (const auto& r : rows) {
    pause.push_back(r.pause_ms);
    wall.push_back(r.wall_ms);
  }
  for (const char* what : {"med", "worst"}) {
    std::printf("%4s", what);
    for (const auto& c : cols) {
      std::vector<double> v;
      for (const auto& r : rows) v.push_back(c.get(r));
      const double x = std::string_view(what) == "med" ? median(v) : c.higher_is_worse ? maximum(v) : minimum(v);
      std::printf(" %8.*f", c.precision, x);
    }
    std::printf("\n");
  }
  if (!rows.empty()) {
    // Goals (issue 6): pause <= 5 ms at 10k, <= 20 ms at 1M; whole upgrade <= 1 s at 1M.
    const double pause_goal = n >= 1000000 ? 20 : n <= 10000 ? 5 : 0;
    if (pause_goal > 0) {
      std::printf("goal: pause <= %.0f ms: max %.2f ms -> %s\n", pause_goal, maximum(pause),
                  maximum(pause) <= pause_goal ? "met" : "MISSED");
    }
    if (n >= 1000000) {
      std::printf("goal: whole upgrade <= 1000 ms: max wall %.0f ms (median %.0f) -> %s\n", maximum(wall), median(wall),
                  maximum(wall) <= 1000 ? "met" : "MISSED");
    }
  }
  std::printf("result: %s\n\n", ok ? "ok" : "FAILED");
  std::fflush(stdout);
  if (!o.keep && ok) fs::remove_all(dir);
  return ok;
}

int usage(const char* why) {
  std::cerr << "cppskynet-upgrade-bench: " << why << "\n"
            << "usage: cppskynet-upgrade-bench [--entities N[,N...]] [--upgrades K] [--clients C] [--settle-ms MS] [--gaps MS] [--worker PATH] [--keep]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    try {
      if (a == "--entities" && has) {
        o.entities.clear();
        std::stringstream ss(argv[++i]);
        for (std::string part; std::getline(ss, part, ',');) o.entities.push_back(std::stoll(part));
      } else if (a == "--upgrades" && has) {
        o.upgrades = std::stoi(argv[++i]);
      } else if (a == "--clients" && has) {
        o.clients = std::stoi(argv[++i]);
      } else if (a == "--settle-ms" && has) {
        o.settle_ms = std::stoi(argv[++i]);
      } else if (a == "--worker" && has) {
        o.worker = fs::absolute(argv[++i]).string();
      } else if (a == "--gaps" && has) {
        o.gaps_ms = std::stod(argv[++i]);
      } else if (a == "--keep") {
        o.keep = true;
      } else {
        return usage(("unknown argument " + a).c_str());
      }
    } catch (const std::exception&) {
      return usage(("bad value for " + a).c_str());
    }
  }
  if (o.entities.empty() || o.upgrades < 1 || o.clients < 1) return usage("need entities, upgrades >= 1, clients >= 1");
  for (auto n : o.entities) {
    if (n < 1) return usage("entities must be >= 1");
  }
  bool ok = true;
  for (auto n : o.entities) ok = run_one(o, n) && ok;
  return ok ? 0 : 1;
}
