// The supervisor, gates and admin sections, and listeners_of (what the supervisor binds
// and the worker adopts).

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/config/load_config.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

node_config loaded(const std::string& yaml) {
  auto r = load_config_string(yaml);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r ? *r : node_config{};
}

std::string problems(const std::string& yaml) {
  auto r = load_config_string(yaml);
  EXPECT_FALSE(r.has_value()) << "loaded without error:\n" << yaml;
  return r ? std::string() : r.error();
}

TEST(SupervisorConfig, Defaults) {
  const node_config c = loaded("");
  EXPECT_EQ(c.supervisor.worker, "");
  EXPECT_EQ(c.supervisor.control_socket, "cppskynet.sock");
  EXPECT_EQ(c.supervisor.pid_file, "");
  EXPECT_EQ(c.supervisor.heartbeat_ms, 1000u);
  EXPECT_EQ(c.supervisor.heartbeat_timeout_ms, 5000u);
  EXPECT_EQ(c.supervisor.ready_timeout_ms, 30000u);
  EXPECT_EQ(c.supervisor.stop_timeout_ms, 10000u);
  EXPECT_EQ(c.supervisor.restart_backoff_ms, 100u);
  EXPECT_EQ(c.supervisor.restart_backoff_max_ms, 5000u);
  EXPECT_EQ(c.supervisor.crash_loop_restarts, 5u);
  EXPECT_EQ(c.supervisor.crash_loop_window_ms, 60000u);
  EXPECT_TRUE(c.gates.empty());
  EXPECT_EQ(c.admin.listen, "");
}

TEST(SupervisorConfig, LoadsEveryKey) {
  const node_config c = loaded(R"(supervisor:
  worker: /opt/csk/cppskynet-worker
  control_socket: /run/csk.sock
  pid_file: /run/csk.pid
  heartbeat_ms: 200
  heartbeat_timeout_ms: 1000
  ready_timeout_ms: 5000
  stop_timeout_ms: 0
  restart_backoff_ms: 10
  restart_backoff_max_ms: 80
  crash_loop_restarts: 3
  crash_loop_window_ms: 1000
)");
  const supervisor_config& s = c.supervisor;
  EXPECT_EQ(s.worker, "/opt/csk/cppskynet-worker");
  EXPECT_EQ(s.control_socket, "/run/csk.sock");
  EXPECT_EQ(s.pid_file, "/run/csk.pid");
  EXPECT_EQ(s.heartbeat_ms, 200u);
  EXPECT_EQ(s.heartbeat_timeout_ms, 1000u);
  EXPECT_EQ(s.ready_timeout_ms, 5000u);
  EXPECT_EQ(s.stop_timeout_ms, 0u);
  EXPECT_EQ(s.restart_backoff_ms, 10u);
  EXPECT_EQ(s.restart_backoff_max_ms, 80u);
  EXPECT_EQ(s.crash_loop_restarts, 3u);
  EXPECT_EQ(s.crash_loop_window_ms, 1000u);
}

TEST(SupervisorConfig, BadValuesNamePathAndLine) {
  EXPECT_EQ(problems("supervisor:\n  heartbeat_ms: 0\n  crash_loop_restarts: -1\n  bogus: 1\n  control_socket: \"\"\n"),
            "supervisor.heartbeat_ms (line 2): must be between 1 and 4294967295, got 0\n"
            "supervisor.crash_loop_restarts (line 3): must be between 1 and 4294967295, got -1\n"
            "supervisor.bogus (line 4): unknown key\n"
            "supervisor.control_socket (line 5): must not be empty");
  EXPECT_EQ(problems("supervisor:\n  heartbeat_ms: 500\n  heartbeat_timeout_ms: 500\n"),
            "supervisor.heartbeat_timeout_ms (line 3): must be greater than heartbeat_ms (500), got 500");
  EXPECT_EQ(problems("supervisor:\n  heartbeat_ms: 6000\n"),
            "supervisor.heartbeat_timeout_ms (line 2): must be greater than heartbeat_ms (6000), got 5000");
  EXPECT_EQ(problems("supervisor:\n  restart_backoff_ms: 100\n  restart_backoff_max_ms: 50\n"),
            "supervisor.restart_backoff_max_ms (line 3): must not be below restart_backoff_ms (100), got 50");
  EXPECT_EQ(problems("supervisor: [1]\n"), "supervisor (line 1): expected a map, got a sequence");
  EXPECT_EQ(problems("supervisor:\n  worker: 5\n"), "supervisor.worker (line 2): expected a string, got integer 5");
}

TEST(GateConfig, LoadsGates) {
  const node_config c = loaded(R"(gates:
  - name: kv
    listen: "0.0.0.0:7000"
    type: kv_gate
    args: [1, {k: v}]
    max_connections: 10
    max_in_flight: 2
    max_outbound_kb: 64
    idle_timeout_ms: 30000
    max_message: 4096
    message_timeout_ms: 1500
  - name: chat.v2
    listen: "[::1]:0"
    type: chat
admin:
  listen: "127.0.0.1:9000"
)");
  ASSERT_EQ(c.gates.size(), 2u);
  const gate_config& kv = c.gates[0];
  EXPECT_EQ(kv.name, "kv");
  EXPECT_EQ(kv.listen, "0.0.0.0:7000");
  EXPECT_EQ(kv.type, "kv_gate");
  ASSERT_EQ(kv.args.size(), 2u);
  EXPECT_EQ(kv.args[0].as_integer(), 1);
  EXPECT_EQ(kv.max_connections, 10u);
  EXPECT_EQ(kv.max_in_flight, 2u);
  EXPECT_EQ(kv.max_outbound_kb, 64u);
  EXPECT_EQ(kv.idle_timeout_ms, 30000u);
  EXPECT_EQ(kv.max_message, 4096u);
  EXPECT_EQ(kv.message_timeout_ms, 1500u);
  const gate_config& chat = c.gates[1];
  EXPECT_EQ(chat.name, "chat.v2");
  EXPECT_EQ(chat.max_connections, 1024u);
  EXPECT_EQ(chat.max_in_flight, 16u);
  EXPECT_EQ(chat.max_outbound_kb, 1024u);
  EXPECT_EQ(chat.idle_timeout_ms, 0u);
  EXPECT_EQ(chat.max_message, 65537u);
  EXPECT_EQ(chat.message_timeout_ms, 0u);
  EXPECT_EQ(c.admin.listen, "127.0.0.1:9000");
}

TEST(GateConfig, EveryProblemIsListed) {
  EXPECT_EQ(problems(R"(gates:
  - listen: "bad"
    type: ""
  - name: kv
    listen: "127.0.0.1:7000"
    type: t
    max_in_flight: 0
  - name: kv
    listen: "127.0.0.1:7001"
    type: t
  - name: "no spaces"
    listen: "127.0.0.1:7002"
    type: t
    extra: 1
  - 5
admin:
  listen: nope
)"),
            "gates[0].listen (line 2): expected \"host:port\", got \"bad\"\n"
            "gates[0].name (line 2): required\n"
            "gates[0].type (line 3): must not be empty\n"
            "gates[1].max_in_flight (line 7): must be between 1 and 1000000, got 0\n"
            "gates[2].name (line 8): duplicate gate name \"kv\" (first at gates[1])\n"
            "gates[3].name (line 11): must be 1 to 64 letters, digits, '_', '-' or '.', got \"no spaces\"\n"
            "gates[3].extra (line 14): unknown key\n"
            "gates[4] (line 15): expected a map, got integer 5\n"
            "admin.listen (line 17): expected \"host:port\", got \"nope\"");
  EXPECT_EQ(problems("gates:\n  - name: a\n"),
            "gates[0].listen (line 2): required\n"
            "gates[0].type (line 2): required");
}

class Listeners : public temp_dir_test {};

TEST_F(Listeners, ClusterGatesAdminInOrder) {
  const node_config c = loaded(R"(cluster:
  self: n1
  listen: "127.0.0.1:0"
gates:
  - {name: kv, listen: "0.0.0.0:7000", type: t}
  - {name: b, listen: "[::1]:7001", type: t}
admin:
  listen: "127.0.0.1:9000"
)");
  auto l = listeners_of(c);
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(*l, (std::vector<listener_spec>{{"cluster", "127.0.0.1", 0},
                                            {"gate:kv", "0.0.0.0", 7000},
                                            {"gate:b", "::1", 7001},
                                            {"admin", "127.0.0.1", 9000}}));
}

TEST_F(Listeners, NoSelfNoClusterListener) {
  auto l = listeners_of(loaded(""));
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_TRUE(l->empty());
}

TEST_F(Listeners, ClusterAddressFromTheNodeTable) {
  std::ofstream(dir_ / "names.yaml") << "n1: \"127.0.0.1:2528\"\nn2: false\nn3: \"[::1]:2530\"\n";
  std::ofstream(dir_ / "node.yaml") << "cluster:\n  self: n1\n  names_file: names.yaml\n";
  auto c = load_config_file((dir_ / "node.yaml").string());
  ASSERT_TRUE(c.has_value()) << c.error();
  auto l = listeners_of(*c);
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(*l, (std::vector<listener_spec>{{"cluster", "127.0.0.1", 2528}}));

  c->cluster.self = "n3";
  l = listeners_of(*c);
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(*l, (std::vector<listener_spec>{{"cluster", "::1", 2530}}));

  c->cluster.self = "n2";
  EXPECT_EQ(listeners_of(*c).error(), "cluster node n2 is down (false) in the node table " + c->cluster.names_file);
  c->cluster.self = "n9";
  EXPECT_EQ(listeners_of(*c).error(), "cluster node n9 is not in the node table " + c->cluster.names_file);
}

TEST_F(Listeners, EnvironmentOverrideWins) {
  std::ofstream(dir_ / "names.yaml") << "n1: \"127.0.0.1:2528\"\n";
  std::ofstream(dir_ / "node.yaml") << "cluster:\n  self: n1\n  names_file: names.yaml\n";
  ::setenv(cluster_listen_env, "127.0.0.1:4321", 1);
  auto c = load_config_file((dir_ / "node.yaml").string());
  ::unsetenv(cluster_listen_env);
  ASSERT_TRUE(c.has_value()) << c.error();
  auto l = listeners_of(*c);
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(*l, (std::vector<listener_spec>{{"cluster", "127.0.0.1", 4321}}));
}

TEST_F(Listeners, TwoListenersOnOneAddressAreAnError) {
  const node_config c = loaded(R"(cluster:
  self: n1
  listen: "127.0.0.1:7000"
gates:
  - {name: kv, listen: "127.0.0.1:7000", type: t}
)");
  EXPECT_EQ(listeners_of(c).error(), "gate:kv: 127.0.0.1:7000 is also cluster's address");
  const node_config ephemeral = loaded(R"(gates:
  - {name: a, listen: "127.0.0.1:0", type: t}
  - {name: b, listen: "127.0.0.1:0", type: t}
)");
  EXPECT_TRUE(listeners_of(ephemeral).has_value());
}

TEST_F(Listeners, AWildcardOverlapsEveryAddressOnItsPort) {
  const node_config wild4 = loaded(R"(cluster:
  self: n1
  listen: "0.0.0.0:7000"
gates:
  - {name: kv, listen: "127.0.0.1:7000", type: t}
)");
  EXPECT_EQ(listeners_of(wild4).error(),
            "gate:kv: 127.0.0.1:7000 overlaps cluster's address 0.0.0.0:7000 (a wildcard address takes its port on "
            "every address)");
  const node_config wild6 = loaded(R"(gates:
  - {name: a, listen: "192.168.1.5:7000", type: t}
  - {name: b, listen: "[::]:7000", type: t}
)");
  EXPECT_EQ(listeners_of(wild6).error(),
            "gate:b: [::]:7000 overlaps gate:a's address 192.168.1.5:7000 (a wildcard address takes its port on every "
            "address)");
  const node_config admin = loaded(R"(gates:
  - {name: a, listen: "[::1]:9000", type: t}
admin:
  listen: "[0:0::0]:9000"
)");
  EXPECT_EQ(listeners_of(admin).error(),
            "admin: [0:0::0]:9000 overlaps gate:a's address [::1]:9000 (a wildcard address takes its port on every "
            "address)");
  // Different ports, port 0, and distinct specific addresses are fine.
  const node_config fine = loaded(R"(gates:
  - {name: a, listen: "0.0.0.0:7000", type: t}
  - {name: b, listen: "127.0.0.1:7001", type: t}
  - {name: c, listen: "0.0.0.0:0", type: t}
  - {name: d, listen: "127.0.0.1:0", type: t}
  - {name: e, listen: "127.0.0.1:7002", type: t}
  - {name: f, listen: "127.0.0.2:7002", type: t}
)");
  auto l = listeners_of(fine);
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(l->size(), 6u);
}

TEST(ListenAddresses, OverlapRules) {
  struct row {
    const char* a;
    const char* b;
    bool overlap;
  };
  // As Linux's bind answers for two listeners with SO_REUSEADDR (net.ipv6.bindv6only = 0).
  const row rows[] = {
      {"0.0.0.0", "127.0.0.1", true},   {"0.0.0.0", "0.0.0.0", true},     {"::", "127.0.0.1", true},
      {"::", "0.0.0.0", true},          {"::", "::1", true},              {"0.0.0.0", "::1", false},
      {"127.0.0.1", "127.0.0.2", false}, {"127.0.0.1", "::1", false},     {"127.0.0.1", "::ffff:127.0.0.1", true},
      {"0.0.0.0", "::ffff:10.0.0.1", true}, {"::1", "0:0::1", true},      {"0.0.0.0", "localhost", true},
      {"::", "db.internal", true},      {"localhost", "LocalHost", true}, {"localhost", "127.0.0.1", false},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(listen_addresses_overlap(r.a, 7000, r.b, 7000), r.overlap) << r.a << " vs " << r.b;
    EXPECT_EQ(listen_addresses_overlap(r.b, 7000, r.a, 7000), r.overlap) << r.b << " vs " << r.a;
    EXPECT_FALSE(listen_addresses_overlap(r.a, 7000, r.b, 7001)) << r.a << " vs " << r.b;
    EXPECT_FALSE(listen_addresses_overlap(r.a, 0, r.b, 0)) << r.a << " vs " << r.b << ", port 0";
  }
}

TEST_F(Listeners, MissingTableFile) {
  node_config c = loaded("cluster:\n  self: n1\n  names_file: /nonexistent/names.yaml\n");
  auto l = listeners_of(c);
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error(), "/nonexistent/names.yaml: cannot open: No such file or directory");
}

TEST_F(Listeners, RelativePathsAreRelativeToTheConfig) {
  std::ofstream(dir_ / "node.yaml") << "supervisor:\n  worker: bin/w\n  pid_file: run/x.pid\nlog:\n  file: n.log\n";
  auto c = load_config_file((dir_ / "node.yaml").string());
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->log.file, (dir_ / "n.log").string());
  EXPECT_EQ(c->supervisor.worker, (dir_ / "bin/w").string());
  EXPECT_EQ(c->supervisor.pid_file, (dir_ / "run/x.pid").string());
  EXPECT_EQ(c->supervisor.control_socket, (dir_ / "cppskynet.sock").string());

  std::ofstream(dir_ / "node.yaml") << "supervisor:\n  control_socket: /tmp/abs.sock\n";
  c = load_config_file((dir_ / "node.yaml").string());
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->supervisor.control_socket, "/tmp/abs.sock");
  EXPECT_EQ(c->supervisor.worker, "");
  EXPECT_EQ(c->supervisor.pid_file, "");
}

}  // namespace
}  // namespace csk::test
