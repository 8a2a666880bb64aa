// kv-gate: the line-protocol key-value store of kv_gate.hpp as a program.
//   kv-gate [HOST:PORT]        default 127.0.0.1:8001; runs until SIGINT/SIGTERM
// Try:  printf 'SET a 1\nINCR a\nGET a\nQUIT\n' | nc 127.0.0.1 8001

#include <iostream>

#include "common/config/load_config.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "examples/gate/kv_gate.hpp"
#include "worker/node.hpp"

int main(int argc, char** argv) {
  if (argc > 2) {
    std::cerr << "usage: kv-gate [HOST:PORT]\n";
    return 2;
  }
  const auto where = csk::parse_host_port(argc == 2 ? argv[1] : "127.0.0.1:8001", true);
  if (!where) {
    std::cerr << "kv-gate: bad address " << argv[1] << "\n";
    return 2;
  }
  csk::init_logging(csk::log_config{}, "kv-gate");
  csk::block_stop_signals();
  csk::actor::runtime rt(csk::actor::runtime_options{.threads = 2});
  csk::net::net n(1);
  csk::examples::register_kv_types(rt);
  csk::gate::gate_options o;
  o.host = where->host;
  o.port = where->port;
  auto store = rt.spawn("kvstore", {}, {".kvstore"});
  auto gate = store ? rt.spawn(csk::examples::make_kv_gate(n, o)) : store;
  if (!gate) {
    std::cerr << "kv-gate: " << gate.error() << "\n";
    return 1;
  }
  n.start();
  rt.start();
  csk::wait_for_stop_signal();
  n.stop();
  rt.shutdown();
  return 0;
}
