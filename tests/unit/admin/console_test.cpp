// The worker's console (worker/console.hpp), the operator's other window on the budgets:
// netstat's figures for a runtime whose memory budget is in a known state. No net, no
// cluster: those keys are null, the existing ones stay.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/actor/runtime.hpp"
#include "common/base/memory_budget.hpp"
#include "worker/console.hpp"

namespace csk::console {
namespace {

using json = nlohmann::json;

TEST(ConsoleNetstat, ShowsTheMemoryBudgetAsItIs) {
  memory_budget budget(1 << 20, 512 << 10);  // outlives the runtime
  actor::runtime_options ro;
  ro.budget = &budget;
  actor::runtime rt(ro);
  parts p;
  p.rt = &rt;
  p.gates = {"kv"};

  budget.charge(3 << 20);
  bool resumed = false;
  budget.when_below_low([&] { resumed = true; });  // a feeder paused for memory
  auto j = run(p, "netstat").value;
  EXPECT_EQ(j["budget"], json::parse(R"({"held":3145728,"high":1048576,"low":524288,"waiting":1,"pauses":1})"))
      << j.dump();
  EXPECT_TRUE(j["cluster"].is_null());
  EXPECT_EQ(j["gates"], json::array({".gate.kv"}));
  EXPECT_TRUE(j["net"].is_null()) << "no net attached to the runtime";

  budget.release(3 << 20);
  ASSERT_TRUE(resumed);
  j = run(p, "netstat").value;
  EXPECT_EQ(j["budget"]["held"], 0);
  EXPECT_EQ(j["budget"]["waiting"], 0);
  EXPECT_EQ(j["budget"]["pauses"], 1) << "a total, not a gauge";
}

TEST(ConsoleNetstat, NoBudgetIsNull) {
  actor::runtime rt;
  parts p;
  p.rt = &rt;
  const auto j = run(p, "netstat").value;
  EXPECT_TRUE(j["budget"].is_null()) << j.dump();
  const auto stat = run(p, "stat").value;
  EXPECT_EQ(stat["overload_refused"], 0) << stat.dump();
  EXPECT_EQ(stat["mailbox_pauses"], 0);
}

}  // namespace
}  // namespace csk::console
