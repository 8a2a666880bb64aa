#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/scoped_env.hpp"
#include "tests/support/temp_dir.hpp"
#include "common/config/load_config.hpp"

namespace csk::test {
namespace {

constexpr const char* example_yaml = R"(runtime:
  threads: 2
  tick_ms: 10
  call_timeout_ms: 3000
log:
  level: debug
  file: ""
services:
  - type: hello
    name: .hello
    args: [1, "two", {k: v}]
  - type: echo
    names: ["@echo", .echo]
    instances: 2
)";

node_config load_ok(const std::string& yaml) {
  auto r = load_config_string(yaml);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r ? *r : node_config{};
}

std::string load_error(const std::string& yaml) {
  auto r = load_config_string(yaml);
  EXPECT_FALSE(r.has_value()) << "loaded without error:\n" << yaml;
  return r ? std::string() : r.error();
}

using test::scoped_env;

// The whole binary runs with CSK_CLUSTER_LISTEN unset (tests that want it set it), so a
// value in the caller's environment cannot change the results.
class unset_listen_env : public ::testing::Environment {
 public:
  void SetUp() override { env_.emplace(cluster_listen_env, nullptr); }
  void TearDown() override { env_.reset(); }

 private:
  std::optional<scoped_env> env_;
};
[[maybe_unused]] ::testing::Environment* const unset_listen_env_registered =
    ::testing::AddGlobalTestEnvironment(new unset_listen_env);

std::vector<lua_value> load_args(const std::string& flow_sequence) {
  const node_config c = load_ok("services:\n  - type: t\n    args: " + flow_sequence + "\n");
  return c.services.empty() ? std::vector<lua_value>{} : c.services[0].args;
}

std::string nested_sequences(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') + "1" +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(LoadConfig, LoadsTheExample) {
  const node_config c = load_ok(example_yaml);
  EXPECT_EQ(c.runtime.threads, 2);
  EXPECT_EQ(c.runtime.tick_ms, 10u);
  EXPECT_EQ(c.runtime.call_timeout_ms, 3000u);
  EXPECT_EQ(c.runtime.harbor, 0);
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.file, "");
  EXPECT_FALSE(c.log.color);
  ASSERT_EQ(c.services.size(), 2u);

  const service_config& hello = c.services[0];
  EXPECT_EQ(hello.type, "hello");
  EXPECT_EQ(hello.name, ".hello");
  EXPECT_TRUE(hello.names.empty());
  EXPECT_EQ(hello.instances, 1);
  lua_table kv;
  kv.set("k", "v");
  const std::vector<lua_value> args{lua_value(1), lua_value("two"), lua_value(std::move(kv))};
  EXPECT_EQ(hello.args, args);
  ASSERT_EQ(hello.args.size(), 3u);
  EXPECT_TRUE(hello.args[0].is_integer());

  const service_config& echo = c.services[1];
  EXPECT_EQ(echo.type, "echo");
  EXPECT_EQ(echo.name, "");
  EXPECT_EQ(echo.names, (std::vector<std::string>{"@echo", ".echo"}));
  EXPECT_EQ(echo.instances, 2);
  EXPECT_TRUE(echo.args.empty());
}

TEST(LoadConfig, LoadsEveryKey) {
  const node_config c = load_ok(R"(runtime:
  threads: 256
  harbor: 255
  tick_ms: 1
  call_timeout_ms: 4294967295
  mailbox_warn: 1
  slow_handler_ms: 7
  shutdown_timeout_ms: 0
  profile: false
log:
  level: "off"
  file: /var/log/node.log
  color: true
services: []
)");
  EXPECT_EQ(c.runtime.threads, 256);
  EXPECT_EQ(c.runtime.harbor, 255);
  EXPECT_EQ(c.runtime.tick_ms, 1u);
  EXPECT_EQ(c.runtime.call_timeout_ms, 4294967295u);
  EXPECT_EQ(c.runtime.mailbox_warn, 1u);
  EXPECT_EQ(c.runtime.slow_handler_ms, 7u);
  EXPECT_EQ(c.runtime.shutdown_timeout_ms, 0u);
  EXPECT_FALSE(c.runtime.profile);
  EXPECT_EQ(c.log.level, "off");
  EXPECT_EQ(c.log.file, "/var/log/node.log");
  EXPECT_TRUE(c.log.color);
  EXPECT_TRUE(c.services.empty());
}

void expect_defaults(const node_config& c) {
  EXPECT_EQ(c.runtime.threads, 0);
  EXPECT_EQ(c.runtime.harbor, 0);
  EXPECT_EQ(c.runtime.tick_ms, 10u);
  EXPECT_EQ(c.runtime.call_timeout_ms, 10000u);
  EXPECT_EQ(c.runtime.mailbox_warn, 1024u);
  EXPECT_EQ(c.runtime.slow_handler_ms, 5000u);
  EXPECT_EQ(c.runtime.shutdown_timeout_ms, 5000u);
  EXPECT_TRUE(c.runtime.profile);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.file, "");
  EXPECT_FALSE(c.log.color);
  EXPECT_TRUE(c.services.empty());
}

TEST(LoadConfig, EmptyDocumentGivesDefaults) {
  expect_defaults(load_ok(""));
  expect_defaults(load_ok("# only a comment\n"));
  expect_defaults(load_ok("runtime:\nlog:\nservices:\n"));
  expect_defaults(load_ok("runtime: {}\nlog: {}\nservices: []\n"));
}

TEST(LoadConfig, AbsentKeysKeepDefaults) {
  const node_config c = load_ok("runtime:\n  harbor: 3\nservices:\n  - type: solo\n");
  EXPECT_EQ(c.runtime.harbor, 3);
  EXPECT_EQ(c.runtime.threads, 0);
  EXPECT_EQ(c.runtime.tick_ms, 10u);
  EXPECT_EQ(c.runtime.call_timeout_ms, 10000u);
  EXPECT_EQ(c.log.level, "info");
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].type, "solo");
  EXPECT_EQ(c.services[0].name, "");
  EXPECT_TRUE(c.services[0].names.empty());
  EXPECT_EQ(c.services[0].instances, 1);
  EXPECT_TRUE(c.services[0].args.empty());
}

struct bad_case {
  const char* yaml;
  const char* error;
};

TEST(LoadConfig, EveryBadValueNamesPathAndLine) {
  const std::string long_name = "." + std::string(255, 'n');
  const std::string long_yaml = "services:\n  - type: t\n    name: " + long_name + "\n";
  const std::string long_error = "services[0].name (line 3): must start with '.' (local) or '@' "
                                 "(cluster) and be 2 to 255 bytes, got \"." +
                                 std::string(39, 'n') + "...\"";
  const bad_case cases[] = {
      {"runtime:\n  threads: 999\n",
       "runtime.threads (line 2): must be between 1 and 256 (or 0: one per core), got 999"},
      {"runtime:\n  threads: -1\n",
       "runtime.threads (line 2): must be between 1 and 256 (or 0: one per core), got -1"},
      {"runtime:\n  harbor: 256\n", "runtime.harbor (line 2): must be between 0 and 255, got 256"},
      {"runtime:\n  harbor: -1\n", "runtime.harbor (line 2): must be between 0 and 255, got -1"},
      {"runtime:\n  tick_ms: 0\n", "runtime.tick_ms (line 2): must be between 1 and 10, got 0"},
      {"runtime:\n  tick_ms: 11\n", "runtime.tick_ms (line 2): must be between 1 and 10, got 11"},
      {"runtime:\n  call_timeout_ms: 0\n",
       "runtime.call_timeout_ms (line 2): must be between 1 and 4294967295, got 0"},
      {"runtime:\n  call_timeout_ms: 4294967296\n",
       "runtime.call_timeout_ms (line 2): must be between 1 and 4294967295, got 4294967296"},
      {"runtime:\n  mailbox_warn: 0\n",
       "runtime.mailbox_warn (line 2): must be between 1 and 4294967295, got 0"},
      {"runtime:\n  slow_handler_ms: 0\n",
       "runtime.slow_handler_ms (line 2): must be between 1 and 4294967295, got 0"},
      {"runtime:\n  shutdown_timeout_ms: -5\n",
       "runtime.shutdown_timeout_ms (line 2): must be between 0 and 4294967295, got -5"},
      {"runtime:\n  profile: 1\n", "runtime.profile (line 2): expected a boolean (true or false), got integer 1"},
      {"log:\n  level: verbose\n",
       "log.level (line 2): must be one of trace, debug, info, warn, error, critical, off; got "
       "\"verbose\""},
      {"services:\n  - type: t\n    name: hello\n",
       "services[0].name (line 3): must start with '.' (local) or '@' (cluster) and be 2 to 255 "
       "bytes, got \"hello\""},
      {"services:\n  - type: t\n    name: \"@\"\n",
       "services[0].name (line 3): must start with '.' (local) or '@' (cluster) and be 2 to 255 "
       "bytes, got \"@\""},
      {"services:\n  - type: t\n    names: [.ok, bad]\n",
       "services[0].names[1] (line 3): must start with '.' (local) or '@' (cluster) and be 2 to "
       "255 bytes, got \"bad\""},
      {"services:\n  - type: t\n    instances: 0\n",
       "services[0].instances (line 3): must be between 1 and 2147483647, got 0"},
      {"services:\n  - type: t\n    instances: 2147483648\n",
       "services[0].instances (line 3): must be between 1 and 2147483647, got 2147483648"},
      {"services:\n  - type: \"\"\n", "services[0].type (line 2): must not be empty"},
      {"services:\n  - name: .x\n", "services[0].type (line 2): required"},
      {"services:\n  - type: a\n    name: .x\n  - type: b\n    names: [.y, .x]\n",
       "services[1].names[1] (line 5): duplicate name \".x\" (first at services[0].name)"},
      {"services:\n  - type: a\n    name: .x\n    names: [.x]\n",
       "services[0].names[0] (line 4): duplicate name \".x\" (first at services[0].name)"},
      {long_yaml.c_str(), long_error.c_str()},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(load_error(c.yaml), c.error);
  }
  // 255 bytes is still fine.
  const node_config ok = load_ok("services:\n  - type: t\n    name: ." + std::string(254, 'n') + "\n");
  EXPECT_EQ(ok.services.at(0).name.size(), 255u);
}

TEST(LoadConfig, ListsAllProblemsInLineOrder) {
  const std::string error = load_error(R"(runtime:
  threads: 999
  tick_ms: 0
  thread: 2
log:
  level: loud
services:
  - type: ok
  - name: .nameless
    instances: 0
)");
  EXPECT_EQ(error,
            "runtime.threads (line 2): must be between 1 and 256 (or 0: one per core), got 999\n"
            "runtime.tick_ms (line 3): must be between 1 and 10, got 0\n"
            "runtime.thread (line 4): unknown key\n"
            "log.level (line 6): must be one of trace, debug, info, warn, error, critical, off; "
            "got \"loud\"\n"
            "services[1].type (line 9): required\n"
            "services[1].instances (line 10): must be between 1 and 2147483647, got 0");
}

TEST(LoadConfig, UnknownKeysAreErrors) {
  EXPECT_EQ(load_error("runtim:\n  threads: 2\n"), "runtim (line 1): unknown key");
  EXPECT_EQ(load_error("runtime:\n  thread: 2\n"), "runtime.thread (line 2): unknown key");
  EXPECT_EQ(load_error("log:\n  levl: debug\n"), "log.levl (line 2): unknown key");
  EXPECT_EQ(load_error("services:\n  - type: t\n    nmae: .x\n"),
            "services[0].nmae (line 3): unknown key");
  EXPECT_EQ(load_error("runtime:\n  [a]: 1\n"),
            "runtime (line 2): keys must be strings, got a sequence");
}

TEST(LoadConfig, DuplicateKeysAreErrors) {
  EXPECT_EQ(load_error("runtime:\n  threads: 2\n  threads: 3\n"),
            "runtime.threads (line 3): duplicate key");
}

TEST(LoadConfig, WrongTypesAreErrors) {
  const bad_case cases[] = {
      {"runtime:\n  threads: \"2\"\n",
       "runtime.threads (line 2): expected an integer, got string \"2\""},
      {"runtime:\n  threads: two\n",
       "runtime.threads (line 2): expected an integer, got string \"two\""},
      {"runtime:\n  threads: 2.5\n", "runtime.threads (line 2): expected an integer, got number 2.5"},
      {"runtime:\n  threads: true\n",
       "runtime.threads (line 2): expected an integer, got boolean true"},
      {"runtime:\n  threads: [1]\n", "runtime.threads (line 2): expected an integer, got a sequence"},
      {"runtime:\n  threads:\n  harbor: 1\n",
       "runtime.threads (line 2): expected an integer, got null"},
      {"runtime: 5\n", "runtime (line 1): expected a map, got integer 5"},
      {"log: [debug]\n", "log (line 1): expected a map, got a sequence"},
      {"log:\n  level: 3\n", "log.level (line 2): expected a string, got integer 3"},
      {"log:\n  color: yes\n",
       "log.color (line 2): expected a boolean (true or false), got string \"yes\""},
      {"log:\n  file: {a: b}\n", "log.file (line 2): expected a string, got a map"},
      {"services: {type: t}\n", "services (line 1): expected a sequence, got a map"},
      {"services:\n  - hello\n", "services[0] (line 2): expected a map, got string \"hello\""},
      {"services:\n  - type: 7\n", "services[0].type (line 2): expected a string, got integer 7"},
      {"services:\n  - type: t\n    names: \"@x\"\n",
       "services[0].names (line 3): expected a sequence, got string \"@x\""},
      {"services:\n  - type: t\n    args: 5\n",
       "services[0].args (line 3): expected a sequence, got integer 5"},
      {"services:\n  - type: t\n    instances: many\n",
       "services[0].instances (line 3): expected an integer, got string \"many\""},
      {"- a\n- b\n", "(document) (line 1): expected a map, got a sequence"},
      {"just text\n", "(document) (line 1): expected a map, got string \"just text\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(load_error(c.yaml), c.error);
  }
}

TEST(LoadConfig, YamlSyntaxErrorIsOneLineWithPosition) {
  const std::string error = load_error("runtime:\n  threads: [1, 2\nlog: {\n");
  EXPECT_EQ(error.rfind("syntax error (line ", 0), 0u) << error;
  EXPECT_NE(error.find(", column "), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;

  const std::string tab = load_error("runtime:\n\tthreads: 2\n");
  EXPECT_EQ(tab.rfind("syntax error (line 2", 0), 0u) << tab;
}

TEST(LoadConfig, OnlyOneDocument) {
  EXPECT_EQ(load_error("runtime: {}\n---\nlog: {}\n"),
            "(document) (line 3): only one YAML document is allowed");
}

// Every cluster test starts with CSK_CLUSTER_LISTEN unset, whatever the caller's environment.
class ClusterConfig : public ::testing::Test {
 protected:
  scoped_env no_listen_env_{cluster_listen_env, nullptr};
};

TEST_F(ClusterConfig, DefaultsWhenAbsent) {
  for (const char* yaml : {"", "cluster:\n", "cluster: {}\n"}) {
    SCOPED_TRACE(yaml);
    const cluster_config c = load_ok(yaml).cluster;
    EXPECT_EQ(c.self, "");
    EXPECT_EQ(c.names_file, "");
    EXPECT_EQ(c.listen, "");
    EXPECT_EQ(c.max_message_mb, 64u);
    EXPECT_EQ(c.max_connections, 1023u);
    EXPECT_EQ(c.idle_timeout_ms, 0u);
  }
}

TEST_F(ClusterConfig, LoadsEveryKey) {
  const cluster_config c = load_ok(R"(cluster:
  self: game1
  names_file: conf/clustername.yaml
  listen: "0.0.0.0:0"
  max_message_mb: 2047
  max_connections: 1
  idle_timeout_ms: 4294967295
)").cluster;
  EXPECT_EQ(c.self, "game1");
  EXPECT_EQ(c.names_file, "conf/clustername.yaml");  // load_config_string leaves it as written
  EXPECT_EQ(c.listen, "0.0.0.0:0");
  EXPECT_EQ(c.max_message_mb, 2047u);
  EXPECT_EQ(c.max_connections, 1u);
  EXPECT_EQ(c.idle_timeout_ms, 4294967295u);
}

TEST_F(ClusterConfig, ListenForms) {
  EXPECT_EQ(load_ok("cluster:\n  self: a\n  listen: 127.0.0.1:2528\n").cluster.listen, "127.0.0.1:2528");
  EXPECT_EQ(load_ok("cluster:\n  self: a\n  listen: \"[::1]:2528\"\n").cluster.listen, "[::1]:2528");
  EXPECT_EQ(load_ok("cluster:\n  self: a\n  listen: \"[::]:0\"\n").cluster.listen, "[::]:0");
  EXPECT_EQ(load_ok("cluster:\n  self: a\n  listen: localhost:65535\n").cluster.listen,
            "localhost:65535");
  // "" is the same as absent: use the table.
  const cluster_config c = load_ok("cluster:\n  self: a\n  names_file: n.yaml\n  listen: \"\"\n").cluster;
  EXPECT_EQ(c.listen, "");
}

TEST_F(ClusterConfig, ClientOnlyNodeNeedsNoSelf) {
  const cluster_config c = load_ok("cluster:\n  names_file: n.yaml\n").cluster;
  EXPECT_EQ(c.self, "");
  EXPECT_EQ(c.names_file, "n.yaml");
}

TEST_F(ClusterConfig, EveryBadValueNamesPathAndLine) {
  const std::string long_self = "cluster:\n  self: " + std::string(256, 's') + "\n";
  const std::string long_self_error =
      "cluster.self (line 2): a node name must be 1 to 255 bytes and not start with \"__\", got \"" +
      std::string(40, 's') + "...\"";
  const bad_case cases[] = {
      {"cluster:\n  max_message_mb: 0\n",
       "cluster.max_message_mb (line 2): must be between 1 and 2047, got 0"},
      {"cluster:\n  max_message_mb: 2048\n",
       "cluster.max_message_mb (line 2): must be between 1 and 2047, got 2048"},
      {"cluster:\n  max_connections: 0\n",
       "cluster.max_connections (line 2): must be between 1 and 4294967295, got 0"},
      {"cluster:\n  max_connections: 4294967296\n",
       "cluster.max_connections (line 2): must be between 1 and 4294967295, got 4294967296"},
      {"cluster:\n  idle_timeout_ms: -1\n",
       "cluster.idle_timeout_ms (line 2): must be between 0 and 4294967295, got -1"},
      {"cluster:\n  self: __x\n  names_file: n.yaml\n",
       "cluster.self (line 2): a node name must be 1 to 255 bytes and not start with \"__\", got "
       "\"__x\""},
      {long_self.c_str(), long_self_error.c_str()},
      {"cluster:\n  self: a\n  listen: 127.0.0.1\n",
       "cluster.listen (line 3): expected \"host:port\", got \"127.0.0.1\""},
      {"cluster:\n  self: a\n  listen: 127.0.0.1:65536\n",
       "cluster.listen (line 3): the port must be between 0 and 65535, got \"127.0.0.1:65536\""},
      {"cluster:\n  self: a\n  listen: \"::1:2528\"\n",
       "cluster.listen (line 3): an IPv6 address needs brackets, as \"[::1]:2528\", got \"::1:2528\""},
      {"cluster:\n  self: a\n  listen: \"[::1]\"\n",
       "cluster.listen (line 3): expected \"[IPv6]:port\", got \"[::1]\""},
      {"cluster:\n  self: a\n  listen: 1.2.3.256:1\n",
       "cluster.listen (line 3): the host is not a valid IPv4 address or hostname, got "
       "\"1.2.3.256:1\""},
      {"cluster:\n  self: a\n  listen: :2528\n",
       "cluster.listen (line 3): the host is empty, got \":2528\""},
      // Keys that only make sense together.
      {"cluster:\n  listen: 127.0.0.1:2528\n",
       "cluster.listen (line 2): needs cluster.self (the name this node listens as)"},
      {"cluster:\n  self: a\n",
       "cluster.self (line 2): needs cluster.names_file or cluster.listen (an address to listen on)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(load_error(c.yaml), c.error);
  }
  const std::string longest(255, 's');
  EXPECT_EQ(load_ok("cluster:\n  self: " + longest + "\n  names_file: n\n").cluster.self, longest);
}

TEST_F(ClusterConfig, WrongTypesAndUnknownKeysAreErrors) {
  const bad_case cases[] = {
      {"cluster: node1\n", "cluster (line 1): expected a map, got string \"node1\""},
      {"cluster:\n  self: 1\n", "cluster.self (line 2): expected a string, got integer 1"},
      {"cluster:\n  names_file: [a]\n",
       "cluster.names_file (line 2): expected a string, got a sequence"},
      {"cluster:\n  self: a\n  listen: 2528\n",
       "cluster.listen (line 3): expected a string, got integer 2528"},
      {"cluster:\n  max_message_mb: \"64\"\n",
       "cluster.max_message_mb (line 2): expected an integer, got string \"64\""},
      {"cluster:\n  max_connections: 1.5\n",
       "cluster.max_connections (line 2): expected an integer, got number 1.5"},
      {"cluster:\n  idle_timeout_ms: false\n",
       "cluster.idle_timeout_ms (line 2): expected an integer, got boolean false"},
      {"cluster:\n  maxclient: 1024\n", "cluster.maxclient (line 2): unknown key"},
      {"cluster:\n  self: a\n  self: b\n  names_file: n\n", "cluster.self (line 3): duplicate key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(load_error(c.yaml), c.error);
  }
}

TEST_F(ClusterConfig, EmptySelfIsAbsent) {
  EXPECT_EQ(load_ok("cluster:\n  self: \"\"\n  names_file: n.yaml\n").cluster.self, "");
  EXPECT_EQ(load_error("cluster:\n  self: \"\"\n  listen: 127.0.0.1:1\n"),
            "cluster.listen (line 3): needs cluster.self (the name this node listens as)");
}

TEST_F(ClusterConfig, ABadSelfDoesNotAlsoReadAsMissing) {
  // Only the real problem is reported, not "listen needs cluster.self" as well.
  EXPECT_EQ(load_error("cluster:\n  self: __bad\n  listen: 127.0.0.1:1\n"),
            "cluster.self (line 2): a node name must be 1 to 255 bytes and not start with \"__\", "
            "got \"__bad\"");
}

TEST_F(ClusterConfig, EnvironmentOverridesListen) {
  const std::string yaml = "cluster:\n  self: a\n  names_file: n.yaml\n  listen: 127.0.0.1:2528\n";
  {
    scoped_env env(cluster_listen_env, "127.0.0.1:0");
    EXPECT_EQ(load_ok(yaml).cluster.listen, "127.0.0.1:0");
    EXPECT_EQ(load_ok("cluster:\n  self: a\n").cluster.listen, "127.0.0.1:0");  // no table needed
  }
  {
    scoped_env env(cluster_listen_env, "[::1]:3000");
    EXPECT_EQ(load_ok(yaml).cluster.listen, "[::1]:3000");
  }
  {
    scoped_env env(cluster_listen_env, "");  // set but empty: ignored
    EXPECT_EQ(load_ok(yaml).cluster.listen, "127.0.0.1:2528");
  }
  EXPECT_EQ(load_ok(yaml).cluster.listen, "127.0.0.1:2528");  // unset again
}

TEST_F(ClusterConfig, EnvironmentOverrideIsChecked) {
  const std::string yaml = "cluster:\n  self: a\n  names_file: n.yaml\n";
  {
    scoped_env env(cluster_listen_env, "2528");
    EXPECT_EQ(load_error(yaml), "CSK_CLUSTER_LISTEN (environment): expected \"host:port\", got \"2528\"");
  }
  {
    scoped_env env(cluster_listen_env, "localhost:99999");
    EXPECT_EQ(load_error(yaml),
              "CSK_CLUSTER_LISTEN (environment): the port must be between 0 and 65535, got "
              "\"localhost:99999\"");
  }
  {
    scoped_env env(cluster_listen_env, "127.0.0.1:2528");
    EXPECT_EQ(load_error(""),
              "CSK_CLUSTER_LISTEN (environment): needs cluster.self (the name this node listens as)");
  }
  {
    // Listed after the file's own problems, which are still reported.
    scoped_env env(cluster_listen_env, "nope");
    EXPECT_EQ(load_error("runtime:\n  tick_ms: 0\ncluster:\n  self: a\n  listen: bad\n"),
              "runtime.tick_ms (line 2): must be between 1 and 10, got 0\n"
              "cluster.listen (line 5): expected \"host:port\", got \"bad\"\n"
              "CSK_CLUSTER_LISTEN (environment): expected \"host:port\", got \"nope\"");
  }
}

TEST(GateConfig, EnvironmentReplacesAGatesListen) {
  EXPECT_EQ(gate_listen_env("kv"), "CSK_GATE_KV_LISTEN");
  EXPECT_EQ(gate_listen_env("chat.v2-eu"), "CSK_GATE_CHAT_V2_EU_LISTEN");
  const std::string yaml =
      "gates:\n  - {name: kv, listen: \"127.0.0.1:8001\", type: kv_gate}\n"
      "  - {name: chat.v2, listen: \"127.0.0.1:8002\", type: chat}\n";
  {
    scoped_env kv("CSK_GATE_KV_LISTEN", "127.0.0.1:0");
    const node_config c = load_ok(yaml);
    EXPECT_EQ(c.gates.at(0).listen, "127.0.0.1:0");
    EXPECT_EQ(c.gates.at(1).listen, "127.0.0.1:8002") << "another gate's variable is its own";
  }
  {
    scoped_env chat("CSK_GATE_CHAT_V2_LISTEN", "[::1]:9000");
    EXPECT_EQ(load_ok(yaml).gates.at(1).listen, "[::1]:9000");
  }
  {
    scoped_env empty("CSK_GATE_KV_LISTEN", "");  // set but empty: ignored
    EXPECT_EQ(load_ok(yaml).gates.at(0).listen, "127.0.0.1:8001");
  }
  {
    scoped_env bad("CSK_GATE_KV_LISTEN", "8001");
    EXPECT_EQ(load_error(yaml), "CSK_GATE_KV_LISTEN (environment): expected \"host:port\", got \"8001\"");
  }
  EXPECT_EQ(load_ok(yaml).gates.at(0).listen, "127.0.0.1:8001");  // unset again
}

class LoadConfigFile : public test::temp_dir_test {};

TEST_F(LoadConfigFile, LoadsAFile) {
  const auto path = dir_ / "node.yaml";
  std::ofstream(path) << example_yaml;
  auto r = load_config_file(path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->runtime.threads, 2);
  EXPECT_EQ(r->services.size(), 2u);
}

TEST_F(LoadConfigFile, MissingFileIsOneError) {
  const std::string path = (dir_ / "absent.yaml").string();
  auto r = load_config_file(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), path + ": cannot open: No such file or directory");
}

TEST_F(LoadConfigFile, DirectoryIsOneError) {
  auto r = load_config_file(dir_.string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind(dir_.string() + ": cannot ", 0), 0u) << r.error();
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
}

TEST_F(LoadConfigFile, FileErrorsUseTheSameFormat) {
  const auto path = dir_ / "bad.yaml";
  std::ofstream(path) << "runtime:\n  threads: 999\n";
  auto r = load_config_file(path.string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(),
            "runtime.threads (line 2): must be between 1 and 256 (or 0: one per core), got 999");
}

TEST_F(LoadConfigFile, RelativeNamesFileIsRelativeToTheConfig) {
  scoped_env no_env(cluster_listen_env, nullptr);
  std::filesystem::create_directories(dir_ / "conf" / "tables");
  std::ofstream(dir_ / "conf" / "tables" / "clustername.yaml") << "a: \"127.0.0.1:2528\"\n";
  const auto config_path = dir_ / "conf" / "node.yaml";
  std::ofstream(config_path) << "cluster:\n  self: a\n  names_file: tables/clustername.yaml\n";

  auto r = load_config_file(config_path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->cluster.names_file, (dir_ / "conf" / "tables" / "clustername.yaml").string());
  auto names = load_cluster_names_file(r->cluster.names_file);
  ASSERT_TRUE(names.has_value()) << names.error();
  EXPECT_EQ(names->nodes.at("a"), (cluster_node_address{"127.0.0.1", 2528}));
}

// A Lua team points a stock config at its own clustername.lua without editing it.
TEST_F(LoadConfigFile, NamesFileFromTheEnvironmentReplacesTheKey) {
  scoped_env no_env(cluster_listen_env, nullptr);
  const auto config_path = dir_ / "node.yaml";
  std::ofstream(config_path) << "cluster:\n  self: a\n  names_file: tables/clustername.yaml\n";
  {
    scoped_env names(cluster_names_file_env, "/srv/game/etc/clustername.lua");
    auto r = load_config_file(config_path.string());
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->cluster.names_file, "/srv/game/etc/clustername.lua");
  }
  {
    scoped_env names(cluster_names_file_env, "etc/../clustername.lua");  // from the working directory
    auto r = load_config_file(config_path.string());
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->cluster.names_file, (std::filesystem::current_path() / "clustername.lua").string());
  }
  {
    scoped_env empty(cluster_names_file_env, "");  // set but empty: the key counts
    auto r = load_config_file(config_path.string());
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->cluster.names_file, (dir_ / "tables" / "clustername.yaml").string());
  }
}

TEST_F(LoadConfigFile, AbsoluteOrAbsentNamesFileIsKept) {
  scoped_env no_env(cluster_listen_env, nullptr);
  const auto config_path = dir_ / "node.yaml";
  std::ofstream(config_path) << "cluster:\n  self: a\n  names_file: /etc/csk/clustername.yaml\n";
  auto r = load_config_file(config_path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->cluster.names_file, "/etc/csk/clustername.yaml");

  std::ofstream(config_path) << "cluster:\n  self: a\n  listen: 127.0.0.1:0\n";
  r = load_config_file(config_path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->cluster.names_file, "");
}

TEST_F(LoadConfigFile, EnvironmentOverrideAppliesToFiles) {
  scoped_env env(cluster_listen_env, "127.0.0.1:4000");
  const auto config_path = dir_ / "node.yaml";
  std::ofstream(config_path) << "cluster:\n  self: a\n  names_file: n.yaml\n  listen: 127.0.0.1:1\n";
  auto r = load_config_file(config_path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->cluster.listen, "127.0.0.1:4000");
}

TEST(ConfigArgs, ConvertsEachScalarType) {
  const auto args = load_args(
      "[~, null, true, false, 42, -7, +3, 0x1f, 0o17, 2.5, 1e3, -.5, .inf, -.inf, .nan, hello, "
      "yes, \"\", 9223372036854775807, -9223372036854775808, 9223372036854775808]");
  ASSERT_EQ(args.size(), 21u);
  EXPECT_TRUE(args[0].is_nil());
  EXPECT_TRUE(args[1].is_nil());
  EXPECT_EQ(args[2], lua_value(true));
  EXPECT_EQ(args[3], lua_value(false));
  EXPECT_EQ(args[4], lua_value(42));
  EXPECT_EQ(args[5], lua_value(-7));
  EXPECT_EQ(args[6], lua_value(3));
  EXPECT_EQ(args[7], lua_value(31));
  EXPECT_EQ(args[8], lua_value(15));
  EXPECT_EQ(args[9], lua_value(2.5));
  EXPECT_EQ(args[10], lua_value(1000.0));
  EXPECT_EQ(args[11], lua_value(-0.5));
  EXPECT_EQ(args[12], lua_value(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(args[13], lua_value(-std::numeric_limits<double>::infinity()));
  ASSERT_TRUE(args[14].is_real());
  EXPECT_TRUE(std::isnan(args[14].as_real()));
  EXPECT_EQ(args[15], lua_value("hello"));
  EXPECT_EQ(args[16], lua_value("yes"));  // YAML 1.2: yes is not a boolean
  EXPECT_EQ(args[17], lua_value(""));
  EXPECT_EQ(args[18], lua_value(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(args[19], lua_value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(args[20], lua_value(9223372036854775808.0));  // too big for int64: a real
}

TEST(ConfigArgs, QuotedScalarsStayStrings) {
  const auto args = load_args("[\"42\", '42', \"true\", \"null\", '2.5', !!str 12, \"~\"]");
  const std::vector<lua_value> expected{"42", "42", "true", "null", "2.5", "12", "~"};
  EXPECT_EQ(args, expected);
}

TEST(ConfigArgs, CoreTagsAreChecked) {
  const auto args = load_args("[!!int 12, !!float 3, !!bool true, !!null null]");
  const std::vector<lua_value> expected{lua_value(12), lua_value(3.0), lua_value(true), lua_value()};
  EXPECT_EQ(args, expected);
  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [!!int abc]\n"),
            "services[0].args[0] (line 3): \"abc\" is not a valid !!int");
  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [!custom x]\n"),
            "services[0].args[0] (line 3): unsupported tag !custom");
}

TEST(ConfigArgs, SequencesAndMapsBecomeTables) {
  const auto args = load_args("[[1, ~, x], {a: {b: [1, {c: d}]}, 1: one, 2.5: r, true: t}, {}, []]");
  ASSERT_EQ(args.size(), 4u);

  EXPECT_EQ(args[0], lua_value(lua_table({lua_value(1), lua_value(), lua_value("x")})));

  lua_table c;
  c.set("c", "d");
  lua_table b;
  b.set("b", lua_table({lua_value(1), lua_value(std::move(c))}));
  lua_table outer;
  outer.set("a", std::move(b));
  outer.set(1, "one");
  outer.set(2.5, "r");
  outer.set(true, "t");
  EXPECT_EQ(args[1], lua_value(std::move(outer)));
  ASSERT_TRUE(args[1].is_table());
  EXPECT_TRUE(args[1].as_table().array.empty());  // map keys go to the hash part, even 1

  EXPECT_EQ(args[2], lua_value(lua_table()));
  EXPECT_EQ(args[3], lua_value(lua_table()));
}

TEST(ConfigArgs, DepthLimit) {
  const auto deepest = load_args("[" + nested_sequences(max_arg_depth) + "]");
  ASSERT_EQ(deepest.size(), 1u);
  const lua_value* v = &deepest[0];
  for (int i = 0; i < max_arg_depth; ++i) {
    ASSERT_TRUE(v->is_table()) << i;
    ASSERT_EQ(v->as_table().array.size(), 1u);
    v = &v->as_table().array[0];
  }
  EXPECT_EQ(*v, lua_value(1));

  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [" + nested_sequences(max_arg_depth + 1) +
                       "]\n"),
            "services[0].args[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
            "[0][0][0][0][0][0][0][0][0][0][0] (line 3): nested deeper than 32 levels");
  EXPECT_NE(load_error("services:\n  - type: t\n    args: [" + nested_sequences(200) + "]\n")
                .find("nested deeper than 32 levels"),
            std::string::npos);
}

TEST(ConfigArgs, BadKeysAreErrors) {
  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [{~: 1}]\n"),
            "services[0].args[0][null] (line 3): a table key cannot be null");
  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [{.nan: 1}]\n"),
            "services[0].args[0]..nan (line 3): a table key cannot be NaN");
  EXPECT_EQ(load_error("services:\n  - type: t\n    args: [{a: 1, a: 2}]\n"),
            "services[0].args[0].a (line 3): duplicate key");
}

TEST(ConfigArgs, AliasExpansionIsBounded) {
  // Each anchor repeats the previous one ten times: 10^8 values once expanded.
  std::string yaml = "services:\n  - type: t\n    args:\n      - &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    yaml += "      - &a" + std::to_string(i) + " [" + prev;
    for (int j = 1; j < 10; ++j) yaml += ", " + prev;
    yaml += "]\n";
  }
  const std::string error = load_error(yaml);
  EXPECT_NE(error.find("too many values in args (more than 100000)"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

}  // namespace
}  // namespace csk::test
