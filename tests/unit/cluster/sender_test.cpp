// The sender (skynet's clustersender) over a scripted transport: connect on first
// use, queued frames, sessions, answers, and every way a call can fail.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/sender.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using actor::values;

struct fake_transport : transport {
  std::vector<endpoint> connects;
  byte_buffer written;
  std::vector<std::string> closes;
  std::size_t backlog = 0;
  void connect(const endpoint& ep) override { connects.push_back(ep); }
  std::size_t queued() const override { return backlog; }
  void write(byte_buffer b) override { written.insert(written.end(), b.begin(), b.end()); }
  void close(const std::string& r) override { closes.push_back(r); }

  std::vector<wire::request_frame> frames(std::vector<byte_buffer>& keep) const {
    wire::frame_reader r;
    r.feed(written);
    std::vector<wire::request_frame> out;
    while (auto b = r.next()) {
      keep.emplace_back(b->begin(), b->end());
      out.push_back(*wire::decode_request_frame(keep.back()));
    }
    return out;
  }
};

/// A service that makes cluster calls through the sender and records the answers.
class client : public actor::dispatch_service {
 public:
  client(sender* s, std::vector<actor::call_result>* r) {
    on("call", [s, r](actor::context& ctx, values& a) -> actor::task<values> {
      const std::string target = a.at(0).as_string();
      values args(a.begin() + 1, a.end());
      auto op = ctx.call_via([s, target, args](actor::reply_route route) {
        s->call(wire::target::named(target), args, route);
      });
      r->push_back(co_await op);
      co_return values{};
    });
  }
};

class SenderTest : public ::testing::Test {
 protected:
  SenderTest() {
    actor::runtime_options o;
    o.run_mode = actor::runtime_options::mode::manual;
    o.call_timeout = 1000ms;
    rt_ = std::make_unique<actor::runtime>(o);
    sender_ = std::make_unique<sender>("db", *rt_, t_);
    sender_->set_endpoint(endpoint{"127.0.0.1", 2528});
    client_ = *rt_->spawn(std::make_unique<client>(sender_.get(), &results_));
    rt_->start();
  }
  void call(values args) {
    args.insert(args.begin(), lua_value("call"));
    rt_->send(client_, std::move(args));
    rt_->run_until_idle();
  }
  void respond(std::uint32_t session, bool ok, const values& v) {
    byte_buffer payload = *seri::pack(v);
    byte_buffer frames;
    ASSERT_TRUE(wire::encode_response(session, ok, payload, frames).has_value());
    wire::frame_reader r;
    r.feed(frames);
    while (auto b = r.next()) sender_->on_frame(*b);
    rt_->run_until_idle();
  }

  fake_transport t_;
  std::vector<actor::call_result> results_;
  std::unique_ptr<actor::runtime> rt_;
  std::unique_ptr<sender> sender_;
  actor::handle_t client_ = 0;
};

TEST_F(SenderTest, ConnectsOnFirstUseAndWritesQueuedFramesOnceConnected) {
  EXPECT_TRUE(t_.connects.empty());
  call({"@echo", "a"});
  call({"@echo", "b"});
  ASSERT_EQ(t_.connects.size(), 1u);  // one attempt for both
  EXPECT_EQ(t_.connects[0].to_string(), "127.0.0.1:2528");
  EXPECT_TRUE(t_.written.empty());
  sender_->on_connected();
  std::vector<byte_buffer> keep;
  auto fs = t_.frames(keep);
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[0].session, 1u);
  EXPECT_EQ(fs[1].session, 2u);
  EXPECT_EQ(fs[0].name, "@echo");
  respond(2, true, {"B"});
  respond(1, true, {"A"});  // out of order is fine: matched by session
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_EQ(results_[0]->at(0).as_string(), "B");
  EXPECT_EQ(results_[1]->at(0).as_string(), "A");
}

TEST_F(SenderTest, SessionsFollowSkynetsCounter) {
  sender_->on_connected();
  EXPECT_EQ(sender_->next_session(), 1u);
  call({"@echo", 1});
  ASSERT_TRUE(sender_->send(wire::target::named("@echo"), values{"small push"}));
  EXPECT_EQ(sender_->next_session(), 2u);  // single pushes carry 0 and take none
  ASSERT_TRUE(sender_->send(wire::target::handle(10), values{std::string(40000, 'x')}));
  EXPECT_EQ(sender_->next_session(), 3u);  // a multi-part push takes one
  lua_value deep = lua_table{};
  for (int i = 0; i < 40; ++i) deep = lua_table({deep});
  call({"@echo", deep});  // refused by pack, still takes a session (as skynet)
  EXPECT_EQ(sender_->next_session(), 4u);
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_NE(results_[0].error().text.find("too depth"), std::string::npos);
  std::vector<byte_buffer> keep;
  auto fs = t_.frames(keep);
  ASSERT_GE(fs.size(), 3u);
  EXPECT_EQ(fs[1].session, 0u);
  EXPECT_TRUE(fs[1].push());
  EXPECT_EQ(fs[2].type, wire::request_type::mpush_addr);
  EXPECT_EQ(fs[2].session, 2u);
}

TEST_F(SenderTest, ErrorResponsesAndBadPayloadsFailTheCall) {
  sender_->on_connected();
  call({"@fail"});
  call({"@bad"});
  respond(1, false, {});  // ERROR with empty text
  byte_buffer frames;
  ASSERT_TRUE(wire::encode_response(2, true, byte_buffer{0x07}, frames).has_value());
  sender_->on_frame(bytes_view(frames).subspan(2));
  rt_->run_until_idle();
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_FALSE(results_[0].has_value());
  EXPECT_FALSE(results_[1].has_value());
  EXPECT_NE(results_[1].error().text.find("Invalid serialize stream"), std::string::npos);
}

TEST_F(SenderTest, DropFailsEveryPendingCallAtOnceAndTheNextCallReconnects) {
  call({"@echo", 1});
  call({"@echo", 2});
  sender_->on_connected();
  sender_->on_closed("peer closed");
  rt_->run_until_idle();
  ASSERT_EQ(results_.size(), 2u);
  for (auto& r : results_) {
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().text.find("lost"), std::string::npos);
  }
  call({"@echo", 3});
  EXPECT_EQ(t_.connects.size(), 2u);
  sender_->on_connected();
  respond(3, true, {3});  // sessions continue across reconnects
  ASSERT_EQ(results_.size(), 3u);
  EXPECT_EQ(results_[2]->at(0).as_integer(), 3);
}

TEST_F(SenderTest, ConnectFailureFailsTheCallsThatWaitedForIt) {
  call({"@echo", 1});
  sender_->on_connect_failed("connection refused");
  rt_->run_until_idle();
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_NE(results_[0].error().text.find("connection refused"), std::string::npos);
  call({"@echo", 2});
  EXPECT_EQ(t_.connects.size(), 2u);  // one new attempt per request, no background retry
}

TEST_F(SenderTest, DownNodeFailsFastAndMovingReconnects) {
  sender_->on_connected();
  sender_->set_endpoint(std::nullopt);
  ASSERT_EQ(t_.closes.size(), 1u);
  sender_->on_closed("closed");
  call({"@echo", 1});
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_NE(results_[0].error().text.find("is down"), std::string::npos);
  EXPECT_FALSE(sender_->send(wire::target::named("@echo"), values{1}));
  sender_->set_endpoint(endpoint{"127.0.0.1", 2600});
  call({"@echo", 2});
  ASSERT_EQ(t_.connects.size(), 1u);
  EXPECT_EQ(t_.connects[0].port, 2600);
}

TEST_F(SenderTest, UnknownSessionsAreIgnoredAndBadFramesClose) {
  sender_->on_connected();
  call({"@echo", 1});
  respond(1000, true, {"bogus"});
  respond(0, false, {});
  EXPECT_TRUE(results_.empty());
  EXPECT_EQ(sender_->stats().unknown_responses, 2u);
  const byte_buffer bad = {0x01, 0x00, 0x00, 0x00, 0x09, 0x7a};  // type 9
  sender_->on_frame(bad);
  ASSERT_EQ(t_.closes.size(), 1u);
  sender_->on_closed(t_.closes[0]);
  rt_->run_until_idle();
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_FALSE(results_[0].has_value());
}

TEST_F(SenderTest, PushesAreRefusedWhileTheConnectionIsBackedUp) {
  sender_->on_connected();
  t_.backlog = sender::push_backlog;  // the net layer still holds this much unsent
  EXPECT_FALSE(sender_->send(wire::target::named("@echo"), values{"p"}));
  EXPECT_EQ(sender_->stats().refused_pushes, 1u);
  EXPECT_TRUE(t_.written.empty());
  t_.backlog = 0;  // drained
  EXPECT_TRUE(sender_->send(wire::target::named("@echo"), values{"p"}));
  EXPECT_FALSE(t_.written.empty());
}

TEST_F(SenderTest, MultipartResponsesAreReassembled) {
  sender_->on_connected();
  call({"@gen", 100000, "R"});
  respond(1, true, {std::string(100000, 'R')});
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0]->at(0).as_string().size(), 100000u);
}

// Moving a node closes its connection while holding the sender's lock, so a request made
// at that instant waits for the move and then connects anew. (node::remote's close()
// abandons whatever connect is in progress: a request that slipped in between the
// unlock and the close used to leave the sender "connecting" for good.)
TEST(SenderMove, ARequestDuringTheMoveWaitsAndConnectsAfterTheClose) {
  struct racing_transport : fake_transport {
    sender* s = nullptr;
    std::thread other;
    std::atomic<bool> pushed{false};
    bool pushed_during_close = false;
    std::mutex mu;
    std::vector<std::string> events;
    void connect(const endpoint& ep) override {
      std::lock_guard lock(mu);
      events.push_back("connect " + ep.to_string());
    }
    void close(const std::string&) override {
      {
        std::lock_guard lock(mu);
        events.push_back("close");
      }
      other = std::thread([this] {
        (void)s->send(wire::target::named("@x"), values{1});
        pushed = true;
      });
      // Give the push every chance to run now; it must not get in before the close ends.
      const auto until = std::chrono::steady_clock::now() + 200ms;
      while (!pushed.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      pushed_during_close = pushed.load();
    }
  };
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(o);
  racing_transport t;
  sender s("db", rt, t);
  t.s = &s;
  s.set_endpoint(endpoint{"127.0.0.1", 1001});
  ASSERT_TRUE(s.send(wire::target::named("@x"), values{0}));  // connects
  s.on_connected();
  s.set_endpoint(endpoint{"127.0.0.1", 1002});  // the move
  ASSERT_TRUE(t.other.joinable());
  t.other.join();
  EXPECT_FALSE(t.pushed_during_close) << "the request ran between leaving the connection and closing it";
  EXPECT_EQ(t.events, (std::vector<std::string>{"connect 127.0.0.1:1001", "close", "connect 127.0.0.1:1002"}));
}

}  // namespace
}  // namespace csk::cluster
