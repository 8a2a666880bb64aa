// The node table as skynet's own clustername.lua (common/config/cluster_names_lua.hpp):
// evaluated as skynet's clusterd does, in a sandbox, refused with the reason and the line.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "common/config/cluster_names_lua.hpp"
#include "common/config/load_config.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

using address = cluster_node_address;

std::optional<address> node(const char* host, std::uint16_t port) { return address{host, port}; }

cluster_names lua_ok(const std::string& lua) {
  auto r = load_cluster_names_lua(lua);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r ? *r : cluster_names{};
}

std::string lua_error(const std::string& lua) {
  auto r = load_cluster_names_lua(lua);
  EXPECT_FALSE(r.has_value()) << "loaded without error:\n" << lua;
  return r ? std::string() : r.error();
}

// As a skynet team writes it: comments of both kinds, locals, a loop, a node that is down,
// IPv6, an option.
constexpr const char* team_table = R"(-- clustername.lua: every node of the game cluster
--[[ db runs on its own host;
     the gates on the front machines ]]
local front = "10.0.0."
db = "127.0.0.1:2528"
game = "game-1.internal:2529"   -- a hostname
for i = 1, 2 do
  _ENV["gate" .. i] = front .. (10 + i) .. ":" .. (2600 + i)
end
chat = "[::1]:2530"
old = false                     -- taken down
__nowaiting = true
temp = "127.0.0.1:1"
temp = nil                      -- set and removed again: not in the table
return "ignored"                -- skynet ignores what the chunk returns
)";

TEST(ClusterNamesLua, LoadsATableAsSkynetTeamsWriteIt) {
  const cluster_names n = lua_ok(team_table);
  EXPECT_TRUE(n.nowaiting);
  ASSERT_EQ(n.nodes.size(), 6u);
  EXPECT_EQ(n.nodes.at("db"), node("127.0.0.1", 2528));
  EXPECT_EQ(n.nodes.at("game"), node("game-1.internal", 2529));
  EXPECT_EQ(n.nodes.at("gate1"), node("10.0.0.11", 2601));
  EXPECT_EQ(n.nodes.at("gate2"), node("10.0.0.12", 2602));
  EXPECT_EQ(n.nodes.at("chat"), node("::1", 2530));
  EXPECT_EQ(n.nodes.at("old"), std::nullopt);
  EXPECT_EQ(n.nodes.count("temp"), 0u);
}

TEST(ClusterNamesLua, GivesWhatTheYamlFormGives) {
  const cluster_names lua = lua_ok("a = \"127.0.0.1:2528\"\nb = false\nc = \"[::1]:7\"\n__nowaiting = false\n");
  auto yaml = load_cluster_names_string("a: \"127.0.0.1:2528\"\nb: false\nc: \"[::1]:7\"\n__nowaiting: false\n");
  ASSERT_TRUE(yaml.has_value()) << yaml.error();
  EXPECT_EQ(lua.nodes, yaml->nodes);
  EXPECT_EQ(lua.nowaiting, yaml->nowaiting);
}

TEST(ClusterNamesLua, EmptyChunkIsAnEmptyTable) {
  for (const char* lua : {"", "-- nothing yet\n", "local x = 1\n", "return\n"}) {
    SCOPED_TRACE(lua);
    const cluster_names n = lua_ok(lua);
    EXPECT_TRUE(n.nodes.empty());
    EXPECT_FALSE(n.nowaiting);
  }
}

TEST(ClusterNamesLua, TheLastAssignmentCounts) {
  const cluster_names n = lua_ok("a = \"h:1\"\na = \"h:2\"\n__nowaiting = true\n__nowaiting = false\n");
  EXPECT_EQ(n.nodes.at("a"), node("h", 2));
  EXPECT_FALSE(n.nowaiting);
  // Read back like any global, as in skynet.
  EXPECT_EQ(lua_ok("base = \"h:1\"\ncopy = base\n").nodes.at("copy"), node("h", 1));
}

TEST(ClusterNamesLua, SyntaxErrorIsLuasMessageWithTheLine) {
  EXPECT_EQ(lua_error("a = \"h:1\"\nb = \"h:2\"\nc == \"h:3\"\n"), "syntax error (line 3): syntax error near '=='");
  EXPECT_EQ(lua_error("a = \"h:1\"\nb = = 2\n"), "syntax error (line 2): unexpected symbol near '='");
  EXPECT_EQ(lua_error("a = \"h:1\nb = 2\n"), "syntax error (line 1): unfinished string near '\"h:1'");
  EXPECT_EQ(lua_error("for i = 1, 2 do\na = 1\n"), "syntax error (line 3): 'end' expected (to close 'for' at line 1) near <eof>");
  // skynet loads text only ("t"): a precompiled chunk is refused.
  EXPECT_EQ(lua_error("\x1bLua\x54"), "syntax error: attempt to load a binary chunk (mode is 't')");
}

TEST(ClusterNamesLua, EveryBadValueNamesTheKeyAndTheLine) {
  struct bad_case {
    const char* lua;
    const char* error;
  };
  const bad_case cases[] = {
      {"a = 2528\n", "a (line 1): expected \"host:port\" or false, got integer 2528"},
      {"a = 25.5\n", "a (line 1): expected \"host:port\" or false, got number 25.5"},
      {"a = {host = \"h\", port = 1}\n", "a (line 1): expected \"host:port\" or false, got a table"},
      {"a = function() end\n", "a (line 1): expected \"host:port\" or false, got a function"},
      {"a = true\n", "a (line 1): true is not an address: give \"host:port\", or false to mark the node down"},
      {"a = \"127.0.0.1:0\"\n", "a (line 1): the port must be between 1 and 65535, got \"127.0.0.1:0\""},
      {"a = \"127.0.0.1\"\n", "a (line 1): expected \"host:port\", got \"127.0.0.1\""},
      {"a = \"::1:2528\"\n", "a (line 1): an IPv6 address needs brackets, as \"[::1]:2528\", got \"::1:2528\""},
      {"a = \"bad host:80\"\n",
       "a (line 1): the host is not a valid IPv4 address or hostname, got \"bad host:80\""},
      {"a = \"false\"\n", "a (line 1): expected \"host:port\", got \"false\""},
      {"__nowaiting = 1\n", "__nowaiting (line 1): expected a boolean (true or false), got integer 1"},
      {"__nowaiting = \"yes\"\n", "__nowaiting (line 1): expected a boolean (true or false), got string \"yes\""},
      {"__nowait = true\n", "__nowait (line 1): unknown option (only __nowaiting is known)"},
      {"_ENV[\"\"] = \"h:1\"\n",
       "(document) (line 1): a node name must be 1 to 255 bytes and not start with \"__\", got \"\""},
      {"_ENV[1] = \"h:1\"\n", "(document) (line 1): keys must be strings, got integer 1"},
      {"_ENV[true] = \"h:1\"\n", "(document) (line 1): keys must be strings, got boolean true"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.lua);
    EXPECT_EQ(lua_error(c.lua), c.error);
  }
  const std::string long_name(256, 'n');
  EXPECT_EQ(lua_error("_ENV[\"" + long_name + "\"] = \"h:1\"\n"),
            "(document) (line 1): a node name must be 1 to 255 bytes and not start with \"__\", got \"" +
                std::string(40, 'n') + "...\"");
  EXPECT_EQ(lua_ok("_ENV[\"" + std::string(255, 'n') + "\"] = \"h:1\"\n").nodes.size(), 1u);
}

TEST(ClusterNamesLua, ListsAllProblemsInLineOrderWithTheLineThatSetEach) {
  EXPECT_EQ(lua_error(R"(good = "127.0.0.1:2528"
port0 = "127.0.0.1:2529"
down = false
up = true
__nowaiting = "true"
local function set(name, v)
  _ENV[name] = v
end
set("fromfunction", 5)
port0 = "127.0.0.1:0"
__reload = 1
)"),
            "up (line 4): true is not an address: give \"host:port\", or false to mark the node down\n"
            "__nowaiting (line 5): expected a boolean (true or false), got string \"true\"\n"
            "fromfunction (line 7): expected \"host:port\" or false, got integer 5\n"
            "port0 (line 10): the port must be between 1 and 65535, got \"127.0.0.1:0\"\n"
            "__reload (line 11): unknown option (only __nowaiting is known)");
}

TEST(ClusterNamesLua, NoLibrariesAreOpen) {
  struct bad_case {
    const char* lua;
    const char* error;
  };
  const bad_case cases[] = {
      {"print(\"hi\")\n", "(document) (line 1): attempt to call a nil value (global 'print')"},
      {"a = \"h:1\"\nos.exit(1)\n", "(document) (line 2): attempt to index a nil value (global 'os')"},
      {"require \"skynet\"\n", "(document) (line 1): attempt to call a nil value (global 'require')"},
      {"f = io.open(\"/etc/passwd\")\n", "(document) (line 1): attempt to index a nil value (global 'io')"},
      {"load(\"x = 1\")()\n", "(document) (line 1): attempt to call a nil value (global 'load')"},
      {"setmetatable(_ENV, {})\n", "(document) (line 1): attempt to call a nil value (global 'setmetatable')"},
      {"a = (\"x\"):rep(10)\n", "(document) (line 1): attempt to index a string value (constant 'x')"},
      {"a = string.rep(\"x\", 10)\n", "(document) (line 1): attempt to index a nil value (global 'string')"},
      {"\n\na = nil .. \"x\"\n", "(document) (line 3): attempt to concatenate a nil value"},
      {"_ENV[nil] = 1\n", "(document) (line 1): table index is nil"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.lua);
    EXPECT_EQ(lua_error(c.lua), c.error);
  }
  // What the chunk can see of the libraries: nothing.
  EXPECT_TRUE(lua_ok("a = print\nb = os\nc = _G\nd = _VERSION\n").nodes.empty());
}

TEST(ClusterNamesLua, AnEndlessLoopIsStoppedByTheInstructionLimit) {
  EXPECT_EQ(lua_error("a = \"h:1\"\nwhile true do end\n"),
            "(document) (line 2): the node table took too long (an endless loop?): more than 1000000 Lua instructions");
  EXPECT_EQ(lua_error("local function f()\n  return f()\nend\nf()\n"),  // a tail call never grows the stack
            "(document) (line 2): the node table took too long (an endless loop?): more than 1000000 Lua instructions");
  // The limit is the one given.
  EXPECT_EQ(load_cluster_names_lua("for i = 1, 100 do end\n", "t.lua", {.max_instructions = 50}).error(),
            "(document) (line 1): the node table took too long (an endless loop?): more than 50 Lua instructions");
  EXPECT_TRUE(load_cluster_names_lua("for i = 1, 100 do end\n", "t.lua", {.max_instructions = 1000}).has_value());
}

TEST(ClusterNamesLua, AGrowingStringIsStoppedByTheMemoryLimit) {
  EXPECT_EQ(lua_error("a = \"h:1\"\nlocal s = \"x\"\nwhile true do\n  s = s .. s\nend\n"),
            "(document) (line 4): the node table needs more than 16 MiB of memory (an endless table or string?)");
  EXPECT_EQ(lua_error("local s = \"x\"\nfor i = 1, 10 do s = s .. s end\nlocal t = {}\n"
                      "for i = 1, 100000 do t[i] = s .. i end  -- 1 KiB each\n"),
            "(document) (line 4): the node table needs more than 16 MiB of memory (an endless table or string?)");
  // Recursion that is not a tail call ends on the memory limit or Lua's own stack limit.
  const std::string deep = lua_error("local function f() return 1 + f() end\nf()\n");
  EXPECT_EQ(deep.rfind("(document) (line 1): ", 0), 0u) << deep;
}

TEST(ClusterNamesLua, ALargestTableLoadsWithinTheLimits) {
  // Nearly 1 MiB of plain entries: the size limit is what stops a table, not the others.
  std::string lua = "-- generated\n";
  int n = 0;
  while (lua.size() < names_file_max_bytes - 64) {
    lua += "node" + std::to_string(n) + " = \"10." + std::to_string(n / 65536 % 256) + "." +
           std::to_string(n / 256 % 256) + "." + std::to_string(n % 256) + ":2528\"\n";
    ++n;
  }
  const cluster_names t = lua_ok(lua);
  EXPECT_EQ(t.nodes.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(t.nodes.at("node300"), node("10.0.1.44", 2528));
}

TEST(IsLuaNamesFile, ByTheExtension) {
  EXPECT_TRUE(is_lua_names_file("clustername.lua"));
  EXPECT_TRUE(is_lua_names_file("/etc/game/clustername.lua"));
  EXPECT_FALSE(is_lua_names_file("clustername.yaml"));
  EXPECT_FALSE(is_lua_names_file("clustername.lua.yaml"));
  EXPECT_FALSE(is_lua_names_file("clustername"));
  EXPECT_FALSE(is_lua_names_file("lua"));
}

class ClusterNamesLuaFile : public test::temp_dir_test {};

TEST_F(ClusterNamesLuaFile, TheFileLoaderRunsADotLuaFile) {
  const auto path = dir_ / "clustername.lua";
  std::ofstream(path) << team_table;
  auto r = load_cluster_names_file(path.string());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->nodes.size(), 6u);
  EXPECT_TRUE(r->nowaiting);

  // The same text in a file named otherwise is YAML (and not valid YAML).
  const auto other = dir_ / "clustername.txt";
  std::ofstream(other) << team_table;
  EXPECT_FALSE(load_cluster_names_file(other.string()).has_value());
}

TEST_F(ClusterNamesLuaFile, ErrorsUseTheYamlFormat) {
  const auto path = dir_ / "clustername.lua";
  std::ofstream(path) << "a = \"h:1\"\nb = true\n";
  auto r = load_cluster_names_file(path.string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "b (line 2): true is not an address: give \"host:port\", or false to mark the node down");
  std::ofstream(path) << "a = \"h:1\"\nb = \"h:2\"\nc == \"h:3\"\n";
  EXPECT_EQ(load_cluster_names_file(path.string()).error(), "syntax error (line 3): syntax error near '=='");
}

TEST_F(ClusterNamesLuaFile, MissingFileIsOneError) {
  const std::string path = (dir_ / "absent.lua").string();
  EXPECT_EQ(load_cluster_names_file(path).error(), path + ": cannot open: No such file or directory");
}

TEST_F(ClusterNamesLuaFile, AHundredMegabyteFileIsRefusedByItsSize) {
  for (const char* name : {"clustername.lua", "clustername.yaml"}) {
    SCOPED_TRACE(name);
    const auto path = dir_ / name;
    { std::ofstream(path) << "a = \"h:1\"\n"; }
    std::filesystem::resize_file(path, std::uintmax_t{100} << 20);  // sparse: costs no disk
    EXPECT_EQ(load_cluster_names_file(path.string()).error(),
              path.string() + ": too big: 104857600 bytes (a node table may have at most 1048576 bytes); not read");
  }
  // One byte over is over; the limit itself loads.
  const auto path = dir_ / "edge.lua";
  std::ofstream(path) << "-- " << std::string(names_file_max_bytes - 4, 'x') << "\n";
  ASSERT_EQ(std::filesystem::file_size(path), names_file_max_bytes);
  EXPECT_TRUE(load_cluster_names_file(path.string()).has_value());
  std::filesystem::resize_file(path, names_file_max_bytes + 1);
  EXPECT_EQ(load_cluster_names_file(path.string()).error(),
            path.string() + ": too big: 1048577 bytes (a node table may have at most 1048576 bytes); not read");
}

// The example node tables are one table in two forms.
TEST(ExampleNodeTables, TheLuaAndTheYamlFormAreTheSameTable) {
  const std::string root = CSK_SOURCE_DIR;
  auto lua = load_cluster_names_file(root + "/examples/clustername.lua");
  auto yaml = load_cluster_names_file(root + "/examples/clustername.yaml");
  ASSERT_TRUE(lua.has_value()) << lua.error();
  ASSERT_TRUE(yaml.has_value()) << yaml.error();
  EXPECT_EQ(lua->nodes, yaml->nodes);
  EXPECT_EQ(lua->nowaiting, yaml->nowaiting);
  EXPECT_EQ(lua->nodes.size(), 3u);
}

}  // namespace
}  // namespace csk::test
