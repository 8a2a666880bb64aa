#pragma once
// skynet's "hello", in cppskynet: two services.
//
//   counter  "incr" -> the next number; "get" -> the current one
//   hello    "hello", name -> "hello, <name>!", visitor number (asks .counter for it)
//            "stats" -> greetings answered, timer ticks seen
//            on start it sets a timer that fires every `interval_ms` (init arg)

#include "common/actor/runtime.hpp"

namespace csk::examples {

/// Registers the "hello" and "counter" service types.
void register_hello_types(actor::runtime& rt);

}  // namespace csk::examples
