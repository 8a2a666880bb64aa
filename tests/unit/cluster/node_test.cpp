// Two cppskynet nodes on loopback (ephemeral ports), real TCP through csk::net:
// every addressing form, pushes, multi-part both ways, errors, node down/up,
// a peer dropping with calls pending, and a service calling another node.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "common/wire/seri.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "tests/support/cluster_node.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using actor::values;
using wire::target;

using test_node = test::cluster_test_node;

class ClusterNodeTest : public ::testing::Test {
 protected:
  ClusterNodeTest() : server_("server", true), client_("client") {
    auto port = server_.cluster->open();
    EXPECT_TRUE(port.has_value()) << port.error();
    port_ = port ? *port : 0;
    cluster_names t;
    t.nodes["server"] = cluster_node_address{"127.0.0.1", port_};
    client_.cluster->reload(t);
  }
  test_node server_;
  test_node client_;
  std::uint16_t port_ = 0;
};

TEST_F(ClusterNodeTest, EveryAddressingFormReachesTheService) {
  for (const auto& t : {target::named("@echo"), target::named(".echo"), target::named(":0000000a"), target::handle(10)}) {
    auto r = client_.call("server", t, {"hello", 42});
    ASSERT_TRUE(r.has_value()) << r.error().text;
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ(r->at(0).as_string(), "hello");
    EXPECT_EQ(r->at(1).as_integer(), 42);
  }
  auto q = client_.call("server", target::handle(0), {"echo"});  // cluster.query
  ASSERT_TRUE(q.has_value()) << q.error().text;
  EXPECT_EQ(q->at(0).as_integer(), 10);
}

TEST_F(ClusterNodeTest, ErrorsComeBackAsSkynetSendsThem) {
  auto missing = client_.call("server", target::named("@nosuch"), {1});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().text, "Invalid name");
  auto raised = client_.call("server", target::named("@fail"), {});
  ASSERT_FALSE(raised.has_value());
  EXPECT_NE(raised.error().text.find("lab fail service raised"), std::string::npos);
  auto query = client_.call("server", target::handle(0), {"nosuch"});
  EXPECT_EQ(query.error().text, "name not found");
  auto absent = client_.call("elsewhere", target::named("@echo"), {});
  EXPECT_NE(absent.error().text.find("absent"), std::string::npos);
}

TEST_F(ClusterNodeTest, MultipartBothWays) {
  const std::string big(100000, 'x');
  auto r = client_.call("server", target::named("@echo"), {big});
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->at(0).as_string(), big);
  auto g = client_.call("server", target::named("@gen"), {70000, "R"});
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->at(0).as_string(), std::string(70000, 'R'));
}

// The per-peer counters of /metrics: both ends count exactly the frames and bytes the
// codec makes for these requests and answers (sizes do not depend on session numbers).
TEST_F(ClusterNodeTest, PerPeerFramesAndBytesCountTheWireExactly) {
  std::uint64_t frames_out = 0, bytes_out = 0, frames_in = 0, bytes_in = 0;
  const auto expect_call = [&](const values& args) {
    byte_buffer payload, req, resp;
    ASSERT_TRUE(seri::pack(args, payload));
    ASSERT_TRUE(wire::encode_request(target::named("@echo"), 1, false, payload, req));
    ASSERT_TRUE(wire::encode_response(1, true, payload, resp));  // echo answers its arguments
    frames_out += wire::count_frames(req);
    bytes_out += req.size();
    frames_in += wire::count_frames(resp);
    bytes_in += resp.size();
  };
  const auto expect_push = [&](const values& args) {
    byte_buffer payload, req;
    ASSERT_TRUE(seri::pack(args, payload));
    ASSERT_TRUE(wire::encode_request(target::named("@echo"), 1, true, payload, req));
    frames_out += wire::count_frames(req);
    bytes_out += req.size();
  };
  const values small{"hi", 42};
  const values big{std::string(100000, 'x')};  // 1 header + 4 chunks each way
  const values big_push{std::string(40000, 'p')};
  ASSERT_TRUE(client_.call("server", target::named("@echo"), small).has_value());
  expect_call(small);
  ASSERT_TRUE(client_.call("server", target::named("@echo"), big).has_value());
  expect_call(big);
  ASSERT_TRUE(client_.cluster->send("server", target::named("@echo"), big_push));
  expect_push(big_push);
  ASSERT_TRUE(client_.call("server", target::named("@echo"), small).has_value());  // after the push, in order
  expect_call(small);
  EXPECT_EQ(frames_out, 1u + 5u + 3u + 1u);

  const auto peers = client_.cluster->peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].name, "server");
  EXPECT_EQ(peers[0].stats.frames_out, frames_out);
  EXPECT_EQ(peers[0].stats.bytes_out, bytes_out);
  EXPECT_EQ(peers[0].stats.frames_in, frames_in);
  EXPECT_EQ(peers[0].stats.bytes_in, bytes_in);

  // The accepting side: the same bytes, the other way round. Its counters are taken
  // before each frame is handled or written, so the answers above imply them.
  const auto in = server_.cluster->inbound_peers();
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].peer.rfind("127.0.0.1:", 0), 0u) << in[0].peer;
  EXPECT_EQ(in[0].stats.frames_in, frames_out);
  EXPECT_EQ(in[0].stats.bytes_in, bytes_out);
  EXPECT_EQ(in[0].stats.frames_out, frames_in);
  EXPECT_EQ(in[0].stats.bytes_out, bytes_in);
  EXPECT_EQ(in[0].stats.calls, 3u);
  EXPECT_EQ(in[0].stats.pushes, 1u);
  // in_flight drops once the flush that wrote the last answer has returned (just after
  // the client could read it).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server_.cluster->inbound_peers().at(0).in_flight != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(server_.cluster->inbound_peers().at(0).in_flight, 0u);
}

TEST_F(ClusterNodeTest, PushesAreDeliveredInOrderWithCalls) {
  ASSERT_TRUE(client_.cluster->send("server", target::named("@counter"), {}));
  ASSERT_TRUE(client_.cluster->send("server", target::named("@counter"), {std::string(40000, 'p')}));  // multi-part push
  auto r = client_.call("server", target::named("@counter"), {});
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->at(0).as_integer(), 3);  // both pushes reached the counter before the call
}

TEST_F(ClusterNodeTest, AFastPusherIsHeldBackNotCut) {
  // 600 pushes of 40 KB (24 MB) written as fast as possible: more than the sender lets
  // pile up unsent, so some are refused and retried; none may be lost.
  const values big{std::string(40000, 'p')};
  std::uint64_t refused = 0;
  for (int i = 0; i < 600; ++i) {
    while (!client_.cluster->send("server", target::named("@counter"), big)) {
      ++refused;
      std::this_thread::yield();
    }
  }
  auto r = client_.call("server", target::named("@counter"), {}, 60000ms);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->at(0).as_integer(), 601);  // every push arrived, then this call
  RecordProperty("refused_pushes", static_cast<int>(refused));
}

TEST_F(ClusterNodeTest, ManyConcurrentCallsOnOneConnection) {
  std::vector<std::future<actor::call_result>> fs;
  for (int i = 0; i < 500; ++i) fs.push_back(client_.cluster->call("server", target::named("@echo"), {i}));
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(fs[static_cast<std::size_t>(i)].wait_for(20s), std::future_status::ready);
    auto r = fs[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(r.has_value()) << r.error().text;
    EXPECT_EQ(r->at(0).as_integer(), i);
  }
  EXPECT_EQ(server_.cluster->inbound_connections(), 1u);
}

TEST_F(ClusterNodeTest, DownNodeFailsFastAndComesBackAfterReload) {
  ASSERT_TRUE(client_.call("server", target::named("@echo"), {1}).has_value());
  cluster_names down;
  down.nodes["server"] = std::nullopt;
  client_.cluster->reload(down);
  auto r = client_.call("server", target::named("@echo"), {2});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().text.find("is down"), std::string::npos);
  cluster_names up;
  up.nodes["server"] = cluster_node_address{"127.0.0.1", port_};
  client_.cluster->reload(up);
  auto back = client_.call("server", target::named("@echo"), {3});
  ASSERT_TRUE(back.has_value()) << back.error().text;
}

TEST_F(ClusterNodeTest, PeerGoingAwayFailsPendingCallsAtOnce) {
  auto slow = client_.cluster->call("server", target::named("@slow"), {60000, "never"}, 30000ms);
  ASSERT_TRUE(client_.call("server", target::named("@echo"), {"connected"}).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  server_.stop();  // closes every connection; the slow call is still pending
  ASSERT_EQ(slow.wait_for(20s), std::future_status::ready);
  auto r = slow.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().text.find("lost"), std::string::npos) << r.error().text;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // not the 30 s call timeout
  // Nobody listens now: the next call's single connect attempt fails fast.
  auto refused = client_.call("server", target::named("@echo"), {1});
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().text.find("connect"), std::string::npos) << refused.error().text;
}

TEST_F(ClusterNodeTest, CallTimesOutWhenThePeerIsSlow) {
  auto r = client_.call("server", target::named("@slow"), {3000, "late"}, 200ms);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, actor::call_errc::timeout);
  // The connection is still good.
  EXPECT_TRUE(client_.call("server", target::named("@echo"), {1}).has_value());
}

/// A service on the client node that calls the server node with co_await.
class forwarder : public actor::dispatch_service {
 public:
  explicit forwarder(node* c) {
    on("ask", [c](actor::context& ctx, values& a) -> actor::task<values> {
      auto op = c->call(ctx, "server", target::named("@echo"), a);
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      co_return std::move(*r);
    });
  }
};

TEST_F(ClusterNodeTest, AServiceAwaitsACallToAnotherNode) {
  auto h = client_.rt->spawn(std::make_unique<forwarder>(client_.cluster.get()), {}, {".fwd"});
  ASSERT_TRUE(h.has_value());
  auto f = client_.rt->call(".fwd", {"ask", "via service", 7});
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->at(0).as_string(), "via service");
  EXPECT_EQ(r->at(1).as_integer(), 7);
}

}  // namespace
}  // namespace csk::cluster
