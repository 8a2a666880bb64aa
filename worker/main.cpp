// cppskynet-node: one cppskynet node from a YAML config (runtime, log, cluster, services).
//   cppskynet-node CONFIG      runs until SIGINT/SIGTERM
// Exit codes: 0 stopped by a signal; 2 usage; 3 bad config; 4 boot failed.
// The supervisor issue turns this into the worker process under a supervisor.

#include <iostream>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "examples/service/hello.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/node.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cppskynet-node CONFIG\n";
    return 2;
  }
  auto cfg = csk::load_config_file(argv[1]);
  if (!cfg) {
    std::cerr << "cppskynet-node: bad config " << argv[1] << ":\n" << cfg.error() << "\n";
    return 3;
  }
  csk::init_logging(cfg->log, "node");
  csk::block_stop_signals();  // before any thread starts
  auto booted = csk::run_node(*cfg, [](csk::actor::runtime& rt) {
    csk::lab::register_lab_types(rt);
    csk::examples::register_hello_types(rt);
  });
  if (!booted) {
    std::cerr << "cppskynet-node: " << booted.error() << "\n";
    return 4;
  }
  return 0;
}
