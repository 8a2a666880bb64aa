// skynet's traces inside the runtime (manual scheduler): ctx.trace() tags, the tag that a
// handler keeps across its awaits while other messages run, the tag a call carries to a
// local callee, and the log lines in skynet's shape.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/log/log.hpp"
#include "tests/unit/trace_lines.hpp"

namespace csk::actor {
namespace {

using namespace std::chrono_literals;
using test::trace_hops;
using test::whats;
using strings = std::vector<std::string>;

runtime_options manual() {
  runtime_options o;
  o.run_mode = runtime_options::mode::manual;
  o.tick = 10ms;
  o.call_timeout = 1000ms;
  return o;
}

std::string tag_of(handle_t h, int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ":%08x-%d", h, n);
  return buf;
}

/// Answers every call with the tag its handler runs under; records the tags of sends.
class tag_reporter : public service {
 public:
  explicit tag_reporter(strings* sends) : sends_(sends) {}
  task<values> handle(context& ctx, message& m) override {
    if (m.type == msg_type::send) sends_->push_back(ctx.trace_tag());
    co_return values{ctx.trace_tag()};
  }

 private:
  strings* sends_;
};

/// The tag a handler has after its await, and what the await gave (a value or the error).
values tag_and(context& ctx, const call_result& r) {
  values out{ctx.trace_tag()};
  out.push_back(r ? r->at(0) : lua_value(r.error().text));
  return out;
}

/// Starts traces and awaits in every way a handler can.
class tracer : public dispatch_service {
 public:
  std::vector<reply_route> routes;  // call_via routes waiting to be completed by the test

  tracer() {
    on_sync("trace", [](context& ctx, values& a) {
      if (a.empty()) {
        ctx.trace();
      } else {
        ctx.trace(a.at(0).as_string());
      }
      return values{ctx.trace_tag()};
    });
    on_sync("tag", [](context& ctx, values&) { return values{ctx.trace_tag()}; });
    on("call", [](context& ctx, values& a) -> task<values> {
      ctx.trace("call");
      values args{1};  // (GCC 12 cannot have a braced list inside the co_await)
      auto r = co_await ctx.call(a.at(0).as_string(), std::move(args));
      co_return tag_and(ctx, r);
    });
    on("sleep", [](context& ctx, values&) -> task<values> {
      ctx.trace("sleep");
      co_await ctx.sleep(50ms);
      co_return values{ctx.trace_tag()};
    });
    on("via", [this](context& ctx, values&) -> task<values> {
      ctx.trace("via");
      auto r = co_await ctx.call_via([this](reply_route route) { routes.push_back(route); });
      co_return tag_and(ctx, r);
    });
    on_sync("send", [](context& ctx, values& a) {
      ctx.trace("send");
      ctx.send(a.at(0).as_string(), values{"x"});
      return values{};
    });
    on_sync("fail", [](context& ctx, values&) -> values {
      ctx.trace("fail");
      throw std::runtime_error("traced failure");
    });
  }
};

class TraceTest : public ::testing::Test {
 protected:
  TraceTest() : rt_(manual()) {
    auto t = std::make_unique<tracer>();
    tracer_ = t.get();
    self_ = *rt_.spawn(std::move(t), {}, {".tracer"});
    reporter_ = *rt_.spawn(std::make_unique<tag_reporter>(&sends_), {}, {".reporter"});
    rt_.start();
  }
  call_result call(values args) {
    auto f = rt_.call(".tracer", std::move(args));
    rt_.run_until_idle();
    EXPECT_EQ(f.wait_for(0s), std::future_status::ready);
    return f.get();
  }

  capture_logs logs_;
  strings sends_;
  runtime rt_;
  tracer* tracer_ = nullptr;
  handle_t self_ = 0;
  handle_t reporter_ = 0;
};

TEST(TraceLine, IsSkynetsLoggerText) {
  EXPECT_EQ(trace_line(0x0a, ":0000000a-1", 123456789, "trace hello"), "[:0000000a] <TRACE :0000000a-1> 123456789 trace hello");
  EXPECT_EQ(trace_line(0x0100000b, "(host1-db-2):0000000a-1", 7, "tracecall begin"),
            "[:0100000b] <TRACE (host1-db-2):0000000a-1> 7 tracecall begin");
  EXPECT_EQ(trace_line(0, "", 0, "request"), "[:00000000] <TRACE > 0 request");
}

TEST_F(TraceTest, CtxTraceMakesOneTagPerCallCountedPerService) {
  auto a = call({"trace", "first"});
  auto b = call({"trace"});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->at(0).as_string(), tag_of(self_, 1));
  EXPECT_EQ(b->at(0).as_string(), tag_of(self_, 2));
  auto untraced = call({"tag"});
  ASSERT_TRUE(untraced);
  EXPECT_EQ(untraced->at(0).as_string(), "");  // a tag belongs to one handler only

  auto first = trace_hops(logs_.text(), tag_of(self_, 1));
  EXPECT_EQ(whats(first), (strings{"trace first", "response", "end"}));
  for (const auto& h : first) EXPECT_EQ(h.handle, handle_string(self_));
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(self_, 2))), (strings{"trace", "response", "end"}));
}

TEST_F(TraceTest, ATagGivenWithACallReachesTheHandler) {
  auto tag = std::make_shared<const std::string>("(peer-here-2):0000000a-1");
  std::vector<call_result> got;
  rt_.call(".reporter", values{}, 0ms, [&](call_result r) { got.push_back(std::move(r)); }, 0, tag);
  rt_.run_until_idle();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(got[0]);
  EXPECT_EQ(got[0]->at(0).as_string(), *tag);
  auto hops = trace_hops(logs_.text(), *tag);
  EXPECT_EQ(whats(hops), (strings{"request", "response", "end"}));
  for (const auto& h : hops) EXPECT_EQ(h.handle, handle_string(reporter_));
}

TEST_F(TraceTest, TheTagSurvivesASleepWhileOtherHandlersRun) {
  auto sleeping = rt_.call(".tracer", values{"sleep"});
  rt_.run_until_idle();
  ASSERT_NE(sleeping.wait_for(0s), std::future_status::ready);
  // Meanwhile: an untraced handler, then one with a tag of its own.
  auto untraced = call({"tag"});
  auto other = call({"trace", "other"});
  ASSERT_TRUE(untraced && other);
  EXPECT_EQ(untraced->at(0).as_string(), "");
  EXPECT_EQ(other->at(0).as_string(), tag_of(self_, 2));
  rt_.advance_time(50ms);
  rt_.run_until_idle();
  ASSERT_EQ(sleeping.wait_for(0s), std::future_status::ready);
  auto r = sleeping.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at(0).as_string(), tag_of(self_, 1));
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(self_, 1))), (strings{"trace sleep", "sleep", "resume", "response", "end"}));
}

TEST_F(TraceTest, TheTagSurvivesARoutedCallAnsweredLater) {
  auto waiting = rt_.call(".tracer", values{"via"});
  rt_.run_until_idle();
  ASSERT_EQ(tracer_->routes.size(), 1u);
  auto other = call({"trace"});  // another handler, another tag, in between
  ASSERT_TRUE(other);
  rt_.complete(tracer_->routes[0], values{"from afar"});
  rt_.run_until_idle();
  ASSERT_EQ(waiting.wait_for(0s), std::future_status::ready);
  auto r = waiting.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at(0).as_string(), tag_of(self_, 1));
  EXPECT_EQ(r->at(1).as_string(), "from afar");
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(self_, 1))), (strings{"trace via", "call", "resume", "response", "end"}));
}

TEST_F(TraceTest, ACallCarriesTheTagToALocalCalleeInSkynetsOrder) {
  auto r = call({"call", ".reporter"});
  ASSERT_TRUE(r) << r.error().text;
  const std::string tag = tag_of(self_, 1);
  EXPECT_EQ(r->at(0).as_string(), tag);  // the caller has it back after the await
  EXPECT_EQ(r->at(1).as_string(), tag);  // the callee ran under it
  auto hops = trace_hops(logs_.text(), tag);
  // skynet: trace, call (caller); request, response, end (callee); resume, response, end.
  ASSERT_EQ(whats(hops), (strings{"trace call", "call", "request", "response", "end", "resume", "response", "end"}));
  const std::string caller = handle_string(self_), callee = handle_string(reporter_);
  const strings by{caller, caller, callee, callee, callee, caller, caller, caller};
  for (std::size_t i = 0; i < hops.size(); ++i) {
    EXPECT_EQ(hops[i].handle, by[i]) << i;
    if (i > 0) {
      EXPECT_GE(hops[i].ns, hops[i - 1].ns) << i;  // CLOCK_MONOTONIC, one thread
    }
  }
}

TEST_F(TraceTest, SendsAreNotTracedAsInSkynet) {
  ASSERT_TRUE(call({"send", ".reporter"}));
  ASSERT_EQ(sends_.size(), 1u);
  EXPECT_EQ(sends_[0], "");
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(self_, 1))), (strings{"trace send", "response", "end"}));
}

TEST_F(TraceTest, AFailingTracedCallLogsErrorAndNoEnd) {
  auto r = call({"fail"});
  ASSERT_FALSE(r);
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(self_, 1))), (strings{"trace fail", "error"}));
}

TEST_F(TraceTest, UntracedWorkLogsNoTraceLine) {
  ASSERT_TRUE(call({"tag"}));
  ASSERT_TRUE(call({"call", ".reporter"}));  // traced: lines expected below
  const auto all = trace_hops(logs_.text());
  ASSERT_FALSE(all.empty());
  for (const auto& h : all) EXPECT_EQ(h.tag, tag_of(self_, 1)) << h.what;
}

// skynet's traceproto, per service (the console's `trace ADDR [on|off]`).
TEST_F(TraceTest, TraceModeAlwaysTracesEveryUntaggedRequestSendsToo) {
  ASSERT_TRUE(rt_.set_trace_mode(reporter_, runtime::trace_mode::always));
  std::vector<call_result> got;
  rt_.call(".reporter", values{}, 0ms, [&](call_result r) { got.push_back(std::move(r)); });
  auto given = std::make_shared<const std::string>("(peer-here-2):0000000a-1");
  rt_.call(".reporter", values{}, 0ms, [&](call_result r) { got.push_back(std::move(r)); }, 0, given);
  ASSERT_TRUE(call({"send", ".reporter"}));  // .tracer traces, but a send carries no tag
  rt_.run_until_idle();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(got[0] && got[1]);
  EXPECT_EQ(got[0]->at(0).as_string(), tag_of(reporter_, 1)) << "an untagged call starts a trace of its own";
  EXPECT_EQ(got[1]->at(0).as_string(), *given) << "a caller's tag is kept";
  ASSERT_EQ(sends_.size(), 1u);
  EXPECT_EQ(sends_[0], tag_of(reporter_, 2)) << "skynet's traceproto traces sends too";
  EXPECT_EQ(whats(trace_hops(logs_.text(), tag_of(reporter_, 1))), (strings{"trace", "response", "end"}));
}

TEST_F(TraceTest, TraceModeNeverDropsACallersTagAndFollowComesBack) {
  auto given = std::make_shared<const std::string>("(peer-here-2):0000000a-7");
  std::vector<call_result> got;
  const auto ask = [&] {
    rt_.call(".reporter", values{}, 0ms, [&](call_result r) { got.push_back(std::move(r)); }, 0, given);
    rt_.run_until_idle();
  };
  ASSERT_TRUE(rt_.set_trace_mode(reporter_, runtime::trace_mode::never));
  ask();
  ASSERT_TRUE(rt_.set_trace_mode(reporter_, runtime::trace_mode::follow));
  ask();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(got[0] && got[1]);
  EXPECT_EQ(got[0]->at(0).as_string(), "") << "off: the handler runs untraced";
  EXPECT_EQ(got[1]->at(0).as_string(), *given) << "the default again: the tag is followed";
  EXPECT_EQ(whats(trace_hops(logs_.text(), *given)), (strings{"request", "response", "end"})) << "one traced request";
  EXPECT_FALSE(rt_.set_trace_mode(0x00ffffff, runtime::trace_mode::always)) << "an unknown service";
}

}  // namespace
}  // namespace csk::actor
