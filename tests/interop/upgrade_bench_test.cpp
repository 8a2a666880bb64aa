// Case 3: a Lua skynet caller that keeps calling across hot upgrades sees no failure.
// The lab's bench role (16 coroutines, cluster.call of @echo one after another, every call
// counted: no warm-up) calls the examples' node under its supervisor while the test runs
// `cppskynet upgrade` three times, each to another worker binary (cppskynet-node and
// cppskynet-worker are one program under two names), each moving the bench's connection.

#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

// How long the bench calls: longer than the wait for its connection (up to a heartbeat,
// 1 s) and the three upgrades. Measured with three ctest jobs: all done after 1.5 s in the
// dev build, after 8-10 s under ASan (each `cppskynet upgrade` 2-3 s end to end). If the
// bench ends first, the last upgrades find no connection to hand over and the test fails.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int bench_secs = 20;
#else
constexpr int bench_secs = 5;
#endif

class InteropUpgrade : public interop_test {};

TEST_F(InteropUpgrade, LuaCallerSeesNoErrorAcrossThreeUpgrades) {
  supervised_node* node = start_example();
  ASSERT_NE(node, nullptr);
  const auto secs = std::to_string(bench_secs);
  lua_node& bench = start_lua("bench", {"bench", "--targets", "cluster1=127.0.0.1:" + std::to_string(node->port()),
                                        "--set", "lab_bench_conc=16", "--set", "lab_bench_secs=" + secs, "--set",
                                        "lab_bench_warm=0", "--out", out_of("bench").string()});
  const auto started = test::steady::now();
  const auto since = [&] {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(test::steady::now() - started).count()) +
           " ms";
  };
  // The bench is calling once the worker has its connection (heartbeat counters).
  const auto connections = [&] {
    const auto s = node->status();
    if (!s.is_object() || s["workers"].empty()) return 0;
    return s["workers"][0]["heartbeat"].value("connections", 0);
  };
  ASSERT_TRUE(eventually([&] { return connections() >= 1 || !bench.running(); }, scaled(30s))) << node->output();
  ASSERT_TRUE(bench.running()) << bench.output();
  std::string timeline = "connected " + since();

  const std::vector<std::string> workers{CSK_NODE_BIN, CSK_WORKER_BIN, CSK_NODE_BIN};
  std::vector<pid_t> pids;
  std::string took;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto r = node->cli({"upgrade", "--worker", workers[i], "--json"});
    ASSERT_EQ(r.exit_code, 0) << "upgrade " << i + 1 << ": " << r.output;
    const json v = json::parse(r.output, nullptr, false);
    ASSERT_TRUE(v.is_object()) << r.output;
    EXPECT_TRUE(v.value("ok", false)) << r.output;
    EXPECT_GE(v.value("connections", 0), 1) << "the bench's connection was not handed over (the bench ended? "
                                               << timeline << "): " << r.output;
    EXPECT_EQ(v.value("worker", ""), workers[i]) << r.output;
    EXPECT_NE(v.value("from_pid", 0), v.value("to_pid", 0)) << r.output;
    pids.push_back(v.value("to_pid", 0));
    took += (took.empty() ? "" : ", ") + std::to_string(v.value("elapsed_ms", 0)) + " ms";
    timeline += ", upgrade " + std::to_string(i + 1) + " done " + since();
  }
  ASSERT_TRUE(bench.running()) << "the bench ended before the third upgrade (lengthen bench_secs): " << timeline << "\n"
                               << bench.output();

  const auto st = bench.wait_exit(scaled(30s));
  ASSERT_TRUE(st.has_value()) << bench.output();
  const auto lines = read_jsonl(out_of("bench"));
  ASSERT_EQ(lines.size(), 1u) << bench.output();
  const json& b = lines[0];
  EXPECT_EQ(b.value("errors", -1), 0) << b.dump();
  EXPECT_GT(b.value("calls", 0), 0) << b.dump();
  std::cout << "bench across 3 upgrades (" << took << "; " << timeline << "): " << b.dump() << "\n";

  const auto s = node->status();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upgrades"].value("ok", 0), 3) << s.dump();
  EXPECT_EQ(s["upgrades"].value("failed", -1), 0) << s.dump();
  EXPECT_EQ(s["workers"][0].value("pid", 0), pids.back()) << s.dump();
  EXPECT_EQ(node->sup().count("exited with code 0: handed over to its successor"), 3u) << node->output();
}

}  // namespace
}  // namespace csk::interop
