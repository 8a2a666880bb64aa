// cppskynet-durability-bench: durable INCR throughput of cppskynet's kv gate against a
// real redis-server on the same machine, in the same run, with the same client.
//
//   cppskynet-durability-bench [--clients C] [--seconds S] [--rounds R] [--keys K]
//                              [--modes M,M,...] [--dir DIR] [--keep]
//   defaults: --clients 16 --seconds 3 --rounds 3 --keys 100
//             --modes redis-everysec,csk-everysec,redis-always,csk-always,redis-memory,csk-memory
//
// Modes (each a server process started once, in DIR, and left running for all rounds):
//   redis-everysec   redis-server --appendonly yes --appendfsync everysec (the reference)
//   redis-always     ... --appendfsync always
//   redis-memory     ... --appendonly no (no durability at all)
//   csk-everysec     cppskynet-node (standalone) with the kv gate and its entity store,
//                    persist: {dir, fsync: everysec}
//   csk-always       the same with fsync: always
//   csk-memory       the same without persist: a standalone node keeps no journal
//   csk-supervised   `cppskynet run` with the default journal (memfds the supervisor holds)
//
// The client: C threads, each with its own TCP connection, closed loops of `INCR k\r\n`
// (redis reads it as an inline command; the kv gate as its INCR line), keys k<client>-<i>
// for i in 0..K-1, one answer line per request. Every mode runs S seconds per round,
// alternating, R rounds; it prints ops/s per round, the medians, the server process's CPU
// per operation (utime + stime of all its threads from /proc), and each mode's ratio to
// redis-everysec. Exits 1 if an answer is wrong or a connection fails.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/process/process_harness.hpp"

namespace {

namespace fs = std::filesystem;
using csk::test::child_process;
using csk::test::eventually;
using csk::test::read_file;
using namespace std::chrono_literals;

struct options {
  int clients = 16;
  double seconds = 3;
  int rounds = 3;
  int keys = 100;
  std::vector<std::string> modes{"redis-everysec", "csk-everysec", "redis-always", "csk-always", "redis-memory", "csk-memory"};
  fs::path dir;
  bool keep = false;
};

std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

/// A line client on 127.0.0.1:port.
class line_conn {
 public:
  explicit line_conn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~line_conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  /// Sends `line` and returns the answer line (without \r\n), or nullopt.
  std::optional<std::string> ask(const std::string& line) {
    std::size_t sent = 0;
    while (sent < line.size()) {
      const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return std::nullopt;
      sent += static_cast<std::size_t>(n);
    }
    for (;;) {
      const auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string out = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!out.empty() && out.back() == '\r') out.pop_back();
        return out;
      }
      char tmp[4096];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

/// utime + stime of every thread of `pid`, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (rest >> field) f.push_back(field);
  if (f.size() < 13) return 0;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(f[11]) + std::stod(f[12])) / ticks;  // fields 14 and 15 of stat
}

struct server {
  std::string mode;
  std::uint16_t port = 0;
  std::unique_ptr<child_process> proc;
  pid_t serving = -1;  ///< the process doing the work (the worker, for csk-supervised)
  std::vector<double> rates, cpu_us;
};

// Starts the server of `mode`; the port answers once this returns true.
bool start(server& s, const options& o) {
  const fs::path dir = o.dir / s.mode;
  fs::create_directories(dir);
  s.port = free_port();
  const std::string port = std::to_string(s.port);
  const fs::path out = dir / "server.out";
  if (s.mode.rfind("redis-", 0) == 0) {
    std::vector<std::string> argv{"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", dir.string(),
                                  "--save", "", "--daemonize", "no", "--protected-mode", "no"};
    if (s.mode == "redis-memory") {
      argv.insert(argv.end(), {"--appendonly", "no"});
    } else {
      argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", s.mode == "redis-always" ? "always" : "everysec"});
    }
    s.proc = std::make_unique<child_process>(argv, out);
    s.serving = s.proc->pid();
  } else {
    std::ofstream cfg(dir / "node.yaml");
    cfg << "runtime: {threads: 2}\nlog: {level: warn}\n"
        << "services:\n  - {type: kvstore, name: .kvstore}\n"
        << "gates:\n  - {name: kv, listen: \"127.0.0.1:" << port << "\", type: kv_gate, max_in_flight: 16}\n"
        << "supervisor: {worker: " << CSK_WORKER_BIN << ", control_socket: " << (dir / "ctl.sock").string() << "}\n";
    if (s.mode == "csk-everysec") cfg << "persist: {dir: state, fsync: everysec}\n";
    if (s.mode == "csk-always") cfg << "persist: {dir: state, fsync: always}\n";
    cfg.close();
    if (s.mode == "csk-supervised") {
      s.proc = std::make_unique<child_process>(std::vector<std::string>{CSK_CLI_BIN, "run", "-c", (dir / "node.yaml").string()}, out);
    } else {
      s.proc = std::make_unique<child_process>(std::vector<std::string>{CSK_NODE_BIN, (dir / "node.yaml").string()}, out);
      s.serving = s.proc->pid();
    }
  }
  const bool up = eventually(
      [&] {
        line_conn c(s.port);
        return c.ok() && c.ask("INCR warmup\r\n").has_value();
      },
      20s);
  if (up && s.serving < 0) {  // the supervised node's worker: from `cppskynet status`
    auto st = csk::test::run_command({CSK_CLI_BIN, "status", "--socket", (dir / "ctl.sock").string(), "--json"}, dir, "status");
    const auto j = nlohmann::json::parse(st.output, nullptr, false);
    if (j.is_object() && j.contains("workers") && !j["workers"].empty()) s.serving = j["workers"][0]["pid"].get<pid_t>();
    if (s.serving < 0) std::cerr << s.mode << ": no worker pid in " << st.output << "\n";
  }
  if (!up) std::cerr << s.mode << ": did not come up:\n" << read_file(out) << "\n";
  return up;
}

// One round of one mode: ops/s, and the server's CPU seconds over it.
bool round(server& s, const options& o, double& rate, double& cpu) {
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> ops{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> clients;
  const double cpu0 = cpu_seconds(s.serving);
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      line_conn conn(s.port);
      if (!conn.ok()) {
        ++bad;
        return;
      }
      std::int64_t mine = 0;
      for (int i = 0; !stop; ++i) {
        const std::string key = "k" + std::to_string(c) + "-" + std::to_string(i % o.keys);
        auto a = conn.ask("INCR " + key + "\r\n");
        if (!a || (a->rfind(":", 0) != 0 && a->rfind("INTEGER ", 0) != 0)) {
          if (bad++ == 0) std::cerr << s.mode << ": answer " << (a ? *a : "(none)") << "\n";
          return;
        }
        ++mine;
      }
      ops += mine;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));  // the measured window
  stop = true;
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cpu = cpu_seconds(s.serving) - cpu0;
  rate = static_cast<double>(ops.load()) / secs;
  s.cpu_us.push_back(ops > 0 ? cpu * 1e6 / static_cast<double>(ops.load()) : 0);
  return bad == 0;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--clients") {
      o.clients = std::stoi(next());
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--rounds") {
      o.rounds = std::stoi(next());
    } else if (a == "--keys") {
      o.keys = std::stoi(next());
    } else if (a == "--modes") {
      o.modes = split(next());
    } else if (a == "--dir") {
      o.dir = next();
    } else if (a == "--keep") {
      o.keep = true;
    } else {
      std::cerr << "usage: cppskynet-durability-bench [--clients C] [--seconds S] [--rounds R] [--keys K] "
                   "[--modes M,...] [--dir DIR] [--keep]\n";
      return 2;
    }
  }
  if (o.dir.empty()) o.dir = fs::temp_directory_path() / ("csk-durability-bench-" + std::to_string(::getpid()));
  fs::remove_all(o.dir);
  fs::create_directories(o.dir);
  std::vector<server> servers;
  for (const auto& m : o.modes) {
    servers.emplace_back();
    servers.back().mode = m;
  }
  for (auto& s : servers) {
    if (!start(s, o)) return 1;
  }
  std::printf("%d clients, one INCR in flight each, %d keys each, %.1f s per mode and round; files in %s\n", o.clients,
              o.keys, o.seconds, o.dir.c_str());
  bool ok = true;
  for (int r = 0; r < o.rounds; ++r) {
    for (auto& s : servers) {
      double rate = 0, cpu = 0;
      ok = round(s, o, rate, cpu) && ok;
      s.rates.push_back(rate);
      std::printf("round %d  %-16s %10.0f ops/s   server CPU %6.2f us/op\n", r + 1, s.mode.c_str(), rate, s.cpu_us.back());
      std::fflush(stdout);
    }
  }
  double reference = 0;
  for (auto& s : servers) {
    if (s.mode == "redis-everysec") reference = median(s.rates);
  }
  std::printf("\nmedians:\n");
  for (auto& s : servers) {
    std::printf("  %-16s %10.0f ops/s   server CPU %6.2f us/op", s.mode.c_str(), median(s.rates), median(s.cpu_us));
    if (reference > 0) std::printf("   %5.2f x redis-everysec", median(s.rates) / reference);
    std::printf("\n");
  }
  for (auto& s : servers) {
    if (s.mode == "csk-supervised") {
      (void)csk::test::run_command({CSK_CLI_BIN, "stop", "--socket", (o.dir / s.mode / "ctl.sock").string()}, o.dir, "stop");
    } else {
      s.proc->signal(SIGTERM);
    }
    (void)s.proc->wait_exit(20s);
  }
  if (!o.keep) fs::remove_all(o.dir);
  return ok ? 0 : 1;
}
