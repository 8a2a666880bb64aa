// skynet's debug console on a supervised node (`cppskynet run`, real workers): the
// supervisor binds the `debug_console:` listener, every worker serves it, and it stays
// served across `cppskynet upgrade` (connections made during one are answered or told to
// come again, never refused; the old worker's are told before they close), across the
// console's own `upgrade` verb and across a worker killed with SIGKILL. `cppskynet
// console` prints the same skynet text (JSON with --json).

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"
#include "tests/support/raw_socket.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string farewell = "this worker handed the node over to a new one (upgrade): connect again";

bytes_view bytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

/// One console connection: the greeting read, then one line asked at a time.
class console_client {
 public:
  explicit console_client(std::uint16_t port) : s_(raw_socket::try_connect(port)) {
    if (s_.valid()) first_ = s_.read_line().value_or("");
  }
  bool greeted() const { return first_ == "Welcome to skynet console"; }
  /// The first line the console sent ("" on EOF): its greeting, or a reason to go away.
  const std::string& first_line() const { return first_; }
  /// The answer's lines through <CMD OK>/<CMD Error>; a line that is neither, then EOF,
  /// is returned as it came (the farewell); "" on EOF or timeout.
  std::string ask(const std::string& line) {
    if (!send_all(s_.fd(), bytes(line + "\n"))) return "";
    return read_answer();
  }
  std::string read_answer() {
    std::string out;
    while (auto l = s_.read_line()) {
      out += *l + "\n";
      if (*l == "<CMD OK>" || *l == "<CMD Error>") return out;
    }
    return out;
  }

 private:
  raw_socket s_;
  std::string first_;
};

class DebugConsoleProcess : public temp_dir_test {
 protected:
  void SetUp() override {
    temp_dir_test::SetUp();
    socket_ = (dir_ / "ctl.sock").string();
    std::ofstream(dir_ / "node.yaml") << "runtime: {threads: 2, call_timeout_ms: 5000}\n"
                                      << "log: {level: info}\n"
                                      << "services:\n  - {type: echo, names: [.echo]}\n"
                                      << "supervisor:\n  worker: " << CSK_WORKER_BIN << "\n"
                                      << "  control_socket: " << socket_ << "\n"
                                      << "  heartbeat_ms: 100\n  restart_backoff_ms: 50\n"
                                      << "debug_console: \"127.0.0.1:0\"\n";
    sup_.emplace(dir_);
    ASSERT_TRUE(sup_->wait_for("ready in")) << sup_->output();
    const std::string p = sup_->find(R"(listener debug_console bound to 127\.0\.0\.1:(\d+))");
    ASSERT_FALSE(p.empty()) << sup_->output();
    port_ = static_cast<std::uint16_t>(std::stoi(p));
  }
  void TearDown() override {
    if (sup_) {
      sup_->proc().signal(SIGTERM);
      EXPECT_TRUE(sup_->proc().wait_exit().has_value());
      sup_.reset();
    }
    temp_dir_test::TearDown();
  }
  command_result cli(std::vector<std::string> args) {
    args.insert(args.begin(), CSK_CLI_BIN);
    return run_command(args, dir_, std::to_string(++commands_));
  }
  /// The generation whose worker answers a new connection now ("" if none does).
  std::string served_by() {
    console_client c(port_);
    if (!c.greeted()) return "";
    const std::string a = c.ask("getenv generation");
    return a.rfind("generation\t", 0) == 0 ? a.substr(11, a.find('\n') - 11) : "";
  }

  std::optional<supervisor_process> sup_;
  std::string socket_;
  std::uint16_t port_ = 0;
  int commands_ = 0;
};

TEST_F(DebugConsoleProcess, ServedBeforeAndAfterAnUpgradeAndAWorkerKill) {
  console_client before(port_);
  ASSERT_TRUE(before.greeted());
  const std::string list = before.ask("list");
  EXPECT_NE(list.find("\techo .echo\n"), std::string::npos) << list;
  EXPECT_EQ(before.ask("getenv generation"), "generation\t1\n<CMD OK>\n");

  // Connections made while `cppskynet upgrade` runs: each is accepted and greeted, and
  // answered (by either worker) or told by the old one to come again.
  std::atomic<bool> upgrading{true};
  std::atomic<int> answered{0}, told{0}, failed{0};
  std::string first_failure;
  std::thread prober([&] {
    while (upgrading.load()) {
      console_client c(port_);
      // Accepted by the old worker as it stops: told at once, instead of the greeting.
      const std::string a = c.greeted() ? c.ask("ping .echo") : c.first_line() + "\n";
      if (a.ends_with("<CMD OK>\n")) {
        ++answered;
      } else if (a == farewell + "\n") {
        ++told;
      } else if (failed++ == 0) {
        first_failure = a;
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return answered.load() > 0; })) << first_failure;  // probing before it starts
  const int before_upgrade = answered.load() + told.load();
  const auto up = cli({"upgrade", "--socket", socket_});
  upgrading = false;
  prober.join();
  ASSERT_EQ(up.exit_code, 0) << up.output << sup_->output();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(answered.load() + told.load(), before_upgrade) << "probes while it ran";
  std::cout << "around the upgrade: " << answered << " connections answered, " << told << " told to connect again\n";
  // The connection from before the upgrade was the old worker's: it says so and closes.
  EXPECT_EQ(before.read_answer(), farewell + "\n");
  EXPECT_EQ(served_by(), "2");

  // The console's own upgrade: answered once started; the old worker then says goodbye.
  console_client again(port_);
  ASSERT_TRUE(again.greeted());
  EXPECT_EQ(again.ask("upgrade"), "upgrade started: gen 2 -> gen 3; `generations` shows when it serves\n<CMD OK>\n");
  EXPECT_EQ(again.read_answer(), farewell + "\n");
  ASSERT_TRUE(eventually([&] { return served_by() == "3"; })) << sup_->output();
  // Once the old worker is gone, generation 3 is the only one.
  std::string g;
  EXPECT_TRUE(eventually([&] {
    g = console_client(port_).ask("generations");
    return g.rfind("3\tbinary:", 0) == 0 && g.find('\n') == g.find("\n<CMD OK>\n");
  })) << g;
  EXPECT_NE(g.find("\tstate:ready\t"), std::string::npos) << g;

  // A worker killed: the supervisor's next one serves the same listener.
  const pid_t pid = sup_->worker_pid(3);
  ASSERT_GT(pid, 0) << sup_->output();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return served_by() == "4"; })) << sup_->output();
}

TEST_F(DebugConsoleProcess, HttpAndTheCliSpeakTheSameText) {
  auto s = raw_socket::connect_to(port_);
  s.write_all(bytes("GET /getenv/generation HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string http;
  while (auto l = s.read_line()) http += *l + "\n";
  EXPECT_EQ(http, "Welcome to skynet console\ngeneration\t1\n<CMD OK>\n");

  const auto text = cli({"console", "--socket", socket_, "getenv", "generation"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_EQ(text.output, "generation\t1\n<CMD OK>\n");
  const auto list = cli({"console", "--socket", socket_, "list"});
  console_client c(port_);
  EXPECT_EQ(list.output, c.ask("list")) << "the same lines either way";
  const auto bad = cli({"console", "--socket", socket_, "nosuch"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output, "Invalid command, type help for command list\n\n<CMD Error>\n");
  const auto js = cli({"console", "--socket", socket_, "--json", "getenv", "generation"});
  EXPECT_EQ(json::parse(js.output, nullptr, false), json::parse(R"({"ok":true,"answer":{"generation":"1"}})")) << js.output;
}

}  // namespace
}  // namespace csk::test
