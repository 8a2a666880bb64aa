#pragma once
// Real processes for the supervisor tests: start `cppskynet run` in a temp dir with its
// output in a file, wait for log lines and exits with deadlines (never a fixed sleep),
// read ports and pids out of the log.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;  // NOLINT: POSIX

namespace csk::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// Deadlines are generous: sanitizer builds start processes slowly.
inline constexpr auto process_deadline = 30s;

/// Polls `done` every 10 ms until it holds or `limit` passes.
template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = process_deadline) {
  const auto deadline = steady::now() + limit;
  for (;;) {
    if (done()) return true;
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A process started with posix_spawn, stdout and stderr appended to `output`.
class child_process {
 public:
  child_process(std::vector<std::string> argv, const std::filesystem::path& output,
                const std::vector<std::string>& extra_env = {}) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view v(*e);
      if (v.starts_with("CSK_") || v.starts_with("NOTIFY_SOCKET=")) continue;  // the test decides
      env.emplace_back(v);
    }
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp, args;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) pid_ = -1;
  }
  ~child_process() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  /// The wait status once it has exited, within `limit`; nullopt if still running.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = process_deadline) {
    eventually(
        [&] {
          int st = 0;
          if (!status_ && ::waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
          return status_.has_value();
        },
        limit);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// How a command run to completion ended: its exit code (-1: killed, or still running
/// at the limit) and everything it printed.
struct command_result {
  int exit_code = -1;
  std::string output;
};

/// Runs argv to completion (at most `limit`), stdout and stderr into DIR/cmd-TAG.out.
inline command_result run_command(const std::vector<std::string>& argv, const std::filesystem::path& dir,
                                  const std::string& tag, std::chrono::milliseconds limit = 120s) {
  const std::filesystem::path out = dir / ("cmd-" + tag + ".out");
  child_process p(argv, out);
  const auto st = p.wait_exit(limit);
  command_result r;
  r.output = read_file(out);
  if (st && WIFEXITED(*st)) r.exit_code = WEXITSTATUS(*st);
  return r;
}

/// True once `pid` (not our child) is gone or a zombie.
inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || (close + 2 < stat.size() && stat[close + 2] == 'Z');
}

/// `cppskynet run -c DIR/node.yaml` with its output in DIR/supervisor.out.
class supervisor_process {
 public:
  supervisor_process(const std::filesystem::path& dir, const std::vector<std::string>& extra_env = {},
                     std::vector<std::string> extra_args = {})
      : out_(dir / "supervisor.out"), proc_(args(dir, std::move(extra_args)), out_, extra_env) {}

  child_process& proc() { return proc_; }
  std::string output() const { return read_file(out_); }

  /// Waits until the output holds `needle` at least `times` times.
  bool wait_for(const std::string& needle, std::size_t times = 1, std::chrono::milliseconds limit = process_deadline) const {
    return eventually([&] { return count(needle) >= times; }, limit);
  }
  std::size_t count(const std::string& needle) const {
    const std::string text = output();
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }
  /// The first capture of `pattern` in the output, or "".
  std::string find(const std::string& pattern) const {
    std::smatch m;
    const std::string text = output();
    return std::regex_search(text, m, std::regex(pattern)) ? m[1].str() : "";
  }
  /// The port the supervisor bound for the cluster listener.
  std::uint16_t cluster_port() const {
    const std::string p = find(R"(listener cluster bound to 127\.0\.0\.1:(\d+))");
    return p.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(p));
  }
  /// The pid of worker generation `gen`.
  pid_t worker_pid(int gen) const {
    const std::string p = find("worker gen " + std::to_string(gen) + R"( started: pid (\d+))");
    return p.empty() ? -1 : static_cast<pid_t>(std::stoi(p));
  }

 private:
  static std::vector<std::string> args(const std::filesystem::path& dir, std::vector<std::string> extra) {
    std::vector<std::string> a{CSK_CLI_BIN, "run", "-c", (dir / "node.yaml").string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::filesystem::path out_;
  child_process proc_;
};

}  // namespace csk::test
