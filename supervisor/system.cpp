#include "supervisor/system.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

extern char** environ;  // NOLINT: POSIX

namespace csk::supervisor {
namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

// dup2(fd, target) leaves close-on-exec set when fd == target; move such fds out of the way.
result<unique_fd, std::string> above(int fd, int lowest) {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, lowest);
  if (moved < 0) return unexpected("fcntl(F_DUPFD_CLOEXEC): " + errno_text(errno));
  return unique_fd(moved);
}

}  // namespace

result<pid_t, std::string> spawn_worker(const spawn_request& r) {
  auto channel = above(r.channel_fd, 10);
  if (!channel) return unexpected(channel.error());
  unique_fd err;
  if (r.stderr_fd >= 0) {
    auto e = above(r.stderr_fd, 10);
    if (!e) return unexpected(e.error());
    err = std::move(*e);
  }

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_adddup2(&fa, channel->get(), worker_channel_fd);  // dup2 clears CLOEXEC
  if (err) ::posix_spawn_file_actions_adddup2(&fa, err.get(), STDERR_FILENO);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.starts_with("CSK_CHANNEL_FD=") || v.starts_with("CSK_GENERATION=") || v.starts_with("CSK_TAKEOVER=") ||
        v.starts_with("NOTIFY_SOCKET=")) {
      continue;
    }
    env.emplace_back(v);
  }
  env.push_back("CSK_CHANNEL_FD=" + std::to_string(worker_channel_fd));
  env.push_back("CSK_GENERATION=" + std::to_string(r.generation));
  if (r.takeover) env.push_back("CSK_TAKEOVER=1");
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = r.binary, arg1 = r.config_path;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, r.binary.c_str(), &fa, &attr, argv, envp.data());
  ::posix_spawn_file_actions_destroy(&fa);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) return unexpected("posix_spawn " + r.binary + ": " + errno_text(rc));
  return pid;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name != nullptr ? name : "?") + ")" +
           (WCOREDUMP(status) ? ", core dumped" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

result<std::string, std::string> find_worker_binary(const std::string& configured) {
  namespace fs = std::filesystem;
  std::string chosen = configured;
  if (chosen.empty()) {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    const fs::path beside = self.parent_path() / "cppskynet-worker";
    if (!ec && ::access(beside.c_str(), X_OK) == 0) {
      chosen = beside.string();
    } else {
#ifdef CSK_WORKER_BUILD_PATH
      chosen = CSK_WORKER_BUILD_PATH;
#else
      return unexpected("no cppskynet-worker beside " + self.string() + "; set supervisor.worker");
#endif
    }
  }
  if (::access(chosen.c_str(), X_OK) != 0) {
    return unexpected("worker binary " + chosen + ": " + errno_text(errno) + " (supervisor.worker)");
  }
  return chosen;
}

result<void, std::string> write_pid_file(const std::string& path) {
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return unexpected("pid file " + path + ": " + errno_text(errno));
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return unexpected("pid file " + path + ": " + errno_text(errno));
  }
  return {};
}

void remove_pid_file(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (in >> pid && pid == ::getpid()) ::unlink(path.c_str());
}

bool notify_systemd(const std::string& state) {
  const char* where = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe): one thread
  if (where == nullptr || (where[0] != '/' && where[0] != '@')) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(where);
  if (len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, where, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  return ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                  addr_len) == static_cast<ssize_t>(state.size());
}

result<unique_fd, std::string> daemonize() {
  int p[2] = {-1, -1};
  if (::pipe2(p, O_CLOEXEC) != 0) return unexpected("pipe: " + errno_text(errno));
  unique_fd read_end(p[0]), write_end(p[1]);
  const pid_t first = ::fork();
  if (first < 0) return unexpected("fork: " + errno_text(errno));
  if (first > 0) {
    // The original process: wait for the daemon's verdict, then leave without running
    // any destructor (the daemon owns the sockets and files now).
    write_end.reset();
    char c = 0;
    ssize_t n = 0;
    do n = ::read(read_end.get(), &c, 1); while (n < 0 && errno == EINTR);
    ::waitpid(first, nullptr, 0);
    if (n == 1) std::_Exit(0);
    std::fputs("cppskynet: the supervisor failed to start (see its log)\n", stderr);
    std::_Exit(1);
  }
  read_end.reset();
  if (::setsid() < 0) std::_Exit(1);
  const pid_t second = ::fork();
  if (second < 0) std::_Exit(1);
  if (second > 0) std::_Exit(0);
  if (::chdir("/") != 0) std::_Exit(1);
  unique_fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) return unexpected("/dev/null: " + errno_text(errno));
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null.get(), fd);
  return write_end;
}

}  // namespace csk::supervisor
