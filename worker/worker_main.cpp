#include "worker/worker_main.hpp"

#include <csignal>
#include <iostream>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "worker/node.hpp"
#include "worker/supervisor_link.hpp"

namespace csk {

int worker_main(int argc, char** argv, const std::function<void(actor::runtime&)>& register_types) {
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
  auto booted = csk::run_node(*cfg, register_types, link->get());
  if (!booted) {
    std::cerr << name << ": " << booted.error().text << "\n";
    return booted.error().exit_code;
  }
  return 0;
}

}  // namespace csk
