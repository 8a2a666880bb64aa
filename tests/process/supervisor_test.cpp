// The supervisor as an operator runs it: `cppskynet run` with a real cppskynet-worker,
// ephemeral ports, a temp dir per test, cluster calls from an in-process client.

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <iostream>
#include <mutex>

#include "common/channel/messages.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "supervisor/control.hpp"
#include "tests/process/process_harness.hpp"
#include "tests/support/temp_dir.hpp"

namespace csk::test {
namespace {

using actor::values;
using wire::target;

/// The config every test starts from: `services` and more supervisor keys are given.
std::string node_yaml(const std::string& services, const std::string& supervisor_extra = "",
                      const std::string& log_file = "") {
  return "runtime:\n  threads: 2\n  call_timeout_ms: 5000\n"
         "log:\n  level: info\n" +
         (log_file.empty() ? "" : "  file: " + log_file + "\n") +
         "cluster:\n  self: n1\n  listen: \"127.0.0.1:0\"\n  names_file: names.yaml\n"
         "supervisor:\n  worker: " CSK_WORKER_BIN "\n  heartbeat_ms: 100\n  ready_timeout_ms: 20000\n"
         "  stop_timeout_ms: 10000\n" +
         (supervisor_extra.find("heartbeat_timeout_ms") == std::string::npos ? "  heartbeat_timeout_ms: 3000\n" : "") +
         (supervisor_extra.find("restart_backoff_ms") == std::string::npos ? "  restart_backoff_ms: 50\n" : "") +
         supervisor_extra + "services:\n" + services;
}

const std::string echo_service = "  - type: echo\n    names: [\"@echo\"]\n";

/// A cluster client: runtime + net + cluster::node, calling the supervised node as "n1".
struct client {
  explicit client(std::uint16_t port, std::string peer = "n1", bool with_lab = false) {
    actor::runtime_options o;
    o.threads = 1;
    o.call_timeout = 10s;
    rt = std::make_unique<actor::runtime>(o);
    if (with_lab) lab::spawn_lab_services(*rt);
    n = std::make_unique<net::net>(1);
    cluster::node_options no;
    if (with_lab) {
      no.self = "peer";
      no.listen = cluster::endpoint{"127.0.0.1", 0};
    }
    node = std::make_unique<cluster::node>(*rt, *n, no);
    cluster_names t;
    if (port != 0) t.nodes[peer] = cluster_node_address{"127.0.0.1", port};
    node->reload(t);
    rt->start();
    n->start();
  }
  ~client() {
    n->stop();
    rt->shutdown();
  }
  /// A call that never hangs the test: "HUNG" if no answer within 20 s.
  std::string call(target t, values args) {
    auto f = node->call("n1", std::move(t), std::move(args));
    if (f.wait_for(20s) != std::future_status::ready) return "HUNG";
    auto r = f.get();
    if (!r) return "error: " + r.error().text;
    std::string out;
    for (const auto& v : *r) out += (out.empty() ? "" : " ") + (v.is_string() ? v.as_string() : std::to_string(v.as_integer()));
    return out;
  }
  std::unique_ptr<actor::runtime> rt;
  std::unique_ptr<net::net> n;
  std::unique_ptr<cluster::node> node;
};

/// connect() to 127.0.0.1:port: 0 on success, else errno.
int try_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

class Supervisor : public temp_dir_test {
 protected:
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  void SetUp() override {
    temp_dir_test::SetUp();
    write("names.yaml", "__nowaiting: true\n");
  }
  /// Starts the supervisor and waits for its first worker to be ready.
  std::unique_ptr<supervisor_process> start(const std::vector<std::string>& env = {}) {
    auto s = std::make_unique<supervisor_process>(dir_, env);
    EXPECT_TRUE(s->wait_for("worker gen 1 (pid")) << s->output();
    EXPECT_TRUE(s->wait_for("ready in")) << s->output();
    return s;
  }
};

TEST_F(Supervisor, WorkerServesACallOnTheInheritedListener) {
  write("node.yaml", node_yaml(echo_service));
  auto s = start();
  const std::uint16_t port = s->cluster_port();
  ASSERT_NE(port, 0) << s->output();
  client c(port);
  EXPECT_EQ(c.call(target::named("@echo"), {"hello", 42}), "hello 42");
  // The worker adopted the supervisor's socket, it did not bind one.
  EXPECT_NE(s->output().find("serving the inherited listener"), std::string::npos) << s->output();

  auto st = supervisor::control_call((dir_ / "cppskynet.sock").string(), {{"cmd", "status"}}, 10s);
  ASSERT_TRUE(st.has_value()) << st.error();
  EXPECT_EQ((*st)["pid"], s->proc().pid());
  ASSERT_EQ((*st)["workers"].size(), 1u) << st->dump();
  EXPECT_EQ((*st)["workers"][0]["state"], "ready");
  EXPECT_EQ((*st)["workers"][0]["generation"], 1);
  EXPECT_EQ((*st)["workers"][0]["pid"], s->worker_pid(1));
  EXPECT_EQ((*st)["listeners"][0]["name"], "cluster");
  EXPECT_EQ((*st)["listeners"][0]["address"], "127.0.0.1:" + std::to_string(port));
  auto bad = supervisor::control_call((dir_ / "cppskynet.sock").string(), {{"cmd", "dance"}}, 10s);
  ASSERT_TRUE(bad.has_value()) << bad.error();
  EXPECT_EQ((*bad)["error"], "unknown command dance");
}

TEST_F(Supervisor, GracefulStopExitsZeroAndClosesTheListeners) {
  write("node.yaml", node_yaml(echo_service));
  auto s = start();
  const std::uint16_t port = s->cluster_port();
  const pid_t worker = s->worker_pid(1);
  s->proc().signal(SIGTERM);
  auto status = s->proc().wait_exit();
  ASSERT_TRUE(status.has_value()) << s->output();
  ASSERT_TRUE(WIFEXITED(*status)) << s->output();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << s->output();
  EXPECT_TRUE(eventually([&] { return process_gone(worker); }));
  EXPECT_NE(s->output().find("supervisor: stop: stopping"), std::string::npos) << s->output();
  EXPECT_NE(s->output().find("worker gen 1 (pid " + std::to_string(worker) + ") exited with code 0"), std::string::npos)
      << s->output();
  EXPECT_EQ(try_connect(port), ECONNREFUSED);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "cppskynet.sock"));
}

TEST_F(Supervisor, KillNineRestartsTheWorkerAndNoConnectionIsRefused) {
  // A 300 ms backoff makes an outage long enough for connections to queue in the backlog.
  write("node.yaml", node_yaml(echo_service, "  restart_backoff_ms: 300\n"));
  auto s = start();
  const std::uint16_t port = s->cluster_port();
  ASSERT_NE(port, 0);

  std::atomic<bool> stop{false};
  std::atomic<int> connects{0}, refused{0};
  std::thread connector([&] {  // a new connection every few ms, the whole time
    while (!stop) {
      const int err = try_connect(port);
      ++connects;
      if (err == ECONNREFUSED) ++refused;
      std::this_thread::sleep_for(5ms);  // pacing, not waiting for anything
    }
  });
  client c(port);
  std::mutex mu;
  std::vector<std::string> results;
  std::atomic<int> ok{0};
  std::thread caller([&] {
    for (int i = 0; !stop; ++i) {
      std::string r = c.call(target::named("@echo"), {"n", i});
      if (r == "n " + std::to_string(i)) ++ok;
      std::lock_guard lock(mu);
      results.push_back(std::move(r));
    }
  });

  ASSERT_TRUE(eventually([&] { return ok >= 20; })) << s->output();
  const pid_t first = s->worker_pid(1);
  ASSERT_GT(first, 0);
  const int connects_before = connects;
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(s->wait_for("restart took")) << s->output();
  const int connects_during = connects - connects_before;
  const int ok_before = ok;
  EXPECT_TRUE(eventually([&] { return ok >= ok_before + 20; })) << s->output();
  stop = true;
  connector.join();
  caller.join();

  EXPECT_EQ(refused, 0) << "of " << connects << " connects";
  EXPECT_GE(connects_during, 5) << "connects while no worker ran";
  std::lock_guard lock(mu);
  for (const auto& r : results) EXPECT_NE(r, "HUNG");
  EXPECT_NE(s->output().find("worker gen 1 (pid " + std::to_string(first) + ") killed by signal 9"), std::string::npos);
  EXPECT_GT(s->worker_pid(2), 0);
  const std::string took = s->find(R"((restart took \d+ ms))");
  std::cout << "[ restart  ] " << took << "; " << connects << " connects (" << connects_during
            << " during the outage), none refused; " << results.size() << " calls, " << ok << " answered\n";
  for (const auto& r : results) {
    if (r.rfind("error", 0) == 0) std::cout << "[ outage   ] call " << r << "\n";
  }
}

TEST_F(Supervisor, SilentWorkerIsKilledAndReplaced) {
  write("node.yaml", node_yaml(echo_service, "  heartbeat_timeout_ms: 1000\n"));
  auto s = start();
  const pid_t first = s->worker_pid(1);
  ASSERT_EQ(::kill(first, SIGSTOP), 0);  // alive, but silent
  ASSERT_TRUE(s->wait_for("no heartbeat for")) << s->output();
  ASSERT_TRUE(s->wait_for("restart took")) << s->output();
  client c(s->cluster_port());
  EXPECT_EQ(c.call(target::named("@echo"), {"back"}), "back");
}

TEST_F(Supervisor, SighupReloadsTheWorkersNodeTable) {
  // The relay calls node "peer" (absent at first: __nowaiting fails the call at once).
  write("names.yaml", "__nowaiting: true\nn1: \"127.0.0.1:1\"\n");
  write("node.yaml", node_yaml("  - type: relay\n    args: [{echo_node: peer, hello_node: n1}]\n"));
  auto s = start();
  client peer(0, "n1", true);  // a node named "peer" with the lab's @echo
  const auto peer_port = peer.node->open();
  ASSERT_TRUE(peer_port.has_value()) << peer_port.error();
  client c(s->cluster_port());
  EXPECT_NE(c.call(target::named("@relay"), {"echo", "x"}).find("peer"), std::string::npos);

  write("names.yaml", "__nowaiting: true\nn1: \"127.0.0.1:1\"\npeer: \"127.0.0.1:" + std::to_string(*peer_port) + "\"\n");
  s->proc().signal(SIGHUP);
  ASSERT_TRUE(s->wait_for("supervisor: reload: node table reloaded from")) << s->output();
  EXPECT_EQ(c.call(target::named("@relay"), {"echo", "x"}), "x");
}

TEST_F(Supervisor, WorkerOfAnotherProtocolVersionIsRefused) {
  write("node.yaml", node_yaml(echo_service));
  supervisor_process s(dir_, {"CSK_TEST_PROTOCOL_VERSION=99"});
  auto status = s.proc().wait_exit();
  ASSERT_TRUE(status.has_value()) << s.output();
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1) << s.output();
  const std::string refusal =
      "refused: it speaks channel protocol 99, this supervisor speaks " + std::to_string(channel::protocol_version);
  EXPECT_NE(s.output().find(refusal), std::string::npos) << s.output();
  EXPECT_NE(s.output().find("refused by the supervisor"), std::string::npos) << s.output();  // the worker's side
  EXPECT_EQ(s.count("started: pid"), 1u) << s.output();  // not restarted
}

TEST_F(Supervisor, CrashLoopGivesUp) {
  write("node.yaml", node_yaml("  - type: no_such_service\n",
                               "  crash_loop_restarts: 3\n  crash_loop_window_ms: 60000\n  restart_backoff_ms: 5\n"));
  supervisor_process s(dir_);
  auto status = s.proc().wait_exit();
  ASSERT_TRUE(status.has_value()) << s.output();
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1) << s.output();
  EXPECT_EQ(s.count("started: pid"), 4u) << s.output();  // the first and 3 restarts
  EXPECT_NE(s.output().find("crash loop: 3 restarts within 60000 ms already: giving up"), std::string::npos)
      << s.output();
  EXPECT_NE(s.output().find("exited with code 4"), std::string::npos) << s.output();
}

TEST_F(Supervisor, SupervisorDeathStopsTheWorker) {
  write("node.yaml", node_yaml(echo_service));
  auto s = start();
  const pid_t worker = s->worker_pid(1);
  s->proc().signal(SIGKILL);
  ASSERT_TRUE(s->proc().wait_exit().has_value());
  EXPECT_TRUE(eventually([&] { return process_gone(worker); })) << s->output();
  EXPECT_TRUE(s->wait_for("supervisor channel: peer closed the channel: stopping")) << s->output();
}

TEST_F(Supervisor, LogFileGetsEveryProcessAndIsReopenedOnSigusr1) {
  write("node.yaml", node_yaml(echo_service, "", "node.log"));
  auto s = std::make_unique<supervisor_process>(dir_);
  // The worker logs "node running" just after it says ready; its line reaches the file
  // through the supervisor's pipe, maybe after the supervisor's own "ready in": wait for both.
  ASSERT_TRUE(eventually([&] {
    const std::string text = read_file(dir_ / "node.log");
    return text.find("ready in") != std::string::npos && text.find("[service] node running") != std::string::npos;
  })) << s->output() << read_file(dir_ / "node.log");
  const std::string first = read_file(dir_ / "node.log");
  EXPECT_NE(first.find("supervisor.0] [supervisor] worker gen 1"), std::string::npos) << first;
  EXPECT_NE(first.find("worker.1] [service] node running"), std::string::npos) << first;

  std::filesystem::rename(dir_ / "node.log", dir_ / "node.log.1");  // logrotate's move
  s->proc().signal(SIGUSR1);
  ASSERT_TRUE(eventually([&] {
    return read_file(dir_ / "node.log").find("worker.1] [service] supervisor: log_reopen") != std::string::npos;
  })) << read_file(dir_ / "node.log") << read_file(dir_ / "node.log.1");
  EXPECT_NE(read_file(dir_ / "node.log").find("supervisor.0] [supervisor] SIGUSR1"), std::string::npos);
}

TEST_F(Supervisor, DaemonDetachesWritesThePidFileAndStops) {
  write("node.yaml", node_yaml(echo_service, "  pid_file: run.pid\n", "node.log"));
  supervisor_process s(dir_, {}, {"--daemon"});
  auto status = s.proc().wait_exit();  // returns once the daemon's worker is ready
  ASSERT_TRUE(status.has_value()) << s.output();
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << s.output() << read_file(dir_ / "node.log");
  const pid_t daemon = static_cast<pid_t>(std::stoi(read_file(dir_ / "run.pid")));
  EXPECT_NE(daemon, s.proc().pid());
  client c([&] {
    const std::string log = read_file(dir_ / "node.log");
    std::smatch m;
    return std::regex_search(log, m, std::regex(R"(listener cluster bound to 127\.0\.0\.1:(\d+))"))
               ? static_cast<std::uint16_t>(std::stoi(m[1].str()))
               : std::uint16_t{0};
  }());
  EXPECT_EQ(c.call(target::named("@echo"), {"daemon"}), "daemon");
  ::kill(daemon, SIGTERM);
  EXPECT_TRUE(eventually([&] { return process_gone(daemon); }));
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(dir_ / "run.pid"); }));
}

}  // namespace
}  // namespace csk::test
