#pragma once
// The listening sockets the supervisor owns for its whole life: bound once at start,
// passed to every worker over the channel, closed only when the supervisor exits. While
// no worker runs, connections wait in their backlog.

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "common/config/config.hpp"

namespace csk::supervisor {

struct bound_listener {
  listener_spec spec;  ///< as configured (port 0 = ephemeral)
  std::string address; ///< as bound: "127.0.0.1:41234", "[::1]:7000"
  unique_fd fd;        ///< blocking, close-on-exec; the supervisor never accepts on it
};

/// Listen backlog: connections queue here while workers restart (the kernel caps it at
/// net.core.somaxconn).
inline constexpr int listen_backlog = 4096;

/// Binds and listens on every spec (SO_REUSEADDR, CLOEXEC). Host names are resolved
/// here (blocking); the first address that binds wins. The error names the listener, the
/// address and the cause; nothing stays open on failure.
result<std::vector<bound_listener>, std::string> bind_listeners(const std::vector<listener_spec>& specs);

}  // namespace csk::supervisor
