// Case 6: one traced call crossing Lua -> C++ -> Lua, followed in the three logs.
//
//   client    a Lua skynet lab client: one case with trace=true calling cpp1's @relay
//   cpp1      a cppskynet node under its supervisor; its relay service (examples/service)
//             calls `cluster1`'s @echo, and its node table maps cluster1 to the Lua server
//   cluster1  a Lua skynet lab server
//
// skynet.trace in the client tags its coroutine T = ":%08x-N"; the client's cluster sender
// renames it T' = "(<host+pid>-cpp1-<session>)T" and sends it in a trace frame before the
// request. cpp1's agent follows the call (tracecall begin/end) and the relay's handler runs
// under T'; its own cluster call to cluster1 carries T' as it is (already in "(" form, so
// not renamed); cluster1's agent follows it too. Every side logs skynet's line
// "[:%08x] <TRACE tag> ns what", ns from CLOCK_MONOTONIC on both (one clock for the three
// processes), so the hops are also in time order across the logs.

#include <algorithm>
#include <regex>

#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

/// One trace line: "[:0000000a] <TRACE tag> ns what".
struct trace_line {
  std::string handle;
  std::string tag;
  std::int64_t ns = 0;
  std::string what;
};

/// Every trace line of a log, in its order (pure; other lines are skipped).
std::vector<trace_line> trace_lines(const std::string& log) {
  static const std::regex line(R"(\[(:[0-9a-f]{8})\] <TRACE ([^>]*)> ([0-9]+) ([^\n]*))");
  std::vector<trace_line> out;
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    out.push_back({(*it)[1].str(), (*it)[2].str(), std::stoll((*it)[3].str()), (*it)[4].str()});
  }
  return out;
}

/// The `what` of each line tagged `tag`, in order.
std::vector<std::string> hops(const std::vector<trace_line>& lines, const std::string& tag) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    if (l.tag == tag) out.push_back(l.what);
  }
  return out;
}

/// The first line tagged `tag` whose `what` is `what` (a line with ns -1 when none).
trace_line find(const std::vector<trace_line>& lines, const std::string& tag, const std::string& what) {
  for (const auto& l : lines) {
    if (l.tag == tag && l.what == what) return l;
  }
  return {"", tag, -1, what};
}

std::string dump(const std::vector<trace_line>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += "[" + l.handle + "] <" + l.tag + "> " + std::to_string(l.ns) + " " + l.what + "\n";
  }
  return out;
}

TEST(TraceLines, ParseSkynetsLinesAndOurs) {
  const auto lines = trace_lines(
      "[:00000008] TRACE nil\n"
      "[:00000008] <TRACE :00000008-1> 17086689669323 trace lab\n"
      "[2026-12-07 20:30:55.611] [info] [4468 worker.1] [actor] [:00000000] <TRACE (vm4491-cpp1-2):00000008-1> "
      "17086720566570 tracecall begin\n"
      "[:0000000a] <TRACE :00000008-1> 17086713313972 call : @lab_client.lua:70 @skynet.lua:375\n");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].handle, ":00000008");
  EXPECT_EQ(lines[0].tag, ":00000008-1");
  EXPECT_EQ(lines[0].ns, 17086689669323);
  EXPECT_EQ(lines[0].what, "trace lab");
  EXPECT_EQ(lines[1].handle, ":00000000");
  EXPECT_EQ(lines[1].tag, "(vm4491-cpp1-2):00000008-1");
  EXPECT_EQ(lines[1].what, "tracecall begin");
  EXPECT_EQ(lines[2].what, "call : @lab_client.lua:70 @skynet.lua:375");
  EXPECT_EQ(hops(lines, ":00000008-1"),
            (std::vector<std::string>{"trace lab", "call : @lab_client.lua:70 @skynet.lua:375"}));
  EXPECT_EQ(find(lines, ":00000008-1", "tracecall begin").ns, -1);
}

// The client's one case; the default node is cpp1.
constexpr const char* cases_lua = R"(-- written by tests/interop/trace_test.cpp
return {
  { name = "traced_relay", addr = "@relay", args = P("echo", "traced"), trace = true, expect = "ok" },
}
)";

class InteropTrace : public interop_test {
 protected:
  void SetUp() override {
    interop_test::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cluster1_ = start_server("cluster1", "cluster1");
    ASSERT_NE(cluster1_.node, nullptr);
    const fs::path names = dir_ / "clustername.lua";
    std::ofstream(names) << "-- written by tests/interop/trace_test.cpp\n"
                         << "cluster1 = \"127.0.0.1:" << cluster1_.port << "\"\n"
                         << "__nowaiting = true\n";
    // The relay's echo_node is cluster1 (its default); hello_node too, so that the table
    // needs no other node.
    cpp1_ = start_supervised(
        "cpp1", "runtime: {threads: 2, call_timeout_ms: 5000}\n"
                "log: {level: info}\n"
                "cluster: {self: cpp1, listen: \"127.0.0.1:0\", names_file: " + names.string() + "}\n"
                "services:\n"
                "  - {type: relay, args: [{echo_node: cluster1, hello_node: cluster1}]}\n");
    ASSERT_NE(cpp1_, nullptr);
  }

  /// Runs the client's traced case to its end; its log. The call must have succeeded.
  std::string run_traced_client() {
    const fs::path cases = dir_ / "trace_cases.lua";
    std::ofstream(cases) << cases_lua;
    std::string log;
    const std::string targets = "cpp1=127.0.0.1:" + std::to_string(cpp1_->port());
    const lab_report r =
        run_lab_client("client", lab_client_args(cases, "cpp1", out_of("client"), targets), log, scaled(30s));
    EXPECT_TRUE(r.done.has_value()) << log;
    EXPECT_EQ(r.done.value_or(json::object()).value("checks_passed", -1), 1) << r.problems() << log;
    const json* call = r.result("traced_relay");
    const json results = call != nullptr ? call->value("results", json::array()) : json::array();
    EXPECT_TRUE(results.size() == 1 && results[0].value("text", "") == "traced") << (call ? call->dump() : log);
    return log;
  }

  server_ref cluster1_;
  supervised_node* cpp1_ = nullptr;
};

TEST_F(InteropTrace, OneTagOnTheClientOurNodeAndTheLuaServer) {
  const std::string log = run_traced_client();
  ASSERT_FALSE(HasFailure());

  // The client: skynet.trace's tag T, and its sender's rename to T'.
  const auto client = trace_lines(log);
  std::string tag, renamed;
  for (const auto& l : client) {
    if (l.what == "trace lab") tag = l.tag;
    if (!tag.empty() && l.tag == tag && l.what.starts_with("session ")) renamed = l.what.substr(8);
  }
  ASSERT_TRUE(std::regex_match(tag, std::regex(":[0-9a-f]{8}-[0-9]+"))) << tag << "\n" << log;
  ASSERT_TRUE(renamed.starts_with("(") && renamed.ends_with(")" + tag)) << renamed << "\n" << log;
  EXPECT_TRUE(std::regex_match(renamed.substr(0, renamed.size() - tag.size()), std::regex(R"(\(.+-cpp1-[0-9]+\))")))
      << renamed;
  EXPECT_EQ(hops(client, renamed), std::vector<std::string>{"cluster cpp1"}) << dump(client);

  // Our node: the agent's tracecall around the relay's handler, whose cluster call goes
  // out under T' as it is (no "session" line: not renamed again).
  ASSERT_TRUE(cpp1_->sup().wait_for("tracecall end", 1, scaled(30s))) << cpp1_->output();
  const auto ours = trace_lines(cpp1_->output());
  EXPECT_EQ(hops(ours, renamed), (std::vector<std::string>{"tracecall begin", "request", "call", "cluster cluster1",
                                                           "resume", "response", "end", "tracecall end"}))
      << dump(ours);
  EXPECT_EQ(find(ours, renamed, "tracecall begin").handle, ":00000000");  // the agent is not a service
  EXPECT_EQ(hops(ours, tag), std::vector<std::string>{}) << "only the renamed tag crosses\n" << dump(ours);

  // The Lua server: its agent's tracecall around @echo's request, under the same T'.
  ASSERT_TRUE(cluster1_.node->wait_for("tracecall end", 1, scaled(30s))) << cluster1_.node->output();
  const auto lua = trace_lines(cluster1_.node->output());
  EXPECT_EQ(hops(lua, renamed),
            (std::vector<std::string>{"tracecall begin", "request", "response", "end", "tracecall end"}))
      << dump(lua);

  // One clock: each hop after the one that caused it.
  const std::vector<std::int64_t> in_order = {
      find(client, renamed, "cluster cpp1").ns,     find(ours, renamed, "tracecall begin").ns,
      find(ours, renamed, "cluster cluster1").ns,   find(lua, renamed, "tracecall begin").ns,
      find(lua, renamed, "tracecall end").ns,       find(ours, renamed, "resume").ns,
      find(ours, renamed, "tracecall end").ns,
  };
  EXPECT_TRUE(std::is_sorted(in_order.begin(), in_order.end()) && in_order.front() > 0)
      << "client:\n" << dump(client) << "ours:\n" << dump(ours) << "lua:\n" << dump(lua);
}

}  // namespace
}  // namespace csk::interop
