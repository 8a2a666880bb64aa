// The cluster API of cluster.hpp (skynet's cluster.call/send/query/register/proxy), used
// with co_await from services, between two in-process nodes on loopback (real TCP), and
// without a cluster node at all.
//
// Each test runs its service code in a "probe" (a dispatch_service whose "run" handler the
// test supplies), called from the test thread; every wait is a future with a deadline.

#include <gtest/gtest.h>

#include <functional>
#include <future>

#include "services/cluster/cluster.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "tests/support/cluster_node.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using actor::call_result;
using actor::context;
using actor::task;
using actor::values;

constexpr auto deadline = 20s;

call_result wait(std::future<call_result> f) {
  if (f.wait_for(deadline) != std::future_status::ready) {
    return unexpected(actor::call_error{actor::call_errc::timeout, "test deadline"});
  }
  return f.get();
}

using probe_body = std::function<task<values>(context&, values&)>;

/// A service whose "run" command is `body`; returns its handle.
actor::handle_t spawn_probe(actor::runtime& rt, probe_body body) {
  auto svc = std::make_unique<actor::dispatch_service>();
  svc->on("run", std::move(body));
  auto h = rt.spawn(std::move(svc));
  EXPECT_TRUE(h.has_value()) << h.error();
  return h ? *h : 0;
}

/// Runs the probe once from the test thread.
call_result run(actor::runtime& rt, actor::handle_t probe, values args = {}) {
  args.insert(args.begin(), lua_value("run"));
  return wait(rt.call(probe, std::move(args)));
}

using test_node = test::cluster_test_node;

class ClusterApiTest : public ::testing::Test {
 protected:
  ClusterApiTest() : server_("server", true), client_("client", false) {
    cluster_names t;
    t.nodes["server"] = cluster_node_address{"127.0.0.1", server_.open()};
    client_.cluster->reload(t);
  }
  test_node server_;
  test_node client_;
};

TEST(ClusterApiAddress, StringsParseAsTheAgentAddressesThem) {
  EXPECT_EQ(remote_address("@echo").target.name, "@echo");
  EXPECT_TRUE(remote_address("@echo").target.by_name);
  EXPECT_EQ(remote_address(".echo").target.name, ".echo");
  EXPECT_EQ(remote_address(":0000000a").target.name, ":0000000a");
  EXPECT_EQ(remote_address("10").target.address, 10u);
  EXPECT_FALSE(remote_address("10").target.by_name);
  EXPECT_EQ(remote_address("0x0A").target.address, 10u);
  EXPECT_EQ(remote_address(10).target.address, 10u);
  EXPECT_EQ(remote_address(0).target.address, 0u);
  EXPECT_EQ(remote_address(wire::target::named("@x")).target.name, "@x");
  for (const char* bad : {"", "@", "echo", ":xyz", ":000000001", "0x", "12a", "-1"}) {
    EXPECT_FALSE(remote_address(bad).ok()) << bad;
    EXPECT_NE(remote_address(bad).error.find("bad cluster address"), std::string::npos) << bad;
  }
  EXPECT_FALSE(remote_address(-1).ok());
  EXPECT_FALSE(remote_address(std::int64_t{1} << 40).ok());
}

TEST_F(ClusterApiTest, CallReachesTheRemoteServiceByEveryAddressForm) {
  auto probe = spawn_probe(*client_.rt, [](context& ctx, values&) -> task<values> {
    std::vector<remote_address> forms{"@echo", ".echo", ":0000000a", "10", "0x0a", std::string("@echo"), 10,
                                      wire::target::named("@echo"), wire::target::handle(10)};
    values out;  // per form: its index when echoed back correctly, else what happened
    for (std::size_t i = 0; i < forms.size(); ++i) {
      auto op = call(ctx, "server", forms[i], values{"hi", i});
      auto r = co_await op;
      if (!r) {
        out.emplace_back(r.error().text);
      } else if (r->size() != 2 || r->at(0) != lua_value("hi")) {
        out.emplace_back("wrong echo");
      } else {
        out.push_back(r->at(1));
      }
    }
    co_return out;
  });
  auto r = run(*client_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  ASSERT_EQ(r->size(), 9u);
  for (std::size_t i = 0; i < r->size(); ++i) EXPECT_EQ(r->at(i), lua_value(i)) << "form " << i;
}

TEST_F(ClusterApiTest, CallErrorsAndTimeouts) {
  auto probe = spawn_probe(*client_.rt, [](context& ctx, values&) -> task<values> {
    values out;
    auto bad = call(ctx, "server", "echo", values{1});  // a bare name
    auto r1 = co_await bad;
    out.emplace_back(r1 ? "ok" : r1.error().text);
    auto fail = call(ctx, "server", "@fail", values{});
    auto r2 = co_await fail;
    out.emplace_back(r2 ? "ok" : r2.error().text);
    auto absent = call(ctx, "nowhere", "@echo", values{});
    auto r3 = co_await absent;
    out.emplace_back(r3 ? "ok" : r3.error().text);
    auto slow = call(ctx, "server", "@slow", values{3000, "late"}, 200ms);
    auto r4 = co_await slow;
    out.emplace_back(r4 ? -1 : static_cast<int>(r4.error().code));
    co_return out;
  });
  auto r = run(*client_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_NE(r->at(0).as_string().find("bad cluster address 'echo'"), std::string::npos) << r->at(0).as_string();
  EXPECT_NE(r->at(1).as_string().find("lab fail service raised"), std::string::npos) << r->at(1).as_string();
  EXPECT_NE(r->at(2).as_string().find("nowhere is absent"), std::string::npos) << r->at(2).as_string();
  EXPECT_EQ(r->at(3), lua_value(static_cast<int>(actor::call_errc::timeout)));
}

TEST_F(ClusterApiTest, SendIsAPushThatArrivesBeforeALaterCall) {
  auto probe = spawn_probe(*client_.rt, [](context& ctx, values&) -> task<values> {
    const bool a = send(ctx, "server", "@counter", values{});
    const bool b = send(ctx.rt(), "server", ":0000000a", values{"ignored by echo"});
    const bool c = send(ctx, "server", "@counter", values{"x"});
    const bool refused = send(ctx, "nowhere", "@counter", values{}) || send(ctx, "server", "counter", values{});
    // The pushes went out first on the same connection: the counter has seen both.
    auto op = call(ctx, "server", "@counter", values{});
    auto r = co_await op;
    if (!r) throw std::runtime_error(r.error().text);
    co_return values{a, b, c, refused, r->at(0)};
  });
  auto r = run(*client_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(*r, (values{true, true, true, false, 3}));
}

TEST_F(ClusterApiTest, QueryGivesTheRemoteHandleOfAClusterName) {
  auto probe = spawn_probe(*client_.rt, [](context& ctx, values&) -> task<values> {
    values out;
    auto q1 = query(ctx, "server", "echo");
    auto h1 = co_await q1;
    out.emplace_back(h1 ? lua_value(*h1) : lua_value(h1.error().text));
    auto q2 = query(ctx, "server", "@counter");  // the '@' is optional
    auto h2 = co_await q2;
    out.emplace_back(h2 ? lua_value(*h2) : lua_value(h2.error().text));
    auto q3 = query(ctx, "server", "nosuch");
    auto h3 = co_await q3;
    out.emplace_back(h3 ? lua_value(*h3) : lua_value(h3.error().text));
    if (h1) {  // and the handle is callable
      auto op = call(ctx, "server", *h1, values{"by queried handle"});
      auto r = co_await op;
      out.emplace_back(r ? r->at(0) : lua_value(r.error().text));
    }
    co_return out;
  });
  auto r = run(*client_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ(r->at(0), lua_value(10));
  EXPECT_EQ(r->at(1), lua_value(server_.rt->resolve("@counter")));
  EXPECT_EQ(r->at(2), lua_value("name not found"));
  EXPECT_EQ(r->at(3), lua_value("by queried handle"));
}

TEST_F(ClusterApiTest, RegisteredNameIsCallableAndQueryableByPeers) {
  // The client node listens too, and the server knows it.
  cluster_names t;
  t.nodes["client"] = cluster_node_address{"127.0.0.1", client_.open()};
  server_.cluster->reload(t);

  // A greeter on the client registers itself, as a skynet service calls cluster.register.
  auto greeter = std::make_unique<actor::dispatch_service>();
  greeter->on_sync("greet", [](context&, values& a) { return values{"hello, " + a.at(0).as_string()}; });
  greeter->on_sync("register", [](context& ctx, values& a) {
    auto r = register_name(ctx, a.at(0).as_string());
    return values{r ? lua_value(true) : lua_value(r.error())};
  });
  auto g = client_.rt->spawn(std::move(greeter));
  ASSERT_TRUE(g.has_value());
  auto before = wait(server_.cluster->call("client", wire::target::named("@greeter"), {"greet", "server"}));
  ASSERT_FALSE(before.has_value());
  EXPECT_EQ(before.error().text, "Invalid name");

  auto reg = wait(client_.rt->call(*g, {"register", "greeter"}));
  ASSERT_TRUE(reg.has_value()) << reg.error().text;
  EXPECT_EQ(reg->at(0), lua_value(true));
  auto bad = wait(client_.rt->call(*g, {"register", ""}));  // "@" alone is no name
  ASSERT_TRUE(bad.has_value());
  EXPECT_TRUE(bad->at(0).is_string());

  // From a service on the server node, by @name, and via cluster.query.
  auto probe = spawn_probe(*server_.rt, [](context& ctx, values&) -> task<values> {
    auto op = call(ctx, "client", "@greeter", values{"greet", "server"});
    auto r = co_await op;
    auto q = query(ctx, "client", "greeter");
    auto h = co_await q;
    co_return values{r ? r->at(0) : lua_value(r.error().text), h ? lua_value(*h) : lua_value(h.error().text)};
  });
  auto r = run(*server_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(*r, (values{"hello, server", *g}));

  // register_name with an explicit handle, on the runtime.
  ASSERT_TRUE(register_name(*client_.rt, "@greeter2", *g).has_value());
  EXPECT_EQ(client_.rt->resolve("@greeter2"), *g);
}

TEST_F(ClusterApiTest, ProxyForwardsCallsAndSendsToTheRemoteAddress) {
  auto probe = spawn_probe(*client_.rt, [](context& ctx, values&) -> task<values> {
    auto echo = proxy(ctx, "server", "@echo");
    auto again = proxy(ctx, "server", "@echo");
    auto counter = proxy(ctx.rt(), "server", "@counter");
    auto fail = proxy(ctx, "server", "@fail");
    if (!echo || !again || !counter || !fail) throw std::runtime_error("no proxy");
    values out;
    out.emplace_back(*echo == *again && *echo != *counter);  // one proxy per (node, address)
    auto c1 = ctx.call(*echo, values{"via proxy", 1});
    auto r1 = co_await c1;
    out.emplace_back(r1 && r1->size() == 2 ? r1->at(0) : lua_value("bad echo"));
    ctx.send(*counter, values{});  // pushes through the proxy
    ctx.send(*counter, values{});
    auto c2 = ctx.call(*counter, values{});
    auto r2 = co_await c2;
    out.emplace_back(r2 ? r2->at(0) : lua_value(r2.error().text));
    auto c3 = ctx.call(*fail, values{});
    auto r3 = co_await c3;
    out.emplace_back(r3 ? lua_value("no error") : lua_value(r3.error().text));
    co_return out;
  });
  auto r = run(*client_.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ(r->at(0), lua_value(true));
  EXPECT_EQ(r->at(1), lua_value("via proxy"));
  EXPECT_EQ(r->at(2), lua_value(3));
  EXPECT_NE(r->at(3).as_string().find("lab fail service raised"), std::string::npos) << r->at(3).as_string();

  // ":0000000a" and 10 share a proxy; callers outside services reach it too.
  auto p1 = proxy(*client_.rt, "server", ":0000000a");
  auto p2 = proxy(*client_.rt, "server", 10);
  ASSERT_TRUE(p1.has_value() && p2.has_value());
  EXPECT_EQ(*p1, *p2);
  auto direct = wait(client_.rt->call(*p1, {"from the test thread"}));
  ASSERT_TRUE(direct.has_value()) << direct.error().text;
  EXPECT_EQ(direct->at(0), lua_value("from the test thread"));
  EXPECT_FALSE(proxy(*client_.rt, "server", "echo").has_value());
}

TEST(ClusterApiNoCluster, EveryFunctionFailsClearly) {
  test_node bare("", false, false);
  ASSERT_EQ(node_of(*bare.rt), nullptr);
  auto probe = spawn_probe(*bare.rt, [](context& ctx, values&) -> task<values> {
    values out;
    auto op = call(ctx, "server", "@echo", values{1});
    auto r = co_await op;
    out.emplace_back(r ? lua_value("ok") : lua_value(r.error().text));
    auto q = query(ctx, "server", "echo");
    auto h = co_await q;
    out.emplace_back(h ? lua_value("ok") : lua_value(h.error().text));
    out.emplace_back(send(ctx, "server", "@echo", values{1}));
    auto p = proxy(ctx, "server", "@echo");
    out.emplace_back(p ? lua_value("ok") : lua_value(p.error()));
    // Naming a service for cluster callers needs no node.
    out.emplace_back(register_name(ctx, "probe").has_value());
    co_return out;
  });
  auto r = run(*bare.rt, probe);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  const std::string nc(not_configured);
  EXPECT_EQ(*r, (values{nc, nc, false, nc, true}));
  EXPECT_EQ(bare.rt->resolve("@probe"), probe);
}

TEST(ClusterApiNoCluster, TheNodeAttachesItselfForItsLifetime) {
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(o);
  net::net n(1);
  {
    node first(rt, n, node_options{});
    EXPECT_EQ(node_of(rt), &first);
    {
      node second(rt, n, node_options{});  // the last one made wins
      EXPECT_EQ(node_of(rt), &second);
    }
    EXPECT_EQ(node_of(rt), nullptr);  // it cleared its own slot
    rt.set_extension(typeid(node), &first);
  }
  EXPECT_EQ(node_of(rt), nullptr);
  int x = 0;
  rt.set_extension(typeid(int), &x);
  EXPECT_EQ(rt.extension<int>(), &x);
  rt.set_extension(typeid(int), nullptr);
  EXPECT_EQ(rt.extension<int>(), nullptr);
}

}  // namespace
}  // namespace csk::cluster
