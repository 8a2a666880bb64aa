// hello-node: a cppskynet node running the hello example from a YAML config.
//   hello-node CONFIG               run until SIGINT/SIGTERM
//   hello-node CONFIG --demo NAME   greet NAME twice, print the replies, stop
#include <iostream>
#include <string>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "examples/service/hello.hpp"
#include "worker/node.hpp"

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--demo")) {
    std::cerr << "usage: hello-node CONFIG [--demo NAME]\n";
    return 2;
  }
  auto cfg = csk::load_config_file(argv[1]);
  if (!cfg) {
    std::cerr << "hello-node: bad config " << argv[1] << ":\n" << cfg.error() << "\n";
    return 3;
  }
  csk::init_logging(cfg->log, "node");
  csk::block_stop_signals();  // before any thread starts: only main waits for them
  csk::actor::runtime rt(csk::runtime_options_from(cfg->runtime));
  csk::examples::register_hello_types(rt);
  if (auto r = csk::boot_services(rt, cfg->services); !r) {
    std::cerr << "hello-node: " << r.error() << "\n";
    return 4;
  }
  rt.start();
  if (argc == 4) {
    for (int i = 0; i < 2; ++i) {
      auto r = rt.call(".hello", {"hello", argv[3]}).get();
      if (!r) {
        std::cerr << "hello-node: call failed: " << r.error().text << "\n";
        return 1;
      }
      std::cout << r->at(0).as_string() << " visitor #" << r->at(1).as_integer() << "\n";
    }
    rt.shutdown();
    return 0;
  }
  csk::logger("service")->info("hello node running; SIGINT or SIGTERM stops it");
  const int sig = csk::wait_for_stop_signal();
  csk::logger("service")->info("signal {}: shutting down", sig);
  rt.shutdown();
  return 0;
}
