#pragma once
// The services of the lab's skynet node that captured the interop vectors
// (tests/data/interop/README.md), so captured requests can be replayed here:
//   echo      returns all its arguments           (handle 0x0a, "@echo" and ".echo")
//   fail      raises an error
//   gen(n,c)  returns string.rep(c, n)
//   noret     answers with no values
//   slow(ms, ...) sleeps ms, then returns all its arguments
//   counter   returns 1, 2, 3, ...

#include "common/actor/runtime.hpp"

namespace csk::test {

/// Spawns the lab services into `rt` so that echo gets handle 0x0000000a, like the
/// lab node (harbor 0). Requires an empty runtime. Returns echo's handle.
actor::handle_t spawn_lab_services(actor::runtime& rt);

}  // namespace csk::test
