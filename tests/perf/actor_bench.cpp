// Local messaging through the actor runtime, beside raw hand-offs measured in the
// same run (report ratios, not absolute numbers):
//   BM_BaselineMutexQueue  one producer thread -> one consumer thread, mutex + deque
//   BM_BaselineSpscRing    the same through a lock-free single-producer ring
//   BM_LocalSends          a service sends N one-way messages to another (pool threads)
//   BM_LocalCalls          C callers each make sequential calls to an echo service
//   BM_ExternalCalls       calls from outside any service (the cluster agent's path):
//                          external route, post, echo, completion, W in flight
//   BM_SessionMap / BM_UnorderedMap  the pending-call table (insert a session, take the
//                          oldest, W open) in csk::actor::session_map and std::unordered_map

#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "common/actor/runtime.hpp"
#include "common/actor/session_map.hpp"

#include <unordered_map>

namespace {

using namespace csk::actor;
using namespace std::chrono_literals;

constexpr std::int64_t batch = 200000;

void BM_BaselineMutexQueue(benchmark::State& state) {
  for (auto _ : state) {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::int64_t> q;
    std::int64_t sum = 0;
    std::thread consumer([&] {
      for (std::int64_t got = 0; got < batch;) {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !q.empty(); });
        while (!q.empty()) {
          sum += q.front();
          q.pop_front();
          ++got;
        }
      }
    });
    for (std::int64_t i = 0; i < batch; ++i) {
      {
        std::lock_guard lock(mu);
        q.push_back(i);
      }
      cv.notify_one();
    }
    consumer.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_BaselineMutexQueue)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_BaselineSpscRing(benchmark::State& state) {
  constexpr std::size_t cap = 1024;
  for (auto _ : state) {
    std::vector<std::int64_t> ring(cap);
    std::atomic<std::size_t> head{0}, tail{0};
    std::int64_t sum = 0;
    std::thread consumer([&] {
      for (std::int64_t got = 0; got < batch;) {
        const std::size_t t = tail.load(std::memory_order_acquire);
        std::size_t h = head.load(std::memory_order_relaxed);
        if (h == t) {
          std::this_thread::yield();
          continue;
        }
        for (; h != t; ++h, ++got) sum += ring[h % cap];
        head.store(h, std::memory_order_release);
      }
    });
    for (std::int64_t i = 0; i < batch; ++i) {
      const std::size_t t = tail.load(std::memory_order_relaxed);
      while (t - head.load(std::memory_order_acquire) == cap) std::this_thread::yield();
      ring[t % cap] = i;
      tail.store(t + 1, std::memory_order_release);
    }
    consumer.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_BaselineSpscRing)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Counts sends; fulfils a promise when `expect` arrived.
class sink : public service {
 public:
  std::int64_t expect = 0;
  std::int64_t count = 0;
  std::promise<void>* done = nullptr;
  task<values> handle(context&, message&) override {
    if (++count == expect) done->set_value();
    co_return values{};
  }
};

class blaster : public dispatch_service {
 public:
  blaster() {
    on_sync("blast", [](context& ctx, values& a) {
      const auto to = static_cast<handle_t>(a.at(0).as_integer());
      const std::int64_t n = a.at(1).as_integer();
      for (std::int64_t i = 0; i < n; ++i) ctx.send(to, values{i});
      return values{};
    });
  }
};

void BM_LocalSends(benchmark::State& state) {
  runtime_options o;
  o.threads = 2;
  runtime rt(o);
  auto s = std::make_unique<sink>();
  sink* sp = s.get();
  const handle_t sh = *rt.spawn(std::move(s));
  const handle_t bh = *rt.spawn(std::make_unique<blaster>());
  rt.start();
  for (auto _ : state) {
    std::promise<void> done;
    // Between rounds the sink is idle (its promise was fulfilled by its last message
    // and nothing else is in flight), so the benchmark thread may reset it.
    sp->done = &done;
    sp->count = 0;
    sp->expect = batch;
    rt.send(bh, values{"blast", static_cast<std::int64_t>(sh), batch});
    done.get_future().wait();
  }
  state.SetItemsProcessed(state.iterations() * batch);
  rt.shutdown();
}
BENCHMARK(BM_LocalSends)->Unit(benchmark::kMillisecond)->UseRealTime();

class echo : public service {
 public:
  task<values> handle(context&, message& m) override { co_return std::move(m.args); }
};

class caller : public dispatch_service {
 public:
  caller() {
    on("run", [](context& ctx, values& a) -> task<values> {
      const auto to = static_cast<handle_t>(a.at(0).as_integer());
      const std::int64_t n = a.at(1).as_integer();
      for (std::int64_t i = 0; i < n; ++i) {
        auto op = ctx.call(to, values{i});
        auto r = co_await op;
        if (!r) throw std::runtime_error(r.error().text);
      }
      co_return values{};
    });
  }
};

/// Args: callers, profile (runtime_options::profile: per-service CPU time, two
/// clock_gettime calls a turn; each call here is two one-message turns, the worst case).
void BM_LocalCalls(benchmark::State& state) {
  const auto callers = static_cast<int>(state.range(0));
  runtime_options o;
  o.threads = 2;
  o.profile = state.range(1) != 0;
  runtime rt(o);
  const handle_t eh = *rt.spawn(std::make_unique<echo>());
  std::vector<handle_t> cs;
  for (int i = 0; i < callers; ++i) cs.push_back(*rt.spawn(std::make_unique<caller>()));
  rt.start();
  const std::int64_t per = batch / 4 / callers;
  for (auto _ : state) {
    std::vector<std::future<call_result>> fs;
    for (auto c : cs) fs.push_back(rt.call(c, values{"run", static_cast<std::int64_t>(eh), per}, 60s));
    for (auto& f : fs) {
      if (!f.get()) state.SkipWithError("call failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * per * callers);
  rt.shutdown();
}
BENCHMARK(BM_LocalCalls)
    ->ArgNames({"callers", "profile"})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({8, 0})
    ->Args({8, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// `window` closed loops of external calls (runtime::call with a completion) to echo.
void BM_ExternalCalls(benchmark::State& state) {
  const auto window = static_cast<std::int64_t>(state.range(0));
  runtime_options o;
  o.threads = 1;
  runtime rt(o);
  const handle_t eh = *rt.spawn(std::make_unique<echo>());
  rt.start();
  const std::int64_t per_round = batch / 4;
  for (auto _ : state) {
    std::atomic<std::int64_t> left{per_round};
    std::atomic<std::int64_t> failed{0};
    std::promise<void> done;
    std::function<void()> issue = [&] {
      rt.call(eh, values{"x"}, 10s, [&](call_result r) {
        if (!r) failed.fetch_add(1);
        const auto n = left.fetch_sub(1) - 1;
        if (n == 0) done.set_value();
        if (n >= window) issue();  // keep `window` in flight until the last ones
      });
    };
    for (std::int64_t i = 0; i < window; ++i) issue();
    done.get_future().wait();
    if (failed.load() != 0) state.SkipWithError("call failed");
  }
  state.SetItemsProcessed(state.iterations() * per_round);
  rt.shutdown();
}
BENCHMARK(BM_ExternalCalls)->Arg(1)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

template <class Map, class Insert, class Take>
void session_table(benchmark::State& state, Insert insert, Take take) {
  const auto window = static_cast<std::uint32_t>(state.range(0));
  Map m;
  std::uint32_t next = 1;
  for (std::uint32_t i = 0; i < window; ++i, ++next) insert(m, next);
  std::uint32_t oldest = 1;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    insert(m, next++);
    sum += take(m, oldest++);
  }
  benchmark::DoNotOptimize(sum);
  if (sum != (static_cast<std::uint64_t>(oldest) - 1) * oldest / 2) state.SkipWithError("wrong values");
  state.SetItemsProcessed(state.iterations());
}

void BM_SessionMap(benchmark::State& state) {
  session_table<session_map<std::uint64_t>>(
      state, [](auto& m, std::uint32_t k) { m.insert(k, k); }, [](auto& m, std::uint32_t k) { return *m.take(k); });
}
BENCHMARK(BM_SessionMap)->Arg(16)->Arg(256)->Arg(65536);

void BM_UnorderedMap(benchmark::State& state) {
  session_table<std::unordered_map<std::uint32_t, std::uint64_t>>(
      state, [](auto& m, std::uint32_t k) { m.emplace(k, k); },
      [](auto& m, std::uint32_t k) {
        auto it = m.find(k);
        const auto v = it->second;
        m.erase(it);
        return v;
      });
}
BENCHMARK(BM_UnorderedMap)->Arg(16)->Arg(256)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
