// Throughput of csk::actor::timer_wheel, with baselines in the same run so results can
// be read as ratios. Every variant replays the same pseudo-random delays.
//   AddCancel/N: N timers pending; each item cancels the oldest one and adds a new one
//                (skynet.timeout then the reply arrives first).
//                Baseline: std::multimap keyed by expiry, erase by iterator.
//   AddFire/N:   N timers pending with delays uniform in [1, 2^14], in steady state; time
//                moves one tick per iteration and every timer that fires is replaced by
//                a new one (about 2N / 2^14 per tick).
//                An item is one timer fired and re-added.
//                Baselines: std::priority_queue (min-heap on expiry, then sequence) and
//                std::multimap.
// Run with the release preset:
//   build/release/tests/perf/timer_bench --benchmark_min_time=0.3

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <vector>

#include "common/actor/timer_wheel.hpp"

namespace {

using csk::actor::timer_event;
using csk::actor::timer_wheel;

constexpr std::uint64_t fire_delay_range = 1u << 14;
constexpr std::uint64_t cancel_delay_range = 1u << 20;

// splitmix64: cheap and identical for every variant.
struct rng {
  std::uint64_t state = 0x9e37'79b9'7f4a'7c15u;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e37'79b9'7f4a'7c15u);
    z = (z ^ (z >> 30)) * 0xbf58'476d'1ce4'e5b9u;
    z = (z ^ (z >> 27)) * 0x94d0'49bb'1331'11ebu;
    return z ^ (z >> 31);
  }
  std::uint64_t delay(std::uint64_t range) noexcept { return 1 + next() % range; }
  // Time left on a timer of delay(range) seen at a random moment: the min of two
  // uniforms has the triangular density of that residual, so the fire rate starts at
  // its steady state (2 * pending / range per tick) instead of drifting during the run.
  std::uint64_t residual(std::uint64_t range) noexcept {
    return 1 + std::min(next() % range, next() % range);
  }
};

// ------------------------------------------------------------------ variants --

struct wheel_timers {
  using handle = timer_wheel::timer_id;
  timer_wheel wheel;

  handle add(std::uint64_t delay, std::uint32_t session) { return wheel.add(delay, 1, session); }
  void cancel(handle h) { wheel.cancel(h); }
  template <class F>
  void advance_to(std::uint64_t tick, F&& fn) {
    wheel.advance_to(tick, std::forward<F>(fn));
  }
  std::uint64_t now() const { return wheel.now(); }
};

struct multimap_timers {
  struct payload {
    std::uint32_t handle;
    std::uint32_t session;
  };
  using map = std::multimap<std::uint64_t, payload>;
  using handle = map::iterator;
  map timers;
  std::uint64_t now_ = 0;

  handle add(std::uint64_t delay, std::uint32_t session) {
    return timers.emplace(now_ + delay, payload{1, session});
  }
  void cancel(handle h) { timers.erase(h); }
  template <class F>
  void advance_to(std::uint64_t tick, F&& fn) {
    while (!timers.empty() && timers.begin()->first <= tick) {
      const auto it = timers.begin();
      now_ = it->first;
      const timer_event ev{0, it->second.handle, it->second.session};
      timers.erase(it);
      fn(ev);
    }
    now_ = tick;
  }
  std::uint64_t now() const { return now_; }
};

struct heap_timers {
  struct entry {
    std::uint64_t expiry;
    std::uint64_t seq;  // same-tick insertion order, as the wheel guarantees
    std::uint32_t handle;
    std::uint32_t session;
    bool operator>(const entry& o) const noexcept {
      return expiry != o.expiry ? expiry > o.expiry : seq > o.seq;
    }
  };
  std::priority_queue<entry, std::vector<entry>, std::greater<>> heap;
  std::uint64_t now_ = 0;
  std::uint64_t seq_ = 0;

  void add(std::uint64_t delay, std::uint32_t session) {
    heap.push(entry{now_ + delay, seq_++, 1, session});
  }
  template <class F>
  void advance_to(std::uint64_t tick, F&& fn) {
    while (!heap.empty() && heap.top().expiry <= tick) {
      const entry e = heap.top();
      heap.pop();
      now_ = e.expiry;
      fn(timer_event{0, e.handle, e.session});
    }
    now_ = tick;
  }
  std::uint64_t now() const { return now_; }
};

// --------------------------------------------------------------- benchmarks --

template <class Timers>
void add_cancel(benchmark::State& state) {
  const auto pending = static_cast<std::size_t>(state.range(0));
  Timers timers;
  rng r;
  std::vector<typename Timers::handle> ring;
  ring.reserve(pending);
  for (std::size_t i = 0; i < pending; ++i)
    ring.push_back(timers.add(r.delay(cancel_delay_range), static_cast<std::uint32_t>(i)));
  std::size_t oldest = 0;
  std::uint32_t session = 0;
  for (auto _ : state) {
    timers.cancel(ring[oldest]);
    ring[oldest] = timers.add(r.delay(cancel_delay_range), ++session);
    if (++oldest == pending) oldest = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

template <class Timers>
void add_fire(benchmark::State& state) {
  const auto pending = static_cast<std::size_t>(state.range(0));
  Timers timers;
  rng r;
  for (std::size_t i = 0; i < pending; ++i)
    timers.add(r.residual(fire_delay_range), static_cast<std::uint32_t>(i));
  std::uint64_t fired = 0;
  std::uint64_t checksum = 0;
  std::vector<std::uint32_t> due;  // re-added after the advance, like a runtime would
  for (auto _ : state) {
    timers.advance_to(timers.now() + 1, [&](const timer_event& ev) {
      checksum += ev.session;
      due.push_back(ev.session);
    });
    fired += due.size();
    for (const std::uint32_t s : due) timers.add(r.delay(fire_delay_range), s);
    due.clear();
  }
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(static_cast<std::int64_t>(fired));
  state.counters["fired_per_tick"] =
      static_cast<double>(fired) / static_cast<double>(state.iterations());
}

void wheel_add_cancel(benchmark::State& s) { add_cancel<wheel_timers>(s); }
void multimap_add_cancel(benchmark::State& s) { add_cancel<multimap_timers>(s); }
void wheel_add_fire(benchmark::State& s) { add_fire<wheel_timers>(s); }
void heap_add_fire(benchmark::State& s) { add_fire<heap_timers>(s); }
void multimap_add_fire(benchmark::State& s) { add_fire<multimap_timers>(s); }

BENCHMARK(wheel_add_cancel)->Arg(1000)->Arg(100000);
BENCHMARK(multimap_add_cancel)->Arg(1000)->Arg(100000);
BENCHMARK(wheel_add_fire)->Arg(100000)->Arg(1000000);
BENCHMARK(heap_add_fire)->Arg(100000)->Arg(1000000);
BENCHMARK(multimap_add_fire)->Arg(100000)->Arg(1000000);

}  // namespace

BENCHMARK_MAIN();
