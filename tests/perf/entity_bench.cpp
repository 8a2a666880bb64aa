// Entity snapshots (services/entity/store.hpp) beside baselines measured in the same run.
// An entity is ~100 bytes of cereal data (4 int64, 4 int32, 3 doubles, a 20-character
// name) under an int64 key; stores of 10k and 1M entities.
//
//   entity_snapshot        store -> full snapshot (a byte_buffer whose capacity is kept)
//   entity_snapshot_page   one page of 10000 entries (the pause unit of a paged pre-copy)
//   entity_restore         full snapshot -> a new, empty store
//   entity_delta           delta snapshot with 1% of the keys changed since the mark
//   entity_apply_delta     that delta applied to a copy of the store
//   base_memcpy            memcpy of as many bytes as the full snapshot has
//   base_cereal_save       cereal's own BinaryOutputArchive, std::vector of the same
//                          structs into a std::ostringstream (the reference method)
//   base_cereal_load_map   cereal's BinaryInputArchive back into a vector, then moved
//                          into a reserved std::unordered_map (the reference)
//
// Each row reports MB/s (bytes of snapshot) and entities/s, from CPU time; at the end the run
// prints the ratios of each entity row to its baselines, in wall and in CPU time. Release build only:
//   cmake --preset release -B build/release && ninja -C build/release entity_bench
//   build/release/tests/perf/entity_bench

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "services/entity/store.hpp"

namespace bench {

struct player {
  std::int64_t id = 0;
  std::int64_t gold = 0;
  std::int64_t exp = 0;
  std::int64_t last_login = 0;
  std::int32_t level = 0;
  std::int32_t hp = 0;
  std::int32_t mp = 0;
  std::int32_t zone = 0;
  double x = 0;
  double y = 0;
  double z = 0;
  std::string name;

  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(id, gold, exp, last_login, level, hp, mp, zone, x, y, z, name);
  }
};

}  // namespace bench

CEREAL_CLASS_VERSION(bench::player, 1)

namespace {

using namespace csk;
using store_t = entity::store<bench::player, std::int64_t>;

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
  std::snprintf(buf, sizeof buf, "player-%013lld", static_cast<long long>(i));  // 20 characters
  p.name = buf;
  return p;
}

const entity::type_desc& desc() {
  static const entity::type_desc d = entity::describe<bench::player, std::int64_t>("bench.player");
  return d;
}

const entity::manual_clock& bench_clock() {
  static const entity::manual_clock c(1000);
  return c;
}

/// One store (and its full snapshot) per size, built once.
struct fixture {
  std::unique_ptr<store_t> s;
  byte_buffer snap;
  std::vector<bench::player> plain;  // the same structs, for the cereal baselines
  std::string cereal_bytes;
};

fixture& get(std::int64_t n) {
  static std::map<std::int64_t, fixture> all;
  auto it = all.find(n);
  if (it != all.end()) return it->second;
  fixture& f = all[n];
  f.s = std::make_unique<store_t>(desc(), &bench_clock());
  f.plain.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    f.s->set(i, make(i));
    f.plain.push_back(make(i));
  }
  f.s->snapshot(f.snap);
  std::ostringstream os;
  {
    cereal::BinaryOutputArchive ar(os);
    ar(f.plain);
  }
  f.cereal_bytes = os.str();
  return f;
}

void report(benchmark::State& state, std::size_t bytes, std::int64_t entities) {
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
  state.SetItemsProcessed(entities * state.iterations());
  state.counters["bytes/entity"] = static_cast<double>(bytes) / static_cast<double>(entities);
}

void entity_snapshot(benchmark::State& state) {
  fixture& f = get(state.range(0));
  byte_buffer out;
  out.reserve(f.snap.size());
  for (auto _ : state) {
    out.clear();
    f.s->snapshot(out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != f.snap) state.SkipWithError("snapshot differs from the first one");
  report(state, f.snap.size(), state.range(0));
}

void entity_snapshot_page(benchmark::State& state) {
  fixture& f = get(state.range(0));
  constexpr std::size_t page = 10000;
  byte_buffer out;
  std::optional<std::int64_t> cursor;
  for (auto _ : state) {
    out.clear();
    entity::writer w(out);
    cursor = f.s->snapshot_page(w, cursor, page);
    benchmark::DoNotOptimize(out.data());
  }
  report(state, out.size(), static_cast<std::int64_t>(page));
}

void entity_restore(benchmark::State& state) {
  fixture& f = get(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto s = std::make_unique<store_t>(desc(), &bench_clock());
    state.ResumeTiming();
    auto r = s->restore(f.snap);
    if (!r || *r != f.s->size()) state.SkipWithError("restore failed");
    state.PauseTiming();
    s.reset();  // freeing 1M nodes is not part of a restore
    state.ResumeTiming();
  }
  report(state, f.snap.size(), state.range(0));
}

/// A copy of the store with tracking on and 1% of the keys changed.
struct delta_fixture {
  std::unique_ptr<store_t> src;
  std::unique_ptr<store_t> dst;
  byte_buffer delta;
};

delta_fixture& get_delta(std::int64_t n) {
  static std::map<std::int64_t, delta_fixture> all;
  auto it = all.find(n);
  if (it != all.end()) return it->second;
  delta_fixture& d = all[n];
  fixture& f = get(n);
  d.src = std::make_unique<store_t>(desc(), &bench_clock());
  d.dst = std::make_unique<store_t>(desc(), &bench_clock());
  (void)d.src->restore(f.snap);
  (void)d.dst->restore(f.snap);
  d.src->begin_tracking();
  for (std::int64_t i = 0; i < n; i += 100) d.src->modify(i)->gold += 1;  // 1%
  (void)d.src->delta_snapshot(d.delta, false);
  return d;
}

void entity_delta(benchmark::State& state) {
  delta_fixture& d = get_delta(state.range(0));
  byte_buffer out;
  out.reserve(d.delta.size());
  for (auto _ : state) {
    out.clear();
    auto r = d.src->delta_snapshot(out, false);
    benchmark::DoNotOptimize(out.data());
    if (!r) state.SkipWithError("delta failed");
  }
  report(state, out.size(), state.range(0) / 100);
}

void entity_apply_delta(benchmark::State& state) {
  delta_fixture& d = get_delta(state.range(0));
  for (auto _ : state) {
    auto r = d.dst->apply(d.delta);  // idempotent: the same 1% replaced each time
    if (!r) state.SkipWithError("apply failed");
  }
  report(state, d.delta.size(), state.range(0) / 100);
}

void base_memcpy(benchmark::State& state) {
  fixture& f = get(state.range(0));
  byte_buffer out(f.snap.size());
  for (auto _ : state) {
    std::memcpy(out.data(), f.snap.data(), f.snap.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state, f.snap.size(), state.range(0));
}

void base_cereal_save(benchmark::State& state) {
  fixture& f = get(state.range(0));
  for (auto _ : state) {
    std::ostringstream os;
    {
      cereal::BinaryOutputArchive ar(os);
      ar(f.plain);
    }
    benchmark::DoNotOptimize(os);
  }
  report(state, f.cereal_bytes.size(), state.range(0));
}

void base_cereal_load_map(benchmark::State& state) {
  fixture& f = get(state.range(0));
  for (auto _ : state) {
    std::istringstream is(f.cereal_bytes);
    std::vector<bench::player> v;
    {
      cereal::BinaryInputArchive ar(is);
      ar(v);
    }
    std::unordered_map<std::int64_t, bench::player> m;
    m.reserve(v.size());
    for (auto& p : v) m.emplace(p.id, std::move(p));
    if (m.size() != f.plain.size()) state.SkipWithError("load failed");
    state.PauseTiming();
    m = {};
    state.ResumeTiming();
  }
  report(state, f.cereal_bytes.size(), state.range(0));
}

// CPU time (the default): single-threaded work, and the machines these run on are often busy
// with builds, where wall time is mostly waiting for a core. The ratios show both.
#define ENTITY_SIZES ->Arg(10000)->Arg(1000000)->Unit(benchmark::kMillisecond)
BENCHMARK(base_memcpy) ENTITY_SIZES;
BENCHMARK(base_cereal_save) ENTITY_SIZES;
BENCHMARK(base_cereal_load_map) ENTITY_SIZES;
BENCHMARK(entity_snapshot) ENTITY_SIZES;
BENCHMARK(entity_snapshot_page)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(entity_restore) ENTITY_SIZES;
BENCHMARK(entity_delta) ENTITY_SIZES;
BENCHMARK(entity_apply_delta) ENTITY_SIZES;

/// The console table, then the ratios of the entity rows to their baselines.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    // Single runs, or the medians of --benchmark_repetitions.
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (single || median) times_[r.run_name.str()] = {r.GetAdjustedRealTime(), r.GetAdjustedCPUTime()};
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nratios, time of the first over time of the second (same run):\n");
    std::printf("  %-20s   %-22s %-10s %8s %8s\n", "", "", "", "real", "cpu");
    for (const char* n : {"10000", "1000000"}) {
      ratio("entity_snapshot", "base_cereal_save", n);
      ratio("entity_snapshot", "base_memcpy", n);
      ratio("entity_restore", "base_cereal_load_map", n);
      ratio("entity_delta", "entity_snapshot", n);
      ratio("entity_apply_delta", "entity_restore", n);
    }
  }

 private:
  void ratio(const std::string& a, const std::string& b, const std::string& n) {
    const auto ia = times_.find(a + "/" + n);
    const auto ib = times_.find(b + "/" + n);
    if (ia == times_.end() || ib == times_.end() || ib->second.first <= 0 || ib->second.second <= 0) return;
    std::printf("  %-20s / %-22s n=%-8s %8.3f %8.3f\n", a.c_str(), b.c_str(), n.c_str(),
                ia->second.first / ib->second.first, ia->second.second / ib->second.second);
  }
  std::map<std::string, std::pair<double, double>> times_;  // real, cpu
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
