// cppskynet-node and cppskynet-worker: one cppskynet node from a YAML config (runtime,
// log, cluster, services). The same program; the environment picks the mode:
//   cppskynet-node CONFIG     standalone: binds its listeners, runs until SIGINT/SIGTERM
//   cppskynet-worker CONFIG   under `cppskynet run` (CSK_CHANNEL_FD set): says hello on
//                             the channel, adopts the supervisor's listeners, reports
//                             ready, heartbeats, obeys stop/reload/log_reopen; logs to
//                             stderr (the supervisor writes log.file)
// Exit codes: 0 stopped; 2 usage; 3 bad config; 4 boot failed; 5 the supervisor
// channel failed (bad environment, refused, handshake).

#include <csignal>
#include <iostream>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "examples/gate/kv_gate.hpp"
#include "examples/service/hello.hpp"
#include "examples/service/relay.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/node.hpp"
#include "worker/supervisor_link.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cppskynet-node CONFIG\n";
    return 2;
  }
  auto link = csk::supervisor_link::from_environment();  // before any thread: it unsets the variables
  if (!link) {
    std::cerr << "cppskynet-worker: " << link.error() << "\n";
    return 5;
  }
  const bool supervised = *link != nullptr;
  const char* const name = supervised ? "cppskynet-worker" : "cppskynet-node";
  auto cfg = csk::load_config_file(argv[1]);
  if (!cfg) {
    std::cerr << name << ": bad config " << argv[1] << ":\n" << cfg.error() << "\n";
    return 3;
  }
  csk::log_config log = cfg->log;
  if (supervised) log.file.clear();  // one writer per file: the supervisor
  csk::init_logging(log, supervised ? "worker" : "node", supervised ? static_cast<int>((*link)->generation()) : 0);
  csk::block_stop_signals();  // before any thread starts
  ::signal(SIGPIPE, SIG_IGN);  // stderr may be a pipe to a supervisor that is gone
  if (supervised) {
    if (auto r = (*link)->handshake(std::chrono::seconds(30)); !r) {
      csk::logger("supervisor")->critical("channel: {}", r.error());
      return 5;
    }
  }
  auto booted = csk::run_node(
      *cfg,
      [](csk::actor::runtime& rt) {
        csk::lab::register_lab_types(rt);
        csk::examples::register_hello_types(rt);
        csk::examples::register_relay_types(rt);
        csk::examples::register_kv_types(rt);
      },
      link->get());
  if (!booted) {
    std::cerr << name << ": " << booted.error() << "\n";
    return 4;
  }
  return 0;
}
