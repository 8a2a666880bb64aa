// The three example nodes (examples/cluster1, cluster2, cluster3) from their own config
// files, in-process on loopback: each listens on an ephemeral port, the node table of
// examples/clustername.lua is rewritten with the real ports (node::reload), and a client
// calls cluster3's @relay, which calls cluster1 and cluster2 through the cluster API.

#include <gtest/gtest.h>

#include <future>

#include "common/config/load_config.hpp"
#include "common/net/net.hpp"
#include "examples/gate/kv_gate.hpp"
#include "examples/service/hello.hpp"
#include "examples/service/relay.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/node.hpp"

namespace csk {
namespace {

using namespace std::chrono_literals;
using actor::values;

/// One example node, assembled as run_node does, but listening on an ephemeral port.
struct example_node {
  explicit example_node(const std::string& config) {
    auto c = load_config_file(std::string(CSK_SOURCE_DIR) + "/examples/" + config);
    if (!c) {
      error = c.error();
      return;
    }
    cfg = std::move(*c);
    cfg.cluster.listen = "127.0.0.1:0";
    rt = std::make_unique<actor::runtime>(runtime_options_from(cfg.runtime));
    lab::register_lab_types(*rt);
    examples::register_hello_types(*rt);
    examples::register_relay_types(*rt);
    examples::register_kv_types(*rt);  // cluster1's kvstore (its gate is not started here)
    net = std::make_unique<net::net>(1);
    cluster::node_options o;
    o.self = cfg.cluster.self;
    auto hp = parse_host_port(cfg.cluster.listen, true);
    if (!hp) {
      error = "bad listen address";
      return;
    }
    o.listen = cluster::endpoint{hp->host, hp->port};
    node = std::make_unique<cluster::node>(*rt, *net, o);
    auto table = load_cluster_names_file(cfg.cluster.names_file);
    if (!table) {
      error = table.error();
      return;
    }
    file_table = *table;
    node->reload(*table);
    if (auto b = boot_services(*rt, cfg.services); !b) {
      error = b.error();
      return;
    }
    net->start();
    auto p = node->open();
    if (!p) {
      error = p.error();
      return;
    }
    port = *p;
    rt->start();
  }
  ~example_node() {
    if (net) net->stop();
    if (rt) rt->shutdown();  // before the cluster node goes: services may still use it
  }

  node_config cfg;
  cluster_names file_table;
  std::unique_ptr<actor::runtime> rt;
  std::unique_ptr<net::net> net;
  std::unique_ptr<cluster::node> node;
  std::uint16_t port = 0;
  std::string error;
};

/// A caller from outside, like `cppskynet call --names examples/clustername.lua`.
struct client {
  client() : rt(opts()), net(1), node(rt, net, cluster::node_options{}) {
    rt.start();
    net.start();
  }
  ~client() {
    net.stop();
    rt.shutdown();
  }
  static actor::runtime_options opts() {
    actor::runtime_options o;
    o.threads = 1;
    o.call_timeout = 10000ms;
    return o;
  }
  actor::call_result call(std::string_view n, const std::string& to, values args) {
    auto f = node.call(n, wire::target::named(to), std::move(args));
    if (f.wait_for(30s) != std::future_status::ready) {
      return unexpected(actor::call_error{actor::call_errc::timeout, "test deadline"});
    }
    return f.get();
  }
  actor::runtime rt;
  net::net net;
  cluster::node node;
};

class ExampleClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* n : {&c1_, &c2_, &c3_}) ASSERT_TRUE(n->error.empty()) << n->cfg.cluster.self << ": " << n->error;
    // The example table, with the ports the nodes really listen on.
    table_.nodes["cluster1"] = cluster_node_address{"127.0.0.1", c1_.port};
    table_.nodes["cluster2"] = cluster_node_address{"127.0.0.1", c2_.port};
    table_.nodes["cluster3"] = cluster_node_address{"127.0.0.1", c3_.port};
    for (auto* n : {&c1_, &c2_, &c3_}) n->node->reload(table_);
    client_.node.reload(table_);
  }

  example_node c1_{"cluster1/config.yaml"};
  example_node c2_{"cluster2/config.yaml"};
  example_node c3_{"cluster3/config.yaml"};
  cluster_names table_;
  client client_;
};

TEST_F(ExampleClusterTest, TheConfigsNameTheThreeNodesOfTheExampleTable) {
  EXPECT_EQ(c3_.cfg.cluster.self, "cluster3");
  for (const char* name : {"cluster1", "cluster2", "cluster3"}) {
    ASSERT_TRUE(c3_.file_table.nodes.count(name)) << name;
    EXPECT_TRUE(c3_.file_table.nodes.at(name).has_value()) << name;
  }
  EXPECT_EQ(c3_.file_table.nodes.at("cluster3")->port, 2530);
  EXPECT_NE(c3_.rt->resolve("@relay"), 0u);  // registered by the relay itself
}

TEST_F(ExampleClusterTest, RelayAnswersWithTheOtherNodesReplies) {
  auto echo = client_.call("cluster3", "@relay", {"echo", "hi", 42});
  ASSERT_TRUE(echo.has_value()) << echo.error().text;
  EXPECT_EQ(*echo, (values{"hi", 42}));

  auto hello = client_.call("cluster3", "@relay", {"hello", "you"});
  ASSERT_TRUE(hello.has_value()) << hello.error().text;
  EXPECT_EQ(*hello, (values{"hello, you!", 1}));  // cluster2's first visitor

  auto both = client_.call("cluster3", "@relay", {"both", "again", "x", 7});
  ASSERT_TRUE(both.has_value()) << both.error().text;
  EXPECT_EQ(*both, (values{lua_table(values{"x", 7}), lua_table(values{"hello, again!", 2})}));

  // The greeting came from cluster2: its counter counted both visitors, cluster1's none.
  auto c2_count = client_.call("cluster2", "@hello", {"stats"});
  ASSERT_TRUE(c2_count.has_value()) << c2_count.error().text;
  EXPECT_EQ(c2_count->at(0), lua_value(2));
  auto c1_count = client_.call("cluster1", "@hello", {"stats"});
  ASSERT_TRUE(c1_count.has_value()) << c1_count.error().text;
  EXPECT_EQ(c1_count->at(0), lua_value(0));
}

TEST_F(ExampleClusterTest, RelayReportsWhichNodeFailed) {
  cluster_names down;
  down.nodes["cluster1"] = std::nullopt;
  c3_.node->reload(down);
  auto r = client_.call("cluster3", "@relay", {"echo", "hi"});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().text.find("cluster1 @echo: cluster node cluster1 is down"), std::string::npos) << r.error().text;
  auto hello = client_.call("cluster3", "@relay", {"hello", "still"});  // cluster2 is still up
  ASSERT_TRUE(hello.has_value()) << hello.error().text;
  EXPECT_EQ(hello->at(0), lua_value("hello, still!"));
}

}  // namespace
}  // namespace csk
