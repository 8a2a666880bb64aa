#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "tests/support/temp_dir.hpp"
#include "common/config/load_config.hpp"

namespace csk::test {
namespace {

using address = cluster_node_address;

std::optional<address> node(const char* host, std::uint16_t port) { return address{host, port}; }

cluster_names names_ok(const std::string& yaml) {
  auto r = load_cluster_names_string(yaml);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r ? *r : cluster_names{};
}

std::string names_error(const std::string& yaml) {
  auto r = load_cluster_names_string(yaml);
  EXPECT_FALSE(r.has_value()) << "loaded without error:\n" << yaml;
  return r ? std::string() : r.error();
}

TEST(ParseHostPort, AcceptsIpv4HostnamesAndBracketedIpv6) {
  EXPECT_EQ(parse_host_port("127.0.0.1:2528", false), node("127.0.0.1", 2528));
  EXPECT_EQ(parse_host_port("0.0.0.0:1", false), node("0.0.0.0", 1));
  EXPECT_EQ(parse_host_port("255.255.255.255:65535", false), node("255.255.255.255", 65535));
  EXPECT_EQ(parse_host_port("localhost:80", false), node("localhost", 80));
  EXPECT_EQ(parse_host_port("node-1.cluster.example:9000", false), node("node-1.cluster.example", 9000));
  EXPECT_EQ(parse_host_port("game_db:2528", false), node("game_db", 2528));  // compose service names
  EXPECT_EQ(parse_host_port("10ab.example:1", false), node("10ab.example", 1));
  EXPECT_EQ(parse_host_port("[::1]:2528", false), node("::1", 2528));
  EXPECT_EQ(parse_host_port("[fe80::1:2]:7", false), node("fe80::1:2", 7));
  EXPECT_EQ(parse_host_port("[::ffff:10.0.0.1]:7", false), node("::ffff:10.0.0.1", 7));
  EXPECT_EQ(parse_host_port("h:007", false), node("h", 7));
  const std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(61, 'd');  // 253 bytes
  EXPECT_EQ(parse_host_port(longest + ":1", false), (address{longest, 1}));
}

TEST(ParseHostPort, PortZeroOnlyWhenAllowed) {
  EXPECT_EQ(parse_host_port("127.0.0.1:0", false), std::nullopt);
  EXPECT_EQ(parse_host_port("127.0.0.1:0", true), node("127.0.0.1", 0));
  EXPECT_EQ(parse_host_port("[::1]:0", true), node("::1", 0));
  EXPECT_EQ(parse_host_port("127.0.0.1:65536", true), std::nullopt);
}

TEST(ParseHostPort, RejectsEverythingElse) {
  const std::string too_long = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                               std::string(63, 'c') + "." + std::string(62, 'd');  // 254 bytes
  const std::string bad[] = {
      "",
      "127.0.0.1",
      "127.0.0.1:",
      ":2528",
      "127.0.0.1:-1",
      "127.0.0.1:+80",
      "127.0.0.1: 80",
      "127.0.0.1:80 ",
      "127.0.0.1:8o",
      "127.0.0.1:100000",
      "127.0.0.1:4294967377",  // 65617 modulo 2^32: no wrap-around
      "1.2.3.256:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "01.2.3.4:80",
      "300:80",
      "host.123:80",
      "-host:80",
      "host-:80",
      "a..b:80",
      ".host:80",
      "host.:80",
      "ho st:80",
      "h\xc3\xa9:80",
      std::string(64, 'a') + ":80",
      too_long + ":80",
      "::1:80",
      "[::1]",
      "[::1]80",
      "[::1:80",
      "[]:80",
      "[127.0.0.1]:80",
      "[fe80::1%eth0]:80",
      "[::1]:0",
      "[::1]:65536",
      std::string("h\0st:80", 7),
      std::string("[::1\0x]:80", 10),
  };
  for (const auto& text : bad) {
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_host_port(text, false), std::nullopt);
  }
}

TEST(ClusterNames, LoadsATable) {
  const cluster_names n = names_ok(R"(# skynet's clustername.lua, as YAML
db: "127.0.0.1:2528"
game: 10.0.0.7:2529
gate: "[::1]:2530"
web: "web-1.internal:80"
old: false
)");
  EXPECT_FALSE(n.nowaiting);
  ASSERT_EQ(n.nodes.size(), 5u);
  EXPECT_EQ(n.nodes.at("db"), node("127.0.0.1", 2528));
  EXPECT_EQ(n.nodes.at("game"), node("10.0.0.7", 2529));
  EXPECT_EQ(n.nodes.at("gate"), node("::1", 2530));
  EXPECT_EQ(n.nodes.at("web"), node("web-1.internal", 80));
  EXPECT_EQ(n.nodes.at("old"), std::nullopt);
}

TEST(ClusterNames, Nowaiting) {
  EXPECT_TRUE(names_ok("__nowaiting: true\n").nowaiting);
  EXPECT_TRUE(names_ok("a: \"h:1\"\n__nowaiting: true\n").nowaiting);
  EXPECT_FALSE(names_ok("__nowaiting: false\n").nowaiting);
  EXPECT_TRUE(names_ok("__nowaiting: true\n").nodes.empty());
}

TEST(ClusterNames, EmptyDocumentIsAnEmptyTable) {
  for (const char* yaml : {"", "# nothing yet\n", "{}\n", "~\n"}) {
    SCOPED_TRACE(yaml);
    const cluster_names n = names_ok(yaml);
    EXPECT_TRUE(n.nodes.empty());
    EXPECT_FALSE(n.nowaiting);
  }
}

TEST(ClusterNames, NameLengthLimits) {
  const std::string longest(255, 'n');
  EXPECT_EQ(names_ok(longest + ": \"h:1\"\n").nodes.count(longest), 1u);
  EXPECT_EQ(names_ok("x: \"h:1\"\n").nodes.count("x"), 1u);
  EXPECT_EQ(names_ok("_x: \"h:1\"\n").nodes.count("_x"), 1u);  // one underscore is a name
  EXPECT_EQ(names_error(std::string(256, 'n') + ": \"h:1\"\n"),
            "(document) (line 1): a node name must be 1 to 255 bytes and not start with \"__\", "
            "got \"" + std::string(40, 'n') + "...\"");
}

struct bad_case {
  const char* yaml;
  const char* error;
};

TEST(ClusterNames, EveryBadEntryNamesPathAndLine) {
  const bad_case cases[] = {
      {"a: \"127.0.0.1:0\"\n",
       "a (line 1): the port must be between 1 and 65535, got \"127.0.0.1:0\""},
      {"a: \"127.0.0.1:65536\"\n",
       "a (line 1): the port must be between 1 and 65535, got \"127.0.0.1:65536\""},
      {"a: \"127.0.0.1:http\"\n",
       "a (line 1): the port must be between 1 and 65535, got \"127.0.0.1:http\""},
      {"a: \"127.0.0.1\"\n", "a (line 1): expected \"host:port\", got \"127.0.0.1\""},
      {"a: \":2528\"\n", "a (line 1): the host is empty, got \":2528\""},
      {"a: \"1.2.3.256:80\"\n",
       "a (line 1): the host is not a valid IPv4 address or hostname, got \"1.2.3.256:80\""},
      {"a: \"bad host:80\"\n",
       "a (line 1): the host is not a valid IPv4 address or hostname, got \"bad host:80\""},
      {"a: \"::1:2528\"\n",
       "a (line 1): an IPv6 address needs brackets, as \"[::1]:2528\", got \"::1:2528\""},
      {"a: \"[::1]\"\n", "a (line 1): expected \"[IPv6]:port\", got \"[::1]\""},
      {"a: \"[::g]:1\"\n", "a (line 1): the host is not a valid IPv6 address, got \"[::g]:1\""},
      {"a: true\n",
       "a (line 1): true is not an address: give \"host:port\", or false to mark the node down"},
      {"a: 2528\n", "a (line 1): expected \"host:port\" or false, got integer 2528"},
      {"a:\n", "a (line 1): expected \"host:port\" or false, got null"},
      {"a: [\"h:1\"]\n", "a (line 1): expected \"host:port\" or false, got a sequence"},
      {"a: {host: h, port: 1}\n", "a (line 1): expected \"host:port\" or false, got a map"},
      {"a: !!str false\n", "a (line 1): expected \"host:port\", got \"false\""},
      {"a: !!bool maybe\n", "a (line 1): \"maybe\" is not a valid !!bool"},
      {"\"\": \"h:1\"\n",
       "(document) (line 1): a node name must be 1 to 255 bytes and not start with \"__\", got \"\""},
      {"[a]: \"h:1\"\n", "(document) (line 1): keys must be strings, got a sequence"},
      {"a: \"h:1\"\nb: \"h:2\"\na: \"h:3\"\n", "a (line 3): duplicate key"},
      {"__nowait: true\n", "__nowait (line 1): unknown option (only __nowaiting is known)"},
      {"__: true\n", "__ (line 1): unknown option (only __nowaiting is known)"},
      {"__nowaiting: yes\n",
       "__nowaiting (line 1): expected a boolean (true or false), got string \"yes\""},
      {"__nowaiting: 1\n",
       "__nowaiting (line 1): expected a boolean (true or false), got integer 1"},
      {"- a\n", "(document) (line 1): expected a map, got a sequence"},
      {"a\n", "(document) (line 1): expected a map, got string \"a\""},
      {"a: \"h:1\"\n---\nb: \"h:2\"\n", "(document) (line 3): only one YAML document is allowed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    EXPECT_EQ(names_error(c.yaml), c.error);
  }
}

TEST(ClusterNames, ListsAllProblemsInLineOrder) {
  EXPECT_EQ(names_error(R"(good: "127.0.0.1:2528"
port0: "127.0.0.1:0"
down: false
up: true
__nowaiting: "true"
__reload: 1
good: "127.0.0.1:2529"
)"),
            "port0 (line 2): the port must be between 1 and 65535, got \"127.0.0.1:0\"\n"
            "up (line 4): true is not an address: give \"host:port\", or false to mark the node down\n"
            "__nowaiting (line 5): expected a boolean (true or false), got string \"true\"\n"
            "__reload (line 6): unknown option (only __nowaiting is known)\n"
            "good (line 7): duplicate key");
}

TEST(ClusterNames, SyntaxErrorIsOneLineWithPosition) {
  const std::string error = names_error("a: \"h:1\"\nb: [\n");
  EXPECT_EQ(error.rfind("syntax error (line ", 0), 0u) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

class ClusterNamesFile : public test::temp_dir_test {};

TEST_F(ClusterNamesFile, LoadsAFile) {
  const auto path = dir_ / "clustername.yaml";
  std::ofstream(path) << "db: \"127.0.0.1:2528\"\ngone: false\n__nowaiting: true\n";
  auto r = load_cluster_names_file(path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->nowaiting);
  ASSERT_EQ(r->nodes.size(), 2u);
  EXPECT_EQ(r->nodes.at("db"), node("127.0.0.1", 2528));
  EXPECT_EQ(r->nodes.at("gone"), std::nullopt);
}

TEST_F(ClusterNamesFile, EmptyFileIsAnEmptyTable) {
  const auto path = dir_ / "clustername.yaml";
  std::ofstream{path};
  auto r = load_cluster_names_file(path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->nodes.empty());
  EXPECT_FALSE(r->nowaiting);
}

TEST_F(ClusterNamesFile, MissingFileIsOneError) {
  const std::string path = (dir_ / "absent.yaml").string();
  auto r = load_cluster_names_file(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), path + ": cannot open: No such file or directory");
}

TEST_F(ClusterNamesFile, FileErrorsUseTheSameFormat) {
  const auto path = dir_ / "clustername.yaml";
  std::ofstream(path) << "a: \"h:1\"\nb: true\n";
  auto r = load_cluster_names_file(path.string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(),
            "b (line 2): true is not an address: give \"host:port\", or false to mark the node down");
}

}  // namespace
}  // namespace csk::test
