#pragma once
// The Lua side of the interop tests: the skynet peer (../shared/skynet-peer beside the
// source tree: unmodified Lua skynet, its build script and the lab's Lua services), real
// Lua skynet nodes started through its lab/bin/skynode, and what the lab's client and
// bench roles report. Header-only.
//
// Where the peer comes from: the lab (lab/bin/skynode, lab/service, lab/cases) is always
// the peer folder's ($SKYNET_PEER_DIR moves it); the skynet tree is $SKYNET_ROOT when set,
// else the one the peer's build.sh builds (once, cached outside the repository,
// concurrency-safe) and prints.
//
// Processes: a lua_node is one skynet process (skynode execs skynet, so its pid is
// skynet's), its stdout and stderr in a log file, SIGKILLed by the destructor and, through
// PR_SET_PDEATHSIG, when the test process dies. Waits poll the log with a deadline.
// More about the interop label: docs/testing.md.
//
// Thread rules: everything here is for the test's main thread (PR_SET_PDEATHSIG follows
// the thread that forked).

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"

namespace csk::interop {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using test::eventually;

/// A usable peer: the lab scripts and a built skynet tree.
struct skynet_peer {
  fs::path dir;   ///< the peer folder (lab/ inside)
  fs::path root;  ///< a built skynet tree (the `skynet` binary inside)
  fs::path skynode() const { return dir / "lab" / "bin" / "skynode"; }
  fs::path cases(std::string_view file) const { return dir / "lab" / "cases" / file; }
};

/// What looking for the peer found: a peer, or why the tests skip (`absent`) or fail.
struct peer_lookup {
  std::optional<skynet_peer> peer;
  bool absent = false;
  std::string why;
};

/// The peer folder: $SKYNET_PEER_DIR, else ../shared/skynet-peer beside the source tree.
inline fs::path peer_dir() {
  const char* env = std::getenv("SKYNET_PEER_DIR");
  if (env != nullptr && *env != '\0') return env;
  return fs::weakly_canonical(fs::path(CSK_SOURCE_DIR) / ".." / "shared" / "skynet-peer");
}

/// The last non-empty line of `text`.
inline std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  return std::string(nl == std::string_view::npos ? text : text.substr(nl + 1));
}

/// Finds the peer and its skynet tree, running the peer's build.sh when $SKYNET_ROOT is
/// not set (seconds the first time, then a cache hit). `scratch` holds the build output.
inline peer_lookup look_for_peer(const fs::path& scratch) {
  peer_lookup r;
  skynet_peer p;
  p.dir = peer_dir();
  const char* env_root = std::getenv("SKYNET_ROOT");
  const bool has_root = env_root != nullptr && *env_root != '\0';
  if (!fs::exists(p.skynode())) {
    r.absent = true;
    r.why = "no skynet peer at " + p.dir.string() + " (no lab/bin/skynode there)" +
            (has_root ? "; SKYNET_ROOT gives a skynet tree, but the lab's Lua services come from the peer" : "") +
            ": the live interop tests need it (docs/testing.md, \"Live interop tests\"; SKYNET_PEER_DIR points "
            "to another copy)";
    return r;
  }
  if (has_root) {
    p.root = env_root;
  } else {
    const auto built = test::run_command({(p.dir / "build.sh").string()}, scratch, "skynet-peer-build", 280s);
    if (built.exit_code != 0) {
      r.why = "the skynet peer's build.sh failed (exit " + std::to_string(built.exit_code) + "):\n" + built.output;
      return r;
    }
    p.root = last_line(built.output);
  }
  if (::access((p.root / "skynet").c_str(), X_OK) != 0) {
    r.why = "no skynet binary in " + p.root.string() + (has_root ? " (SKYNET_ROOT)" : " (printed by build.sh)");
    return r;
  }
  r.peer = std::move(p);
  return r;
}

/// A loopback port nobody listens on now: bound with port 0, read, closed. Skynet cannot
/// listen on port 0, so its nodes get one of these; a clash (someone took it meanwhile)
/// is seen at start and retried with another (start_lua_server).
inline std::uint16_t reserve_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}

/// One Lua skynet node: `skynode ROLE ARGS...` with SKYNET_ROOT and SKYNET_LAB_RUN
/// (`lab_run`, the test's own directory for the configs skynode writes) set.
class lua_node {
 public:
  lua_node(const skynet_peer& peer, const fs::path& lab_run, const fs::path& log, std::vector<std::string> args)
      : log_(log) {
    args.insert(args.begin(), peer.skynode().string());
    std::vector<std::string> env{"SKYNET_ROOT=" + peer.root.string(), "SKYNET_LAB_RUN=" + lab_run.string()};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view v(*e);
      if (!v.starts_with("SKYNET_ROOT=") && !v.starts_with("SKYNET_LAB_RUN=")) env.emplace_back(v);
    }
    pid_ = spawn(args, env, log);
  }
  ~lua_node() { kill(); }
  lua_node(const lua_node&) = delete;
  lua_node& operator=(const lua_node&) = delete;

  pid_t pid() const { return pid_; }
  std::string output() const { return test::read_file(log_); }
  std::size_t count(std::string_view needle) const {
    const std::string text = output();
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }
  /// Waits until the log holds `needle` at least `times` times.
  bool wait_for(std::string_view needle, std::size_t times, std::chrono::milliseconds limit) const {
    return eventually([&] { return count(needle) >= times; }, limit);
  }
  /// True until the process has exited (reaps it then).
  bool running() {
    int st = 0;
    if (!status_ && pid_ > 0 && ::waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
    return pid_ > 0 && !status_;
  }
  /// The wait status once it has exited within `limit`; nullopt if it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    eventually([&] { return !running(); }, limit);
    return status_;
  }
  void kill() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      status_ = st;
    }
  }

 private:
  // fork + execve; only async-signal-safe calls in the child (the test may have threads).
  static pid_t spawn(std::vector<std::string>& args, std::vector<std::string>& env, const fs::path& log) {
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out = log.string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the test died before prctl
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }

  fs::path log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// A `skynode server` (lab_server.lua: @echo @fail @slow @gen @noret @counter, .echo) on a
/// reserved port, ready (LAB_SERVER_READY), or `error` saying why not. The `console` role
/// is the same server plus skynet's debug_console on a second reserved port.
struct lua_server {
  std::unique_ptr<lua_node> node;
  std::uint16_t port = 0;
  std::uint16_t console_port = 0;  ///< the console role's debug_console
  std::string error;
};

/// Starts a lab server named `name` in `role` "server" or "console" (`extra`: more skynode
/// options, e.g. --set cluster=F); a port taken between the reservation and skynet's listen
/// ("Listen error") is retried with others, up to 5 times. Logs: DIR/TAG-N.log.
inline lua_server start_lua_server(const skynet_peer& peer, const fs::path& dir, const std::string& tag,
                                   const std::string& name, const std::vector<std::string>& extra = {},
                                   const std::string& role = "server") {
  lua_server s;
  for (int attempt = 1; attempt <= 5; ++attempt) {
    s.port = reserve_port();
    std::vector<std::string> args{role, "--name", name, "--listen", "127.0.0.1:" + std::to_string(s.port)};
    if (role == "console") {
      s.console_port = reserve_port();
      args.insert(args.end(), {"--set", "lab_console_port=" + std::to_string(s.console_port)});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    s.node = std::make_unique<lua_node>(peer, dir / "lab-run", dir / (tag + "-" + std::to_string(attempt) + ".log"), args);
    auto& n = *s.node;
    const auto settled = [&] {
      return n.count("LAB_SERVER_READY") > 0 || n.count("Listen error") > 0 || n.count("init service failed") > 0 ||
             !n.running();
    };
    if (eventually(settled, 30s) && n.count("LAB_SERVER_READY") > 0 && n.count("Listen error") == 0) return s;
    if (n.count("Listen error") == 0) {
      s.error = "the Lua node " + name + " did not start:\n" + n.output();
      s.node.reset();
      return s;
    }
  }
  s.error = "the Lua node " + name + " found its port taken 5 times in a row";
  s.node.reset();
  return s;
}

/// The lab client's or bench's JSONL output (their --out file): one object a line.
inline std::vector<json> read_jsonl(const fs::path& file) {
  std::vector<json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto v = json::parse(line, nullptr, false);
    if (!v.is_discarded()) out.push_back(std::move(v));
  }
  return out;
}

/// What one lab client run reported: a RESULT object per case (several for a parallel
/// case), then {"done":true,"checks_passed":N,"checks_failed":M}.
struct lab_report {
  std::vector<json> results;
  std::optional<json> done;

  static lab_report from(std::vector<json> lines) {
    lab_report r;
    for (auto& l : lines) {
      if (l.is_object() && l.contains("done")) {
        r.done = std::move(l);
      } else {
        r.results.push_back(std::move(l));
      }
    }
    return r;
  }
  /// The case named `name`, or nullptr.
  const json* result(std::string_view name) const {
    for (const auto& r : results) {
      if (r.value("name", "") == name) return &r;
    }
    return nullptr;
  }
  /// Every case that failed its check or broke the client ("lab_error"), one a line.
  std::string problems() const {
    std::string out;
    for (const auto& r : results) {
      if (r.value("check", "") == "FAIL" || r.contains("lab_error")) out += r.dump() + "\n";
    }
    return out;
  }
};

/// How many checks a cases file has: its cases with an `expect` of echo/error/ok.
inline std::size_t expected_checks(const fs::path& cases) {
  const std::string text = test::read_file(cases);
  std::size_t n = 0;
  for (const char* e : {"expect = \"echo\"", "expect = \"error\"", "expect = \"ok\""}) {
    for (auto at = text.find(e); at != std::string::npos; at = text.find(e, at + 1)) ++n;
  }
  return n;
}

/// skynode client arguments: run `cases` with `node` as the default node, results in `out`.
/// `targets` ("name=127.0.0.1:port,...") may be empty when a --set cluster=FILE names them.
inline std::vector<std::string> lab_client_args(const fs::path& cases, const std::string& node, const fs::path& out,
                                                const std::string& targets = "",
                                                const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a{"client", "--cases", cases.string(), "--node", node, "--out", out.string()};
  if (!targets.empty()) a.insert(a.end(), {"--targets", targets});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace csk::interop
