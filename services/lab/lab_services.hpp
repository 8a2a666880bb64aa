#pragma once
// The services of the lab's skynet node that captured the interop vectors
// (tests/data/interop/README.md): tests replay captured requests against them, and the
// example cluster nodes offer echo and fail to Lua skynet callers as the lab node did.
//   echo      returns all its arguments           (handle 0x0a, "@echo" and ".echo")
//   fail      raises an error
//   gen(n,c)  returns string.rep(c, n)
//   noret     answers with no values
//   slow(ms, ...) sleeps ms, then returns all its arguments
//   counter   returns 1, 2, 3, ...
//   sink(us)  (type only) busy for `us` microseconds per message, counts them; "get" returns the count

#include "common/actor/runtime.hpp"

namespace csk::lab {

/// Registers the service types "echo", "fail", "gen", "noret", "slow" and "sink" (the lab's
/// counter is only spawned by spawn_lab_services: "counter" is the hello example's type).
void register_lab_types(actor::runtime& rt);

/// Spawns the lab services into `rt` so that echo gets handle 0x0000000a, like the
/// lab node (harbor 0), with the lab's names (@echo and .echo, @fail, @gen, ...).
/// Requires an empty runtime. Returns echo's handle.
actor::handle_t spawn_lab_services(actor::runtime& rt);

}  // namespace csk::lab
