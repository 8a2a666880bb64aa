#include "supervisor/control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "common/log/log.hpp"

namespace csk::supervisor {

using steady = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr std::size_t max_reply = 64u * 1024u * 1024u;          // what control_call accepts
constexpr auto write_retry = std::chrono::milliseconds(20);     // timer tick while a reply is stuck
constexpr int accepts_per_event = 64;                           // then let the loop breathe

std::string errno_text(int e) { return std::generic_category().message(e); }

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_line(const std::string& text) { return dump(json{{"error", text}}) + "\n"; }

// Fills a sockaddr_un; false when the path does not fit.
bool make_address(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

// Connects a fresh non-blocking socket to path: 0 on success, else the errno.
int connect_nonblocking(const std::string& path, int& fd_out) {
  fd_out = -1;
  sockaddr_un addr{};
  if (!make_address(path, addr)) return ENAMETOOLONG;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd);
    return e;
  }
  fd_out = fd;
  return 0;
}

int millis_left(steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
  if (left <= 0) return 0;
  return left > 60'000 ? 60'000 : static_cast<int>(left);
}

std::string seconds_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The server

struct control_server::impl : std::enable_shared_from_this<control_server::impl> {
  enum class state { reading, waiting, writing };
  struct client {
    std::uint64_t id = 0;
    uid_t uid = 0;
    state st = state::reading;
    std::string in;
    std::size_t ignored = 0;  // bytes read after the request line
    std::string out;
    std::size_t out_off = 0;
    steady::time_point deadline;  // reading: the request; writing: progress
  };

  std::string path;
  control_handler handler;
  control_options opt;
  int listen_fd = -1;
  int timer_fd = -1;
  bool timer_armed = false;
  dev_t dev = 0;
  ino_t ino = 0;
  uid_t self_uid = 0;
  std::uint64_t next_id = 1;
  std::map<int, client> clients;  // by fd
  std::shared_ptr<spdlog::logger> log = csk::logger("supervisor");
  steady::time_point last_accept_error{};

  ~impl() {
    for (auto& [fd, c] : clients) ::close(fd);
    clients.clear();
    if (listen_fd >= 0) ::close(listen_fd);
    if (timer_fd >= 0) ::close(timer_fd);
    struct stat st {};
    if (listen_fd >= 0 && ::lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
      ::unlink(path.c_str());
    }
  }

  bool allowed(uid_t uid) const { return uid == self_uid || uid == 0; }

  void close_client(int fd) {
    if (clients.erase(fd) > 0) ::close(fd);
  }

  // Queues `line` as the client's last words and writes what the socket takes now.
  void finish(int fd, std::string line) {
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    client& c = it->second;
    c.st = state::writing;
    c.out = std::move(line);
    c.out_off = 0;
    c.deadline = steady::now() + opt.idle_timeout;
    flush(fd);
  }

  // Writes pending output; closes the client when done or when the socket fails.
  void flush(int fd) {
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    client& c = it->second;
    while (c.out_off < c.out.size()) {
      const ssize_t n = ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_off += static_cast<std::size_t>(n);
        c.deadline = steady::now() + opt.idle_timeout;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // the rest on POLLOUT / a tick
      close_client(fd);  // EPIPE etc.: the client has gone
      return;
    }
    close_client(fd);
  }

  void accept_all() {
    for (int k = 0; k < accepts_per_event; ++k) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return;
        const auto now = steady::now();
        if (now - last_accept_error > std::chrono::seconds(1)) {
          last_accept_error = now;
          log->error("control socket {}: accept: {}", path, errno_text(e));
        }
        return;
      }
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        log->warn("control socket {}: SO_PEERCRED: {}; connection closed", path, errno_text(errno));
        ::close(fd);
        continue;
      }
      if (clients.size() >= opt.max_clients) {
        const std::string line = error_line("busy: " + std::to_string(opt.max_clients) + " control clients already");
        [[maybe_unused]] const ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        log->warn("control socket {}: too many clients; uid {} (pid {}) turned away", path, cred.uid, cred.pid);
        continue;
      }
      client& c = clients[fd];
      c.id = next_id++;
      c.uid = cred.uid;
      c.deadline = steady::now() + opt.idle_timeout;
      if (!allowed(cred.uid)) {
        log->warn("control socket {}: permission denied: uid {} (pid {})", path, cred.uid, cred.pid);
        finish(fd, error_line("permission denied: uid " + std::to_string(cred.uid)));
      }
    }
  }

  void on_event(int fd, short revents) {
    if (fd == timer_fd) {
      std::uint64_t ticks = 0;
      [[maybe_unused]] const ssize_t n = ::read(timer_fd, &ticks, sizeof ticks);
      timer_armed = false;
      on_timer();
      return;
    }
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    switch (it->second.st) {
      case state::reading:
        read_request(fd);
        break;
      case state::waiting:
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_ignored(fd);
        break;
      case state::writing:
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
          read_ignored(fd);
          if (clients.find(fd) == clients.end()) return;
        }
        flush(fd);
        break;
    }
  }

  // After the request line: input is read and dropped; EOF or an error means the client left.
  void read_ignored(int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        auto& c = clients.at(fd);
        c.ignored += static_cast<std::size_t>(n);
        if (c.ignored > opt.max_request) {
          close_client(fd);
          return;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close_client(fd);  // EOF or error: gone; a late reply is dropped
      return;
    }
  }

  void read_request(int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {  // EOF before a whole line, or an error: nothing to answer
        close_client(fd);
        return;
      }
      client& c = clients.at(fd);
      const std::size_t old = c.in.size();
      c.in.append(buf, static_cast<std::size_t>(n));
      const auto nl = c.in.find('\n', old);
      const std::size_t line_len = nl == std::string::npos ? c.in.size() : nl;
      if (line_len > opt.max_request) {
        log->warn("control socket {}: request from uid {} longer than {} bytes", path, c.uid, opt.max_request);
        finish(fd, error_line("request too long: the limit is " + std::to_string(opt.max_request) + " bytes"));
        return;
      }
      if (nl != std::string::npos) {
        c.ignored = c.in.size() - nl - 1;
        c.in.resize(nl);
        handle_line(fd);
        return;
      }
    }
  }

  void handle_line(int fd) {
    client& c = clients.at(fd);
    std::string line = std::move(c.in);
    c.in.clear();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    json j = json::parse(line, nullptr, false);
    std::string why;
    if (j.is_discarded()) {
      why = "invalid request: not JSON";
    } else if (!j.is_object()) {
      why = "invalid request: expected a JSON object";
    } else if (!j.contains("cmd") || !j["cmd"].is_string() || j["cmd"].get_ref<const std::string&>().empty()) {
      why = "invalid request: \"cmd\" must be a non-empty string";
    } else if (j.contains("args") && !j["args"].is_null() && !j["args"].is_object()) {
      why = "invalid request: \"args\" must be an object";
    }
    if (!why.empty()) {
      log->warn("control socket {}: uid {}: {}", path, c.uid, why);
      finish(fd, error_line(why));
      return;
    }
    control_request req;
    req.cmd = j["cmd"].get<std::string>();
    req.args = j.contains("args") && j["args"].is_object() ? std::move(j["args"]) : json::object();
    req.uid = c.uid;
    c.st = state::waiting;
    const std::uint64_t id = c.id;
    control_reply reply = [weak = weak_from_this(), fd, id](json r) {
      if (auto self = weak.lock()) self->deliver(fd, id, std::move(r));
    };
    // `c` may be gone once the handler has run: only fd and id from here on.
    try {
      handler(req, std::move(reply));
    } catch (const std::exception& e) {
      log->error("control socket {}: handler for \"{}\" threw: {}", path, req.cmd, e.what());
      deliver(fd, id, json{{"error", std::string(e.what())}});
    } catch (...) {
      log->error("control socket {}: handler for \"{}\" threw", path, req.cmd);
      deliver(fd, id, json{{"error", "internal error"}});
    }
  }

  void deliver(int fd, std::uint64_t id, json r) {
    auto it = clients.find(fd);
    if (it == clients.end() || it->second.id != id || it->second.st != state::waiting) return;
    finish(fd, dump(r) + "\n");
    arm_timer();
  }

  void on_timer() {
    const auto now = steady::now();
    std::vector<int> fds;
    for (const auto& [fd, c] : clients) fds.push_back(fd);
    for (int fd : fds) {
      auto it = clients.find(fd);
      if (it == clients.end()) continue;
      client& c = it->second;
      if (c.st == state::writing) {
        flush(fd);  // a loop that polls only POLLIN still gets the reply out, tick by tick
        it = clients.find(fd);
        if (it != clients.end() && it->second.deadline <= now) {
          log->warn("control socket {}: uid {} does not read its reply; dropped", path, it->second.uid);
          close_client(fd);
        }
      } else if (c.st == state::reading && c.deadline <= now) {
        log->warn("control socket {}: uid {} sent no request within {}; dropped", path, c.uid,
                  seconds_text(opt.idle_timeout));
        finish(fd, error_line("timeout: no request within " + seconds_text(opt.idle_timeout)));
        if (clients.find(fd) != clients.end()) close_client(fd);  // no second chance to write
      }
    }
  }

  // Arms the timer for the earliest deadline (or a short tick while a reply waits to be
  // written), or disarms it.
  void arm_timer() {
    std::optional<steady::time_point> next;
    const auto now = steady::now();
    for (const auto& [fd, c] : clients) {
      if (c.st == state::waiting) continue;
      auto t = c.deadline;
      if (c.st == state::writing) t = std::min(t, now + write_retry);
      if (!next || t < *next) next = t;
    }
    itimerspec spec{};
    if (next) {
      auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(*next - now).count();
      if (d < 1000) d = 1000;
      spec.it_value.tv_sec = static_cast<time_t>(d / 1'000'000'000);
      spec.it_value.tv_nsec = static_cast<long>(d % 1'000'000'000);
    }
    if (::timerfd_settime(timer_fd, 0, &spec, nullptr) != 0) {
      log->error("control socket {}: timerfd_settime: {}", path, errno_text(errno));
    }
    timer_armed = next.has_value();
  }
};

control_server::control_server(std::shared_ptr<impl> p) : impl_(std::move(p)) {}
control_server::~control_server() = default;

result<std::unique_ptr<control_server>, std::string> control_server::open(const std::string& path,
                                                                          control_handler h) {
  return open(path, std::move(h), control_options{});
}

result<std::unique_ptr<control_server>, std::string> control_server::open(const std::string& path,
                                                                          control_handler h,
                                                                          const control_options& options) {
  sockaddr_un addr{};
  if (!make_address(path, addr)) {
    return unexpected{"control socket " + path + ": the path must be 1 to " +
                      std::to_string(sizeof addr.sun_path - 1) + " bytes"};
  }
  if (!h) return unexpected{std::string("control socket " + path + ": no handler")};
  auto log = csk::logger("supervisor");

  // Something there already: a live server (refuse), a stale socket (remove), or not a socket.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return unexpected{"control socket " + path + ": the path exists and is not a socket"};
    }
    int probe = -1;
    const int e = connect_nonblocking(path, probe);
    if (probe >= 0) ::close(probe);
    if (e == 0 || e == EAGAIN) {
      return unexpected{"control socket " + path + ": another supervisor is already listening there"};
    }
    if (e != ECONNREFUSED && e != ENOENT) {
      return unexpected{"control socket " + path + ": cannot check the existing socket: " + errno_text(e)};
    }
    if (e == ECONNREFUSED) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return unexpected{"control socket " + path + ": cannot remove the stale socket: " + errno_text(errno)};
      }
      log->info("control socket {}: removed a stale socket file", path);
    }
  }

  auto p = std::make_shared<impl>();
  p->path = path;
  p->handler = std::move(h);
  p->opt = options;
  p->self_uid = ::geteuid();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return unexpected{"control socket " + path + ": socket: " + errno_text(errno)};
  const mode_t old_mask = ::umask(0177);  // the file is born 0600: no window with a wider mode
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) {
    ::close(fd);
    if (bind_errno == EADDRINUSE) {
      return unexpected{"control socket " + path + ": another supervisor is already listening there"};
    }
    return unexpected{"control socket " + path + ": bind: " + errno_text(bind_errno)};
  }
  auto fail = [&](const std::string& what) {
    const std::string text = "control socket " + path + ": " + what + ": " + errno_text(errno);
    ::close(fd);
    ::unlink(path.c_str());
    return unexpected{text};
  };
  if (::chmod(path.c_str(), 0600) != 0) return fail("chmod");
  if (::lstat(path.c_str(), &st) != 0) return fail("stat");
  if (::listen(fd, 64) != 0) return fail("listen");
  p->timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (p->timer_fd < 0) return fail("timerfd_create");
  p->listen_fd = fd;
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  log->info("control socket listening on {}", path);
  return std::unique_ptr<control_server>(new control_server(std::move(p)));
}

int control_server::fd() const { return impl_->listen_fd; }
const std::string& control_server::path() const { return impl_->path; }

void control_server::on_readable() {
  impl_->accept_all();
  impl_->arm_timer();
}

std::vector<int> control_server::client_fds() const {
  std::vector<int> out;
  out.reserve(impl_->clients.size() + 1);
  for (const auto& [fd, c] : impl_->clients) out.push_back(fd);
  if (impl_->timer_armed) out.push_back(impl_->timer_fd);
  return out;
}

std::size_t control_server::client_count() const { return impl_->clients.size(); }

short control_server::client_events(int fd) const {
  auto it = impl_->clients.find(fd);
  if (it != impl_->clients.end() && it->second.st == impl::state::writing) return POLLOUT;
  return POLLIN;
}

void control_server::on_client_event(int fd, short revents) {
  impl_->on_event(fd, revents);
  impl_->arm_timer();
}

// ---------------------------------------------------------------------------------------
// The client

result<json, control_error> control_call_ex(const std::string& path, const json& request,
                                            std::chrono::milliseconds timeout) {
  using kind = control_error::kind;
  const auto deadline = steady::now() + timeout;
  auto fail = [&](kind k, std::string text) { return unexpected{control_error{k, std::move(text)}}; };
  const std::string timed_out =
      "no reply from the supervisor at " + path + " within " + seconds_text(timeout);

  int fd = -1;
  for (;;) {
    const int e = connect_nonblocking(path, fd);
    if (e == 0) break;
    if (e == EAGAIN || e == EINTR) {  // its backlog is full: it lives but is busy
      if (millis_left(deadline) == 0) return fail(kind::failed, timed_out);
      ::poll(nullptr, 0, std::min(10, millis_left(deadline)));
      continue;
    }
    return fail(kind::unreachable, "no supervisor at " + path + ": " + errno_text(e));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};

  auto wait = [&](short events) {
    for (;;) {
      const int left = millis_left(deadline);
      if (left == 0) return false;
      pollfd p{fd, events, 0};
      const int r = ::poll(&p, 1, left);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  };

  // Send the line. A server that refuses us closes early: its error line is still there to read.
  const std::string line = dump(request) + "\n";
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait(POLLOUT)) return fail(kind::failed, timed_out);
      continue;
    }
    break;  // EPIPE / ECONNRESET: read what the server said
  }

  std::string in;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      const std::size_t old = in.size();
      in.append(buf, static_cast<std::size_t>(n));
      const auto nl = in.find('\n', old);
      if (nl != std::string::npos) {
        in.resize(nl);
        break;
      }
      if (in.size() > max_reply) {
        return fail(kind::failed, "the reply from the supervisor at " + path + " is too long");
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait(POLLIN)) return fail(kind::failed, timed_out);
      continue;
    }
    return fail(kind::closed, "the supervisor at " + path + " closed the connection without a reply" +
                                  (n < 0 ? ": " + errno_text(errno) : std::string()));
  }
  json reply = json::parse(in, nullptr, false);
  if (reply.is_discarded()) {
    return fail(kind::failed, "the supervisor at " + path + " sent a reply that is not JSON");
  }
  return reply;
}

result<json, std::string> control_call(const std::string& path, const json& request,
                                       std::chrono::milliseconds timeout) {
  auto r = control_call_ex(path, request, timeout);
  if (!r) return unexpected{r.error().text};
  return std::move(r).value();
}

bool control_answers(const std::string& path) {
  int fd = -1;
  const int e = connect_nonblocking(path, fd);
  if (fd >= 0) ::close(fd);
  return e == 0 || e == EAGAIN;
}

}  // namespace csk::supervisor
