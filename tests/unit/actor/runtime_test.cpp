// The actor runtime under the manual scheduler (deterministic: the test thread runs
// every turn and moves time), plus a few threaded cases for the pool and monitor.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "common/actor/runtime.hpp"
#include "common/log/log.hpp"

namespace csk::actor {
namespace {

using namespace std::chrono_literals;

runtime_options manual(std::chrono::milliseconds call_timeout = 1000ms) {
  runtime_options o;
  o.run_mode = runtime_options::mode::manual;
  o.tick = 10ms;
  o.call_timeout = call_timeout;
  return o;
}

template <class T>
bool ready(const std::future<T>& f) {
  return f.wait_for(0s) == std::future_status::ready;
}

/// Records every send it gets; answers calls with what it was sent.
class recorder : public service {
 public:
  std::vector<values>* log = nullptr;
  explicit recorder(std::vector<values>* l) : log(l) {}
  task<values> handle(context&, message& m) override {
    log->push_back(m.args);
    co_return m.args;
  }
};

class adder : public dispatch_service {
 public:
  adder() {
    on_sync("add", [](context&, values& a) { return values{a.at(0).as_integer() + a.at(1).as_integer()}; });
    on_sync("fail", [](context&, values&) -> values { throw std::runtime_error("no such luck"); });
    on_sync("whoami", [](context& ctx, values&) { return values{static_cast<std::int64_t>(ctx.self())}; });
    on("quit", [](context& ctx, values&) -> task<values> {
      ctx.exit();
      co_return values{};
    });
  }
};

/// Calls another service from inside a handler (a coroutine awaiting a call).
class relay : public dispatch_service {
 public:
  relay() {
    on("relay", [](context& ctx, values& a) -> task<values> {
      const std::string target = a.at(0).as_string();
      values rest(a.begin() + 1, a.end());
      auto r = co_await ctx.call(target, std::move(rest));
      if (!r) throw std::runtime_error("relay failed: " + r.error().text);
      co_return std::move(*r);
    });
  }
};

TEST(Runtime, MessagesFromOneSenderArriveInOrder) {
  std::vector<values> got;  // outlives the runtime (shutdown still dispatches)
  runtime rt(manual());
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  ASSERT_TRUE(b.has_value());
  rt.start();
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(rt.send(*b, values{i}));
  EXPECT_EQ(rt.run_until_idle(), 500u);
  ASSERT_EQ(got.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)][0].as_integer(), i);
}

TEST(Runtime, CallGetsTheHandlersReturnValues) {
  runtime rt(manual());
  auto a = rt.spawn(std::make_unique<adder>(), {}, {".adder"});
  ASSERT_TRUE(a.has_value());
  rt.start();
  auto f = rt.call(".adder", values{"add", 2, 40});
  EXPECT_FALSE(ready(f));
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  auto r = f.get();
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ((*r)[0].as_integer(), 42);
}

TEST(Runtime, ServicesListsNamesMailboxesAndCounts) {
  std::vector<values> got;
  runtime rt(manual());
  auto a = rt.spawn(std::make_unique<adder>(), {}, {".adder", "@sum"});
  auto b = rt.spawn(std::make_unique<recorder>(&got), {}, {".rec"});
  ASSERT_TRUE(a && b);
  rt.start();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(rt.send(*b, values{i}));
  auto before = rt.services();
  ASSERT_EQ(before.size(), 2u);
  const auto find = [](const std::vector<service_info>& all, handle_t h) {
    for (const auto& i : all) {
      if (i.handle == h) return i;
    }
    return service_info{};
  };
  EXPECT_EQ(find(before, *a).names, (std::vector<std::string>{".adder", "@sum"}));
  EXPECT_EQ(find(before, *b).names, (std::vector<std::string>{".rec"}));
  EXPECT_EQ(find(before, *b).mailbox, 3u);  // sent, not yet handled
  EXPECT_EQ(find(before, *b).messages, 0u);
  rt.run_until_idle();
  auto after = rt.services();
  EXPECT_EQ(find(after, *b).mailbox, 0u);
  EXPECT_EQ(find(after, *b).messages, 3u);
  auto f = rt.call(".adder", values{"add", 1, 2});
  rt.run_until_idle();
  EXPECT_EQ(find(rt.services(), *a).messages, 1u);
}

/// This thread's CPU clock.
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

/// "burn": spends 40 ms of CPU. "block": spends 40 ms blocked (the work of a handler
/// that waits on something outside the runtime), using almost no CPU.
class cpu_user : public dispatch_service {
 public:
  cpu_user() {
    on_sync("burn", [](context&, values&) {
      const auto until = thread_cpu() + 40ms;
      std::uint64_t spins = 0;
      while (thread_cpu() < until) ++spins;
      return values{static_cast<std::int64_t>(spins)};
    });
    on_sync("block", [](context&, values&) {
      std::this_thread::sleep_for(40ms);  // the workload, not a synchronisation
      return values{};
    });
  }
};

TEST(Runtime, ServicesCountCpuTimeApartFromBusyTime) {
  for (const bool profile : {true, false}) {
    runtime_options o = manual();
    o.profile = profile;
    runtime rt(o);
    auto burner = rt.spawn(std::make_unique<cpu_user>(), {}, {".burner"});
    auto blocker = rt.spawn(std::make_unique<cpu_user>(), {}, {".blocker"});
    ASSERT_TRUE(burner && blocker);
    rt.start();
    auto f1 = rt.call(".burner", values{"burn"});
    auto f2 = rt.call(".blocker", values{"block"});
    rt.run_until_idle();
    ASSERT_TRUE(ready(f1) && ready(f2));
    service_info burn, block;
    for (const auto& i : rt.services()) {
      if (i.handle == *burner) burn = i;
      if (i.handle == *blocker) block = i;
    }
    EXPECT_GE(block.busy_ns, 40'000'000u);
    EXPECT_GE(burn.busy_ns, 40'000'000u);
    if (profile) {
      EXPECT_GE(burn.cpu_ns, 40'000'000u) << "the CPU the handler spent";
      EXPECT_LE(burn.cpu_ns, burn.busy_ns + 1'000'000u) << "a turn's CPU time fits in its wall time";
      EXPECT_LT(block.cpu_ns, block.busy_ns / 2) << "time blocked is busy time, not CPU time: " << block.cpu_ns;
    } else {
      EXPECT_EQ(burn.cpu_ns, 0u);
      EXPECT_EQ(block.cpu_ns, 0u);
    }
  }
}

/// Logs its start() and every message, in order.
class starter : public service {
 public:
  explicit starter(std::vector<std::string>* l) : log_(l) {}
  task<void> start(context&) override {
    log_->push_back("start");
    co_return;
  }
  task<values> handle(context&, message& m) override {
    log_->push_back(m.args.at(0).as_string());
    co_return values{};
  }

 private:
  std::vector<std::string>* log_;
};

TEST(Runtime, AHeldServiceStartsOnlyWhenReleasedAndKeepsItsMessages) {
  std::vector<std::string> held_log, free_log;
  runtime rt(manual());
  auto held = rt.spawn(std::make_unique<starter>(&held_log));
  auto other = rt.spawn(std::make_unique<starter>(&free_log));
  ASSERT_TRUE(held && other);
  EXPECT_TRUE(rt.hold(*held));
  EXPECT_FALSE(rt.hold(0x00ffffff)) << "unknown handle";
  EXPECT_FALSE(rt.release(*other)) << "not held";
  rt.start();
  EXPECT_FALSE(rt.hold(*other)) << "only before start()";
  ASSERT_TRUE(rt.send(*held, values{"one"}));
  ASSERT_TRUE(rt.send(*other, values{"one"}));
  rt.run_until_idle();
  EXPECT_EQ(free_log, (std::vector<std::string>{"start", "one"}));
  EXPECT_TRUE(held_log.empty()) << "neither its start() nor its messages ran";
  ASSERT_TRUE(rt.send(*held, values{"two"}));
  rt.run_until_idle();
  EXPECT_TRUE(held_log.empty());
  EXPECT_TRUE(rt.release(*held));
  EXPECT_FALSE(rt.release(*held)) << "released already";
  rt.run_until_idle();
  EXPECT_EQ(held_log, (std::vector<std::string>{"start", "one", "two"}));
}

TEST(Runtime, CoroutineHandlerAwaitsAnotherService) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<relay>(), {}, {".relay"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<relay>(), {}, {".relay2"}).has_value());
  rt.start();
  // test -> relay2 -> relay -> adder, three suspended coroutines deep.
  auto f = rt.call(".relay2", values{"relay", ".relay", "relay", ".adder", "add", 1, 2});
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  auto r = f.get();
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ((*r)[0].as_integer(), 3);
}

TEST(Runtime, HandlerErrorBecomesAnErrorReplyAndTheServiceLivesOn) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
  rt.start();
  capture_logs logs;
  auto bad = rt.call(".adder", values{"fail"});
  auto unknown = rt.call(".adder", values{"nope"});
  auto good = rt.call(".adder", values{"add", 1, 1});
  rt.run_until_idle();
  auto rb = bad.get();
  ASSERT_FALSE(rb.has_value());
  EXPECT_EQ(rb.error().code, call_errc::remote_error);
  EXPECT_EQ(rb.error().text, "no such luck");
  auto ru = unknown.get();
  ASSERT_FALSE(ru.has_value());
  EXPECT_NE(ru.error().text.find("unknown command 'nope'"), std::string::npos);
  ASSERT_TRUE(good.get().has_value());
  EXPECT_EQ(rt.stats().handler_errors, 2u);
  EXPECT_TRUE(logs.wait_for("no such luck", 1s));
  EXPECT_TRUE(logs.wait_for(handle_string(rt.resolve(".adder")), 1s));
}

/// Keeps calls open until told to answer them (deferred replies).
class holder : public dispatch_service {
 public:
  std::vector<reply_token> open;
  holder() {
    on_sync("get", [this](context& ctx, values&) {
      open.push_back(ctx.defer_reply());
      return values{"ignored"};
    });
    on_sync("release", [this](context& ctx, values& a) {
      for (auto& t : open) ctx.reply(t, values{a.at(0)});
      open.clear();
      return values{};
    });
    on_sync("reject", [this](context& ctx, values&) {
      for (auto& t : open) ctx.reply_error(t, "rejected");
      open.clear();
      return values{};
    });
  }
};

TEST(Runtime, DeferredReplyIsGivenFromAnotherMessage) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<holder>(), {}, {".holder"}).has_value());
  rt.start();
  auto f1 = rt.call(".holder", values{"get"});
  auto f2 = rt.call(".holder", values{"get"});
  rt.run_until_idle();
  EXPECT_FALSE(ready(f1));
  rt.send(".holder", values{"release", "now"});
  rt.run_until_idle();
  ASSERT_TRUE(ready(f1) && ready(f2));
  EXPECT_EQ(f1.get()->at(0).as_string(), "now");
  EXPECT_EQ(f2.get()->at(0).as_string(), "now");
  auto f3 = rt.call(".holder", values{"get"});
  rt.run_until_idle();
  rt.send(".holder", values{"reject"});
  rt.run_until_idle();
  auto r3 = f3.get();
  ASSERT_FALSE(r3.has_value());
  EXPECT_EQ(r3.error().text, "rejected");
}

/// Calls .holder with a short timeout and records what came back.
class impatient : public dispatch_service {
 public:
  std::vector<call_result>* results;
  explicit impatient(std::vector<call_result>* r) : results(r) {
    on("ask", [this](context& ctx, values&) -> task<values> {
      auto op = ctx.call(".holder", values{"get"}, 50ms);  // GCC 12: no string literal inside co_await
      results->push_back(co_await op);
      co_return values{};
    });
  }
};

TEST(Runtime, CallTimesOutAndTheLateReplyIsDropped) {
  std::vector<call_result> results;
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<holder>(), {}, {".holder"}).has_value());
  auto imp = rt.spawn(std::make_unique<impatient>(&results));
  ASSERT_TRUE(imp.has_value());
  rt.start();
  rt.send(*imp, values{"ask"});
  rt.run_until_idle();
  rt.advance_time(40ms);
  rt.run_until_idle();
  EXPECT_TRUE(results.empty());  // 40 ms < 50 ms
  rt.advance_time(20ms);
  rt.run_until_idle();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0].has_value());
  EXPECT_EQ(results[0].error().code, call_errc::timeout);
  const auto dropped_before = rt.stats().dropped;
  rt.send(".holder", values{"release", "too late"});
  rt.run_until_idle();
  EXPECT_EQ(results.size(), 1u);  // nobody resumed twice
  EXPECT_EQ(rt.stats().dropped, dropped_before + 1);
}

TEST(Runtime, ExternalCallTimesOut) {
  runtime rt(manual(100ms));
  ASSERT_TRUE(rt.spawn(std::make_unique<holder>(), {}, {".holder"}).has_value());
  rt.start();
  auto f = rt.call(".holder", values{"get"});
  rt.run_until_idle();
  rt.advance_time(100ms);
  rt.run_until_idle();
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().error().code, call_errc::timeout);
}

TEST(Runtime, NamesSharedByInstancesGoRoundRobin) {
  runtime rt(manual());
  std::vector<handle_t> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(*rt.spawn(std::make_unique<adder>(), {}, {".pool"}));
  rt.start();
  std::map<std::int64_t, int> seen;
  std::vector<std::future<call_result>> fs;
  for (int i = 0; i < 9; ++i) fs.push_back(rt.call(".pool", values{"whoami"}));
  rt.run_until_idle();
  for (auto& f : fs) ++seen[f.get()->at(0).as_integer()];
  ASSERT_EQ(seen.size(), 3u);
  for (auto h : hs) EXPECT_EQ(seen[h], 3);
  EXPECT_EQ(rt.handles_of(".pool").size(), 3u);
}

TEST(Runtime, InvalidAddressFailsAtOnce) {
  runtime rt(manual());
  rt.start();
  auto f = rt.call(".nobody", values{"x"});
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().error().code, call_errc::invalid_address);
  auto g = rt.call(handle_t{0x1234}, values{"x"});
  EXPECT_EQ(g.get().error().code, call_errc::invalid_address);
  EXPECT_FALSE(rt.send(".nobody", values{}));
  EXPECT_FALSE(rt.spawn("no-such-type").has_value());
  EXPECT_FALSE(rt.spawn(std::make_unique<adder>(), {}, {"bare"}).has_value());
}

/// Timers: a callback, a cancelled callback, and a sleeping coroutine.
class ticker : public dispatch_service {
 public:
  std::vector<std::string>* events;
  explicit ticker(std::vector<std::string>* e) : events(e) {
    on_sync("arm", [this](context& ctx, values&) {
      ctx.timeout(30ms, [this] { events->push_back("timeout 30"); });
      const timer_id id = ctx.timeout(20ms, [this] { events->push_back("cancelled fired"); });
      events->push_back(ctx.cancel_timeout(id) ? "cancelled" : "cancel failed");
      events->push_back(ctx.cancel_timeout(id) ? "cancelled twice" : "second cancel refused");
      return values{};
    });
    on("nap", [this](context& ctx, values&) -> task<values> {
      co_await ctx.sleep(50ms);
      events->push_back("woke");
      co_return values{};
    });
  }
};

TEST(Runtime, TimersFireOnTimeAndCancelledOnesNever) {
  std::vector<std::string> ev;
  runtime rt(manual());
  auto t = rt.spawn(std::make_unique<ticker>(&ev));
  rt.start();
  rt.send(*t, values{"arm"});
  rt.send(*t, values{"nap"});
  rt.run_until_idle();
  EXPECT_EQ(ev, (std::vector<std::string>{"cancelled", "second cancel refused"}));
  rt.advance_time(20ms);
  rt.run_until_idle();
  EXPECT_EQ(ev.size(), 2u);
  rt.advance_time(10ms);
  rt.run_until_idle();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2], "timeout 30");
  rt.advance_time(20ms);
  rt.run_until_idle();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[3], "woke");
  rt.advance_time(1000ms);
  rt.run_until_idle();
  EXPECT_EQ(ev.size(), 4u);
}

TEST(Runtime, OverloadWarningDoublesItsThreshold) {
  auto o = manual();
  o.mailbox_warn = 100;
  std::vector<values> got;
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  rt.start();
  capture_logs logs;
  for (int i = 0; i < 450; ++i) rt.send(*b, values{i});
  // thresholds 100, 200, 400 are crossed
  EXPECT_EQ(rt.stats().overload_warnings, 3u);
  EXPECT_TRUE(logs.wait_for("may overload, message queue length = 101", 1s));
  rt.run_until_idle();
  EXPECT_EQ(got.size(), 450u);
  // drained: the threshold is back to 100
  for (int i = 0; i < 101; ++i) rt.send(*b, values{i});
  EXPECT_EQ(rt.stats().overload_warnings, 4u);
}

TEST(Runtime, ExitedServiceAnswersQueuedCallsWithAnError) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
  const handle_t h = rt.resolve(".adder");
  rt.start();
  auto q = rt.call(".adder", values{"quit"});
  auto after = rt.call(".adder", values{"add", 1, 2});  // queued behind quit
  rt.run_until_idle();
  EXPECT_TRUE(q.get().has_value());
  auto r = after.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, call_errc::service_exited);
  EXPECT_FALSE(rt.alive(h));
  EXPECT_EQ(rt.resolve(".adder"), 0u);
  EXPECT_EQ(rt.call(h, values{"add", 1, 2}).get().error().code, call_errc::invalid_address);
}

// skynet's logon/logoff: the observer sees each message before its handler, in order,
// from the next turn on; off, it sees nothing; the runtime lets go of it when the service
// ends (a logon file closes with its service).
TEST(Runtime, MessageLogSeesEveryMessageUntilTurnedOffAndIsDroppedAtExit) {
  runtime rt(manual());
  const handle_t h = *rt.spawn(std::make_unique<adder>(), {}, {".adder"});
  rt.start();
  std::vector<std::pair<msg_type, std::string>> seen;
  auto log = std::make_shared<const runtime::message_log>([&](handle_t who, const message& m) {
    EXPECT_EQ(who, h);
    seen.emplace_back(m.type, m.args.empty() ? std::string() : m.args[0].as_string());
  });
  ASSERT_TRUE(rt.set_message_log(h, log));
  auto a = rt.call(".adder", values{"add", 1, 2});
  rt.send(".adder", values{"whoami"});
  rt.run_until_idle();
  ASSERT_TRUE(a.get().has_value());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(msg_type::call, std::string("add")));
  EXPECT_EQ(seen[1], std::make_pair(msg_type::send, std::string("whoami")));

  ASSERT_TRUE(rt.set_message_log(h, nullptr));
  (void)rt.call(".adder", values{"add", 3, 4});
  rt.run_until_idle();
  EXPECT_EQ(seen.size(), 2u) << "logoff: nothing more";

  ASSERT_TRUE(rt.set_message_log(h, log));
  EXPECT_EQ(log.use_count(), 2) << "the service holds it";
  (void)rt.call(".adder", values{"quit"});
  rt.run_until_idle();
  EXPECT_EQ(log.use_count(), 1) << "let go when the service ended";
  EXPECT_FALSE(rt.set_message_log(h, log)) << "a dead service";
  EXPECT_FALSE(rt.alive(h));
}

/// Counts signals from any thread (what service::signal may touch: atomics).
class signalled : public adder {
 public:
  std::atomic<int>* last;
  explicit signalled(std::atomic<int>* l) : last(l) {}
  void signal(int sig) override { last->store(sig); }
};

TEST(Runtime, SignalReachesTheServicesHookOnTheCallersThread) {
  runtime rt(manual());
  std::atomic<int> last{-1};
  const handle_t h = *rt.spawn(std::make_unique<signalled>(&last), {}, {".s"});
  const handle_t plain = *rt.spawn(std::make_unique<adder>(), {}, {".plain"});
  rt.start();
  EXPECT_TRUE(rt.signal(h, 1));
  EXPECT_EQ(last.load(), 1);
  EXPECT_TRUE(rt.signal(plain, 0)) << "the default hook does nothing, the signal is still delivered";
  (void)rt.call(".s", values{"quit"});
  rt.run_until_idle();
  EXPECT_FALSE(rt.signal(h, 2)) << "a dead service";
  EXPECT_EQ(last.load(), 1);
}

/// Lifecycle hooks.
class hooks : public service {
 public:
  std::vector<std::string>* ev;
  explicit hooks(std::vector<std::string>* e) : ev(e) {}
  void init(context&, const values& args) override { ev->push_back("init " + args.at(0).as_string()); }
  task<void> start(context& ctx) override {
    ev->push_back("start");
    auto op = ctx.call(".adder", values{"add", 20, 22});
    auto r = co_await op;
    ev->push_back("start got " + std::to_string(r->at(0).as_integer()));
  }
  void stop(context&) override { ev->push_back("stop"); }
  task<values> handle(context&, message&) override { co_return values{}; }
};

TEST(Runtime, InitStartStopRunInOrder) {
  std::vector<std::string> ev;
  {
    runtime rt(manual());
    ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
    ASSERT_TRUE(rt.spawn(std::make_unique<hooks>(&ev), values{"x"}).has_value());
    EXPECT_EQ(ev, (std::vector<std::string>{"init x"}));
    rt.run_until_idle();
    EXPECT_EQ(ev.size(), 1u);  // nothing runs before start()
    rt.start();
    rt.run_until_idle();
    rt.shutdown();
  }
  EXPECT_EQ(ev, (std::vector<std::string>{"init x", "start", "start got 42", "stop"}));
}

TEST(Runtime, ShutdownFailsWhatCannotFinish) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<holder>(), {}, {".holder"}).has_value());
  rt.start();
  auto open = rt.call(".holder", values{"get"});
  rt.run_until_idle();
  rt.shutdown();
  ASSERT_TRUE(ready(open));
  EXPECT_EQ(open.get().error().code, call_errc::shutting_down);
  EXPECT_EQ(rt.call(".holder", values{"get"}).get().error().code, call_errc::shutting_down);
  EXPECT_FALSE(rt.spawn(std::make_unique<holder>()).has_value());
}

TEST(Runtime, CallWithACompletionRunsItOnce) {
  runtime rt(manual());
  ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
  rt.start();
  int calls = 0;
  std::int64_t got = 0;
  rt.call(".adder", values{"add", 5, 6}, 0ms, [&](call_result r) {
    ++calls;
    got = r ? r->at(0).as_integer() : -1;
  });
  EXPECT_EQ(calls, 0);
  rt.run_until_idle();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 11);
  bool invalid = false;
  rt.call(".none", values{}, 0ms, [&](call_result r) { invalid = !r && r.error().code == call_errc::invalid_address; });
  EXPECT_TRUE(invalid);  // at once, on this thread
}

/// Makes a call that something outside the runtime answers (as the cluster sender will).
class remote_caller : public dispatch_service {
 public:
  std::vector<reply_route>* routes;
  std::vector<call_result>* results;
  remote_caller(std::vector<reply_route>* r, std::vector<call_result>* res) : routes(r), results(res) {
    on("go", [this](context& ctx, values&) -> task<values> {
      auto op = ctx.call_via([this](reply_route route) { routes->push_back(route); }, 100ms);
      results->push_back(co_await op);
      co_return values{};
    });
  }
};

TEST(Runtime, RoutedCallIsAnsweredFromOutsideOrTimesOut) {
  std::vector<reply_route> routes;
  std::vector<call_result> results;
  runtime rt(manual());
  auto h = rt.spawn(std::make_unique<remote_caller>(&routes, &results));
  rt.start();
  rt.send(*h, values{"go"});
  rt.send(*h, values{"go"});
  rt.run_until_idle();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].handle, *h);
  EXPECT_NE(routes[0].session, routes[1].session);
  rt.complete(routes[0], values{"from afar"});
  rt.run_until_idle();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]->at(0).as_string(), "from afar");
  rt.advance_time(100ms);  // the second one was never answered
  rt.run_until_idle();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].error().code, call_errc::timeout);
  const auto dropped = rt.stats().dropped;
  rt.complete(routes[1], unexpected(call_error{call_errc::remote_error, "too late"}));
  rt.run_until_idle();
  EXPECT_EQ(results.size(), 2u);
  EXPECT_EQ(rt.stats().dropped, dropped + 1);
}

TEST(Runtime, ExternalRouteIsAnsweredOnceOrTimesOut) {
  runtime rt(manual());
  rt.start();
  std::vector<call_result> got;
  const reply_route answered = rt.external_route(50ms, [&](call_result r) { got.push_back(std::move(r)); });
  const reply_route forgotten = rt.external_route(50ms, [&](call_result r) { got.push_back(std::move(r)); });
  EXPECT_EQ(answered.handle, 0u);
  EXPECT_NE(answered.session, forgotten.session);
  rt.complete(answered, values{"yes"});
  rt.complete(answered, values{"twice"});  // the second answer finds nobody
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->at(0).as_string(), "yes");
  rt.advance_time(50ms);
  rt.run_until_idle();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].error().code, call_errc::timeout);
}

// ------------------------------------------------------------- threaded --

runtime_options threaded(int threads) {
  runtime_options o;
  o.threads = threads;
  o.tick = 5ms;
  o.call_timeout = 5000ms;
  return o;
}

/// Ping-pong between services on the pool: every call answered exactly once.
class pinger : public dispatch_service {
 public:
  std::atomic<int>* done;
  explicit pinger(std::atomic<int>* d) : done(d) {
    on("go", [this](context& ctx, values& a) -> task<values> {
      const std::int64_t n = a.at(0).as_integer();
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        auto op = ctx.call(".adder", values{"add", i, 1});
        auto r = co_await op;
        if (!r) throw std::runtime_error(r.error().text);
        sum += r->at(0).as_integer();
      }
      done->fetch_add(1);
      co_return values{sum};
    });
  }
};

TEST(RuntimeThreaded, ManyCallersOnAFixedPool) {
  std::atomic<int> done{0};
  runtime rt(threaded(2));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(rt.spawn(std::make_unique<adder>(), {}, {".adder"}).has_value());
  std::vector<handle_t> pingers;
  for (int i = 0; i < 8; ++i) pingers.push_back(*rt.spawn(std::make_unique<pinger>(&done)));
  rt.start();
  std::vector<std::future<call_result>> fs;
  for (auto h : pingers) fs.push_back(rt.call(h, values{"go", 200}));
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << r.error().text;
    EXPECT_EQ(r->at(0).as_integer(), 200 * 201 / 2);  // sum of i+1
  }
  EXPECT_EQ(done.load(), 8);
  rt.shutdown();
}

/// Blocks its thread until released, to trip the slow-handler monitor.
class blocker : public dispatch_service {
 public:
  std::atomic<bool>* release;
  explicit blocker(std::atomic<bool>* r) : release(r) {
    on_sync("block", [this](context&, values&) {
      while (!release->load()) std::this_thread::yield();
      return values{};
    });
  }
};

TEST(RuntimeThreaded, MonitorWarnsAboutAHandlerThatRunsTooLong) {
  auto o = threaded(2);
  o.slow_handler = 50ms;
  std::atomic<bool> release{false};
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<blocker>(&release));
  rt.start();
  capture_logs logs;
  auto f = rt.call(*b, values{"block"});
  const bool warned = logs.wait_for("may be in an endless loop", 10s);
  release.store(true);
  ASSERT_TRUE(warned);
  EXPECT_NE(logs.text().find(handle_string(*b)), std::string::npos);
  EXPECT_TRUE(f.get().has_value());
  EXPECT_GE(rt.stats().slow_warnings, 1u);
}

TEST(RuntimeThreaded, ShutdownLetsQueuedMessagesFinish) {
  std::vector<values> got;
  runtime rt(threaded(2));
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  for (int i = 0; i < 1000; ++i) rt.send(*b, values{i});
  rt.start();
  rt.shutdown();
  EXPECT_EQ(got.size(), 1000u);  // recorder state: read after the threads are joined
}

// -- back-pressure (issue 14) ------------------------------------------------------

TEST(RuntimeBackPressure, AFullMailboxRefusesCallsAndSendsButNotReplies) {
  std::vector<values> got;
  runtime_options o = manual();
  o.mailbox_limit = 3;
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  ASSERT_TRUE(b.has_value());
  rt.start();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(rt.send(*b, values{i}));
  auto refused = rt.call(*b, values{"over"});
  ASSERT_TRUE(ready(refused)) << "answered at once, not at its timeout";
  auto r = refused.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, call_errc::overloaded);
  EXPECT_EQ(r.error().text, "service overloaded");
  EXPECT_TRUE(rt.send(*b, values{"dropped"})) << "the address exists; the send is refused inside";
  EXPECT_EQ(rt.stats().overload_refused, 2u);
  EXPECT_EQ(rt.run_until_idle(), 3u);
  ASSERT_EQ(got.size(), 3u) << "what was queued before the cap is all delivered";
  auto after = rt.call(*b, values{"room again"});
  rt.run_until_idle();
  ASSERT_TRUE(ready(after));
  EXPECT_TRUE(after.get().has_value());
}

TEST(RuntimeBackPressure, AFeederIsResumedWhenTheMailboxDrainsToTheLowMark) {
  std::vector<values> got;
  runtime_options o = manual();
  o.mailbox_high = 4;
  o.mailbox_low = 2;
  o.batch_limit = 1;  // one message a turn: the drain is seen message by message
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  ASSERT_TRUE(b.has_value());
  rt.start();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(rt.send(*b, values{i}));
  EXPECT_FALSE(rt.mailbox_full(*b)) << "at the high mark is not past it";
  ASSERT_TRUE(rt.send(*b, values{4}));
  EXPECT_TRUE(rt.mailbox_full(*b));
  int resumed = 0;
  rt.when_mailbox_drains(*b, [&] { ++resumed; });
  EXPECT_EQ(resumed, 0);
  EXPECT_EQ(rt.stats().mailbox_pauses, 1u);
  ASSERT_TRUE(rt.dispatch_one());  // 4 left
  ASSERT_TRUE(rt.dispatch_one());  // 3 left
  EXPECT_EQ(resumed, 0);
  ASSERT_TRUE(rt.dispatch_one());  // 2 left: the low mark
  EXPECT_EQ(resumed, 1);
  rt.run_until_idle();
  EXPECT_EQ(resumed, 1) << "once";
  EXPECT_EQ(got.size(), 5u);
  rt.when_mailbox_drains(*b, [&] { ++resumed; });
  EXPECT_EQ(resumed, 2) << "already drained: at once";
}

TEST(RuntimeBackPressure, AFeederWaitingOnAServiceThatExitsIsResumed) {
  runtime_options o = manual();
  o.mailbox_high = 1;
  o.mailbox_low = 0;
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<adder>());
  ASSERT_TRUE(b.has_value());
  rt.start();
  ASSERT_TRUE(rt.send(*b, values{"quit"}));
  ASSERT_TRUE(rt.send(*b, values{"add", 1, 2}));
  ASSERT_TRUE(rt.send(*b, values{"add", 1, 2}));
  ASSERT_TRUE(rt.mailbox_full(*b));
  bool resumed = false;
  rt.when_mailbox_drains(*b, [&] { resumed = true; });
  ASSERT_TRUE(rt.dispatch_one());  // "quit": the service exits with two messages left
  rt.run_until_idle();
  EXPECT_TRUE(resumed);
  EXPECT_FALSE(rt.alive(*b));
}

TEST(RuntimeBackPressure, ChargedMessagesAreCountedUntilAServiceTakesThem) {
  memory_budget budget(0, 0);
  std::vector<values> got;
  runtime_options o = manual();
  o.budget = &budget;
  runtime rt(o);
  auto b = rt.spawn(std::make_unique<recorder>(&got));
  ASSERT_TRUE(b.has_value());
  rt.start();
  for (int i = 0; i < 3; ++i) rt.post(*b, message{0, 0, msg_type::send, call_errc::none, values{i}, {}, 100});
  rt.post(*b, message{0, 0, msg_type::send, call_errc::none, values{"free"}, {}, 0});
  EXPECT_EQ(budget.held(), 300u);
  rt.run_until_idle();
  EXPECT_EQ(budget.held(), 0u);
  EXPECT_EQ(got.size(), 4u);
  rt.post(0x7fffff, message{0, 0, msg_type::send, call_errc::none, values{}, {}, 100});  // nobody: not charged
  EXPECT_EQ(budget.held(), 0u);
}

}  // namespace
}  // namespace csk::actor
