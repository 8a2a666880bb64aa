// The operator verbs: the built `cppskynet` binary against a control_server run in-process
// (canned replies), and `check` against real and broken configs. No sleeps: the binary is
// waited for with a deadline.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>

#include "tests/support/temp_dir.hpp"
#include "tests/unit/control/control_loop.hpp"

extern char** environ;

namespace {

using csk::supervisor::control_reply;
using csk::supervisor::control_request;
using csk::supervisor::control_server;
using csk::test::server_loop;
using nlohmann::json;
using namespace std::chrono_literals;

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const run_result& r) {
  return os << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

// Runs the cppskynet binary; kills it if it has not finished within the deadline.
run_result run_cli(const std::vector<std::string>& args, std::chrono::milliseconds deadline = 30s) {
  run_result res;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return res;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<std::string> argv_s{CSK_CPPSKYNET_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, CSK_CPPSKYNET_BIN, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << CSK_CPPSKYNET_BIN << ": " << std::strerror(rc);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return res;
  }
  const auto end = std::chrono::steady_clock::now() + deadline;
  pollfd p[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sink[2] = {&res.out, &res.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ADD_FAILURE() << "cppskynet did not finish within " << deadline.count() << " ms";
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(p, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        sink[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(p[i].fd);
        p[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& q : p) {
    if (q.fd >= 0) ::close(q.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  res.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

const json canned_status = {
    {"pid", 4242},
    {"config", "/etc/cppskynet/node.yaml"},
    {"version", "0.1.0"},
    {"listeners", {{{"name", "cluster"}, {"address", "127.0.0.1:2528"}, {"fd", 5}}}},
    {"workers",
     {{{"pid", 4243}, {"generation", 3}, {"state", "running"}, {"uptime_s", 3725}, {"restarts", 2},
       {"last_exit", "killed by signal 9"}},
      {{"pid", 4250}, {"state", "starting"}}}},  // keys may be missing
};

class ops_cli_test : public csk::test::temp_dir_test {
 protected:
  std::string sock() const { return (dir_ / "ctl.sock").string(); }

  // A server answering with canned replies; records the commands it saw.
  std::unique_ptr<server_loop> serve(std::map<std::string, json> replies, const std::string& path = "") {
    auto s = control_server::open(path.empty() ? sock() : path,
                                  [this, replies = std::move(replies)](const control_request& r, control_reply reply) {
                                    {
                                      std::lock_guard lock(mu_);
                                      seen_.push_back(r.cmd);
                                    }
                                    auto it = replies.find(r.cmd);
                                    if (!(r.cmd == "stop" && stop_without_reply_)) {
                                      reply(it == replies.end() ? json{{"error", "unknown command " + r.cmd}} : it->second);
                                    }
                                    if (r.cmd == "stop" && stop_destroys_) loop_->destroy_server_later();
                                  });
    if (!s) {
      ADD_FAILURE() << s.error();
      return nullptr;
    }
    auto loop = std::make_unique<server_loop>(std::move(*s));
    server_loop* raw = loop.get();
    loop->run([this, raw] { loop_ = raw; });  // the handler reads it on the loop thread
    return loop;
  }

  std::vector<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  void write_file(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }

  std::mutex mu_;
  std::vector<std::string> seen_;
  server_loop* loop_ = nullptr;  // loop thread only
  bool stop_destroys_ = true;  // set before serve(); read on the loop thread only after
  bool stop_without_reply_ = false;  // likewise: the server goes away without answering "stop"
};

// --- check ---------------------------------------------------------------------------

TEST_F(ops_cli_test, check_the_example_config) {
  auto r = run_cli({"check", "-c", CSK_SOURCE_DIR "/examples/cluster1/config.yaml"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("ok: ", 0), 0u) << r;
  EXPECT_NE(r.out.find("services: 5"), std::string::npos) << r;
  EXPECT_NE(r.out.find("echo     @echo .echo"), std::string::npos) << r;
  EXPECT_NE(r.out.find("listeners: 3"), std::string::npos) << r;
  EXPECT_NE(r.out.find("gate:kv        127.0.0.1:8001"), std::string::npos) << r;
  EXPECT_NE(r.out.find("debug_console  127.0.0.1:8000"), std::string::npos) << r;
  EXPECT_NE(r.out.find("cluster"), std::string::npos) << r;
  EXPECT_NE(r.out.find("control socket: "), std::string::npos) << r;
  EXPECT_EQ(r.err, "");

  auto j = run_cli({"check", "--json", "-c", CSK_SOURCE_DIR "/examples/cluster1/config.yaml"});
  EXPECT_EQ(j.code, 0) << j;
  auto parsed = json::parse(j.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << j;
  EXPECT_EQ(parsed["ok"], true);
  EXPECT_EQ(parsed["services"].size(), 5u);
  EXPECT_EQ(parsed["listeners"][0]["name"], "cluster");
  EXPECT_EQ(parsed["listeners"][1]["name"], "gate:kv");
  EXPECT_EQ(parsed["listeners"][2]["name"], "debug_console");
}

TEST_F(ops_cli_test, check_lists_every_error_with_its_key) {
  write_file("node.yaml", "runtime:\n  threads: 999\nbogus: 1\nservices:\n  - name: \"@x\"\n");
  const std::string cfg = (dir_ / "node.yaml").string();
  auto r = run_cli({"check", "-c", cfg});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(cfg + ": 3 errors"), std::string::npos) << r;
  EXPECT_NE(r.err.find(cfg + ": runtime.threads (line 2): must be between 1 and 256"), std::string::npos) << r;
  EXPECT_NE(r.err.find(cfg + ": bogus (line 3): unknown key"), std::string::npos) << r;
  EXPECT_NE(r.err.find(cfg + ": services[0].type (line 5): required"), std::string::npos) << r;

  auto j = run_cli({"check", "-c", cfg, "--json"});
  EXPECT_EQ(j.code, 1) << j;
  auto parsed = json::parse(j.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << j;
  EXPECT_EQ(parsed["ok"], false);
  EXPECT_EQ(parsed["errors"].size(), 3u);
}

TEST_F(ops_cli_test, check_reads_the_node_table) {
  write_file("names.yaml", "n1: \"127.0.0.1:99999\"\n");
  write_file("node.yaml", "cluster:\n  self: n1\n  names_file: names.yaml\n");
  auto r = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find((dir_ / "names.yaml").string() + ": n1 (line 1): the port must be between 1 and 65535"),
            std::string::npos)
      << r;

  write_file("names.yaml", "n2: \"127.0.0.1:2600\"\n");
  r = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("cluster node n1 is not in the node table " + (dir_ / "names.yaml").string()), std::string::npos)
      << r;

  write_file("names.yaml", "n1: \"127.0.0.1:2600\"\n");
  r = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("cluster  127.0.0.1:2600"), std::string::npos) << r;

  // Every listener the supervisor would bind, checked together.
  write_file("node.yaml",
             "cluster:\n  self: n1\n  names_file: names.yaml\n"
             "gates:\n  - name: kv\n    listen: \"127.0.0.1:2600\"\n    type: kv_gate\n");
  r = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("gate:kv: 127.0.0.1:2600 is also cluster's address"), std::string::npos) << r;
  write_file("node.yaml",
             "cluster:\n  self: n1\n  names_file: names.yaml\n"
             "gates:\n  - name: kv\n    listen: \"127.0.0.1:2601\"\n    type: kv_gate\n");
  r = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("listeners: 2\n  cluster  127.0.0.1:2600\n  gate:kv  127.0.0.1:2601\n"), std::string::npos) << r;

  r = run_cli({"check", "-c", (dir_ / "missing.yaml").string()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find((dir_ / "missing.yaml").string() + ": cannot open: No such file or directory"),
            std::string::npos)
      << r;
}

TEST_F(ops_cli_test, usage_errors_exit_2) {
  EXPECT_EQ(run_cli({"check"}).code, 2);
  EXPECT_EQ(run_cli({"status"}).code, 2);
  EXPECT_EQ(run_cli({"status", "--socket", sock(), "--bogus"}).code, 2);
  EXPECT_EQ(run_cli({"stop", "--socket", sock(), "--timeout", "-1"}).code, 2);
  EXPECT_EQ(run_cli({"frobnicate"}).code, 2);
}

// --- status, reload, stop -------------------------------------------------------------

TEST_F(ops_cli_test, status_human_and_json) {
  auto loop = serve({{"status", canned_status}});
  ASSERT_TRUE(loop);
  auto r = run_cli({"status", "--socket", sock()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.err, "");
  const std::string expected =
      "supervisor pid 4242, version 0.1.0, config /etc/cppskynet/node.yaml\n"
      "listeners:\n"
      "  NAME     ADDRESS         FD\n"
      "  cluster  127.0.0.1:2528  5\n"
      "workers:\n"
      "  PID   GEN  STATE     UPTIME  RESTARTS  LAST EXIT\n"
      "  4243  3    running   1h02m   2         killed by signal 9\n"
      "  4250  -    starting  -       -         -\n";
  EXPECT_EQ(r.out, expected);

  auto j = run_cli({"status", "--json", "--socket", sock()});
  EXPECT_EQ(j.code, 0) << j;
  EXPECT_EQ(json::parse(j.out, nullptr, false), canned_status) << j;
  EXPECT_EQ(seen(), (std::vector<std::string>{"status", "status"}));
}

TEST_F(ops_cli_test, status_of_a_sparse_reply) {
  auto loop = serve({{"status", json{{"pid", 7}}}});
  ASSERT_TRUE(loop);
  auto r = run_cli({"status", "--socket", sock()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "supervisor pid 7\nlisteners: none\nworkers: none\n");
}

TEST_F(ops_cli_test, status_finds_the_socket_from_the_config) {
  write_file("node.yaml", "runtime:\n  threads: 1\n");
  auto loop = serve({{"status", json{{"pid", 1}}}}, (dir_ / "cppskynet.sock").string());
  ASSERT_TRUE(loop);
  auto r = run_cli({"status", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("supervisor pid 1\n", 0), 0u) << r;
}

TEST_F(ops_cli_test, status_uses_the_configured_control_socket) {
  write_file("node.yaml", "supervisor:\n  control_socket: run/other.sock\n");
  std::filesystem::create_directories(dir_ / "run");
  auto loop = serve({{"status", json{{"pid", 2}}}}, (dir_ / "run" / "other.sock").string());
  ASSERT_TRUE(loop);
  auto r = run_cli({"status", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("supervisor pid 2\n", 0), 0u) << r;
  auto c = run_cli({"check", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(c.code, 0) << c;
  EXPECT_NE(c.out.find("control socket: " + (dir_ / "run" / "other.sock").string()), std::string::npos) << c;
}

TEST_F(ops_cli_test, reload_ok_and_error) {
  auto loop = serve({{"reload", json{{"ok", true}, {"nodes", 3}}}});
  ASSERT_TRUE(loop);
  auto r = run_cli({"reload", "--socket", sock()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "reload: ok\n  nodes: 3\n");
  auto j = run_cli({"reload", "--json", "--socket", sock()});
  EXPECT_EQ(j.code, 0) << j;
  EXPECT_EQ(j.out, "{\"nodes\":3,\"ok\":true}\n");
  loop.reset();

  auto bad = serve({{"reload", json{{"error", "clustername.yaml: n1 (line 1): bad port"}}}});
  ASSERT_TRUE(bad);
  auto e = run_cli({"reload", "--socket", sock()});
  EXPECT_EQ(e.code, 1) << e;
  EXPECT_EQ(e.out, "");
  EXPECT_EQ(e.err, "cppskynet: reload: clustername.yaml: n1 (line 1): bad port\n");
  EXPECT_EQ(seen(), (std::vector<std::string>{"reload", "reload", "reload"}));
}

TEST_F(ops_cli_test, stop_waits_until_the_supervisor_has_gone) {
  auto loop = serve({{"stop", json{{"stopping", true}}}});  // the handler destroys the server after replying
  ASSERT_TRUE(loop);
  auto r = run_cli({"stop", "--socket", sock()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "stopped\n");
  EXPECT_EQ(seen(), (std::vector<std::string>{"stop"}));
  EXPECT_FALSE(std::filesystem::exists(sock()));
}

// With a pid in the reply, stop also waits for that process to exit (a zombie counts as
// gone: its parent may be the one waiting for stop to return).
TEST_F(ops_cli_test, stop_waits_for_the_pid_in_the_reply) {
  pid_t sleeper = 0;
  char sleep_name[] = "sleep";
  char sleep_arg[] = "60";
  char* sleep_argv[] = {sleep_name, sleep_arg, nullptr};
  ASSERT_EQ(::posix_spawnp(&sleeper, "sleep", nullptr, nullptr, sleep_argv, environ), 0);
  auto loop = serve({{"stop", json{{"pid", sleeper}}}});
  ASSERT_TRUE(loop);
  auto cli = std::async(std::launch::async, [&] { return run_cli({"stop", "--socket", sock()}); });
  // The control socket goes away at once; the process is still there, so stop waits.
  ASSERT_TRUE(loop->wait_until([](control_server* srv) { return srv == nullptr; }));
  EXPECT_EQ(cli.wait_for(200ms), std::future_status::timeout);
  ::kill(sleeper, SIGKILL);  // not reaped yet: a zombie
  ASSERT_EQ(cli.wait_for(30s), std::future_status::ready);
  auto r = cli.get();
  int status = 0;
  ::waitpid(sleeper, &status, 0);
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "stopped (supervisor pid " + std::to_string(sleeper) + ")\n");
}

TEST_F(ops_cli_test, stop_accepts_a_supervisor_that_exits_before_answering) {
  stop_without_reply_ = true;
  auto loop = serve({});
  ASSERT_TRUE(loop);
  auto r = run_cli({"stop", "--socket", sock()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "stopped\n");
  // status, on the other hand, reports a connection closed without a reply.
  auto s2 = run_cli({"status", "--socket", sock()});
  EXPECT_EQ(s2.code, 3) << s2;  // by now nothing listens there at all
}

TEST_F(ops_cli_test, error_reply_with_json_is_printed_too) {
  auto loop = serve({});
  ASSERT_TRUE(loop);
  auto r = run_cli({"status", "--json", "--socket", sock()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_EQ(r.out, "{\"error\":\"unknown command status\"}\n");
  EXPECT_EQ(r.err, "cppskynet: status: unknown command status\n");
}

TEST_F(ops_cli_test, stop_gives_up_after_its_timeout) {
  stop_destroys_ = false;
  auto loop = serve({{"stop", json{{"stopping", true}}}});
  ASSERT_TRUE(loop);
  auto r = run_cli({"stop", "--socket", sock(), "--timeout", "0.3"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_EQ(r.err, "cppskynet: the supervisor at " + sock() + " is still running after 0.3 s\n");
}

TEST_F(ops_cli_test, nothing_listening_exits_3) {
  for (const char* verb : {"status", "stop", "reload"}) {
    auto r = run_cli({verb, "--socket", sock()});
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_EQ(r.err, "cppskynet: no supervisor at " + sock() + ": No such file or directory\n") << r;
  }
  write_file("node.yaml", "");
  auto r = run_cli({"status", "-c", (dir_ / "node.yaml").string()});
  EXPECT_EQ(r.code, 3) << r;
  EXPECT_EQ(r.err, "cppskynet: no supervisor at " + (dir_ / "cppskynet.sock").string() +
                       ": No such file or directory\n")
      << r;
}

}  // namespace
