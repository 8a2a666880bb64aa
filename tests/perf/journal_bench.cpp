// The entity journal's costs (docs/durability.md), each beside its baseline in the same
// run; the ratios are printed at the end.
//
//   service_writes/journal:0|1   entity writes through the runtime as a system service makes
//                                them: D driver services on a 2-thread runtime, each calling
//                                `mutate k incr` on one store in a closed loop over K keys;
//                                journal:1 attaches memfd regions (as the supervisor holds
//                                them), so every write also appends a record, and
//                                checkpoints run as the ring fills. Items/s and the process's
//                                CPU per write.
//   store_writes/journal:0|1     the same write on a bare store (no runtime): store.modify,
//                                then (journal:1) the record: take_journal + append into a
//                                64 MiB memfd ring, with a whole checkpoint when it is full.
//   recovery/n:N/tail:T          a region holding a checkpoint of N entities (~100 bytes,
//                                int64 keys) and one-key records after it (T 0: none; 1: as
//                                many as the checkpoint policy lets pile up; 2: a full ring):
//                                open + replay into an empty store, as a worker's store does.
//   base_restore/N               the baseline: a full snapshot of the same N entities
//                                restored from memory (the fastest way there is to a store).
//
// Release build only:
//   cmake --preset release && cmake --build --preset release --target journal_bench
//   build/release/tests/perf/journal_bench

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>

#include "common/actor/runtime.hpp"
#include "services/entity/entity.hpp"
#include "tests/unit/entity/memory_regions.hpp"

namespace bench {

struct player {
  std::int64_t id = 0, gold = 0, exp = 0, last_login = 0;
  std::int32_t level = 0, hp = 0, mp = 0, zone = 0;
  double x = 0, y = 0, z = 0;
  std::string name;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(id, gold, exp, last_login, level, hp, mp, zone, x, y, z, name);
  }
};
csk::lua_value to_lua(const player& p) { return csk::entity::fields().add("gold", p.gold).table(); }
void from_lua(const csk::lua_value& in, player& p) { csk::entity::field_reader(in, "bench.player").get("gold", p.gold).done(); }

}  // namespace bench

CEREAL_CLASS_VERSION(bench::player, 1)

namespace {

using namespace csk;
using namespace std::chrono_literals;
using store_t = entity::store<bench::player, std::int64_t>;
using entity::test::held_region;
using entity::test::memory_regions;

bench::player make(std::int64_t i) {
  bench::player p;
  p.id = i;
  p.gold = i * 7;
  p.exp = i * 13;
  p.last_login = 1700000000 + i;
  p.level = static_cast<std::int32_t>(i % 100);
  p.hp = 1000;
  p.mp = 500;
  p.zone = static_cast<std::int32_t>(i % 17);
  p.x = 1.5 * static_cast<double>(i);
  p.y = -2.0;
  p.z = 0.25;
  char buf[32];
  std::snprintf(buf, sizeof buf, "player-%013lld", static_cast<long long>(i));
  p.name = buf;
  return p;
}

auto& player_type() {
  static auto& t = entity::register_type<bench::player, std::int64_t>("bench.player")
                       .mutation(
                           "incr",
                           [](bench::player& p, actor::values&) {
                             ++p.gold;
                             return actor::values{p.gold};
                           },
                           entity::entity_type<bench::player, std::int64_t>::missing::create);
  return t;
}

double process_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// -- through the runtime ------------------------------------------------------------------

constexpr int drivers = 4;
constexpr std::int64_t writes_per_driver = 20000;
constexpr std::int64_t keys = 10000;

/// Calls `mutate k incr` on ".store" `n` times in a closed loop (k cycles over `keys`).
class driver final : public actor::service {
 public:
  actor::task<actor::values> handle(actor::context& ctx, actor::message& m) override {
    const std::int64_t n = m.args.at(0).as_integer();
    const std::int64_t first = m.args.at(1).as_integer();
    std::int64_t failed = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      auto op = ctx.call(".store", actor::values{"mutate", (first + i) % keys, "incr"});
      auto r = co_await op;
      if (!r) ++failed;
    }
    co_return actor::values{failed};
  }
};

void service_writes(benchmark::State& state) {
  (void)player_type();
  const bool journal = state.range(0) != 0;
  memory_regions regions;
  actor::runtime_options o;
  o.threads = 2;
  actor::runtime rt(o);
  if (journal) entity::attach_region_source(rt, &regions);
  if (!rt.spawn(std::make_unique<entity::entity_service<bench::player, std::int64_t>>(), {}, {".store"})) {
    state.SkipWithError("spawn failed");
    return;
  }
  std::vector<actor::handle_t> ds;
  for (int d = 0; d < drivers; ++d) ds.push_back(*rt.spawn(std::make_unique<driver>()));
  rt.start();
  double cpu = 0;
  std::int64_t writes = 0;
  for (auto _ : state) {
    const double c0 = process_cpu_s();
    std::vector<std::future<actor::call_result>> fs;
    for (int d = 0; d < drivers; ++d) {
      fs.push_back(rt.call(ds[static_cast<std::size_t>(d)], {writes_per_driver, d * 1000}, 60s));
    }
    for (auto& f : fs) {
      auto r = f.get();
      if (!r || r->at(0).as_integer() != 0) state.SkipWithError("writes failed");
    }
    cpu += process_cpu_s() - c0;
    writes += drivers * writes_per_driver;
  }
  rt.shutdown();
  state.SetItemsProcessed(writes);
  state.counters["cpu_us/write"] = writes > 0 ? cpu * 1e6 / static_cast<double>(writes) : 0;
}

// -- a bare store ---------------------------------------------------------------------------

void store_writes(benchmark::State& state) {
  const bool journal = state.range(0) != 0;
  const auto desc = entity::describe<bench::player, std::int64_t>("bench.player");
  entity::manual_clock clk(1000);
  store_t s(desc, &clk);
  for (std::int64_t i = 0; i < keys; ++i) s.set(i, make(i));
  const auto region = held_region::make("bench");
  std::unique_ptr<entity::store_journal> j;
  if (journal) {
    auto opened = entity::store_journal::open(region.dup(), "bench", desc, {});
    if (!opened) {
      state.SkipWithError(opened.error().c_str());
      return;
    }
    j = std::move(*opened);
    (void)j->replay([](bytes_view) -> result<void, std::string> { return {}; },
                    [](const entity::journal::record&) -> result<void, std::string> { return {}; });
    (void)j->start_writing();
    s.set_journaling(true);
  }
  byte_buffer rec, page;
  std::int64_t i = 0, checkpoints = 0;
  for (auto _ : state) {
    ++s.modify(i % keys)->gold;
    ++i;
    if (!journal) continue;
    (void)s.take_journal(rec);
    if (j->append(entity::journal::record_kind::delta, rec) == entity::store_journal::append_status::full) {
      // What the store does when its ring is full: a whole checkpoint now.
      (void)j->begin_checkpoint(0);
      std::optional<std::int64_t> cursor;
      do {
        page.clear();
        entity::writer w(page);
        cursor = s.snapshot_page(w, cursor, 2000);
        (void)j->add_page(page);
      } while (cursor);
      (void)j->commit_checkpoint();
      ++checkpoints;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["checkpoints"] = static_cast<double>(checkpoints);
}

// -- recovery -----------------------------------------------------------------------------

/// A region with a checkpoint of n entities and `records` one-key records after it; and the
/// same entities as one full snapshot (the baseline's input).
struct recovery_fixture {
  held_region region = held_region::make("bench");
  byte_buffer snapshot;
  std::size_t records = 0;
};

recovery_fixture& recovery_state(std::int64_t n, std::int64_t tail) {
  static std::map<std::pair<std::int64_t, std::int64_t>, std::unique_ptr<recovery_fixture>> all;
  auto& slot = all[{n, tail}];
  if (slot) return *slot;
  slot = std::make_unique<recovery_fixture>();
  auto& f = *slot;
  const auto desc = entity::describe<bench::player, std::int64_t>("bench.player");
  entity::manual_clock clk(1000);
  store_t s(desc, &clk);
  for (std::int64_t i = 0; i < n; ++i) s.set(i, make(i));
  s.snapshot(f.snapshot);
  auto opened = entity::store_journal::open(f.region.dup(), "bench", desc, {});
  auto j = std::move(opened.value());
  (void)j->replay([](bytes_view) -> result<void, std::string> { return {}; },
                  [](const entity::journal::record&) -> result<void, std::string> { return {}; });
  (void)j->start_writing();
  (void)j->begin_checkpoint(0);
  byte_buffer page;
  std::optional<std::int64_t> cursor;
  do {
    page.clear();
    entity::writer w(page);
    cursor = s.snapshot_page(w, cursor, 2000);
    (void)j->add_page(page);
  } while (cursor);
  (void)j->commit_checkpoint();
  s.set_journaling(true);
  byte_buffer rec;
  // tail 1: the records a crash can find while background checkpoints keep up (appended
  // until one is due under the default options); tail 2: a full ring (writes outran them).
  for (std::int64_t r = 0; tail != 0; ++r) {
    if (tail == 1 && j->checkpoint_due(std::chrono::steady_clock::now())) break;
    ++s.modify((r * 7919) % n)->gold;
    (void)s.take_journal(rec);
    if (j->append(entity::journal::record_kind::delta, rec) != entity::store_journal::append_status::ok) break;
    ++f.records;
  }
  return f;
}

void recovery(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  auto& f = recovery_state(n, state.range(1));
  const auto desc = entity::describe<bench::player, std::int64_t>("bench.player");
  entity::manual_clock clk(1000);
  for (auto _ : state) {
    store_t s(desc, &clk);
    auto j = entity::store_journal::open(f.region.dup(), "bench", desc, {});
    auto r = (*j)->replay(
        [&](bytes_view p) -> result<void, std::string> {
          auto a = s.apply(p);
          if (!a) return unexpected(a.error());
          return {};
        },
        [&](const entity::journal::record& rec) -> result<void, std::string> {
          auto a = s.apply(rec.payload);
          if (!a) return unexpected(a.error());
          return {};
        });
    if (!r || static_cast<std::int64_t>(s.size()) != n || r->records != f.records) state.SkipWithError("recovery failed");
    state.PauseTiming();
    // Freeing a million nodes is not part of a recovery.
    { store_t gone = std::move(s); }
    state.ResumeTiming();
  }
  state.counters["records"] = static_cast<double>(f.records);
  state.SetItemsProcessed(state.iterations() * n);
}

void base_restore(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  auto& f = recovery_state(n, 0);
  const auto desc = entity::describe<bench::player, std::int64_t>("bench.player");
  entity::manual_clock clk(1000);
  for (auto _ : state) {
    store_t s(desc, &clk);
    auto r = s.restore(f.snapshot);
    if (!r || static_cast<std::int64_t>(*r) != n) state.SkipWithError("restore failed");
    state.PauseTiming();
    { store_t gone = std::move(s); }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}

BENCHMARK(service_writes)->ArgName("journal")->Arg(0)->Arg(1)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(store_writes)->ArgName("journal")->Arg(0)->Arg(1);
// tail 0: no records; 1: as many as the checkpoint policy lets pile up (the growth rule:
// 4 MiB at 10k entities; half the ring at 1M); 2: the whole 64 MiB ring (the most a crash
// can leave, when writes outrun the background checkpoint until a forced one)
BENCHMARK(recovery)->ArgNames({"n", "tail"})->ArgsProduct({{10000, 1000000}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(base_restore)->Arg(10000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();

class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (single || median) {
        const auto items = r.counters.find("items_per_second");
        times_[r.run_name.str()] = {r.GetAdjustedRealTime(), items != r.counters.end() ? items->second.value : 0};
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nratios (same run):\n");
    rate("service_writes/journal:1", "service_writes/journal:0", "writes/s with the journal / without");
    rate("store_writes/journal:1", "store_writes/journal:0", "bare store writes/s with the journal / without");
    for (const char* n : {"10000", "1000000"}) {
      for (const char* r : {"0", "1", "2"}) {
        const std::string a = std::string("recovery/n:") + n + "/tail:" + r;
        const auto ia = named(a + "/");
        const auto ib = named(std::string("base_restore/") + n + "/");
        if (ia == times_.end() || ib == times_.end()) continue;
        const char* tail = r[0] == '0' ? "none" : r[0] == '1' ? "policy" : "full ring";
        std::printf("  recovery n=%-8s records: %-9s %9.1f ms   %6.2f x a full restore from memory (%.1f ms)\n", n, tail,
                    ia->second.first, ia->second.first / ib->second.first, ib->second.first);
      }
    }
  }

 private:
  // The run named `prefix`, whatever suffixes the options added (/process_time/real_time).
  std::map<std::string, std::pair<double, double>>::const_iterator named(const std::string& prefix) const {
    auto it = times_.lower_bound(prefix);
    if (it != times_.end() && it->first.compare(0, prefix.size(), prefix) == 0) return it;
    return times_.end();
  }
  void rate(const std::string& a, const std::string& b, const char* what) {
    const auto ia = named(a);
    const auto ib = named(b);
    if (ia == times_.end() || ib == times_.end() || ib->second.second <= 0) return;
    std::printf("  %-50s %8.3f  (%.0f vs %.0f /s)\n", what, ia->second.second / ib->second.second, ia->second.second,
                ib->second.second);
  }
  std::map<std::string, std::pair<double, double>> times_;  // real time, items/s
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
