// cppskynet-node and cppskynet-worker: one cppskynet node from a YAML config (runtime,
// log, cluster, services). The same program; the environment picks the mode:
//   cppskynet-node CONFIG     standalone: binds its listeners, runs until SIGINT/SIGTERM
//   cppskynet-worker CONFIG   under `cppskynet run` (CSK_CHANNEL_FD set): says hello on
//                             the channel, adopts the supervisor's listeners, reports
//                             ready, heartbeats, obeys stop/reload/log_reopen; logs to
//                             stderr (the supervisor writes log.file)
// Exit codes: 0 stopped; 2 usage; 3 bad config; 4 boot failed; 5 the supervisor
// channel failed (bad environment, refused, handshake); 6 entity state it cannot read.

#include "examples/entity/counter.hpp"
#include "examples/gate/kv_gate.hpp"
#include "examples/service/hello.hpp"
#include "examples/service/relay.hpp"
#include "services/lab/lab_services.hpp"
#include "services/mysql/mysql.hpp"
#include "services/redis/redis.hpp"
#include "worker/worker_main.hpp"

int main(int argc, char** argv) {
  return csk::worker_main(argc, argv, [](csk::actor::runtime& rt) {
    csk::lab::register_lab_types(rt);
    csk::examples::register_hello_types(rt);
    csk::examples::register_relay_types(rt);
    csk::examples::register_kv_types(rt);
    csk::examples::register_counter_types(rt);
    csk::redis::register_types(rt);
    csk::mysql::register_types(rt);
  });
}
