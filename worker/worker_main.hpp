#pragma once
// The whole main() of a worker program: cppskynet-node / cppskynet-worker, and any worker
// binary a user builds with their own services (then `cppskynet upgrade --worker PATH`).
//
//   int main(int argc, char** argv) {
//     return csk::worker_main(argc, argv, [](csk::actor::runtime& rt) { my::register_types(rt); });
//   }
//
// Usage: PROGRAM CONFIG. Standalone unless started by `cppskynet run` (CSK_CHANNEL_FD set;
// see supervisor_link.hpp). Exit codes: 0 stopped (or handed over to a new worker);
// 2 usage; 3 bad config; 4 boot failed (or a takeover failed: the old worker serves on);
// 5 the supervisor channel failed (bad environment, refused, handshake); 6 an entity
// store cannot read the state it was given (the supervisor keeps it, docs/durability.md);
// 7 an upgrade failed after its commit with the new worker still there (restarted).

#include <functional>

#include "common/actor/runtime.hpp"

namespace csk {

int worker_main(int argc, char** argv, const std::function<void(actor::runtime&)>& register_types);

}  // namespace csk
