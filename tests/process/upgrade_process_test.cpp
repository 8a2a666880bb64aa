// Hot upgrade with real processes: `cppskynet run` serving the upgrade test worker
// (upgrade_worker.cpp), a client on ONE skynet-protocol TCP connection calling
// continuously, and `cppskynet upgrade` run as the operator would.
//
//   - 20 upgrades in a row under load: no failed call, no refused connection, the client's
//     connection never closes (no reconnect), every increment is counted exactly, and the
//     worker's pid changes each time;
//   - a multi-part request half sent when the upgrade starts completes after it, on the
//     same connection;
//   - rollback: a new worker that crashes at start, one whose restore fails, one whose
//     entity version the old snapshots cannot satisfy, one that hangs past the budget,
//     and a freeze whose in-flight call outlasts the budget: each leaves the old worker
//     serving with its state, and the command fails with the reason.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/skynet_client.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Runs `cppskynet ARGS...` to completion.
command_result cppskynet(const fs::path& dir, std::vector<std::string> args, const std::string& tag) {
  args.insert(args.begin(), CSK_CLI_BIN);
  return run_command(args, dir, tag);
}

class Upgrade : public temp_dir_test {
 protected:
  void start(const std::string& extra_supervisor = "", std::uint32_t upgrade_timeout_ms = 20000,
             std::uint32_t call_timeout_ms = 20000) {
    socket_ = (dir_ / "ctl.sock").string();
    std::ofstream(dir_ / "names.yaml") << "up: \"127.0.0.1:1\"\n";  // the listen below wins
    std::ofstream(dir_ / "node.yaml")
        << "runtime: {threads: 2, call_timeout_ms: " << call_timeout_ms << "}\n"
        << "log: {level: info}\n"
        << "cluster: {self: up, listen: \"127.0.0.1:0\", names_file: names.yaml}\n"
        << "services:\n"
        << "  - {type: \"entity:test.tally\", names: [\"@tally\", .tally], args: [{id: tallies}]}\n"
        << "  - {type: echo, names: [\"@echo\"]}\n"
        << "  - {type: slow, names: [\"@slow\"]}\n"
        << "  - {type: boots}\n"
        << "supervisor:\n"
        << "  worker: " << CSK_UPGRADE_WORKER_BIN << "\n"
        << "  control_socket: " << socket_ << "\n"
        << "  upgrade_timeout_ms: " << upgrade_timeout_ms << "\n"
        << extra_supervisor << "admin: {listen: \"127.0.0.1:0\"}\n";
    sup_.emplace(dir_);
    ASSERT_TRUE(sup_->wait_for("ready in")) << sup_->output();
    port_ = sup_->cluster_port();
    ASSERT_NE(port_, 0) << sup_->output();
    const std::string a = sup_->find(R"(listener admin bound to 127\.0\.0\.1:(\d+))");
    ASSERT_FALSE(a.empty()) << sup_->output();
    admin_port_ = static_cast<std::uint16_t>(std::stoi(a));
  }
  void TearDown() override {
    if (sup_) {
      sup_->proc().signal(SIGTERM);
      EXPECT_TRUE(sup_->proc().wait_exit().has_value());
      sup_.reset();
    }
    temp_dir_test::TearDown();
  }

  command_result upgrade(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"upgrade", "--socket", socket_, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return cppskynet(dir_, args, std::to_string(++commands_));
  }
  json status() {
    auto r = cppskynet(dir_, {"status", "--socket", socket_, "--json"}, std::to_string(++commands_));
    return json::parse(r.output, nullptr, false);
  }
  // A wrapper program: the test worker with CSK_TEST_FAULT set (only the new worker runs it).
  std::string faulty_worker(const std::string& fault, const std::string& binary = CSK_UPGRADE_WORKER_BIN) {
    const fs::path p = dir_ / ("worker-" + fault + ".sh");
    std::ofstream(p) << "#!/bin/sh\nCSK_TEST_FAULT=" << fault << " exec " << binary << " \"$@\"\n";
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }
  pid_t serving_pid() {
    const json s = status();
    if (!s.is_object() || s["workers"].size() != 1) return -1;
    return s["workers"][0]["pid"].get<pid_t>();
  }

  // The rollback check: the command failed naming `why`, the same worker serves the same
  // state (the counter goes on from `before`), and no other worker is left.
  void expect_rolled_back(const command_result& r, const std::string& why, pid_t old_pid, skynet_client& c,
                          std::int64_t before) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
    auto a = c.call("@tally", {"mutate", "k", "incr"});
    ASSERT_TRUE(a.ok) << a.error;
    EXPECT_EQ(a.values.at(0).as_integer(), before + 1);
    EXPECT_EQ(serving_pid(), old_pid);
    skynet_client fresh(port_);
    ASSERT_TRUE(fresh.connected());
    auto g = fresh.call("@tally", {"get", "k"});
    ASSERT_TRUE(g.ok) << g.error;
    EXPECT_EQ(g.values.at(0).as_table().find("n")->as_integer(), before + 1);
  }

  std::optional<supervisor_process> sup_;
  std::string socket_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::atomic<int> commands_{0};  // upgrade() may run on two threads
};

TEST_F(Upgrade, TwentyUpgradesUnderLoadLoseNothing) {
  start();
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> increments{0}, failures{0}, fresh_ok{0}, refused{0};
  std::string first_failure;
  std::mutex mu;
  // The caller: one connection for the whole test, one call after another.
  std::thread caller([&] {
    skynet_client c(port_);
    if (!c.connected()) {
      ++failures;
      return;
    }
    std::int64_t expect = 1;
    while (!stop) {
      auto a = c.call("@tally", {"mutate", "hits", "incr"});
      if (!a.ok || a.values.at(0).as_integer() != expect) {
        std::lock_guard lock(mu);
        if (first_failure.empty()) {
          first_failure = a.ok ? "got " + std::to_string(a.values.at(0).as_integer()) + ", expected " + std::to_string(expect)
                               : a.error;
        }
        ++failures;
        if (a.closed) return;  // a reconnect would be a failure anyway
        continue;
      }
      ++expect;
      ++increments;
    }
  });
  // New connections all along: none may be refused.
  std::thread connector([&] {
    while (!stop) {
      skynet_client c(port_);
      if (!c.connected()) {
        ++refused;
        continue;
      }
      auto a = c.call("@echo", {"hi"});
      if (a.ok) {
        ++fresh_ok;
      } else {
        std::lock_guard lock(mu);
        if (first_failure.empty()) first_failure = "fresh connection: " + a.error;
        ++failures;
      }
    }
  });
  // On any early return (a failed ASSERT) the clients stop and are joined, so TearDown
  // still stops the supervisor (a joinable std::thread would terminate the test).
  struct joiner {
    std::atomic<bool>& stop;
    std::thread& a;
    std::thread& b;
    ~joiner() {
      stop = true;
      if (a.joinable()) a.join();
      if (b.joinable()) b.join();
    }
  } join_clients{stop, caller, connector};
  ASSERT_TRUE(eventually([&] { return increments > 100; }));
  std::vector<pid_t> pids{serving_pid()};
  std::vector<double> frozen_ms;
  for (int i = 0; i < 20; ++i) {
    const auto before = increments.load();
    auto r = upgrade();
    ASSERT_EQ(r.exit_code, 0) << "upgrade " << i + 1 << ": " << r.output;
    const json v = json::parse(r.output, nullptr, false);
    ASSERT_TRUE(v.is_object()) << r.output;
    EXPECT_TRUE(v["ok"].get<bool>());
    EXPECT_EQ(v["from_pid"].get<pid_t>(), pids.back());
    EXPECT_NE(v["to_pid"].get<pid_t>(), pids.back());
    EXPECT_EQ(v["connections"].get<int>() >= 1, true) << r.output;  // at least the caller's
    pids.push_back(v["to_pid"].get<pid_t>());
    frozen_ms.push_back(v["frozen_us"].get<double>() / 1000.0);
    // The load goes on between upgrades (the caller is not stuck).
    ASSERT_TRUE(eventually([&] { return increments > before + 20; })) << "upgrade " << i + 1;
  }
  stop = true;
  caller.join();
  connector.join();
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_EQ(refused, 0);
  EXPECT_GT(fresh_ok, 0);
  // Exactly the increments the caller saw succeed, no more, no less.
  skynet_client check(port_);
  auto g = check.call("@tally", {"get", "hits"});
  ASSERT_TRUE(g.ok) << g.error;
  EXPECT_EQ(g.values.at(0).as_table().find("n")->as_integer(), increments.load());
  EXPECT_EQ(pids.back(), serving_pid());
  // Every old worker exited cleanly after handing over (a sanitizer report would make it
  // exit non-zero).
  EXPECT_EQ(sup_->count("exited with code 0: handed over to its successor"), 20u) << sup_->output();
  EXPECT_EQ(sup_->count("Sanitizer"), 0u) << sup_->output();
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(std::unique(pids.begin(), pids.end()), pids.end()) << "a pid came back";
  double worst = 0;
  for (double f : frozen_ms) worst = std::max(worst, f);
  std::cout << "20 upgrades: " << increments << " increments, " << fresh_ok << " fresh connections; longest freeze "
            << worst << " ms (as the old worker measured it)\n";
}

// The new worker's system services start once it serves: "boots" increments a tally in
// its start(), which during the transfer would meet a sealed (or not yet filled) store.
TEST_F(Upgrade, SystemServicesOfTheNewWorkerStartOnceItServes) {
  start();
  skynet_client c(port_);
  const auto boots = [&] {
    auto g = c.call("@tally", {"get", "boots"});
    if (!g.ok || !g.values.at(0).is_table()) return std::int64_t{-1};
    return g.values.at(0).as_table().find("n")->as_integer();
  };
  EXPECT_TRUE(eventually([&] { return boots() == 1; })) << sup_->output();
  for (int gen = 2; gen <= 3; ++gen) {
    auto up = upgrade();
    ASSERT_EQ(up.exit_code, 0) << up.output;
    EXPECT_TRUE(eventually([&] { return boots() == gen; })) << "generation " << gen << "\n" << sup_->output();
  }
  EXPECT_EQ(sup_->output().find("boots: "), std::string::npos) << sup_->output();
  EXPECT_NE(sup_->output().find("3 system services started"), std::string::npos) << sup_->output();
}

TEST_F(Upgrade, HalfReceivedMultiPartRequestCompletesAfterTheSwap) {
  start();
  skynet_client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string big(100000, 'x');  // 4 frames: header + 3 parts (32 KiB each, then the rest)
  const std::uint32_t s = c.take_session();
  ASSERT_TRUE(c.send_call(s, "@echo", {big, 42}, 2));  // the header and the first part
  // Make sure the old worker has read them: a call on another connection is served after.
  skynet_client other(port_);
  ASSERT_TRUE(other.call("@echo", {"sync"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(serving_pid(), old_pid);
  ASSERT_TRUE(c.send_call(s, "@echo", {big, 42}, SIZE_MAX, 2));  // the rest, to the new worker
  auto a = c.read_answer(s);
  ASSERT_TRUE(a.ok) << a.error;
  ASSERT_EQ(a.values.size(), 2u);
  EXPECT_EQ(a.values[0].as_string(), big);
  EXPECT_EQ(a.values[1].as_integer(), 42);
  auto again = c.call("@echo", {"same connection"});  // and the connection goes on
  ASSERT_TRUE(again.ok) << again.error;
}

TEST_F(Upgrade, NewWorkerThatCrashesAtStartIsRolledBack) {
  start();
  skynet_client c(port_);
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade({"--worker", faulty_worker("crash")});
  expect_rolled_back(r, "killed by signal 6", old_pid, c, 1);
}

TEST_F(Upgrade, NewWorkerWhoseRestoreFailsIsRolledBack) {
  start();
  skynet_client c(port_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade({"--worker", faulty_worker("fail_restore")});
  expect_rolled_back(r, "cannot read a tally", old_pid, c, 3);
}

TEST_F(Upgrade, IncompatibleEntityVersionIsRefusedBeforeAnyDataMoves) {
  start();
  skynet_client c(port_);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade({"--worker", CSK_UPGRADE_WORKER_V9_BIN});
  expect_rolled_back(r, "snapshot version 1 is older than the oldest version this binary reads (9", old_pid, c, 2);
  EXPECT_NE(r.output.find("refused"), std::string::npos) << r.output;
}

TEST_F(Upgrade, NewWorkerThatHangsPastTheBudgetIsRolledBack) {
  start();
  skynet_client c(port_);
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade({"--worker", faulty_worker("hang_restore"), "--timeout", "1.5"});
  expect_rolled_back(r, "timed out", old_pid, c, 1);
  const json s = status();
  EXPECT_EQ(s["upgrades"]["failed"].get<int>(), 1);
}

TEST_F(Upgrade, CallThatOutlastsTheFreezeAbandonsTheUpgradeAndIsStillAnswered) {
  start();
  skynet_client c(port_), slow(port_);
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const std::uint32_t s = slow.take_session();
  ASSERT_TRUE(slow.send_call(s, "@slow", {3000}));
  // Answered on the same connection, which the node reads in order: the slow call is in
  // flight now. (Another connection's answer proved nothing: on a busy machine the slow
  // request could still wait in its socket at the freeze, and go over with it.)
  ASSERT_TRUE(slow.call("@echo", {"sync"}).ok);
  const pid_t old_pid = serving_pid();
  auto r = upgrade({"--timeout", "1"});
  expect_rolled_back(r, "in flight", old_pid, c, 1);
  auto a = slow.read_answer(s);  // answered on its connection after the rollback
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.values.at(0).as_integer(), 3000);
  // And a later upgrade, with nothing in flight, succeeds.
  auto ok = upgrade();
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  auto after = c.call("@tally", {"mutate", "k", "incr"});
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(after.values.at(0).as_integer(), 3);
}

TEST_F(Upgrade, OnlyOneUpgradeAtATimeAndSigusr2Upgrades) {
  start();
  skynet_client c(port_);
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const pid_t old_pid = serving_pid();
  sup_->proc().signal(SIGUSR2);
  ASSERT_TRUE(sup_->wait_for("upgrade gen 1 -> gen 2 done")) << sup_->output();
  EXPECT_TRUE(eventually([&] { return serving_pid() != old_pid && serving_pid() > 0; }));
  auto a = c.call("@tally", {"mutate", "k", "incr"});
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.values.at(0).as_integer(), 2);
  // Two at once: the second is refused while the first runs (the hang keeps it running).
  std::thread first([&] { (void)upgrade({"--worker", faulty_worker("hang_restore"), "--timeout", "2"}); });
  EXPECT_TRUE(sup_->wait_for("upgrade: gen 2")) << sup_->output();  // not ASSERT: `first` must be joined
  auto second = upgrade();
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find("already in progress"), std::string::npos) << second.output;
  first.join();
}

}  // namespace
}  // namespace csk::test

namespace csk::test {
namespace {

// `cppskynet console` (skynet's debug console verbs) against the same supervised node.
using Console = Upgrade;

// The value of one sample line "NAME VALUE" / "NAME{labels} VALUE", or -1.
double sample(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

// The sum of the samples of family `name` whose labels contain every one of `labels`
// ("k=\"v\""), and how many there were.
std::pair<double, int> sum_samples(const std::string& text, const std::string& name,
                                   const std::vector<std::string>& labels) {
  std::pair<double, int> out{0, 0};
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const auto close = line.find("} ");
    if (close == std::string::npos) continue;
    const std::string l = line.substr(name.size() + 1, close - name.size() - 1);
    bool all = true;
    for (const auto& want : labels) all = all && l.find(want) != std::string::npos;
    if (!all) continue;
    out.first += std::stod(line.substr(close + 2));
    ++out.second;
  }
  return out;
}

TEST_F(Console, MetricsAreScrapedFromTheServingGeneration) {
  start();
  skynet_client c(port_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const std::string first = http_get(admin_port_, "/metrics");
  ASSERT_EQ(first.rfind("HTTP/1.1 200 OK", 0), 0u) << first;
  EXPECT_EQ(sample(first, "csk_worker_generation"), 1);
  EXPECT_EQ(sample(first, "csk_cluster_inbound_connections"), 1);
  EXPECT_GE(sample(first, "csk_service_messages_total{handle=\":00000001\",name=\".tally\"}"), 3) << first;
  EXPECT_GT(sample(first, "csk_service_cpu_seconds_total{handle=\":00000001\",name=\".tally\"}"), 0) << first;
  // The client's connection, by its address: 3 request frames in, 3 answers out.
  const std::string me = "peer=\"127.0.0.1:" + std::to_string(c.local_port()) + "\"";
  EXPECT_EQ(sum_samples(first, "csk_cluster_inbound_peer_frames_total", {me, "direction=\"in\""}),
            std::make_pair(3.0, 1))
      << first;
  EXPECT_EQ(sum_samples(first, "csk_cluster_inbound_peer_frames_total", {me, "direction=\"out\""}),
            std::make_pair(3.0, 1));
  EXPECT_EQ(sum_samples(first, "csk_cluster_inbound_peer_calls_total", {me}), std::make_pair(3.0, 1));
  const auto bytes_in = sum_samples(first, "csk_cluster_inbound_peer_bytes_total", {me, "direction=\"in\""});
  EXPECT_EQ(bytes_in.second, 1);
  EXPECT_GT(bytes_in.first, 3 * 2) << "three frames, their headers and bodies";
  // The worker's memory budget (runtime.memory_high_mb/low_mb: 1024/768 by default) and
  // the client's connection: answered, so nothing half received and no pauses.
  EXPECT_EQ(sample(first, "csk_memory_budget_high_bytes"), 1024.0 * 1024 * 1024) << first;
  EXPECT_EQ(sample(first, "csk_memory_budget_low_bytes"), 768.0 * 1024 * 1024);
  EXPECT_EQ(sample(first, "csk_memory_budget_waiting_feeders"), 0);
  EXPECT_EQ(sum_samples(first, "csk_cluster_inbound_peer_pending_bytes", {me}), std::make_pair(0.0, 1));
  EXPECT_EQ(sum_samples(first, "csk_cluster_inbound_peer_memory_pauses_total", {me}), std::make_pair(0.0, 1));
  EXPECT_EQ(sample(first, "csk_cluster_inbound_overrun_closes_total"), 0);
  EXPECT_EQ(sum_samples(first, "csk_gate_memory_pauses_total", {"gate=\".admin\""}), std::make_pair(0.0, 1));
  EXPECT_GE(sample(first, "csk_net_read_buffers"), 0) << "the family is there";
  auto up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.output;
  // The new generation answers (the old one has exited: the command waited for it).
  const std::string second = http_get(admin_port_, "/metrics");
  EXPECT_EQ(sample(second, "csk_worker_generation"), 2) << second;
  EXPECT_EQ(sample(second, "csk_cluster_inbound_connections"), 1) << "the client's connection moved";
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
  const std::string after_call = http_get(admin_port_, "/metrics");
  EXPECT_EQ(sum_samples(after_call, "csk_cluster_inbound_peer_frames_total", {me, "direction=\"in\""}),
            std::make_pair(1.0, 1))
      << "the moved connection, counted by the new worker from its adoption\n" << after_call;
  const std::string status = http_get(admin_port_, "/status");
  EXPECT_NE(status.find("\"generation\":2"), std::string::npos) << status;
  // The supervisor's counters reach the new generation's /metrics (sent after the verdict).
  std::string third;
  EXPECT_TRUE(eventually([&] {
    third = http_get(admin_port_, "/metrics");
    return sample(third, "csk_supervisor_upgrades_total{result=\"ok\"}") == 1;
  })) << third;
  EXPECT_EQ(sample(third, "csk_supervisor_upgrades_total{result=\"failed\"}"), 0);
  EXPECT_EQ(sample(third, "csk_supervisor_worker_restarts_total"), 0);
  EXPECT_GT(sample(third, "csk_supervisor_last_upgrade_pause_seconds"), 0);
}

// The supervisor waits for a relayed console line as long as the serving worker's call
// timeout allows, as read from the file that worker started with (here raised by an edit
// and an upgrade after the supervisor started), not the supervisor's own copy.
TEST_F(Console, ARelayedCallWaitsAsLongAsTheServingWorkersCallTimeout) {
  start("  heartbeat_ms: 100\n  heartbeat_timeout_ms: 1000\n", 20000, 500);
  const auto ask = [&](std::vector<std::string> words) {
    std::vector<std::string> args{"console", "--socket", socket_, "--json"};
    args.insert(args.end(), words.begin(), words.end());
    auto r = cppskynet(dir_, args, "console-" + std::to_string(++commands_));
    return std::make_pair(r.exit_code, json::parse(r.output, nullptr, false));
  };
  // The first worker's calls time out after 500 ms: the console says so.
  auto early = ask({"call", "@slow", "1000"});
  EXPECT_NE(early.first, 0) << early.second.dump();
  std::string text = read_file(dir_ / "node.yaml");
  const auto at = text.find("call_timeout_ms: 500}");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, std::string("call_timeout_ms: 500}").size(), "call_timeout_ms: 8000}");
  std::ofstream(dir_ / "node.yaml", std::ios::trunc) << text;
  auto up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.output;
  // 2.5 s: past the supervisor's first deadline (1 s heartbeat timeout + 500 ms), within
  // the new worker's call timeout.
  auto [rc, slow] = ask({"call", "@slow", "2500"});
  EXPECT_EQ(rc, 0) << slow.dump();
  EXPECT_EQ(slow["answer"], json::array({2500})) << slow.dump();
}

TEST_F(Console, AnswersEveryVerbAndRefusesUnknownOnes) {
  start();
  const auto ask = [&](std::vector<std::string> words) {
    std::vector<std::string> args{"console", "--socket", socket_, "--json"};
    args.insert(args.end(), words.begin(), words.end());
    auto r = cppskynet(dir_, args, "console-" + std::to_string(++commands_));
    return std::make_pair(r.exit_code, json::parse(r.output, nullptr, false));
  };
  skynet_client c(port_);
  ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);

  auto [rc, list] = ask({"list"});
  ASSERT_EQ(rc, 0) << list.dump();
  std::int64_t tally_messages = -1;
  for (const auto& s : list["answer"]) {
    if (s["names"] == json::array({".tally", "@tally"})) tally_messages = s["messages"].get<std::int64_t>();
  }
  EXPECT_GE(tally_messages, 1) << list.dump();
  auto stat = ask({"stat"});
  EXPECT_EQ(stat.first, 0);
  EXPECT_GE(stat.second["answer"]["services"].get<int>(), 3) << stat.second.dump();
  EXPECT_EQ(stat.second["answer"]["cluster_connections"].get<int>(), 1);
  auto mem = ask({"mem"});
  EXPECT_GT(mem.second["answer"]["VmRSS_kb"].get<long>(), 0) << mem.second.dump();
  auto info = ask({"info", "@tally"});
  EXPECT_EQ(info.second["answer"]["names"], json::array({".tally", "@tally"})) << info.second.dump();
  auto call = ask({"call", "@tally", "get", "k"});
  EXPECT_EQ(call.second["answer"][0]["n"].get<int>(), 1) << call.second.dump();
  auto send = ask({"send", "@tally", "mutate", "k", "incr"});
  EXPECT_EQ(send.first, 0) << send.second.dump();
  EXPECT_TRUE(eventually([&] { return ask({"call", "@tally", "get", "k"}).second["answer"][0]["n"] == 2; }));
  auto ping = ask({"ping", "@echo"});
  EXPECT_TRUE(ping.second["answer"]["alive"].get<bool>()) << ping.second.dump();
  auto net = ask({"netstat"});
  EXPECT_EQ(net.second["answer"]["cluster"]["inbound"].size(), 1u) << net.second.dump();
  // The budgets: per inbound connection (the client's), the node's memory budget (the
  // defaults, 1024/768 MiB), the receive buffers.
  const json& ns = net.second["answer"];
  ASSERT_EQ(ns["cluster"]["connections"].size(), 1u) << ns.dump();
  const json& mine = ns["cluster"]["connections"][0];
  EXPECT_EQ(mine["id"], ns["cluster"]["inbound"][0]) << ns.dump();
  EXPECT_EQ(mine["peer"], "127.0.0.1:" + std::to_string(c.local_port())) << ns.dump();
  EXPECT_EQ(mine["pending_bytes"], 0) << ns.dump();
  EXPECT_EQ(mine["mailbox_pauses"], 0);
  EXPECT_EQ(mine["memory_pauses"], 0);
  EXPECT_EQ(ns["cluster"]["overrun_closes"], 0);
  EXPECT_EQ(ns["budget"]["high"], 1024LL << 20) << ns.dump();
  EXPECT_EQ(ns["budget"]["low"], 768LL << 20);
  EXPECT_EQ(ns["budget"]["waiting"], 0);
  EXPECT_TRUE(ns["budget"]["held"].is_number_unsigned()) << ns.dump();
  EXPECT_TRUE(ns["net"]["read_buffers"].is_number_unsigned()) << ns.dump();
  EXPECT_TRUE(ns["net"]["pooled_bytes"].is_number_unsigned()) << ns.dump();
  auto gens = ask({"generations"});
  ASSERT_EQ(gens.second["answer"].size(), 1u) << gens.second.dump();
  const int first_pid = gens.second["answer"][0]["pid"].get<int>();
  auto up = ask({"upgrade"});
  EXPECT_EQ(up.first, 0) << up.second.dump();
  gens = ask({"generations"});
  ASSERT_EQ(gens.second["answer"].size(), 1u) << gens.second.dump();
  EXPECT_EQ(gens.second["answer"][0]["generation"].get<int>(), 2);
  EXPECT_NE(gens.second["answer"][0]["pid"].get<int>(), first_pid);
  auto help = ask({"help"});
  EXPECT_TRUE(help.second["answer"].contains("netstat")) << help.second.dump();
  // Errors: an unknown verb, a bad address, a failed call: exit 1 with the reason.
  for (const auto& [words, why] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"frob"}, "Invalid command, type help for command list"},
           {{"info", "@nobody"}, "no service @nobody"},
           {{"call", "echo"}, "bad address 'echo'"},
           {{"call", "@tally", "frob"}, "unknown command"},
           {{"info"}, "usage: info ADDR"}}) {
    auto r = ask(words);
    EXPECT_EQ(r.first, 1) << words[0];
    EXPECT_NE(r.second.value("error", "").find(why), std::string::npos) << r.second.dump();
  }
  // The same connection still works (the console changed nothing for clients).
  auto a = c.call("@tally", {"mutate", "k", "incr"});
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.values.at(0).as_integer(), 3);
}

}  // namespace
}  // namespace csk::test
