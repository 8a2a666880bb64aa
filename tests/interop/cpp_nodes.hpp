#pragma once
// The C++ side of the interop tests: a cppskynet node under its supervisor (`cppskynet run`,
// real worker processes, the operator's commands through its control socket), and a node
// inside the test process (runtime + net + cluster::node, as worker/ assembles them) for
// calls whose results the test inspects value by value. Header-only.
//
// Thread rules: the test's main thread drives both; the in-process node's services run
// on its runtime threads.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/actor/runtime.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "tests/process/process_harness.hpp"

namespace csk::interop {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// Sanitizer builds of our programs run several times slower (TSan most): deadlines that
/// wait for our processes scale by this.
#if defined(__SANITIZE_THREAD__)
inline constexpr int slowdown = 8;
#elif defined(__SANITIZE_ADDRESS__)
inline constexpr int slowdown = 3;
#else
inline constexpr int slowdown = 1;
#endif
inline std::chrono::milliseconds scaled(std::chrono::milliseconds d) { return d * slowdown; }

/// The supervisor keys a test adds to a node config: the build's worker binary, the
/// control socket in `dir`.
inline std::string supervisor_keys(const fs::path& dir) {
  return "supervisor:\n  worker: " CSK_WORKER_BIN "\n  control_socket: " + (dir / "ctl.sock").string() + "\n";
}

/// `cppskynet run -c DIR/node.yaml` (the caller writes the file), ready, with its cluster
/// port; `error` says why not. Output: DIR/supervisor.out (the workers' logs too).
class supervised_node {
 public:
  supervised_node(const fs::path& dir, const std::vector<std::string>& env = {}) : dir_(dir), sup_(dir, env) {
    if (!sup_.wait_for("ready in", 1, scaled(30s))) {
      error_ = "the supervised node did not get ready:\n" + sup_.output();
      return;
    }
    port_ = sup_.cluster_port();
    if (port_ == 0) error_ = "no cluster listener in the supervisor's log:\n" + sup_.output();
  }
  ~supervised_node() { stop(); }
  supervised_node(const supervised_node&) = delete;
  supervised_node& operator=(const supervised_node&) = delete;

  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  test::supervisor_process& sup() { return sup_; }
  std::string output() const { return sup_.output(); }

  /// `cppskynet ARGS... --socket DIR/ctl.sock` to completion.
  test::command_result cli(std::vector<std::string> args, std::chrono::milliseconds limit = scaled(60s)) {
    args.insert(args.begin(), CSK_CLI_BIN);
    args.insert(args.end(), {"--socket", (dir_ / "ctl.sock").string()});
    return test::run_command(args, dir_, std::to_string(++commands_), limit);
  }
  /// `cppskynet status --json`, parsed (discarded if it did not parse).
  nlohmann::json status() { return nlohmann::json::parse(cli({"status", "--json"}).output, nullptr, false); }

  /// SIGTERM and the supervisor's exit; idempotent. Returns its wait status.
  std::optional<int> stop() {
    if (!stopped_) {
      stopped_ = true;
      sup_.proc().signal(SIGTERM);
      status_ = sup_.proc().wait_exit(scaled(30s));
    }
    return status_;
  }

 private:
  fs::path dir_;
  test::supervisor_process sup_;
  std::uint16_t port_ = 0;
  std::string error_;
  int commands_ = 0;
  bool stopped_ = false;
  std::optional<int> status_;
};

/// examples/cluster1/config.yaml as the main job runs it (tools/run.sh), in DIR/cluster1:
/// the file unchanged plus supervisor_keys(), its node table beside it as the example has
/// it (DIR/clustername.lua and .yaml: names_file is ../clustername.*), every listener on an
/// ephemeral port through the environment variables that move them (the cluster, the kv
/// gate, the debug console), so that tests in parallel do not clash.
inline std::unique_ptr<supervised_node> start_example_node(const fs::path& dir) {
  const fs::path examples = fs::path(CSK_SOURCE_DIR) / "examples";
  const fs::path node_dir = dir / "cluster1";
  fs::create_directories(node_dir);
  fs::copy_file(examples / "clustername.lua", dir / "clustername.lua", fs::copy_options::overwrite_existing);
  fs::copy_file(examples / "clustername.yaml", dir / "clustername.yaml", fs::copy_options::overwrite_existing);
  std::ofstream(node_dir / "node.yaml") << test::read_file(examples / "cluster1" / "config.yaml") << "\n"
                                        << supervisor_keys(node_dir);
  return std::make_unique<supervised_node>(
      node_dir, std::vector<std::string>{"CSK_CLUSTER_LISTEN=127.0.0.1:0", "CSK_GATE_KV_LISTEN=127.0.0.1:0",
                                          "CSK_DEBUG_CONSOLE_LISTEN=127.0.0.1:0"});
}

/// A cppskynet node inside the test process: a runtime (2 threads, `call_timeout`), a net
/// (1 thread) and a cluster::node, listening on 127.0.0.1:0 when `self` is not empty.
/// `prepare` runs before the runtime starts (register types, spawn services).
/// Lifetime: the net stops first, then the runtime (its services may call through the node).
struct inproc_node {
  inproc_node(std::string self, std::chrono::milliseconds call_timeout,
              const std::function<void(actor::runtime&)>& prepare = {}) {
    actor::runtime_options o;
    o.threads = 2;
    o.call_timeout = call_timeout;
    rt = std::make_unique<actor::runtime>(o);
    if (prepare) prepare(*rt);
    net = std::make_unique<net::net>(1);
    cluster::node_options no;
    no.self = std::move(self);
    if (!no.self.empty()) no.listen = cluster::endpoint{"127.0.0.1", 0};
    node = std::make_unique<cluster::node>(*rt, *net, no);
    rt->start();
    net->start();
    if (!no.self.empty()) {
      auto p = node->open();
      if (p) port = *p;
      else error = p.error();
    }
  }
  ~inproc_node() {
    net->stop();
    rt->shutdown();
  }
  inproc_node(const inproc_node&) = delete;
  inproc_node& operator=(const inproc_node&) = delete;

  /// A cluster call bounded by the test: a timeout error after 30 s (scaled).
  actor::call_result call(std::string_view to_node, wire::target to, actor::values args) {
    auto f = node->call(to_node, std::move(to), std::move(args));
    if (f.wait_for(scaled(30s)) != std::future_status::ready) {
      return unexpected(actor::call_error{actor::call_errc::timeout, "test deadline"});
    }
    return f.get();
  }

  std::unique_ptr<actor::runtime> rt;
  std::unique_ptr<net::net> net;
  std::unique_ptr<cluster::node> node;
  std::uint16_t port = 0;
  std::string error;
};

}  // namespace csk::interop
