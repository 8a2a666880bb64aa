#pragma once
// csk::node_config: one node's configuration as plain values. Defaults live here;
// load_config fills and validates it. A loaded config is an immutable snapshot:
// changing it means a new worker generation.

#include <cstdint>
#include <string>
#include <vector>

#include "common/log/log_config.hpp"
#include "common/wire/lua_value.hpp"

namespace csk {

/// A service to start at boot.
struct service_config {
  std::string type;                ///< registered service type name, required
  std::string name;                ///< optional: local ".name" or cluster "@name", 2..255 bytes
  std::vector<std::string> names;  ///< more names, same rules; `name` and `names` may both appear
  int instances = 1;               ///< >= 1: the instances share the names (round robin)
  std::vector<lua_value> args;     ///< boot arguments, as the service's init receives them
};

struct runtime_config {
  int threads = 0;                          ///< 0 = std::thread::hardware_concurrency(), else 1..256
  int harbor = 0;                           ///< 0..255, the high 8 bits of every handle
  std::uint32_t tick_ms = 10;               ///< timer tick, 1..10
  std::uint32_t call_timeout_ms = 10000;    ///< default per-call timeout, >= 1
  std::uint32_t mailbox_warn = 1024;        ///< overload warning threshold (doubles each time), >= 1
  std::uint32_t slow_handler_ms = 5000;     ///< "maybe in an endless loop" warning, >= 1
  std::uint32_t shutdown_timeout_ms = 5000;  ///< how long shutdown waits for services
};

struct node_config {
  runtime_config runtime;
  log_config log;
  std::vector<service_config> services;
};

}  // namespace csk
