// Case 4: one clustername.lua read by both sides, reloaded live by both.
//
//   skynet1  a Lua skynet lab server
//   cpp1     a cppskynet node under its supervisor: cluster.names_file is the file (its
//            watcher reloads it when it changes); its relay service calls skynet1's @echo
//   ctl      a cppskynet node in the test process: @step, the Lua client's barrier
//   client   a Lua skynet lab client whose `cluster` config key names the file; its
//            op="reload" cases are cluster.reload(), which rereads it
//
// The test marks skynet1 `false` in the file: calls to it then fail at once from both
// sides (the client's own, and cpp1's relay); then brings it back: calls work again. The
// client's @step calls wait until the test has done each step, and the test waits for
// events only: the worker's "node table reloaded" line, skynet1's "socket accept" line.

#include <deque>
#include <mutex>

#include "common/config/load_config.hpp"
#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

using actor::values;

/// The Lua client's barrier: its call `@step NAME` is answered only when the test thread
/// calls release() after doing step NAME. Thread rules: arrived() runs on the ctl node's
/// runtime threads, wait() and release() on the test's; the names of the steps reached
/// pass under mu_.
class step_gate {
 public:
  /// The next step the client reached; "" if none within `limit` or once `alive` is false.
  std::string wait(std::chrono::milliseconds limit, const std::function<bool()>& alive) {
    std::string step;
    eventually(
        [&] {
          std::lock_guard lock(mu_);
          if (reached_.empty()) return !alive();
          step = std::move(reached_.front());
          reached_.pop_front();
          return true;
        },
        limit);
    return step;
  }
  /// Answers the oldest step held.
  static void release(actor::runtime& rt) { rt.send("@step", values{"release"}); }

  void arrived(std::string step) {
    std::lock_guard lock(mu_);
    reached_.push_back(std::move(step));
  }

 private:
  std::mutex mu_;
  std::deque<std::string> reached_;
};

/// @step: holds each call (a deferred reply) until a "release" send from the test.
class step_service : public actor::service {
 public:
  explicit step_service(step_gate& g) : gate_(g) {}
  actor::task<values> handle(actor::context& ctx, actor::message& msg) override {
    if (msg.type == actor::msg_type::call) {
      held_.push_back(ctx.defer_reply());
      gate_.arrived(!msg.args.empty() && msg.args[0].is_string() ? msg.args[0].as_string() : "");
    } else if (!held_.empty()) {
      ctx.reply(held_.front(), values{true});
      held_.pop_front();
    }
    co_return values{};
  }

 private:
  step_gate& gate_;
  std::deque<actor::reply_token> held_;  // this service's thread only
};

// The client's cases; the default node is cpp1. The second reload of each pair orders the
// client behind clusterd's own reaction to the first (clusterd re-points its sender in a
// coroutine forked by the reload; a later request to clusterd runs after it).
constexpr const char* cases_lua = R"(-- written by tests/interop/cluster_names_test.cpp
return {
  { name = "up_lua", node = "skynet1", addr = "@echo", args = P("up"), expect = "echo" },
  { name = "up_cpp", addr = "@relay", args = P("echo", "up"), expect = "ok" },
  { name = "step_down", node = "ctl", addr = "@step", args = P("down"), expect = "ok" },
  { name = "reload_down", op = "reload" },
  { name = "reload_down_again", op = "reload", config = {} },
  { name = "down_lua", node = "skynet1", addr = "@echo", args = P("down"), expect = "error" },
  { name = "down_cpp", addr = "@relay", args = P("echo", "down"), expect = "error" },
  { name = "step_back", node = "ctl", addr = "@step", args = P("back"), expect = "ok" },
  { name = "reload_back", op = "reload" },
  { name = "step_reconnected", node = "ctl", addr = "@step", args = P("reconnected"), expect = "ok" },
  { name = "back_lua", node = "skynet1", addr = "@echo", args = P("back"), expect = "echo" },
  { name = "back_cpp", addr = "@relay", args = P("echo", "back"), expect = "ok" },
}
)";

class InteropClusterNames : public interop_test {
 protected:
  /// Writes the node table (whole, then renamed over the old one: no reader sees half).
  void write_names(const std::string& skynet1) {
    const fs::path tmp = names_.string() + ".new";
    std::ofstream(tmp) << "-- written by tests/interop/cluster_names_test.cpp\n"
                       << "skynet1 = " << skynet1 << "\n"
                       << "cpp1 = \"127.0.0.1:" << cpp1_port_ << "\"\n"
                       << "ctl = \"127.0.0.1:" << ctl_port_ << "\"\n"
                       << "__nowaiting = true\n";
    fs::rename(tmp, names_);
  }
  /// Rewrites the table and waits until cpp1's worker has reloaded it (its log line).
  void change_names(const std::string& skynet1) {
    const std::size_t before = cpp1_->sup().count(reloaded);
    write_names(skynet1);
    ASSERT_TRUE(cpp1_->sup().wait_for(reloaded, before + 1, scaled(30s))) << cpp1_->output();
  }

  static constexpr const char* reloaded = "node table reloaded: ";
  fs::path names_;
  std::uint16_t cpp1_port_ = 1;  // a placeholder until cpp1 has its port
  std::uint16_t ctl_port_ = 0;
  supervised_node* cpp1_ = nullptr;
};

TEST_F(InteropClusterNames, BothSidesMarkANodeDownAndBackOnReload) {
  step_gate gate;
  inproc_node ctl("ctl", scaled(60s), [&](actor::runtime& rt) {
    ASSERT_TRUE(rt.spawn(std::make_unique<step_service>(gate), {}, {"@step"}).has_value());
  });
  ASSERT_NE(ctl.port, 0) << ctl.error;
  ctl_port_ = ctl.port;
  const auto skynet1 = start_server("skynet1", "skynet1");
  ASSERT_NE(skynet1.node, nullptr);
  const std::string skynet1_addr = "\"127.0.0.1:" + std::to_string(skynet1.port) + "\"";
  names_ = dir_ / "clustername.lua";
  write_names(skynet1_addr);
  cpp1_ = start_supervised("cpp1",
                           "runtime: {threads: 2, call_timeout_ms: 5000}\n"
                           "log: {level: info}\n"
                           "cluster: {self: cpp1, listen: \"127.0.0.1:0\", names_file: " + names_.string() + "}\n"
                           "services:\n"
                           "  - {type: echo, names: [\"@echo\"]}\n"
                           "  - {type: relay, args: [{echo_node: skynet1, hello_node: skynet1}]}\n");
  ASSERT_NE(cpp1_, nullptr);
  cpp1_port_ = cpp1_->port();
  change_names(skynet1_addr);  // now with cpp1's port
  auto table = load_cluster_names_file(names_.string());  // ctl reads the same file
  ASSERT_TRUE(table.has_value()) << table.error();
  ctl.node->reload(*table);

  const fs::path cases = dir_ / "names_cases.lua";
  std::ofstream(cases) << cases_lua;
  lua_node& client = start_lua("client", lab_client_args(cases, "cpp1", out_of("client"), "",
                                                          {"--set", "cluster=" + names_.string()}));
  const auto alive = [&] { return client.running(); };
  const auto relay_echo = [&](const std::string& word) {
    return ctl.call("cpp1", wire::target::named("@relay"), {"echo", word});
  };

  ASSERT_EQ(gate.wait(scaled(30s), alive), "down") << client.output();
  change_names("false");
  const auto t0 = test::steady::now();
  auto down = relay_echo("down");  // cpp1's side, as the test sees it
  EXPECT_LT(test::steady::now() - t0, scaled(2s));
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().text, "skynet1 @echo: cluster node skynet1 is down");
  gate.release(*ctl.rt);

  ASSERT_EQ(gate.wait(scaled(30s), alive), "back") << client.output();
  change_names(skynet1_addr);
  // Nobody connects to skynet1 now: cpp1 reconnects on its next call, the client's clusterd
  // re-points its sender (and connects) once the client reloads.
  const std::size_t accepts = skynet1.node->count("socket accept from");
  gate.release(*ctl.rt);

  ASSERT_EQ(gate.wait(scaled(30s), alive), "reconnected") << client.output();
  EXPECT_TRUE(skynet1.node->wait_for("socket accept from", accepts + 1, scaled(30s))) << skynet1.node->output();
  gate.release(*ctl.rt);

  ASSERT_TRUE(client.wait_exit(scaled(60s)).has_value()) << client.output();
  const lab_report r = lab_report::from(read_jsonl(out_of("client")));
  const std::string log = client.output();
  ASSERT_TRUE(r.done.has_value()) << log;
  EXPECT_EQ(r.done->value("checks_failed", -1), 0) << r.problems() << log;
  EXPECT_EQ(r.done->value("checks_passed", -1), static_cast<int>(expected_checks(cases))) << log;
  // Down: both fail at once. skynet has no words of its own for a node marked false (its
  // sender is closed and the caller gets skynet.call's "call failed"); cpp1's relay passes
  // our words on, which the client's clustersender logs.
  for (const char* name : {"down_lua", "down_cpp"}) {
    const json* d = r.result(name);
    ASSERT_NE(d, nullptr) << name << "\n" << log;
    EXPECT_TRUE(d->value("error", "").ends_with("call failed")) << d->dump();
    EXPECT_LT(d->value("usec", 1 << 30), scaled(2s).count() * 1000) << d->dump();
  }
  EXPECT_NE(log.find("Close cluster sender"), std::string::npos) << log;
  EXPECT_NE(log.find("skynet1 @echo: cluster node skynet1 is down"), std::string::npos) << log;
  // Up and back: cpp1's relay answers with skynet1's echo.
  for (const char* name : {"up_cpp", "back_cpp"}) {
    const json* u = r.result(name);
    ASSERT_NE(u, nullptr) << name << "\n" << log;
    ASSERT_EQ(u->value("results", json::array()).size(), 1u) << u->dump();
    EXPECT_EQ((*u)["results"][0].value("text", ""), std::string(name).substr(0, std::string(name).find('_')))
        << u->dump();
  }
  auto again = relay_echo("again");
  ASSERT_TRUE(again.has_value()) << again.error().text;
  EXPECT_EQ(again->at(0).as_string(), "again");
}

}  // namespace
}  // namespace csk::interop
