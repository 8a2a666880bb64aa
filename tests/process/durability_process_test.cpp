// Entity state across crashes, with real processes (docs/durability.md): `cppskynet run`
// serving the upgrade test worker (upgrade_worker.cpp: the entity store "tallies" of
// test.tally, mutation incr), a client incrementing counters continuously, and kill -9
// where a crash can come:
//
//   - 20 kills of the worker under load: after every restart each counter equals the
//     acknowledged increments, or that plus the one increment in flight at the kill;
//   - a kill in the middle of a checkpoint;
//   - the old worker killed during the pre-copy and during the freeze of an upgrade, and
//     the new worker killed right after it took over;
//   - persist with fsync: always: SIGKILL to the supervisor and the worker, a new node on
//     the same directory has every acknowledged write;
//   - a journal file whose tail is corrupted on purpose: what came before is kept, the
//     record where recovery stopped is logged and shown;
//   - a binary that cannot read the state parks the node until one that can is started;
//   - a second node on the same persist.dir is refused.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "services/entity/journal_format.hpp"
#include "tests/process/process_harness.hpp"
#include "tests/support/skynet_client.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Increments counters k0..k{n-1} in turn (@tally mutate incr), one call at a time on one
/// connection, reconnecting when it breaks (the calls wait in the listen backlog while no
/// worker runs). What it knows: per key the increments acknowledged, and the ones whose
/// fate is unknown (a call that failed may or may not have been applied: at most the one
/// in flight at each kill).
class incrementer {
 public:
  incrementer(std::uint16_t port, int keys) : port_(port), acked_(static_cast<std::size_t>(keys)), unsure_(acked_.size()) {
    thread_ = std::thread([this] { run(); });
  }
  ~incrementer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::int64_t acked_total() const {
    std::lock_guard lock(mu_);
    std::int64_t n = 0;
    for (auto a : acked_) n += a;
    return n;
  }
  /// Stops between two calls and checks every counter against `read(key)`: acked <= value
  /// <= acked + unsure. Takes the values as the new base, then goes on. "" when all held.
  template <class Read>
  std::string check(Read&& read) {
    std::unique_lock lock(mu_);
    paused_ = true;
    cv_.wait(lock, [&] { return idle_; });
    std::string problems;
    for (std::size_t k = 0; k < acked_.size(); ++k) {
      const std::int64_t v = read("k" + std::to_string(k));
      if (v < acked_[k] || v > acked_[k] + unsure_[k]) {
        problems += "k" + std::to_string(k) + " = " + std::to_string(v) + ", acknowledged " + std::to_string(acked_[k]) +
                    " (+" + std::to_string(unsure_[k]) + " unsure); ";
      }
      acked_[k] = v;
      unsure_[k] = 0;
    }
    paused_ = false;
    idle_ = false;
    lock.unlock();
    cv_.notify_all();
    return problems;
  }
  std::int64_t unsure_total() const {
    std::lock_guard lock(mu_);
    std::int64_t n = 0;
    for (auto u : unsure_) n += u;
    return n;
  }

 private:
  void run() {
    std::optional<skynet_client> c;
    std::size_t k = 0;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (paused_) {
          idle_ = true;
          cv_.notify_all();
          cv_.wait(lock, [&] { return !paused_ || stop_; });
        }
        if (stop_) return;
      }
      if (!c || !c->connected()) c.emplace(port_);
      if (!c->connected()) {  // no supervisor there (a test killed the whole node)
        std::this_thread::yield();
        continue;
      }
      auto a = c->call("@tally", {"mutate", "k" + std::to_string(k), "incr"});
      {
        std::lock_guard lock(mu_);
        if (a.ok) {
          ++acked_[k];
        } else {
          ++unsure_[k];
        }
      }
      if (!a.ok) c.reset();  // the worker died (or answered an error): a new connection
      k = (k + 1) % acked_.size();
    }
  }

  const std::uint16_t port_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::int64_t> acked_, unsure_;
  bool paused_ = false, idle_ = false, stop_ = false;
  std::thread thread_;
};

class Durability : public temp_dir_test {
 protected:
  void write_config(const std::string& extra = "", const std::string& worker = CSK_UPGRADE_WORKER_BIN) {
    socket_ = (dir_ / "ctl.sock").string();
    std::ofstream(dir_ / "names.yaml") << "up: \"127.0.0.1:1\"\n";
    std::ofstream(dir_ / "node.yaml")
        << "runtime: {threads: 2, call_timeout_ms: 20000}\n"
        << "log: {level: info}\n"
        << "cluster: {self: up, listen: \"127.0.0.1:0\", names_file: names.yaml}\n"
        << "services:\n"
        << "  - {type: \"entity:test.tally\", names: [\"@tally\", .tally], args: [{id: tallies}]}\n"
        << "  - {type: echo, names: [\"@echo\"]}\n"
        << "  - {type: slow, names: [\"@slow\"]}\n"
        << "supervisor:\n"
        << "  worker: " << worker << "\n"
        << "  control_socket: " << socket_ << "\n"
        << "  heartbeat_ms: 200\n  restart_backoff_ms: 10\n  restart_backoff_max_ms: 100\n"
        << "  crash_loop_restarts: 1000\n  upgrade_timeout_ms: 20000\n"
        << extra;
  }
  void start(const std::string& extra = "", const std::string& worker = CSK_UPGRADE_WORKER_BIN) {
    write_config(extra, worker);
    launch();
  }
  // A supervisor on node.yaml; the previous one's output is kept aside (supervisor-N.out),
  // so that the port and the lines looked for are this one's.
  void launch() {
    next_supervisor();
    ASSERT_TRUE(sup_->wait_for("ready in")) << sup_->output();
    port_ = sup_->cluster_port();
    ASSERT_NE(port_, 0) << sup_->output();
  }
  void next_supervisor() {
    if (fs::exists(dir_ / "supervisor.out")) {
      fs::rename(dir_ / "supervisor.out", dir_ / ("supervisor-" + std::to_string(++supervisors_) + ".out"));
    }
    sup_.emplace(dir_);
  }
  void TearDown() override {
    if (sup_) {
      sup_->proc().signal(SIGTERM);
      EXPECT_TRUE(sup_->proc().wait_exit().has_value());
      EXPECT_EQ(sup_->count("Sanitizer"), 0u) << sup_->output();
      sup_.reset();
    }
    temp_dir_test::TearDown();
  }

  command_result cppskynet(std::vector<std::string> args) {
    args.insert(args.begin(), CSK_CLI_BIN);
    return run_command(args, dir_, std::to_string(++commands_));
  }
  json status() {
    auto r = cppskynet({"status", "--socket", socket_, "--json"});
    return json::parse(r.output, nullptr, false);
  }
  pid_t serving_pid() {
    const json s = status();
    if (!s.is_object()) return -1;
    for (const auto& w : s["workers"]) {
      if (w["state"] == "ready" && !w["retiring"].get<bool>()) return w["pid"].get<pid_t>();
    }
    return -1;
  }
  /// Waits until a ready worker other than `old` serves; returns its pid.
  pid_t wait_for_new_worker(pid_t old) {
    pid_t now = -1;
    EXPECT_TRUE(eventually([&] {
      now = serving_pid();
      return now > 0 && now != old;
    })) << sup_->output();
    return now;
  }
  /// The store as the serving worker last reported it (it reports at ready and with each
  /// heartbeat); waits for a report.
  json store_status() {
    json st;
    EXPECT_TRUE(eventually([&] {
      const json s = status();
      if (!s.is_object() || !s.contains("stores") || s["stores"].empty()) return false;
      st = s["stores"][0];
      return true;
    })) << status();
    return st.is_object() ? st : json::object();
  }
  std::int64_t read_counter(const std::string& key) {
    skynet_client c(port_);
    auto g = c.call("@tally", {"get", key});
    if (!g.ok) {
      ADD_FAILURE() << key << ": " << g.error;
      return -1;
    }
    if (g.values.at(0).is_nil()) return 0;
    return g.values.at(0).as_table().find("n")->as_integer();
  }
  std::string check(incrementer& inc) {
    return inc.check([&](const std::string& k) { return read_counter(k); });
  }
  /// Lets the client make `n` more acknowledged increments.
  void progress(incrementer& inc, std::int64_t n = 30) {
    const auto before = inc.acked_total();
    ASSERT_TRUE(eventually([&] { return inc.acked_total() >= before + n; })) << sup_->output();
  }

  std::optional<supervisor_process> sup_;
  std::string socket_;
  std::uint16_t port_ = 0;
  int supervisors_ = 0;
  int commands_ = 0;
};

TEST_F(Durability, TwentyKillNinesUnderLoadLoseNoAcknowledgedIncrement) {
  start();
  incrementer inc(port_, 8);
  pid_t pid = serving_pid();
  for (int i = 0; i < 20; ++i) {
    progress(inc);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    pid = wait_for_new_worker(pid);
    ASSERT_GT(pid, 0);
    const std::string problems = check(inc);
    ASSERT_EQ(problems, "") << "after kill " << i + 1 << "\n" << sup_->output();
  }
  progress(inc);
  EXPECT_EQ(check(inc), "");
  EXPECT_EQ(sup_->count("killed by signal 9"), 20u);
  EXPECT_GE(sup_->count("recovered"), 20u);
  const json st = store_status();
  ASSERT_TRUE(st.is_object()) << status();
  EXPECT_GT(st["recovered_records"].get<int>(), 0);
  EXPECT_FALSE(st["recovery_stopped_at_bad_record"].get<bool>());
  std::cout << "20 kills: " << inc.acked_total() << " increments acknowledged\n";
}

TEST_F(Durability, AKillInTheMiddleOfACheckpointLosesNothing) {
  start("journal: {checkpoint_page: 5, checkpoint_pause_ms: 20}\n");
  {
    skynet_client c(port_);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(c.call("@tally", {"set", "p" + std::to_string(i), lua_value(lua_table{}.set("n", i))}).ok);
  }
  incrementer inc(port_, 8);
  progress(inc);
  auto r = cppskynet({"console", "--socket", socket_, "checkpoint", "tallies"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_NE(r.output.find("true"), std::string::npos) << r.output;
  ASSERT_TRUE(eventually([&] {
    const json st = store_status();
    return st.value("checkpointing", false);
  })) << status();
  progress(inc);  // writes go on during the checkpoint
  const pid_t pid = serving_pid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  wait_for_new_worker(pid);
  EXPECT_EQ(check(inc), "");
  const json st = store_status();
  EXPECT_EQ(st["checkpoints"].get<int>(), 0) << "the kill came before the checkpoint's commit";
  EXPECT_EQ(st["recovered_entities"].get<int>(), 1008);
  EXPECT_EQ(read_counter("p999"), 999);
}

TEST_F(Durability, TheOldWorkerKilledDuringThePreCopyLosesNothing) {
  start();
  // The new worker hangs applying its first page: the old one stays in the pre-copy.
  const fs::path wrapper = dir_ / "worker-hang.sh";
  std::ofstream(wrapper) << "#!/bin/sh\nCSK_TEST_FAULT=hang_restore exec " << CSK_UPGRADE_WORKER_BIN << " \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  incrementer inc(port_, 8);
  progress(inc);
  const pid_t old_pid = serving_pid();
  child_process up({CSK_CLI_BIN, "upgrade", "--socket", socket_, "--worker", wrapper.string()}, dir_ / "up.out");
  ASSERT_TRUE(sup_->wait_for("pre-copy of 1 entity stores")) << sup_->output();
  progress(inc);  // N serves during the pre-copy
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  const auto st = up.wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(WEXITSTATUS(*st), 0) << read_file(dir_ / "up.out");
  EXPECT_NE(read_file(dir_ / "up.out").find("the old worker"), std::string::npos) << read_file(dir_ / "up.out");
  wait_for_new_worker(old_pid);
  EXPECT_EQ(check(inc), "") << sup_->output();
  progress(inc);
  EXPECT_EQ(check(inc), "");
}

TEST_F(Durability, TheOldWorkerKilledDuringTheFreezeLosesNothing) {
  start();
  incrementer inc(port_, 8);
  progress(inc);
  skynet_client slow(port_);
  const std::uint32_t session = slow.take_session();
  ASSERT_TRUE(slow.send_call(session, "@slow", {10000}));  // holds the freeze
  const pid_t old_pid = serving_pid();
  child_process up({CSK_CLI_BIN, "upgrade", "--socket", socket_}, dir_ / "up.out");
  ASSERT_TRUE(sup_->wait_for("freezing:")) << sup_->output();
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(up.wait_exit().has_value());
  EXPECT_NE(read_file(dir_ / "up.out").find("the old worker"), std::string::npos) << read_file(dir_ / "up.out");
  wait_for_new_worker(old_pid);
  EXPECT_EQ(check(inc), "") << sup_->output();
}

TEST_F(Durability, TheNewWorkerKilledRightAfterItTookOverLosesNothing) {
  start();
  incrementer inc(port_, 8);
  for (int round = 0; round < 3; ++round) {
    progress(inc);
    const pid_t old_pid = serving_pid();
    auto up = cppskynet({"upgrade", "--socket", socket_, "--json"});
    ASSERT_EQ(up.exit_code, 0) << up.output << sup_->output();
    const pid_t new_pid = json::parse(up.output)["to_pid"].get<pid_t>();
    ASSERT_NE(new_pid, old_pid);
    ASSERT_EQ(::kill(new_pid, SIGKILL), 0);  // at once: it has just started writing the journal
    wait_for_new_worker(new_pid);
    EXPECT_EQ(check(inc), "") << "round " << round << "\n" << sup_->output();
  }
}

TEST_F(Durability, WithPersistAndFsyncAlwaysKillingTheWholeNodeLosesNothing) {
  start("persist: {dir: state, fsync: always}\n");
  incrementer inc(port_, 8);
  progress(inc, 200);
  const pid_t worker = serving_pid();
  ASSERT_EQ(::kill(sup_->proc().pid(), SIGKILL), 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(sup_->proc().wait_exit().has_value());
  ASSERT_TRUE(eventually([&] { return process_gone(worker); }));
  sup_.reset();
  EXPECT_TRUE(fs::exists(dir_ / "state" / "tallies.journal"));
  launch();  // a cold start: the files are all there is
  EXPECT_EQ(check(inc), "") << sup_->output();
  EXPECT_NE(sup_->output().find("recovered 8 entities from the journal (" + (dir_ / "state").string()), std::string::npos)
      << sup_->output();
}

// The journal file's last record, corrupted while the node is down: recovery keeps
// everything before it and says where it stopped.
TEST_F(Durability, ACorruptedTailIsLoudAndKeepsWhatCameBefore) {
  start("persist: {dir: state, fsync: always}\n");
  {
    skynet_client c(port_);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(c.call("@tally", {"mutate", "k" + std::to_string(i), "incr"}).ok);
  }
  const pid_t worker = serving_pid();
  ASSERT_EQ(::kill(sup_->proc().pid(), SIGKILL), 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(sup_->proc().wait_exit().has_value());
  ASSERT_TRUE(eventually([&] { return process_gone(worker); }));
  sup_.reset();
  // Find the last record with the format's own reader, and flip a byte of its payload.
  const fs::path file = dir_ / "state" / "tallies.journal";
  std::string bytes = read_file(file);
  const bytes_view all = as_bytes(bytes);
  auto cur = entity::journal::read_superblocks(all.first(entity::journal::header_page_size));
  ASSERT_TRUE(cur && cur->sb);
  const bytes_view ring = all.subspan(entity::journal::header_page_size, cur->sb->ring_size);
  std::uint64_t last_offset = 0, last_seq = 0, records = 0;
  auto s = entity::journal::scan(ring, cur->sb->head, cur->sb->head_seq,
                                 [&](const entity::journal::record& r) -> result<void, std::string> {
                                   last_offset = r.offset;
                                   last_seq = r.seq;
                                   ++records;
                                   return {};
                                 });
  ASSERT_TRUE(s);
  ASSERT_EQ(records, 5u);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(entity::journal::header_page_size + last_offset + entity::journal::record_header_size + 3));
    f.put('\x7f');
  }
  launch();
  EXPECT_NE(sup_->output().find("JOURNAL RECOVERY STOPPED AT A BAD RECORD: stopped at seq " + std::to_string(last_seq)),
            std::string::npos)
      << sup_->output();
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(read_counter("k" + std::to_string(i)), 1) << i;
  EXPECT_EQ(read_counter("k5"), 0) << "the corrupted record is not applied";
  const json st = store_status();
  EXPECT_TRUE(st["recovery_stopped_at_bad_record"].get<bool>()) << st;
  EXPECT_NE(st["recovery_note"].get<std::string>().find("checksum mismatch"), std::string::npos) << st;
  auto text = cppskynet({"status", "--socket", socket_});
  EXPECT_NE(text.output.find("RECOVERY OF tallies STOPPED AT A BAD RECORD"), std::string::npos) << text.output;
}

// A worker that cannot read the state (its tally version is 9 and reads nothing older)
// exits with code 6; the supervisor parks instead of restarting it, keeps the state, and
// `cppskynet upgrade --worker` with a binary that reads it brings the node back.
TEST_F(Durability, AWorkerThatCannotReadTheStateParksTheNodeUntilOneThatCanStarts) {
  start("persist: {dir: state, fsync: everysec}\n");
  {
    skynet_client c(port_);
    ASSERT_TRUE(c.call("@tally", {"mutate", "kept", "incr"}).ok);
  }
  sup_->proc().signal(SIGTERM);
  ASSERT_TRUE(sup_->proc().wait_exit().has_value());
  sup_.reset();
  write_config("persist: {dir: state, fsync: everysec}\n", CSK_UPGRADE_WORKER_V9_BIN);
  next_supervisor();
  ASSERT_TRUE(sup_->wait_for("parked, not restarting")) << sup_->output();
  EXPECT_NE(sup_->output().find("exited with code 6"), std::string::npos) << sup_->output();
  EXPECT_NE(sup_->output().find("snapshot version 1 is older than the oldest version this binary reads"), std::string::npos)
      << sup_->output();
  json s = status();
  EXPECT_EQ(s["state"], "parked") << s;
  EXPECT_TRUE(s["workers"].empty()) << s;
  auto up = cppskynet({"upgrade", "--socket", socket_, "--worker", CSK_UPGRADE_WORKER_BIN, "--json"});
  ASSERT_EQ(up.exit_code, 0) << up.output << sup_->output();
  port_ = sup_->cluster_port();
  EXPECT_EQ(read_counter("kept"), 1);
  EXPECT_EQ(status()["state"], "running");
}

// A standalone node (no supervisor) keeps a journal only with persist: kill -9 and a new
// start on the same directory recovers it.
TEST_F(Durability, AStandaloneNodeWithPersistRecoversAfterKillNine) {
  write_config("persist: {dir: state, fsync: always}\n");
  const auto node_port = [&](const fs::path& out) -> std::uint16_t {
    std::uint16_t port = 0;
    EXPECT_TRUE(eventually([&] {
      std::smatch m;
      const std::string text = read_file(out);
      if (!std::regex_search(text, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) return false;
      if (text.find("node running") == std::string::npos) return false;
      port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
      return true;
    })) << read_file(out);
    return port;
  };
  {
    child_process node({CSK_UPGRADE_WORKER_BIN, (dir_ / "node.yaml").string()}, dir_ / "node1.out");
    port_ = node_port(dir_ / "node1.out");
    skynet_client c(port_);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.call("@tally", {"mutate", "k", "incr"}).ok);
    node.signal(SIGKILL);
    ASSERT_TRUE(node.wait_exit().has_value());
  }
  child_process node({CSK_UPGRADE_WORKER_BIN, (dir_ / "node.yaml").string()}, dir_ / "node2.out");
  port_ = node_port(dir_ / "node2.out");
  EXPECT_EQ(read_counter("k"), 3) << read_file(dir_ / "node2.out");
  node.signal(SIGTERM);
  ASSERT_TRUE(node.wait_exit().has_value());
}

TEST_F(Durability, ASecondNodeOnTheSamePersistDirIsRefused) {
  start("persist: {dir: state}\n");
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  std::ofstream(other / "node.yaml") << "supervisor: {control_socket: " << (other / "ctl.sock").string()
                                     << ", worker: " << CSK_UPGRADE_WORKER_BIN << "}\n"
                                     << "runtime: {shutdown_timeout_ms: 100}\n"
                                     << "persist: {dir: " << (dir_ / "state").string() << "}\n";
  auto r = run_command({CSK_CLI_BIN, "run", "-c", (other / "node.yaml").string()}, other, "second");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("is in use by another node"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace csk::test
