#include "worker/node.hpp"

#include <pthread.h>

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

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace csk
