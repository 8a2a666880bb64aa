#pragma once
// One cppskynet node for cluster tests: a runtime (2 threads, calls time out after 5 s,
// optionally the lab's services), a net (1 thread) and a cluster::node listening on
// 127.0.0.1:0 once open() is called, assembled as worker/ does it. Header-only.
//
// Lifetime: stop() (or the destructor) stops the net first, then the runtime: the
// services go before the node they may call through.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "common/actor/runtime.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"

namespace csk::test {

struct cluster_test_node {
  /// `self` is the node's cluster name ("" for a node that only calls); `lab` spawns the
  /// lab's services (@echo, @fail, ...); without `with_cluster` there is no cluster::node.
  explicit cluster_test_node(std::string self, bool lab = false, bool with_cluster = true) {
    actor::runtime_options o;
    o.threads = 2;
    o.call_timeout = std::chrono::milliseconds(5000);
    rt = std::make_unique<actor::runtime>(o);
    if (lab) lab::spawn_lab_services(*rt);
    net = std::make_unique<net::net>(1);
    if (with_cluster) {
      cluster::node_options no;
      no.self = std::move(self);
      no.listen = cluster::endpoint{"127.0.0.1", 0};
      cluster = std::make_unique<cluster::node>(*rt, *net, no);
    }
    rt->start();
    net->start();
  }
  ~cluster_test_node() { stop(); }
  cluster_test_node(const cluster_test_node&) = delete;
  cluster_test_node& operator=(const cluster_test_node&) = delete;

  /// Idempotent.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    net->stop();
    rt->shutdown();
  }

  /// Opens the cluster listener; its port (0 and a test failure if it did not open).
  std::uint16_t open() {
    auto port = cluster->open();
    EXPECT_TRUE(port.has_value()) << port.error();
    return port ? *port : 0;
  }

  /// A cluster call that never hangs the test: a timeout error after 20 s.
  actor::call_result call(std::string_view node, wire::target to, actor::values args,
                          std::chrono::milliseconds timeout = {}) {
    auto f = cluster->call(node, std::move(to), std::move(args), timeout);
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      return unexpected(actor::call_error{actor::call_errc::timeout, "test deadline"});
    }
    return f.get();
  }

  std::unique_ptr<actor::runtime> rt;
  std::unique_ptr<net::net> net;
  std::unique_ptr<cluster::node> cluster;

 private:
  bool stopped_ = false;
};

}  // namespace csk::test
