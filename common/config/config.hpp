#pragma once
// csk::node_config: one node's configuration as plain values. Defaults live here;
// load_config fills and validates it. A loaded config is an immutable snapshot:
// changing it means a new worker generation.

#include <cstdint>
#include <map>
#include <optional>
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

/// The `cluster:` section: how this node joins a skynet cluster.
struct cluster_config {
  std::string self;  ///< this node's name in the node table ("" = no cluster listener)
  /// The node table (clustername.yaml). A relative path is relative to the config file's
  /// directory: load_config_file resolves it; load_config_string leaves it as written.
  std::string names_file;
  /// Optional "host:port" overriding the table's address for `self` (port 0 = ephemeral);
  /// "" = use the table. The environment variable CSK_CLUSTER_LISTEN replaces it.
  std::string listen;
  std::uint32_t max_message_mb = 64;     ///< largest multi-part message accepted, 1..2047
  std::uint32_t max_connections = 1023;  ///< accepted connections served at once (skynet's maxclient - 1), >= 1
  std::uint32_t idle_timeout_ms = 0;     ///< 0 = none
};

struct node_config {
  runtime_config runtime;
  log_config log;
  std::vector<service_config> services;
  cluster_config cluster;
};

/// A peer's address from the node table. `host` is an IPv4 address, a hostname, or an
/// IPv6 address without the brackets.
struct cluster_node_address {
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const cluster_node_address&, const cluster_node_address&) = default;
};

/// The node table: skynet's clustername.lua, loaded from YAML (see load_config.hpp).
struct cluster_names {
  /// name -> address, or nullopt for `name: false` (the node is marked down)
  std::map<std::string, std::optional<cluster_node_address>> nodes;
  bool nowaiting = false;  ///< `__nowaiting: true`: calls to unknown nodes fail at once
};

}  // namespace csk
