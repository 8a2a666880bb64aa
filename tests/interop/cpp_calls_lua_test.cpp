// Case 2: cppskynet calling and pushing to a real Lua skynet node (`skynode server`:
// lab_server.lua), from a cluster::node inside the test process, so each value that comes
// back is checked as Lua sees it: every value type and boundary, multi-part requests and
// answers, every way of naming the target, remote and local errors, pushes, empty replies.

#include <cmath>
#include <limits>

#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

using actor::values;
using wire::target;

/// {{{...{}...}}}: `depth` tables, each the only element of the one around it.
lua_value nested(int depth) {
  lua_value t = lua_table{};
  for (int i = 1; i < depth; ++i) t = lua_table({t});
  return t;
}

/// `n` bytes of `c` with a NUL and a 0xff inside (when long enough for both).
std::string bytes_with_nuls(std::size_t n, char c) {
  std::string s(n, c);
  if (n >= 3) {
    s[1] = '\0';
    s[n / 2] = '\xff';
    s[n - 1] = '\0';
  }
  return s;
}

class InteropCppCallsLua : public interop_test {
 protected:
  void SetUp() override {
    interop_test::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    server_ = start_server("skynet1", "skynet1");
    ASSERT_NE(server_.node, nullptr);
    caller_ = std::make_unique<inproc_node>("", scaled(10s));
    cluster_names t;
    t.nodes["skynet1"] = cluster_node_address{"127.0.0.1", server_.port};
    t.nodes["down"] = std::nullopt;                                     // `down = false`
    t.nodes["deaf"] = cluster_node_address{"127.0.0.1", reserve_port()};  // nobody listens
    t.nowaiting = true;
    caller_->node->reload(t);
  }
  void TearDown() override {
    caller_.reset();
    interop_test::TearDown();
  }

  actor::call_result call(const std::string& to, values args) {
    return caller_->call("skynet1", target::named(to), std::move(args));
  }
  /// @echo gives `args` back, each value the same to Lua.
  void expect_echo(const values& args, const wire::target& to = target::named("@echo")) {
    auto r = caller_->call("skynet1", to, args);
    ASSERT_TRUE(r.has_value()) << r.error().text << "\nsent " << describe(args);
    ASSERT_EQ(r->size(), args.size()) << "sent " << describe(args) << "\ngot " << describe(*r);
    for (std::size_t i = 0; i < args.size(); ++i) {
      EXPECT_TRUE(lua_same(args[i], (*r)[i])) << "value " << i << ": sent " << args[i].debug_string().substr(0, 300)
                                              << "\ngot " << (*r)[i].debug_string().substr(0, 300);
    }
  }

  server_ref server_;
  std::unique_ptr<inproc_node> caller_;
};

TEST_F(InteropCppCallsLua, EveryLuaValueTypeComesBackTheSame) {
  constexpr auto imax = std::numeric_limits<std::int64_t>::max();
  constexpr auto imin = std::numeric_limits<std::int64_t>::min();
  constexpr double inf = std::numeric_limits<double>::infinity();
  expect_echo({});
  expect_echo({nullptr});
  expect_echo({"x", nullptr, nullptr});  // trailing nils are values too
  expect_echo({true, false});
  // seri's integer forms: zero, byte, word, dword, qword, at each edge
  expect_echo({0, 1, 255, 256, 65535, 65536, 2147483647, std::int64_t{2147483648}, -1, -255, -256,
               std::int64_t{-2147483648}, std::int64_t{-2147483649}, std::int64_t{1} << 62, imax, imin});
  expect_echo({3.5, 1.0, -0.0, 0.0, 0.1, 1e300, -1e-300, 5e-324, inf, -inf, std::numeric_limits<double>::quiet_NaN(),
               std::numeric_limits<double>::max()});
  // short strings (< 32 bytes), 2-byte lengths (< 65536), 4-byte lengths; NULs and 0xff inside
  expect_echo({"", std::string("\0\1\2\0\xff", 5), bytes_with_nuls(31, 'a'), bytes_with_nuls(32, 'b'),
               bytes_with_nuls(33, 'c'), bytes_with_nuls(65535, 'd')});
  expect_echo({bytes_with_nuls(65536, 'e'), bytes_with_nuls(65537, 'f')});
  lua_table mixed({"a", "b"});
  mixed.set("k", "v");
  lua_table keys;
  keys.set(10, "ten").set(1.5, "f").set(true, 0).set("", "empty key");
  lua_table deep;
  deep.set("a", lua_table().set("b", lua_table().set("c", "deep")));
  lua_table holes({1, nullptr, 3});
  std::vector<lua_value> arr40;
  for (int i = 1; i <= 40; ++i) arr40.emplace_back(i * 1000);
  expect_echo({lua_table{}, lua_table({1, 2, 3}), lua_table().set("x", 1).set("y", "z"), mixed, keys, deep, holes,
               lua_table(arr40)});
  expect_echo({nested(33)});
  expect_echo({nested(2), lua_table({nested(10), lua_table().set("t", nested(20))})});
}

// Requests and answers of more than 32 KiB go in parts (skynet's split, both ways).
TEST_F(InteropCppCallsLua, MultiPartRequestsAndAnswersBothWays) {
  // A string argument of n bytes packs to n + 3: 32765 is the last single-part request.
  for (std::size_t n : {32764u, 32765u, 32766u, 32767u, 100000u, 1u << 20}) expect_echo({std::string(n, 'M')});
  expect_echo({bytes_with_nuls(200000, 'D'), 7, lua_table({bytes_with_nuls(40000, 'T')})});
  for (std::int64_t n : {32764, 32765, 32766, 70000, 1 << 20}) {
    auto r = call("@gen", {n, "G"});
    ASSERT_TRUE(r.has_value()) << r.error().text;
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ(r->at(0).as_string(), std::string(static_cast<std::size_t>(n), 'G')) << n;
  }
  // A multi-part push, then a call behind it on the same connection.
  ASSERT_TRUE(call("@counter", {"reset"}).has_value());
  EXPECT_TRUE(caller_->node->send("skynet1", target::named("@counter"), {"inc", std::string(70000, 'P')}));
  auto got = call("@counter", {"get"});
  ASSERT_TRUE(got.has_value()) << got.error().text;
  EXPECT_EQ(got->at(0).as_integer(), 1);
}

TEST_F(InteropCppCallsLua, EveryWayOfNamingTheTargetReachesIt) {
  auto q = caller_->call("skynet1", target::handle(0), {"echo"});  // cluster.query
  ASSERT_TRUE(q.has_value()) << q.error().text;
  ASSERT_TRUE(q->at(0).is_integer()) << describe(*q);
  const auto h = static_cast<std::uint32_t>(q->at(0).as_integer());
  char hex[16];
  std::snprintf(hex, sizeof hex, ":%08x", h);
  // The handle lab_server printed when it started: "echo=10(:0000000a)".
  EXPECT_GT(server_.node->count("echo=" + std::to_string(h) + "(" + hex + ")"), 0u) << server_.node->output();
  for (const auto& to : {target::named("@echo"), target::named(".echo"), target::handle(h), target::named(hex)}) {
    expect_echo({"by", to.by_name ? to.name : std::string(hex), 42}, to);
  }
  auto missing = caller_->call("skynet1", target::handle(0), {"no_such_service"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().text, "name not found");  // clusteragent.lua's words
}

// Each failure comes back at once (well inside the call timeout) with the text of
// whoever failed it, and the connection keeps serving.
TEST_F(InteropCppCallsLua, ErrorsComeBackAtOnceWithTheirText) {
  const auto fails_fast = [&](const std::string& node, const std::string& to, values args) {
    const auto t0 = test::steady::now();
    auto r = caller_->call(node, target::named(to), std::move(args));
    EXPECT_LT(test::steady::now() - t0, scaled(2s)) << node << " " << to;
    EXPECT_FALSE(r.has_value()) << node << " " << to;
    return r ? std::string() : r.error().text;
  };
  // @fail raises in the Lua service: skynet answers the cluster call with the error its
  // clusteragent caught (skynet.call's "call failed", with the place it was raised).
  EXPECT_TRUE(fails_fast("skynet1", "@fail", {"boom"}).ends_with("call failed"));
  EXPECT_EQ(fails_fast("skynet1", "@no_such_service", {1}), "Invalid name");  // clusteragent.lua
  EXPECT_EQ(fails_fast("nowhere", "@echo", {1}), "cluster node nowhere is absent");
  EXPECT_EQ(fails_fast("down", "@echo", {1}), "cluster node down is down");
  EXPECT_NE(fails_fast("deaf", "@echo", {1}), "");  // connection refused
  EXPECT_FALSE(caller_->node->send("down", target::named("@echo"), {"lost"}));
  expect_echo({"still serving"});
}

TEST_F(InteropCppCallsLua, PushesArriveInOrderBeforeALaterCall) {
  ASSERT_TRUE(call("@counter", {"reset"}).has_value());
  constexpr int pushes = 200;
  for (int i = 0; i < pushes; ++i) ASSERT_TRUE(caller_->node->send("skynet1", target::named("@counter"), {"inc", i}));
  auto got = call("@counter", {"get"});
  ASSERT_TRUE(got.has_value()) << got.error().text;
  EXPECT_EQ(got->at(0).as_integer(), pushes);
  // @echo logs what it was pushed, as the lab's typed JSON.
  EXPECT_TRUE(caller_->node->send("skynet1", target::named("@echo"), {"pushed from C++", 7}));
  EXPECT_TRUE(server_.node->wait_for(R"("text":"pushed from C++"},{"t":"int","v":"7")", 1, 10s))
      << server_.node->output();
}

TEST_F(InteropCppCallsLua, NoretAnswersWithNoValues) {
  auto r = call("@noret", {"anything", 1});
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_TRUE(r->empty()) << describe(*r);
}

}  // namespace
}  // namespace csk::interop
