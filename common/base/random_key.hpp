#pragma once
// Per-process secrets for in-process control messages (the gate's hand-over, the entity
// stores' upgrade commands): a cluster peer can address a local service by name, since
// skynet resolves ".name" remotely, but cannot know a key drawn in this process.

#include <string>
#include <string_view>

namespace csk {

/// `prefix` followed by 16 hex digits from std::random_device. A new value each call:
/// keep the one you hand out (a function-local static).
std::string random_key(std::string_view prefix);

}  // namespace csk
