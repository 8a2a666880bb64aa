// Case 1: the skynet peer's generic interop cases (lab/cases/interop_basic.lua: every value
// type, multi-part sizes around 32 KiB, pushes, query, handles, a traced call, parallel
// calls) from a real Lua skynet client against the examples' cppskynet node under its
// supervisor, as the main job runs it (tools/run.sh: examples/cluster1/config.yaml).

#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

class InteropBasic : public interop_test {};

TEST_F(InteropBasic, LuaClientPassesEveryCheckAgainstTheExampleNode) {
  supervised_node* node = start_example();
  ASSERT_NE(node, nullptr);
  const fs::path cases = peer_.cases("interop_basic.lua");
  const std::size_t checks = expected_checks(cases);
  ASSERT_GE(checks, 21u) << cases;  // the peer's README: 21 checks

  std::string log;
  const auto target = "cluster1=127.0.0.1:" + std::to_string(node->port());
  const lab_report r = run_lab_client("client", lab_client_args(cases, "cluster1", out_of("client"), target), log,
                                      scaled(60s));
  ASSERT_TRUE(r.done.has_value()) << log;
  EXPECT_EQ(r.done->value("checks_failed", -1), 0) << r.problems() << log;
  EXPECT_EQ(r.done->value("checks_passed", -1), static_cast<int>(checks)) << r.problems() << log;
  EXPECT_EQ(r.problems(), "");
  // The cases without a check did what they should too.
  for (const char* name : {"push_echo", "push_large", "push_unknown_name"}) {
    const json* push = r.result(name);
    ASSERT_NE(push, nullptr) << name << "\n" << log;
    EXPECT_TRUE(push->value("sent", false)) << push->dump();
  }
  const json* query = r.result("query_echo");
  ASSERT_NE(query, nullptr) << log;
  EXPECT_TRUE(query->value("ok", false)) << query->dump();
  std::size_t parallel = 0;
  for (const auto& res : r.results) {
    if (res.value("name", "").starts_with("parallel_calls/") && res.value("ok", false)) ++parallel;
  }
  EXPECT_EQ(parallel, 3u) << log;
}

}  // namespace
}  // namespace csk::interop
