#pragma once
// A real server (redis-server, mariadbd, ...) as a child process of a test, in a temp dir
// of its own: find the program, pick a free loopback port, start it with its output in a
// log file, poll until it is ready (with a deadline), stop or kill it. Header-only, for
// any test target. Not thread-safe: one test thread drives a server_process.
//
// The children get SIGKILL when the test process dies (PR_SET_PDEATHSIG), so a crashed or
// killed test leaves no server behind; the destructor kills a child still running and
// removes the dir.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace csk::test {

/// The first executable `name` in $PATH (an empty entry: "."), then in `also`; empty if none.
inline std::string find_program(const std::string& name, std::initializer_list<const char*> also) {
  std::vector<std::filesystem::path> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream in(path);
    std::string dir;
    while (std::getline(in, dir, ':')) dirs.emplace_back(dir.empty() ? "." : dir);
  }
  for (const char* d : also) dirs.emplace_back(d);
  for (const auto& d : dirs) {
    const std::filesystem::path p = d / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

/// The whole file, or "" if it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A free loopback TCP port: bound with port 0, then closed (a tiny race, fine here).
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Runs args (args[0]: the program's path) with stdout/stderr appended to `log`; returns
/// the child's pid, or -1.
inline pid_t spawn_process(std::vector<std::string> args, const std::filesystem::path& log) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed or killed test leaves no server behind
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (out >= 0) {
    ::dup2(out, 1);
    ::dup2(out, 2);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

/// One server child process at a time, and its temp dir (created empty, removed at the end).
class server_process {
 public:
  /// The dir: <temp>/<prefix>_<pid>_<n>, unique within the test process.
  explicit server_process(const std::string& prefix) {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~server_process() {
    kill9();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  /// Starts args with its output appended to `log`, then polls `ready` every `interval`
  /// until it answers true. Returns an error text, empty once ready: "<program> exited at
  /// start" or "<program> was not ready within N s" (the child keeps running), with the
  /// text of `errors` (the file the server writes its errors to; empty: `log`).
  std::string start(std::vector<std::string> args, const std::filesystem::path& log,
                    const std::function<bool()>& ready, std::chrono::seconds timeout,
                    std::chrono::milliseconds interval, std::filesystem::path errors = {}) {
    const std::string program = std::filesystem::path(args.at(0)).filename().string();
    if (errors.empty()) errors = log;
    pid_ = spawn_process(std::move(args), log);
    if (pid_ < 0) return "fork failed";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return program + " exited at start; its log:\n" + read_file(errors);
      }
      if (ready()) return {};
      std::this_thread::sleep_for(interval);  // poll interval, not a guess at readiness
    }
    return program + " was not ready within " + std::to_string(timeout.count()) + " s; its log:\n" + read_file(errors);
  }

  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// SIGTERM, then SIGKILL if the child has not exited within `grace`.
  void stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill9();
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

}  // namespace csk::test
