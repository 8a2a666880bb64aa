#include "supervisor/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <utility>
#include <optional>

#include "common/base/dir_lock.hpp"
#include "common/channel/fd_channel.hpp"
#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "supervisor/control.hpp"
#include "supervisor/listener_set.hpp"
#include "supervisor/restart_policy.hpp"
#include "supervisor/system.hpp"

namespace csk::supervisor {
namespace {

using clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
using json = nlohmann::json;

std::shared_ptr<spdlog::logger> log() { return logger("supervisor"); }

long long ms_between(clock::time_point a, clock::time_point b) {
  return static_cast<long long>(std::chrono::duration_cast<ms>(b - a).count());
}

/// One worker process, from spawn to reap.
struct worker {
  enum class state { starting, ready, stopping };
  pid_t pid = -1;
  std::uint32_t generation = 0;
  state st = state::starting;
  unique_fd channel;   ///< our end; reset once the worker closed its end
  unique_fd log_pipe;  ///< its stderr when we write log.file for it
  std::string log_partial;
  clock::time_point spawned, ready_at, last_heard, kill_at;
  bool said_hello = false;
  bool refused = false;     ///< another protocol version: never restarted
  bool kill_sent = false;
  std::string kill_reason;  ///< why we sent SIGKILL, for the exit line
  bool takeover = false;    ///< the new generation of the upgrade in progress
  bool retiring = false;    ///< handed over to its successor: its exit is expected
  std::string binary;       ///< the program it runs
  /// runtime.call_timeout_ms in the config file when it was started (the worker reads
  /// the file itself): how long its console `call` may take.
  std::uint32_t call_timeout_ms = 0;
  channel::heartbeat heartbeat;
  channel::stores stores;  ///< its entity stores' journals, as its last `stores` said
};

bool awaiting_reap(const std::vector<std::unique_ptr<worker>>& workers);

/// The upgrade in progress (at most one): generation `from` hands over to `to`.
struct upgrade_run {
  std::uint32_t from = 0, to = 0;
  pid_t from_pid = -1, to_pid = -1;
  std::string binary;
  std::uint32_t budget_ms = 0;
  clock::time_point started, deadline;
  unique_fd old_end, new_end;                    ///< the transfer socket, until passed on
  std::vector<control_reply> waiters;            ///< `cppskynet upgrade` clients
  bool new_ready = false, new_gone = false, old_gone = false;
  std::optional<channel::upgrade_result> verdict;  ///< the old worker's
  std::string failure;                            ///< what the supervisor saw go wrong
  /// `failure` only records N+1's exit before any verdict: N+1 dies of N's death (its
  /// transfer socket closes) and may be reaped first, so N's death, seen later, replaces it.
  bool failure_is_new_exit = false;
};

const char* state_name(worker::state s) {
  switch (s) {
    case worker::state::starting: return "starting";
    case worker::state::ready: return "ready";
    case worker::state::stopping: return "stopping";
  }
  return "?";
}

class supervisor {
 public:
  supervisor(node_config cfg, std::string config_path, std::string binary, std::vector<bound_listener> listeners,
             unique_fd daemon_ready, unique_fd persist_lock)
      : cfg_(std::move(cfg)),
        sup_(cfg_.supervisor),
        config_path_(std::move(config_path)),
        binary_(std::move(binary)),
        listeners_(std::move(listeners)),
        daemon_ready_(std::move(daemon_ready)),
        persist_lock_(std::move(persist_lock)),
        policy_(ms(sup_.restart_backoff_ms), ms(sup_.restart_backoff_max_ms), sup_.crash_loop_restarts,
                ms(sup_.crash_loop_window_ms)) {}

  int run();

 private:
  // -- setup and the loop --
  result<void, std::string> open_signals();
  void loop();
  int poll_timeout(clock::time_point now) const;
  void finish(int code);

  // -- events --
  void on_signal();
  void reap();
  void on_exit(std::size_t index, int status);
  void on_channel(std::uint32_t generation);
  void on_hello(worker& w, const channel::hello& h);
  void on_ready(worker& w);
  void check_timers(clock::time_point now);
  void on_control(const control_request& req, const control_reply& reply);
  void on_upgrade_result(worker& w, const channel::upgrade_result& r);
  void on_console(const std::string& line, bool reply_at_start, const control_reply& reply);
  void on_console_reply(const channel::console_reply& r);
  void on_keep(worker& w, const channel::keep& k, std::vector<unique_fd> fds);
  bool on_last_words(worker& w, channel::received& r);
  void park(const std::string& why);

  // -- the upgrade (docs/upgrade.md) --
  void begin_upgrade(const std::string& binary, std::uint32_t budget_ms, control_reply reply);
  void start_transfer(worker& next);
  void settle_upgrade();
  json upgrade_json() const;

  // -- actions --
  worker* start_worker(const std::string& binary, bool takeover = false);
  void schedule_restart(const std::string& what);
  void kill_worker(worker& w, const std::string& reason);
  void begin_stop(const std::string& why);
  void send_stop(worker& w);
  std::size_t broadcast(const channel::message& m, const char* why);
  void reopen_logs();
  void send_counters(worker* only = nullptr);
  void pump_log(worker& w, bool to_eof);
  json status() const;
  worker* find(std::uint32_t generation);

  node_config cfg_;
  const supervisor_config& sup_;
  const std::string config_path_;
  std::string binary_;  ///< the worker program; a successful upgrade replaces it
  std::vector<bound_listener> listeners_;
  unique_fd daemon_ready_;
  unique_fd persist_lock_;  ///< persist.dir's LOCK, passed on to every worker ("state:lock")
  /// What the workers asked the supervisor to keep (channel keep): entity state in memory,
  /// by name. Never read here; passed to every worker after the listeners; closed at exit.
  std::vector<channel::named_fd> held_;
  /// No worker is started until an operator asks (`cppskynet upgrade`): the last one could
  /// not read the entity state, or a crash loop with state held (exiting would lose it).
  std::optional<std::string> parked_;
  /// A worker started from parked by `cppskynet upgrade`: its binary and who waits.
  struct revival {
    std::uint32_t generation = 0;
    std::string binary;
    std::vector<control_reply> waiters;
  };
  std::optional<revival> revival_;
  restart_policy policy_;
  std::unique_ptr<control_server> control_;
  unique_fd signals_;
  unique_fd log_file_;  ///< where workers' stderr lines go (log.file), else closed
  std::vector<std::unique_ptr<worker>> workers_;
  std::optional<upgrade_run> upgrade_;
  struct console_wait {
    control_reply reply;
    clock::time_point deadline;
  };
  std::map<std::uint64_t, console_wait> consoles_;  ///< console lines relayed to a worker, by id
  std::uint64_t next_console_ = 1;
  std::uint64_t upgrades_ok_ = 0, upgrades_failed_ = 0;
  std::uint64_t last_upgrade_total_us_ = 0, last_upgrade_frozen_us_ = 0;
  json last_upgrade_;
  std::uint32_t next_generation_ = 1;
  std::optional<clock::time_point> restart_at_;
  std::optional<clock::time_point> death_at_;  ///< when the last unplanned death was seen
  std::uint64_t restarts_ = 0;
  std::string last_exit_;
  const clock::time_point started_ = clock::now();
  bool stopping_ = false;
  bool announced_ready_ = false;
  bool done_ = false;
  int exit_code_ = exit_stopped;
};

int supervisor::run() {
  if (auto r = open_signals(); !r) {
    log()->critical("{}", r.error());
    return exit_start_failed;
  }
  if (!sup_.pid_file.empty()) {
    if (auto r = write_pid_file(sup_.pid_file); !r) {
      log()->critical("{}", r.error());
      return exit_start_failed;
    }
  }
  if (!cfg_.log.file.empty()) {
    log_file_.reset(::open(cfg_.log.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  }
  auto control = control_server::open(sup_.control_socket,
                                      [this](const control_request& req, control_reply reply) { on_control(req, reply); });
  if (!control) {
    log()->critical("control socket: {}", control.error());
    if (!sup_.pid_file.empty()) remove_pid_file(sup_.pid_file);
    return exit_start_failed;
  }
  control_ = std::move(*control);
  for (const auto& l : listeners_) log()->info("listener {} bound to {} (fd {})", l.spec.name, l.address, l.fd.get());
  log()->info("supervisor running: config {}, worker {}, control socket {}", config_path_, binary_,
              sup_.control_socket);
  start_worker(binary_);
  loop();
  control_.reset();
  if (!sup_.pid_file.empty()) remove_pid_file(sup_.pid_file);
  log()->info("supervisor exits with code {}; listeners close", exit_code_);
  return exit_code_;
}

result<void, std::string> supervisor::open_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&set, sig);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return unexpected(std::string("sigprocmask failed"));
  ::signal(SIGPIPE, SIG_IGN);  // a worker's pipe or channel may close under us
  signals_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) return unexpected("signalfd: " + std::string(std::strerror(errno)));
  return {};
}

// What one poll entry stands for.
// How long past its budget the supervisor waits for an upgrade's verdict before it kills
// the new worker (the old one gives up at the budget itself and reports).
constexpr std::uint32_t upgrade_grace_ms = 2000;

struct watch {
  enum class what { signals, control, control_client, channel, log } is;
  std::uint32_t generation = 0;
};

void supervisor::loop() {
  std::vector<pollfd> fds;
  std::vector<watch> watches;
  while (!done_) {
    fds.clear();
    watches.clear();
    const auto add = [&](int fd, short events, watch w) {
      fds.push_back(pollfd{fd, events, 0});
      watches.push_back(w);
    };
    add(signals_.get(), POLLIN, {watch::what::signals});
    add(control_->fd(), POLLIN, {watch::what::control});
    for (int fd : control_->client_fds()) add(fd, control_->client_events(fd), {watch::what::control_client});
    for (const auto& w : workers_) {
      if (w->channel) add(w->channel.get(), POLLIN, {watch::what::channel, w->generation});
      if (w->log_pipe) add(w->log_pipe.get(), POLLIN, {watch::what::log, w->generation});
    }
    const int n = ::poll(fds.data(), fds.size(), poll_timeout(clock::now()));
    if (n < 0 && errno != EINTR) {
      log()->critical("poll: {}", std::strerror(errno));
      finish(exit_gave_up);
      break;
    }
    for (std::size_t i = 0; n > 0 && i < fds.size() && !done_; ++i) {
      const short ev = fds[i].revents;
      if (ev == 0) continue;
      switch (watches[i].is) {
        case watch::what::signals: on_signal(); break;
        case watch::what::control: control_->on_readable(); break;
        case watch::what::control_client: control_->on_client_event(fds[i].fd, ev); break;
        case watch::what::channel: on_channel(watches[i].generation); break;
        case watch::what::log:
          if (worker* w = find(watches[i].generation)) pump_log(*w, false);
          break;
      }
    }
    if (!done_) check_timers(clock::now());
  }
}

int supervisor::poll_timeout(clock::time_point now) const {
  std::optional<clock::time_point> next;
  if (!awaiting_reap(workers_)) next = restart_at_;
  const auto consider = [&](clock::time_point t) { next = next ? std::min(*next, t) : t; };
  if (upgrade_) consider(upgrade_->deadline + ms(upgrade_grace_ms));
  for (const auto& [id, c] : consoles_) consider(c.deadline);
  for (const auto& w : workers_) {
    if (w->kill_sent) continue;
    switch (w->st) {
      case worker::state::starting:
        if (!w->takeover) consider(w->spawned + ms(sup_.ready_timeout_ms));
        break;
      case worker::state::ready: consider(w->last_heard + ms(sup_.heartbeat_timeout_ms)); break;
      case worker::state::stopping: consider(w->kill_at); break;
    }
  }
  if (!next) return -1;
  const auto left = std::chrono::ceil<ms>(*next - now).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

void supervisor::finish(int code) {
  done_ = true;
  exit_code_ = code;
  for (auto& w : workers_) {  // only when giving up with a worker still around
    ::kill(w->pid, SIGKILL);
    ::waitpid(w->pid, nullptr, 0);
  }
  workers_.clear();
}

worker* supervisor::find(std::uint32_t generation) {
  for (auto& w : workers_) {
    if (w->generation == generation) return w.get();
  }
  return nullptr;
}

// ---------------------------------------------------------------- events --

void supervisor::on_signal() {
  signalfd_siginfo si{};
  while (::read(signals_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si) && !done_) {
    const int sig = static_cast<int>(si.ssi_signo);
    const std::string name = std::string("signal ") + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
    if (sig == SIGCHLD) {
      reap();
    } else if (sig == SIGTERM || sig == SIGINT) {
      begin_stop(name);
    } else if (sig == SIGHUP) {
      broadcast(channel::reload{}, "SIGHUP: reload");
    } else if (sig == SIGUSR1) {
      reopen_logs();
    } else if (sig == SIGUSR2) {
      log()->info("SIGUSR2: upgrade to {}", binary_);
      begin_upgrade("", sup_.upgrade_timeout_ms, nullptr);
    }
  }
}

void supervisor::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i]->pid == pid) {
        on_exit(i, status);
        break;
      }
    }
    if (done_) return;
  }
}

void supervisor::on_exit(std::size_t index, int status) {
  {
    // What it said before it went (an upgrade's verdict, console answers, stopped): its
    // exit may be seen before its last records are read.
    worker& dying = *workers_[index];
    while (dying.channel) {
      auto r = channel::recv_message(dying.channel.get(), ms(0));
      if (!r) break;
      if (!on_last_words(dying, *r)) log()->info("worker gen {}: {}", dying.generation, channel::name_of(channel::kind_of(r->msg)));
    }
  }
  std::unique_ptr<worker> w = std::move(workers_[index]);
  workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(index));
  if (w->log_pipe) pump_log(*w, true);  // its last words first
  const std::string how = describe_exit(status) + (w->kill_reason.empty() ? "" : " (" + w->kill_reason + ")");
  last_exit_ = how;
  const std::string who = "worker gen " + std::to_string(w->generation) + " (pid " + std::to_string(w->pid) + ")";
  if (upgrade_) {
    upgrade_run& u = *upgrade_;
    if (w->generation == u.to) {
      u.new_gone = true;
      if (u.old_end) {  // it never got its transfer socket: the old worker was never asked
        u.verdict = channel::upgrade_result{};
        u.verdict->phase = "start";
      }
      if (u.failure.empty() && !(u.verdict && u.verdict->ok != 0 && u.new_ready)) {
        u.failure = "the new worker (gen " + std::to_string(w->generation) + ") " + how;
        u.failure_is_new_exit = !u.verdict;
      }
    } else if (w->generation == u.from) {
      u.old_gone = true;
      if (!w->retiring) {
        if (u.failure.empty() || u.failure_is_new_exit) {
          u.failure = "the old worker (gen " + std::to_string(w->generation) + ") " + how;
        }
        for (auto& other : workers_) {
          if (other->generation == u.to) kill_worker(*other, "its predecessor died during the upgrade");
        }
      }
    }
    settle_upgrade();
  }
  if (w->refused && !w->takeover) {
    log()->critical("{} {}; not restarting a worker this supervisor cannot talk to: giving up", who, how);
    finish(exit_gave_up);
    return;
  }
  if (stopping_) {
    log()->info("{} {}", who, how);
    if (workers_.empty()) finish(exit_stopped);
    return;
  }
  const bool unreadable = WIFEXITED(status) && WEXITSTATUS(status) == channel::exit_state_unreadable;
  if (revival_ && revival_->generation == w->generation) {  // started from parked, gone before ready
    auto waiters = std::move(revival_->waiters);
    revival_.reset();
    const std::string why = who + " " + how + (unreadable ? ": it cannot read the entity state either" : "");
    for (auto& reply : waiters) reply(json{{"ok", false}, {"error", why}});
    park(why);
    return;
  }
  if (unreadable && !w->takeover) {
    park(who + " " + how + ": it cannot read the entity state (its log says why)");
    return;
  }
  // Another worker serves or is on its way (an upgrade's successor, a restart): this exit
  // is part of an upgrade (a successor that failed, a predecessor that handed over) and
  // nothing needs restarting.
  bool covered = restart_at_.has_value();
  for (const auto& other : workers_) covered = covered || (!other->kill_sent && !other->retiring && other->st != worker::state::stopping);
  if (covered || w->retiring || w->takeover) {
    if (covered) {
      log()->info("{} {}{}", who, how, w->retiring ? ": handed over to its successor" : "");
      return;
    }
  }
  schedule_restart(who + " " + how);
}

void supervisor::schedule_restart(const std::string& what) {
  const auto now = clock::now();
  if (!death_at_) death_at_ = now;
  const auto delay = policy_.on_death(now);
  if (!delay) {
    const std::string loop = what + "; crash loop: " + std::to_string(sup_.crash_loop_restarts) + " restarts within " +
                             std::to_string(sup_.crash_loop_window_ms) + " ms already";
    if (!held_.empty()) {  // exiting would drop the entity state only this process holds
      park(loop);
      return;
    }
    log()->critical("{}: giving up", loop);
    finish(exit_gave_up);
    return;
  }
  ++restarts_;
  log()->error("{}; restarting in {} ms (restart {} within {} ms)", what, delay->count(),
               policy_.restarts_in_window(now), sup_.crash_loop_window_ms);
  restart_at_ = now + *delay;
}

void supervisor::on_channel(std::uint32_t generation) {
  worker* w = find(generation);
  if (w == nullptr || !w->channel) return;
  auto r = channel::recv_message(w->channel.get(), ms(0));
  if (!r) {
    if (r.error().why == channel::recv_error::kind::timeout) return;
    if (r.error().why == channel::recv_error::kind::closed) {
      w->channel.reset();  // the exit (SIGCHLD) follows; heartbeats stop counting meanwhile
      return;
    }
    log()->error("worker gen {}: channel: {}", w->generation, r.error().text);
    kill_worker(*w, "bad channel message");
    return;
  }
  w->last_heard = clock::now();
  if (const auto* h = std::get_if<channel::hello>(&r->msg)) {
    on_hello(*w, *h);
  } else if (std::holds_alternative<channel::ready>(r->msg)) {
    on_ready(*w);
  } else if (const auto* hb = std::get_if<channel::heartbeat>(&r->msg)) {
    w->heartbeat = *hb;
  } else if (const auto* u = std::get_if<channel::upgrade_result>(&r->msg)) {
    on_upgrade_result(*w, *u);
  } else if (const auto* c = std::get_if<channel::console_reply>(&r->msg)) {
    on_console_reply(*c);
  } else if (const auto* k = std::get_if<channel::keep>(&r->msg)) {
    on_keep(*w, *k, std::move(r->fds));
  } else if (auto* st = std::get_if<channel::stores>(&r->msg)) {
    w->stores = std::move(*st);
  } else if (std::holds_alternative<channel::stopped>(r->msg) || std::holds_alternative<channel::drained>(r->msg)) {
    log()->info("worker gen {}: {}", w->generation, channel::name_of(channel::kind_of(r->msg)));
  } else {
    log()->error("worker gen {}: unexpected {} from a worker", w->generation, channel::name_of(channel::kind_of(r->msg)));
    kill_worker(*w, "protocol violation");
  }
}

void supervisor::on_hello(worker& w, const channel::hello& h) {
  std::string refusal;
  if (w.said_hello) {
    refusal = "a second hello";
  } else if (h.protocol_version != channel::protocol_version) {
    refusal = "it speaks channel protocol " + std::to_string(h.protocol_version) + ", this supervisor speaks " +
              std::to_string(channel::protocol_version) + " (install matching supervisor and worker binaries)";
  } else if (h.generation != w.generation || h.pid != w.pid) {
    refusal = "it says generation " + std::to_string(h.generation) + ", pid " + std::to_string(h.pid);
  }
  w.said_hello = true;
  if (!refusal.empty()) {
    log()->critical("worker gen {} (pid {}) refused: {}", w.generation, w.pid, refusal);
    w.refused = true;
    if (upgrade_ && upgrade_->to == w.generation) upgrade_->failure = "the new worker was refused: " + refusal;
    w.st = worker::state::stopping;  // it exits on its own (or is killed at kill_at)
    w.kill_at = clock::now() + ms(sup_.stop_timeout_ms);
    if (!channel::send_message(w.channel.get(), channel::refuse{refusal})) kill_worker(w, "refused");
    return;
  }
  // One set: the listeners, then the state the workers asked to keep, then persist.dir's
  // lock (the worker holds it while it lives).
  std::vector<std::string> names;
  std::vector<int> fds;
  for (const auto& l : listeners_) {
    names.push_back(l.spec.name);
    fds.push_back(l.fd.get());
  }
  for (const auto& kept : held_) {
    names.push_back(kept.name);
    fds.push_back(kept.fd.get());
  }
  if (persist_lock_) {
    names.emplace_back("state:lock");
    fds.push_back(persist_lock_.get());
  }
  auto sent = channel::send_message(w.channel.get(), channel::welcome{sup_.heartbeat_ms});
  if (sent) sent = channel::send_listeners(w.channel.get(), names, fds);
  if (!sent) {
    log()->error("worker gen {}: channel: {}", w.generation, sent.error());
    kill_worker(w, "handshake failed");
    return;
  }
  log()->info("worker gen {} (pid {}) said hello; {} listeners and {} state files passed", w.generation, w.pid,
              listeners_.size(), held_.size());
  if (stopping_) {
    send_stop(w);
    return;
  }
  if (w.takeover) start_transfer(w);
}

void supervisor::on_ready(worker& w) {
  if (w.st != worker::state::starting || !w.said_hello) {
    log()->warn("worker gen {}: ready while {}", w.generation, state_name(w.st));
    return;
  }
  const auto now = clock::now();
  w.st = worker::state::ready;
  w.ready_at = now;
  policy_.on_ready();
  send_counters(&w);
  if (revival_ && revival_->generation == w.generation) {
    log()->info("worker gen {} ({}) serves: the node is no longer parked", w.generation, revival_->binary);
    binary_ = revival_->binary;
    auto waiters = std::move(revival_->waiters);
    revival_.reset();
    for (auto& reply : waiters) {
      reply(json{{"ok", true}, {"to_generation", w.generation}, {"to_pid", w.pid}, {"worker", binary_},
                 {"revived", true}});
    }
  }
  if (w.takeover && upgrade_ && upgrade_->to == w.generation) {
    log()->info("worker gen {} (pid {}) serves: it took over in {} ms", w.generation, w.pid, ms_between(upgrade_->started, now));
    upgrade_->new_ready = true;
    settle_upgrade();
  }
  log()->info("worker gen {} (pid {}) ready in {} ms", w.generation, w.pid, ms_between(w.spawned, now));
  if (death_at_) {
    log()->warn("worker gen {} ready: restart took {} ms (from the death of the previous worker to ready)",
                w.generation, ms_between(*death_at_, now));
    death_at_.reset();
  }
  if (!announced_ready_) {
    announced_ready_ = true;
    notify_systemd("READY=1\nMAINPID=" + std::to_string(::getpid()));
    if (daemon_ready_) {
      const char ok = 'R';
      (void)::write(daemon_ready_.get(), &ok, 1);
      daemon_ready_.reset();
    }
  }
}

// A worker killed but not reaped yet may still write the entity state: nobody starts to
// recover it before that one is gone (its SIGCHLD wakes the loop).
bool awaiting_reap(const std::vector<std::unique_ptr<worker>>& workers) {
  return std::any_of(workers.begin(), workers.end(), [](const auto& w) { return w->kill_sent; });
}

void supervisor::check_timers(clock::time_point now) {
  if (restart_at_ && now >= *restart_at_ && !awaiting_reap(workers_)) {
    restart_at_.reset();
    start_worker(binary_);
  }
  for (auto it = consoles_.begin(); it != consoles_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    it->second.reply(json{{"ok", false}, {"error", "the worker did not answer in time"}});
    it = consoles_.erase(it);
  }
  if (upgrade_ && now >= upgrade_->deadline + ms(upgrade_grace_ms)) {
    if (upgrade_->failure.empty()) {
      upgrade_->failure = "timed out after " + std::to_string(upgrade_->budget_ms) + " ms";
    }
    for (auto& w : workers_) {
      if (w->generation == upgrade_->to) kill_worker(*w, "upgrade timed out");
    }
    if (now >= upgrade_->deadline + ms(4 * upgrade_grace_ms)) {
      upgrade_->verdict.reset();  // the old worker never said: give up waiting for it
      upgrade_->old_gone = true;
    }
    settle_upgrade();
  }
  for (auto& w : workers_) {
    if (w->kill_sent) continue;
    if (w->st == worker::state::starting && !w->takeover && now >= w->spawned + ms(sup_.ready_timeout_ms)) {
      kill_worker(*w, "not ready after " + std::to_string(sup_.ready_timeout_ms) + " ms");
    } else if (w->st == worker::state::ready && now >= w->last_heard + ms(sup_.heartbeat_timeout_ms)) {
      kill_worker(*w, "no heartbeat for " + std::to_string(ms_between(w->last_heard, now)) + " ms");
    } else if (w->st == worker::state::stopping && now >= w->kill_at) {
      kill_worker(*w, "still running " + std::to_string(sup_.stop_timeout_ms) + " ms after stop");
    }
  }
}

void supervisor::on_control(const control_request& req, const control_reply& reply) {
  if (req.cmd == "status") {
    reply(status());
  } else if (req.cmd == "stop") {
    reply(json{{"ok", true}, {"pid", ::getpid()}});
    if (!stopping_) begin_stop("control: stop");  // only a second signal escalates
  } else if (req.cmd == "reload") {
    const std::size_t n = broadcast(channel::reload{}, "control: reload");
    reply(json{{"ok", true}, {"workers", n}});
  } else if (req.cmd == "console") {
    const std::string line = req.args.contains("line") && req.args["line"].is_string() ? req.args["line"].get<std::string>() : "";
    const bool at_start = req.args.contains("reply_at_start") && req.args["reply_at_start"].is_boolean() &&
                          req.args["reply_at_start"].get<bool>();
    on_console(line, at_start, reply);
  } else if (req.cmd == "upgrade") {
    std::string binary;
    std::uint32_t budget = sup_.upgrade_timeout_ms;
    if (req.args.contains("worker") && req.args["worker"].is_string()) binary = req.args["worker"].get<std::string>();
    if (req.args.contains("timeout_ms") && req.args["timeout_ms"].is_number_unsigned()) {
      budget = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(req.args["timeout_ms"].get<std::uint64_t>(), 100, 3600000));
    }
    begin_upgrade(binary, budget, reply);
  } else {
    reply(json{{"error", "unknown command " + req.cmd}});
  }
}

// What a worker asked to keep: entity state in memfds (channel keep). A name kept again
// replaces the old one (a store made its region anew). Never read here.
void supervisor::on_keep(worker& w, const channel::keep& k, std::vector<unique_fd> fds) {
  for (std::size_t i = 0; i < k.names.size() && i < fds.size(); ++i) {
    auto it = std::find_if(held_.begin(), held_.end(), [&](const channel::named_fd& h) { return h.name == k.names[i]; });
    if (it != held_.end()) {
      it->fd = std::move(fds[i]);
    } else {
      held_.push_back({k.names[i], std::move(fds[i])});
    }
  }
  log()->info("worker gen {}: keeping {} (state files held: {})", w.generation, k.names.front(), held_.size());
}

// The records a dead worker sent before it went (its exit may be seen first): its
// verdict, console answers, the state it asked to keep. False for anything else.
bool supervisor::on_last_words(worker& w, channel::received& r) {
  if (const auto* u = std::get_if<channel::upgrade_result>(&r.msg)) {
    on_upgrade_result(w, *u);
  } else if (const auto* c = std::get_if<channel::console_reply>(&r.msg)) {
    on_console_reply(*c);
  } else if (const auto* k = std::get_if<channel::keep>(&r.msg)) {
    on_keep(w, *k, std::move(r.fds));
  } else {
    return false;
  }
  return true;
}

// No restart until an operator says (`cppskynet upgrade [--worker PATH]` starts one):
// the listeners stay bound and the held state stays here.
void supervisor::park(const std::string& why) {
  parked_ = why;
  restart_at_.reset();
  log()->critical("{}: parked, not restarting. The entity state is kept ({} files); start a worker binary that can "
                  "run with `cppskynet upgrade [--worker PATH]`",
                  why, held_.size());
}

// ---------------------------------------------------------------- console --
//
// `cppskynet console`: the supervisor answers generations and upgrade itself and relays
// every other line to the serving worker (channel console / console_reply), whose answer
// is JSON text it does not interpret (worker/console.hpp has the verbs). A worker's own
// debug console asks for generations and upgrade here too, with reply_at_start: its
// upgrade is answered once it has started ({"started": true, from/to_generation}), since
// that worker exits before the verdict; a refusal is answered at once either way.

void supervisor::on_console(const std::string& line, bool reply_at_start, const control_reply& reply) {
  std::vector<std::string> words;
  {
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      const std::size_t start = i;
      while (i < line.size() && line[i] != ' ') ++i;
      if (i > start) words.push_back(line.substr(start, i - start));
    }
  }
  const std::string verb = words.empty() ? "" : words[0];
  if (verb == "generations") {
    json out = json::array();
    const auto now = clock::now();
    for (const auto& w : workers_) {
      out.push_back({{"generation", w->generation}, {"pid", w->pid}, {"state", state_name(w->st)},
                     {"binary", w->binary}, {"takeover", w->takeover}, {"retiring", w->retiring},
                     {"uptime_s", static_cast<double>(ms_between(w->spawned, now)) / 1000.0}});
    }
    reply(json{{"ok", true}, {"answer", out}});
    return;
  }
  if (verb == "upgrade") {
    std::string binary;
    std::uint32_t budget = sup_.upgrade_timeout_ms;
    for (std::size_t i = 1; i < words.size(); ++i) {
      if (words[i] == "--worker" && i + 1 < words.size()) {
        binary = words[++i];
      } else if (words[i] == "--timeout" && i + 1 < words.size()) {
        const double s = std::atof(words[++i].c_str());
        if (s > 0) budget = static_cast<std::uint32_t>(std::clamp(s * 1000.0, 100.0, 3600000.0));
      } else {
        reply(json{{"ok", false}, {"error", "usage: upgrade [--worker PATH] [--timeout S]"}});
        return;
      }
    }
    auto answered = std::make_shared<bool>(false);
    begin_upgrade(binary, budget, [reply, answered](json verdict) {
      if (std::exchange(*answered, true)) return;  // answered when it started
      const bool ok = verdict.value("ok", false);
      reply(ok ? json{{"ok", true}, {"answer", verdict}} : json{{"ok", false}, {"error", verdict.value("error", "failed")}, {"answer", verdict}});
    });
    if (reply_at_start && !*answered) {
      *answered = true;
      json started = {{"started", true}, {"to_generation", upgrade_ ? upgrade_->to : revival_ ? revival_->generation : 0}};
      if (upgrade_) started["from_generation"] = upgrade_->from;
      reply(json{{"ok", true}, {"answer", started}});
    }
    return;
  }
  worker* serving = nullptr;
  for (auto& w : workers_) {
    if (w->st == worker::state::ready && !w->retiring && w->channel) serving = w.get();
  }
  if (serving == nullptr) {
    reply(json{{"ok", false}, {"error", "no worker serves now"}});
    return;
  }
  const std::uint64_t id = next_console_++;
  if (auto r = channel::send_message(serving->channel.get(), channel::console{id, line}); !r) {
    reply(json{{"ok", false}, {"error", r.error()}});
    return;
  }
  consoles_[id] = console_wait{reply, clock::now() + ms(sup_.heartbeat_timeout_ms) + ms(serving->call_timeout_ms)};
}

void supervisor::on_console_reply(const channel::console_reply& r) {
  auto it = consoles_.find(r.id);
  if (it == consoles_.end()) return;  // answered already (timed out)
  json out = {{"ok", r.ok != 0}};
  if (r.ok != 0) {
    out["answer"] = json::parse(r.text, nullptr, false);
    if (out["answer"].is_discarded()) out["answer"] = r.text;
  } else {
    out["error"] = r.text;
  }
  it->second.reply(out);
  consoles_.erase(it);
}

// --------------------------------------------------------------- upgrade --
//
// The supervisor only starts the new generation, connects the two workers with a transfer
// socket, and waits for the verdicts: the old worker's upgrade_result and the new one's
// ready. It never reads what the workers exchange (docs/upgrade.md).

void supervisor::begin_upgrade(const std::string& binary, std::uint32_t budget_ms, control_reply reply) {
  const auto refuse = [&](const std::string& why) {
    log()->error("upgrade refused: {}", why);
    if (reply) reply(json{{"ok", false}, {"error", why}});
  };
  if (stopping_) return refuse("the supervisor is stopping");
  if (upgrade_) {
    return refuse("an upgrade is already in progress (gen " + std::to_string(upgrade_->from) + " -> gen " +
                  std::to_string(upgrade_->to) + ")");
  }
  if (revival_) return refuse("a worker is being started from parked (gen " + std::to_string(revival_->generation) + ")");
  std::string program = binary_;
  if (!binary.empty()) {
    auto found = find_worker_binary(binary);
    if (!found) return refuse(found.error());
    program = *found;
  }
  if (parked_ && workers_.empty()) {  // nothing to hand over from: start `program`, which recovers the state
    log()->info("upgrade while parked ({}): starting {}", *parked_, program);
    parked_.reset();
    worker* w = start_worker(program);
    if (w == nullptr) {
      park("cannot start " + program);
      return refuse("cannot start " + program);
    }
    revival_ = revival{w->generation, program, {}};
    if (reply) revival_->waiters.push_back(std::move(reply));
    return;
  }
  worker* old = nullptr;
  for (auto& w : workers_) {
    if (w->st == worker::state::ready && !w->retiring && !w->kill_sent) old = w.get();
  }
  if (old == nullptr || workers_.size() != 1) return refuse("no single ready worker to upgrade (a worker is starting or stopping)");
  auto pair = channel::make_socket_pair();
  if (!pair) return refuse("transfer socket: " + pair.error());
  upgrade_run u;
  u.from = old->generation;
  u.from_pid = old->pid;
  u.binary = program;
  u.budget_ms = budget_ms;
  u.started = clock::now();
  u.deadline = u.started + ms(budget_ms);
  u.old_end = std::move(pair->first);
  u.new_end = std::move(pair->second);
  if (reply) u.waiters.push_back(std::move(reply));
  upgrade_ = std::move(u);
  worker* next = start_worker(program, true);
  if (next == nullptr) {
    upgrade_->failure = "cannot start " + program;
    upgrade_->new_gone = true;
    upgrade_->old_gone = false;
    upgrade_->verdict = channel::upgrade_result{};  // nothing was asked of the old worker
    upgrade_->verdict->phase = "start";
    settle_upgrade();
    return;
  }
  upgrade_->to = next->generation;
  upgrade_->to_pid = next->pid;
  log()->info("upgrade: gen {} (pid {}) -> gen {} (pid {}, {}), budget {} ms", upgrade_->from, upgrade_->from_pid,
              upgrade_->to, upgrade_->to_pid, program, budget_ms);
}

// The new worker said hello and has its listeners: give each worker its end of the
// transfer socket. From here on they talk to each other.
void supervisor::start_transfer(worker& next) {
  if (!upgrade_ || upgrade_->to != next.generation || !upgrade_->new_end) return;
  worker* old = find(upgrade_->from);
  const auto left = std::chrono::ceil<ms>(upgrade_->deadline - clock::now()).count();
  const auto budget = static_cast<std::uint32_t>(std::max<long long>(left, 1));
  const int new_fd[] = {upgrade_->new_end.get()};
  auto sent = channel::send_message(next.channel.get(), channel::takeover{upgrade_->from, budget}, new_fd);
  if (sent && old != nullptr && old->channel) {
    const int old_fd[] = {upgrade_->old_end.get()};
    sent = channel::send_message(old->channel.get(), channel::handover{next.generation, budget}, old_fd);
  } else if (sent) {
    sent = unexpected(std::string("the old worker is gone"));
  }
  upgrade_->old_end.reset();  // the workers hold the only copies now: either end closing is seen
  upgrade_->new_end.reset();
  if (!sent) {
    upgrade_->failure = "handing out the transfer socket: " + sent.error();
    upgrade_->verdict = channel::upgrade_result{};
    upgrade_->verdict->phase = "start";
    kill_worker(next, "upgrade could not start");
    settle_upgrade();
  }
}

void supervisor::on_upgrade_result(worker& w, const channel::upgrade_result& r) {
  if (!upgrade_ || upgrade_->from != w.generation) {
    log()->warn("worker gen {}: upgrade_result outside an upgrade: ignored", w.generation);
    return;
  }
  upgrade_->verdict = r;
  if (r.ok != 0) {
    // It exits on its own now; its exit is expected.
    w.retiring = true;
    w.st = worker::state::stopping;
    w.kill_at = clock::now() + ms(sup_.stop_timeout_ms);
  } else {
    log()->error("upgrade abandoned by gen {} in {}: {}", w.generation, r.phase, r.reason);
    for (auto& other : workers_) {
      if (other->generation == upgrade_->to) kill_worker(*other, "the upgrade was abandoned");
    }
  }
  settle_upgrade();
}

// Ends the upgrade once its outcome is certain: success when the old worker handed over
// and the new one serves; failure once no new generation is left running.
void supervisor::settle_upgrade() {
  if (!upgrade_) return;
  upgrade_run& u = *upgrade_;
  const bool handed_over = u.verdict && u.verdict->ok != 0;
  bool ok = false;
  if (handed_over && u.new_ready && !u.new_gone) {
    if (!u.old_gone) return;  // the command returns once the old worker has exited
    ok = true;
  } else if (u.verdict || u.old_gone) {
    if (!u.new_gone) return;  // wait until the new worker is reaped: no generation left behind
  } else {
    return;  // the old worker has not said yet
  }
  json out = upgrade_json();
  out["ok"] = ok;
  if (!ok) {
    std::string why = u.failure;
    if (u.verdict && !u.verdict->reason.empty()) why = why.empty() ? u.verdict->reason : why + "; " + u.verdict->reason;
    if (why.empty()) why = "failed";
    out["error"] = why;
    out["serving"] = u.old_gone ? "none (a new worker is started)" : "the old worker, gen " + std::to_string(u.from);
    ++upgrades_failed_;
    log()->error("upgrade gen {} -> gen {} failed: {}", u.from, u.to, why);
  } else {
    ++upgrades_ok_;
    binary_ = u.binary;
    if (worker* next = find(u.to)) next->takeover = false;
    log()->info("upgrade gen {} -> gen {} done in {} ms (frozen {} us, {} connections handed over)", u.from, u.to,
                ms_between(u.started, clock::now()), u.verdict->frozen_us, u.verdict->connections);
  }
  last_upgrade_ = out;
  if (ok) {
    last_upgrade_total_us_ = u.verdict->total_us;
    last_upgrade_frozen_us_ = u.verdict->frozen_us;
  }
  auto waiters = std::move(u.waiters);
  upgrade_.reset();
  send_counters();
  for (auto& reply : waiters) reply(out);
}

json supervisor::upgrade_json() const {
  const upgrade_run& u = *upgrade_;
  json out = {{"from_generation", u.from}, {"from_pid", u.from_pid}, {"to_generation", u.to}, {"to_pid", u.to_pid},
              {"worker", u.binary}, {"elapsed_ms", ms_between(u.started, clock::now())}};
  if (u.verdict) {
    const auto& v = *u.verdict;
    out["phase"] = v.phase;
    out["total_us"] = v.total_us;
    out["precopy_us"] = v.precopy_us;
    out["frozen_us"] = v.frozen_us;
    out["entities"] = v.entities;
    out["delta_entities"] = v.delta_entities;
    out["final_delta"] = v.final_delta;
    out["state_bytes"] = v.state_bytes;
    out["connections"] = v.connections;
  }
  return out;
}

// --------------------------------------------------------------- actions --

worker* supervisor::start_worker(const std::string& binary, bool takeover) {
  const std::uint32_t generation = next_generation_++;
  auto pair = channel::make_socket_pair();
  if (!pair) {
    if (!takeover) schedule_restart("cannot start worker gen " + std::to_string(generation) + ": " + pair.error());
    return nullptr;
  }
  ::fcntl(pair->first.get(), F_SETFL, O_NONBLOCK);  // the loop never waits on a send
  unique_fd log_read, log_write;
  if (log_file_) {
    int p[2] = {-1, -1};
    if (::pipe2(p, O_CLOEXEC) == 0) {
      log_read.reset(p[0]);
      log_write.reset(p[1]);
      ::fcntl(log_read.get(), F_SETFL, O_NONBLOCK);
    }
  }
  auto pid = spawn_worker({binary, config_path_, generation, pair->second.get(), log_write.get(), takeover});
  if (!pid) {
    if (!takeover) schedule_restart("cannot start worker gen " + std::to_string(generation) + ": " + pid.error());
    return nullptr;
  }
  auto w = std::make_unique<worker>();
  // The worker reads the config file itself, maybe edited since the supervisor started
  // (an upgrade picks up such edits): take its call timeout from the file too. Only that
  // key: every other change needs a supervisor restart (docs/config.md). The supervisor
  // never parses anything the worker sends for it.
  w->call_timeout_ms = cfg_.runtime.call_timeout_ms;
  if (auto now_cfg = load_config_file(config_path_)) w->call_timeout_ms = now_cfg->runtime.call_timeout_ms;
  w->pid = *pid;
  w->generation = generation;
  w->channel = std::move(pair->first);
  w->log_pipe = std::move(log_read);
  w->spawned = w->last_heard = clock::now();
  w->takeover = takeover;
  w->binary = binary;
  log()->info("worker gen {} started: pid {}{}", generation, w->pid, takeover ? " (upgrade: takes over)" : "");
  workers_.push_back(std::move(w));
  return workers_.back().get();
}

void supervisor::kill_worker(worker& w, const std::string& reason) {
  if (w.kill_sent) return;
  log()->error("worker gen {} (pid {}): {}: SIGKILL", w.generation, w.pid, reason);
  ::kill(w.pid, SIGKILL);
  w.kill_sent = true;
  w.kill_reason = reason;
  if (!stopping_ && !death_at_ && !w.takeover) death_at_ = clock::now();
}

void supervisor::begin_stop(const std::string& why) {
  if (stopping_) {
    log()->warn("{} while stopping: killing the workers now", why);
    for (auto& w : workers_) kill_worker(*w, "stopped twice");
    return;
  }
  stopping_ = true;
  restart_at_.reset();
  notify_systemd("STOPPING=1");
  log()->info("{}: stopping {} worker(s), {} ms each before SIGKILL", why, workers_.size(), sup_.stop_timeout_ms);
  for (auto& w : workers_) send_stop(*w);
  if (workers_.empty()) finish(exit_stopped);
}

void supervisor::send_stop(worker& w) {
  w.st = worker::state::stopping;
  w.kill_at = clock::now() + ms(sup_.stop_timeout_ms);
  if (!w.channel || w.kill_sent) return;
  if (auto r = channel::send_message(w.channel.get(), channel::stop{sup_.stop_timeout_ms}); !r) {
    log()->warn("worker gen {}: {}", w.generation, r.error());
    ::kill(w.pid, SIGTERM);  // it may still stop in order
  }
}

std::size_t supervisor::broadcast(const channel::message& m, const char* why) {
  std::size_t sent = 0;
  for (auto& w : workers_) {
    if (w->st != worker::state::ready || !w->channel) continue;
    if (auto r = channel::send_message(w->channel.get(), m); r) {
      ++sent;
    } else {
      log()->warn("worker gen {}: {}", w->generation, r.error());
    }
  }
  log()->info("{}: sent to {} worker(s)", why, sent);
  return sent;
}

// The counters a worker's /metrics shows (channel counters): to one worker, or to every
// ready one. Best effort: a full channel only delays them to the next change.
void supervisor::send_counters(worker* only) {
  const channel::counters c{restarts_, upgrades_ok_, upgrades_failed_, last_upgrade_total_us_, last_upgrade_frozen_us_};
  for (auto& w : workers_) {
    if ((only != nullptr && w.get() != only) || w->st != worker::state::ready || !w->channel) continue;
    (void)channel::send_message(w->channel.get(), c);
  }
}

void supervisor::reopen_logs() {
  try {
    init_logging(cfg_.log, "supervisor", 0);
  } catch (const std::exception& e) {
    log()->error("SIGUSR1: cannot reopen {}: {}", cfg_.log.file, e.what());
  }
  if (!cfg_.log.file.empty()) {
    log_file_.reset(::open(cfg_.log.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  }
  broadcast(channel::log_reopen{}, "SIGUSR1: log files reopened; log_reopen");
}

// Moves whole lines from a worker's stderr pipe to log.file (one write per batch of
// lines, O_APPEND: lines of the supervisor and of several workers never mix mid-line).
void supervisor::pump_log(worker& w, bool to_eof) {
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(w.log_pipe.get(), buf, sizeof buf);
    if (n > 0) {
      w.log_partial.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const bool eof = n == 0 || (n < 0 && errno != EAGAIN);
    std::size_t cut = w.log_partial.rfind('\n');
    cut = cut == std::string::npos ? 0 : cut + 1;
    if (eof || to_eof || w.log_partial.size() > 65536) {
      if (!w.log_partial.empty() && w.log_partial.back() != '\n') w.log_partial += '\n';
      cut = w.log_partial.size();
    }
    if (cut > 0 && log_file_) (void)::write(log_file_.get(), w.log_partial.data(), cut);
    w.log_partial.erase(0, cut);
    if (eof) w.log_pipe.reset();
    return;
  }
}

json supervisor::status() const {
  const auto now = clock::now();
  json listeners = json::array();
  for (const auto& l : listeners_) listeners.push_back({{"name", l.spec.name}, {"address", l.address}, {"fd", l.fd.get()}});
  json workers = json::array();
  for (const auto& w : workers_) {
    json hb = {{"seq", w->heartbeat.seq}, {"uptime_ms", w->heartbeat.uptime_ms}, {"services", w->heartbeat.services},
               {"dispatched", w->heartbeat.dispatched}, {"connections", w->heartbeat.connections}};
    workers.push_back({{"pid", w->pid}, {"generation", w->generation}, {"state", state_name(w->st)},
                       {"uptime_s", static_cast<double>(ms_between(w->spawned, now)) / 1000.0},
                       {"restarts", restarts_}, {"last_exit", last_exit_.empty() ? "-" : last_exit_},
                       {"binary", w->binary}, {"retiring", w->retiring}, {"takeover", w->takeover},
                       {"heartbeat", hb}});
  }
  json state_files = json::array();
  for (const auto& h : held_) {
    struct stat st {};
    const auto bytes = ::fstat(h.fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    state_files.push_back({{"name", h.name}, {"fd", h.fd.get()}, {"bytes", bytes}});
  }
  // The stores as the serving worker (the newest ready one) last reported them.
  json stores = json::array();
  const worker* serving = nullptr;
  for (const auto& w : workers_) {
    if (w->st == worker::state::ready && !w->retiring) serving = w.get();
  }
  if (serving != nullptr) {
    for (const auto& e : serving->stores.list) {
      stores.push_back({{"id", e.id}, {"type", e.type}, {"entities", e.entities}, {"journal_bytes", e.used_bytes},
                        {"journal_capacity", e.ring_bytes}, {"records_since_checkpoint", e.records_since_checkpoint},
                        {"checkpoints", e.checkpoints}, {"last_checkpoint_unix_ms", e.last_checkpoint_unix_ms},
                        {"checkpointing", e.checkpointing != 0}, {"recovered_entities", e.recovered_entities},
                        {"recovered_records", e.recovered_records}, {"recovery_ms", static_cast<double>(e.recovery_us) / 1000.0},
                        {"recovery_stopped_at_bad_record", e.recovery_bad != 0}, {"recovery_note", e.note}});
    }
  }
  return {{"pid", ::getpid()},
          {"version", CSK_VERSION},
          {"config", config_path_},
          {"state", stopping_ ? "stopping" : parked_ ? "parked" : "running"},
          {"parked", parked_ ? json(*parked_) : json(nullptr)},
          {"persist_dir", cfg_.persist.dir.empty() ? json(nullptr) : json(cfg_.persist.dir)},
          {"state_files", state_files},
          {"stores", stores},
          {"uptime_s", static_cast<double>(ms_between(started_, now)) / 1000.0},
          {"worker_binary", binary_},
          {"control_socket", sup_.control_socket},
          {"restarts", restarts_},
          {"upgrades", {{"ok", upgrades_ok_}, {"failed", upgrades_failed_},
                        {"in_progress", upgrade_ ? upgrade_json() : json(nullptr)},
                        {"last", last_upgrade_.is_null() ? json(nullptr) : last_upgrade_}}},
          {"listeners", listeners},
          {"workers", workers}};
}

}  // namespace

int run(const run_options& options) {
  std::error_code ec;
  const std::string path = std::filesystem::absolute(options.config_path, ec).lexically_normal().string();
  auto cfg = load_config_file(path);
  if (!cfg) {
    std::cerr << "cppskynet: bad config " << path << ":\n" << cfg.error() << "\n";
    return exit_bad_config;
  }
  try {
    init_logging(cfg->log, "supervisor", 0);
  } catch (const std::exception& e) {
    std::cerr << "cppskynet: log: " << e.what() << "\n";
    return exit_bad_config;
  }
  auto binary = find_worker_binary(cfg->supervisor.worker);
  if (!binary) {
    log()->critical("{}", binary.error());
    return exit_start_failed;
  }
  auto specs = listeners_of(*cfg);
  if (!specs) {
    log()->critical("{}", specs.error());
    return exit_bad_config;
  }
  auto bound = bind_listeners(*specs);
  if (!bound) {
    log()->critical("{}", bound.error());
    return exit_start_failed;
  }
  unique_fd daemon_ready;
  if (options.daemon) {
    if (cfg->log.file.empty()) log()->warn("--daemon without log.file: the logs go to /dev/null");
    auto d = daemonize();
    if (!d) {
      log()->critical("--daemon: {}", d.error());
      return exit_start_failed;
    }
    daemon_ready = std::move(*d);
  }
  unique_fd persist_lock;
  if (!cfg->persist.dir.empty()) {
    // One node per directory. A worker of a supervisor that died keeps the lock until it
    // has stopped: wait for that (it stops within its shutdown timeout plus the 2 s flush).
    auto lock = lock_directory(cfg->persist.dir, ms(cfg->runtime.shutdown_timeout_ms) + ms(3000));
    if (!lock) {
      log()->critical("persist.dir: {}", lock.error());
      return exit_start_failed;
    }
    persist_lock = std::move(*lock);
  }
  supervisor s(std::move(*cfg), path, std::move(*binary), std::move(*bound), std::move(daemon_ready),
               std::move(persist_lock));
  return s.run();
}

int run_command(const std::vector<std::string>& args) {
  run_options o;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) {
      o.config_path = args[++i];
    } else if (args[i] == "--daemon") {
      o.daemon = true;
    } else {
      std::cerr << "cppskynet run: unknown argument " << args[i] << "\n";
      o.config_path.clear();
      break;
    }
  }
  if (o.config_path.empty()) {
    std::cerr << "usage: cppskynet run -c node.yaml [--daemon]\n";
    return exit_usage;
  }
  return run(o);
}

}  // namespace csk::supervisor
