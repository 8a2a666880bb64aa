#include "worker/node.hpp"

#include <pthread.h>
#include <sys/stat.h>

#include <ctime>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"

namespace csk {

actor::runtime_options runtime_options_from(const runtime_config& c) {
  actor::runtime_options o;
  o.threads = c.threads;
  o.harbor = static_cast<std::uint32_t>(c.harbor);
  o.tick = std::chrono::milliseconds(c.tick_ms);
  o.call_timeout = std::chrono::milliseconds(c.call_timeout_ms);
  o.mailbox_warn = c.mailbox_warn;
  o.slow_handler = std::chrono::milliseconds(c.slow_handler_ms);
  o.shutdown_timeout = std::chrono::milliseconds(c.shutdown_timeout_ms);
  return o;
}

result<void, std::string> boot_services(actor::runtime& rt, const std::vector<service_config>& services) {
  for (std::size_t i = 0; i < services.size(); ++i) {
    const service_config& s = services[i];
    std::vector<std::string> names = s.names;
    if (!s.name.empty()) names.insert(names.begin(), s.name);
    for (int k = 0; k < s.instances; ++k) {
      auto h = rt.spawn(s.type, actor::values(s.args.begin(), s.args.end()), names);
      if (!h) {
        return unexpected("services[" + std::to_string(i) + "] (" + s.type + "), instance " + std::to_string(k + 1) +
                          ": " + h.error());
      }
    }
  }
  return {};
}

result<void, std::string> run_node(const node_config& cfg,
                                   const std::function<void(actor::runtime&)>& register_types) {
  actor::runtime rt(runtime_options_from(cfg.runtime));
  register_types(rt);
  net::net n(1);
  cluster::node_options co;
  co.self = cfg.cluster.self;
  if (!cfg.cluster.listen.empty()) {
    auto hp = parse_host_port(cfg.cluster.listen, true);
    if (!hp) return unexpected("cluster.listen: bad address " + cfg.cluster.listen);
    co.listen = cluster::endpoint{hp->host, hp->port};
  }
  co.limits.max_message_size = std::size_t{cfg.cluster.max_message_mb} << 20;
  co.max_connections = cfg.cluster.max_connections;
  co.idle_timeout = std::chrono::milliseconds(cfg.cluster.idle_timeout_ms);
  cluster::node cluster(rt, n, co);
  if (!cfg.cluster.names_file.empty()) {
    auto table = load_cluster_names_file(cfg.cluster.names_file);
    if (!table) return unexpected(table.error());
    cluster.reload(*table);
  }
  if (auto r = boot_services(rt, cfg.services); !r) return r;
  n.start();
  if (!cfg.cluster.self.empty()) {
    auto port = cluster.open();
    if (!port) {
      n.stop();
      rt.shutdown();
      return unexpected(port.error());
    }
  }
  rt.start();
  logger("service")->info("node running ({} services); SIGINT or SIGTERM stops it, SIGHUP reloads {}",
                          cfg.services.size(), cfg.cluster.names_file.empty() ? "nothing" : cfg.cluster.names_file);
  std::optional<names_watcher> watcher;
  if (!cfg.cluster.names_file.empty()) {
    watcher.emplace(cfg.cluster.names_file);
    std::string ignored;
    // Takes the file's stamp; if it changed since the load above, apply it now.
    if (auto t = watcher->poll(ignored)) cluster.reload(*t);
  }
  int sig = 0;
  for (;;) {
    sig = wait_for_signal(std::chrono::milliseconds(1000));
    if (sig == SIGINT || sig == SIGTERM) break;
    if (!watcher) continue;
    std::string error;
    if (sig == SIGHUP) {
      auto table = load_cluster_names_file(cfg.cluster.names_file);
      if (table) {
        cluster.reload(*table);
        logger("cluster")->info("SIGHUP: node table reloaded from {}", cfg.cluster.names_file);
      } else {
        logger("cluster")->error("SIGHUP: node table not reloaded: {}", table.error());
      }
    } else if (auto table = watcher->poll(error)) {
      cluster.reload(*table);
      logger("cluster")->info("node table reloaded: {} changed", cfg.cluster.names_file);
    } else if (!error.empty()) {
      logger("cluster")->error("node table not reloaded: {}", error);
    }
  }
  logger("service")->info("signal {}: stopping", sig);
  n.stop();
  rt.shutdown();
  return {};
}

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) == 0 && (sig == SIGINT || sig == SIGTERM)) return sig;
  }
}

int wait_for_signal(std::chrono::milliseconds timeout) {
  const sigset_t set = stop_signals();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  const int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

names_watcher::names_watcher(std::string path) : path_(std::move(path)) {}

std::optional<cluster_names> names_watcher::poll(std::string& error) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    error = path_ + ": cannot stat";
    return std::nullopt;
  }
  const std::int64_t stamp = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const std::int64_t size = static_cast<std::int64_t>(st.st_size);
  if (stamp == stamp_ && size == size_) return std::nullopt;
  auto table = load_cluster_names_file(path_);
  if (!table) {
    error = table.error();
    return std::nullopt;
  }
  stamp_ = stamp;
  size_ = size;
  return std::move(*table);
}

}  // namespace csk
