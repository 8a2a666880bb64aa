// A gate under the supervisor: `gates:` in the config, the listener bound by the supervisor
// ("gate:<name>"), adopted by the worker's gate service, served across a worker restart.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>

#include "tests/process/process_harness.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/raw_socket.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

class GateUnderSupervisor : public temp_dir_test {
 protected:
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
};

TEST_F(GateUnderSupervisor, WorkerAdoptsTheGateListenerAndTheNextWorkerServesIt) {
  write("names.yaml", "__nowaiting: true\n");
  write("node.yaml",
        "runtime:\n  threads: 2\n"
        "cluster:\n  self: n1\n  listen: \"127.0.0.1:0\"\n  names_file: names.yaml\n"
        "supervisor:\n  worker: " CSK_WORKER_BIN "\n  heartbeat_ms: 100\n  heartbeat_timeout_ms: 3000\n"
        "  restart_backoff_ms: 50\n  ready_timeout_ms: 20000\n"
        "services:\n  - type: kvstore\n    name: .kvstore\n"
        "gates:\n  - name: kv\n    listen: \"127.0.0.1:0\"\n    type: kv_gate\n    max_in_flight: 4\n");
  supervisor_process s(dir_);
  ASSERT_TRUE(s.wait_for("ready in")) << s.output();
  const std::string p = s.find(R"(listener gate:kv bound to 127\.0\.0\.1:(\d+))");
  ASSERT_FALSE(p.empty()) << s.output();
  const auto port = static_cast<std::uint16_t>(std::stoi(p));

  {
    line_client c(port);
    ASSERT_TRUE(c.connected());
    EXPECT_EQ(c.ask("SET k 41"), "OK");
    EXPECT_EQ(c.ask("INCR k"), "INTEGER 42");
  }
  EXPECT_NE(s.output().find("gate kv: kv_gate on the inherited listener"), std::string::npos) << s.output();

  // kill -9: the supervisor keeps the listening socket, so a client that connects during
  // the outage waits in the backlog and is served by the next worker.
  const pid_t first = s.worker_pid(1);
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  line_client during(port);
  ASSERT_TRUE(during.connected()) << "the listener never closes";
  EXPECT_EQ(during.ask("PING"), "PONG") << s.output();
  EXPECT_TRUE(s.wait_for("ready in", 2)) << s.output();
  EXPECT_EQ(during.ask("GET k"), "VALUE 42") << "the store recovered its journal (held by the supervisor)";
  s.proc().signal(SIGTERM);
  const auto st = s.proc().wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << s.output();
}

// The main job itself (examples/cluster1/config.yaml, copied with its node table so that
// its control socket lands in the temp dir; ports from the environment): SET on the kv
// gate, kill -9 of the worker, GET after the restart gives the value back.
TEST_F(GateUnderSupervisor, TheMainJobsKvGateKeepsASetAcrossKillNine) {
  namespace fs = std::filesystem;
  fs::create_directories(dir_ / "cluster1");
  fs::copy_file(fs::path(CSK_SOURCE_DIR) / "examples/cluster1/config.yaml", dir_ / "cluster1/config.yaml");
  for (const char* t : {"clustername.lua", "clustername.yaml"}) {
    fs::copy_file(fs::path(CSK_SOURCE_DIR) / "examples" / t, dir_ / t);
  }
  child_process sup({CSK_CLI_BIN, "run", "-c", (dir_ / "cluster1/config.yaml").string()}, dir_ / "supervisor.out",
                    {"CSK_CLUSTER_LISTEN=127.0.0.1:0", "CSK_GATE_KV_LISTEN=127.0.0.1:0",
                     "CSK_DEBUG_CONSOLE_LISTEN=127.0.0.1:0"});
  const auto output = [&] { return read_file(dir_ / "supervisor.out"); };
  const auto count = [&](const std::string& needle) {
    const std::string text = output();
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(eventually([&] { return count("ready in") >= 1; })) << output();
  std::smatch m;
  std::string text = output();
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(listener gate:kv bound to 127\.0\.0\.1:(\d+))"))) << text;
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(worker gen 1 started: pid (\d+))"))) << text;
  const pid_t worker = std::stoi(m[1].str());
  {
    line_client c(port);
    ASSERT_TRUE(c.connected());
    EXPECT_EQ(c.ask("SET player42 gold=100"), "OK");
  }
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return count("ready in") >= 2; })) << output();
  line_client after(port);
  ASSERT_TRUE(after.connected());
  EXPECT_EQ(after.ask("GET player42"), "VALUE gold=100") << output();
  EXPECT_NE(output().find("recovered 1 entities from the journal"), std::string::npos) << output();
  sup.signal(SIGTERM);
  const auto st = sup.wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << output();
}

// journal: {enabled: false}: the store lives in the worker only, as before the journal.
TEST_F(GateUnderSupervisor, WithoutTheJournalACrashLosesTheStore) {
  write("names.yaml", "__nowaiting: true\n");
  write("node.yaml",
        "runtime:\n  threads: 2\n"
        "cluster:\n  self: n1\n  listen: \"127.0.0.1:0\"\n  names_file: names.yaml\n"
        "supervisor:\n  worker: " CSK_WORKER_BIN "\n  restart_backoff_ms: 50\n"
        "journal: {enabled: false}\n"
        "services:\n  - type: kvstore\n    name: .kvstore\n"
        "gates:\n  - name: kv\n    listen: \"127.0.0.1:0\"\n    type: kv_gate\n");
  supervisor_process s(dir_);
  ASSERT_TRUE(s.wait_for("ready in")) << s.output();
  const auto port = static_cast<std::uint16_t>(std::stoi(s.find(R"(listener gate:kv bound to 127\.0\.0\.1:(\d+))")));
  {
    line_client c(port);
    EXPECT_EQ(c.ask("SET k 1"), "OK");
  }
  ASSERT_EQ(::kill(s.worker_pid(1), SIGKILL), 0);
  ASSERT_TRUE(s.wait_for("ready in", 2)) << s.output();
  line_client after(port);
  EXPECT_EQ(after.ask("GET k"), "NIL");
  EXPECT_NE(s.output().find("entity journal off: journal.enabled is false"), std::string::npos) << s.output();
}

// The hot upgrade of the main job's shape (cppskynet-worker, the kv gate and its entity
// store): the client's connection is handed to the new worker, with the half line it had
// sent, and the data comes along.
TEST_F(GateUnderSupervisor, UpgradeHandsTheGateConnectionOverWithItsData) {
  write("names.yaml", "__nowaiting: true\n");
  const std::string socket = (dir_ / "ctl.sock").string();
  write("node.yaml",
        "runtime:\n  threads: 2\n"
        "cluster:\n  self: n1\n  listen: \"127.0.0.1:0\"\n  names_file: names.yaml\n"
        "supervisor:\n  worker: " CSK_WORKER_BIN "\n  control_socket: " + socket + "\n"
        "services:\n  - type: kvstore\n    name: .kvstore\n"
        "gates:\n  - name: kv\n    listen: \"127.0.0.1:0\"\n    type: kv_gate\n");
  supervisor_process s(dir_);
  ASSERT_TRUE(s.wait_for("ready in")) << s.output();
  const std::string p = s.find(R"(listener gate:kv bound to 127\.0\.0\.1:(\d+))");
  ASSERT_FALSE(p.empty()) << s.output();
  const auto port = static_cast<std::uint16_t>(std::stoi(p));
  line_client c(port);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.ask("SET k 41"), "OK");
  ASSERT_TRUE(c.send_raw("INCR "));  // half a line, sent before the upgrade
  const pid_t old_pid = s.worker_pid(1);
  child_process up({CSK_CLI_BIN, "upgrade", "--socket", socket}, dir_ / "upgrade.out");
  const auto st = up.wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << read_file(dir_ / "upgrade.out") << s.output();
  EXPECT_NE(read_file(dir_ / "upgrade.out").find("connections  1 handed over"), std::string::npos)
      << read_file(dir_ / "upgrade.out");
  EXPECT_TRUE(process_gone(old_pid));
  EXPECT_EQ(c.ask("k"), "INTEGER 42") << "the rest of the line, to the new worker, same connection";
  EXPECT_EQ(c.ask("GET k"), "VALUE 42");
  line_client fresh(port);
  ASSERT_TRUE(fresh.connected());
  EXPECT_EQ(fresh.ask("GET k"), "VALUE 42");
  EXPECT_NE(s.output().find("worker gen 2"), std::string::npos);
}

}  // namespace
}  // namespace csk::test
