#pragma once
// A gate's options, shared by the config loader and the gate service (services/gate):
// the ranges of its limits, one source of truth so that `cppskynet check` refuses what
// the gate's gate_options_from would refuse at boot, and the options table the worker
// builds from a `gates:` entry. It lives in common/config because common/ must not
// depend on services/.

#include <cstdint>

#include "common/config/config.hpp"
#include "common/wire/lua_value.hpp"

namespace csk {

namespace gate_limits {

/// An inclusive integer range.
struct range {
  std::int64_t min;
  std::int64_t max;
};

inline constexpr range max_connections{1, 1'000'000};
inline constexpr range max_in_flight{1, 1'000'000};
inline constexpr range max_outbound_kb{1, std::int64_t{1} << 21};  // 2 GiB per connection
inline constexpr range idle_timeout_ms{0, 4'294'967'295};          // fits the config's uint32
inline constexpr range max_message{1, std::int64_t{1} << 31};
inline constexpr range message_timeout_ms{0, 4'294'967'295};

}  // namespace gate_limits

/// The options table (the gate service's args[0]) for a `gates:` entry: listen and the
/// limits. The worker adds `fd` (the inherited listener) and `standby` itself.
lua_table gate_options_table(const gate_config& g);

}  // namespace csk
