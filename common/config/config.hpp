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
  bool profile = true;                      ///< measure each service's CPU time (skynet's `profile`)
  std::uint32_t idle_spin_us = 50;          ///< the most an idle worker thread spins before sleeping, 0..10000
  std::uint32_t mailbox_high = 4096;        ///< a feeding connection pauses past this many messages (0 = never)
  std::uint32_t mailbox_low = 1024;         ///< ... and reads again at this many, <= mailbox_high
  std::uint32_t mailbox_limit = 1u << 20;   ///< a call/send into a fuller mailbox is refused (0 = no cap)
  std::uint32_t memory_high_mb = 1024;      ///< node memory budget: connections stop reading past it (0 = off)
  std::uint32_t memory_low_mb = 768;        ///< ... and read again at this, <= memory_high_mb
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
  /// Bytes of incomplete multi-part requests one connection may hold, in MiB; 0 = 4 x
  /// max_message_mb. A peer that passes it is closed with the reason.
  std::uint32_t max_pending_mb = 0;
  std::uint32_t max_connections = 1023;  ///< accepted connections served at once (skynet's maxclient - 1), >= 1
  std::uint32_t idle_timeout_ms = 0;     ///< 0 = none
};

/// The `supervisor:` section: how `cppskynet run` runs and watches workers. Relative
/// paths are relative to the config file's directory (load_config_file resolves them;
/// load_config_string leaves them as written).
struct supervisor_config {
  std::string worker;                          ///< worker binary; "" = cppskynet-worker beside the running program
  std::string control_socket = "cppskynet.sock";  ///< the operator's socket (cppskynet status|stop|reload)
  std::string pid_file;                        ///< "" = none
  std::uint32_t heartbeat_ms = 1000;           ///< worker -> supervisor heartbeat interval, >= 1
  std::uint32_t heartbeat_timeout_ms = 5000;   ///< silence after which a ready worker is killed, > heartbeat_ms
  std::uint32_t ready_timeout_ms = 30000;      ///< spawn -> ready, else the worker is killed, >= 1
  std::uint32_t stop_timeout_ms = 10000;       ///< stop -> exit, else SIGKILL
  std::uint32_t restart_backoff_ms = 100;      ///< first restart delay; doubles per consecutive failure
  std::uint32_t restart_backoff_max_ms = 5000; ///< the doubling stops here, >= restart_backoff_ms
  std::uint32_t crash_loop_restarts = 5;       ///< this many restarts within the window: give up, >= 1
  std::uint32_t crash_loop_window_ms = 60000;  ///< >= 1
  std::uint32_t upgrade_timeout_ms = 30000;    ///< an upgrade's budget (SIGUSR2; `cppskynet upgrade` default), >= 100
};

/// One gate: a listener for a custom protocol, served by a service type (`gates:` list).
struct gate_config {
  std::string name;                  ///< required, unique; letters, digits, '_', '-', '.'; 1..64 bytes
  std::string listen;                ///< required "host:port" (port 0 = ephemeral)
  std::string type;                  ///< required: the service type that handles its connections
  std::vector<lua_value> args;       ///< passed to that service, like a service's args
  // The limits' ranges are the gate service's: common/config/gate_options.hpp.
  std::uint32_t max_connections = 1024;   ///< >= 1
  std::uint32_t max_in_flight = 16;       ///< requests per connection being handled at once, >= 1
  std::uint32_t max_outbound_kb = 1024;   ///< unsent bytes per connection before it is cut, >= 1
  std::uint32_t idle_timeout_ms = 0;      ///< 0 = none
  std::uint32_t max_message = 65537;      ///< largest message, in bytes, >= 1
  std::uint32_t message_timeout_ms = 0;   ///< per on_message; 0 = the node's call timeout
};

/// The `admin:` section: the admin HTTP endpoint (/metrics, /status; services/admin).
struct admin_config {
  std::string listen;  ///< "host:port", or "" = none
};

/// The `debug_console:` key: skynet's debug console on TCP (worker/debug_console.hpp).
/// Written `debug_console: "127.0.0.1:8000"` or `debug_console: {listen: ..., allow_remote:
/// true}`. Only loopback addresses (127.0.0.0/8, ::1) unless allow_remote: the console runs
/// any verb (call, kill, start) for whoever connects, without a password.
struct debug_console_config {
  std::string listen;         ///< "host:port", or "" = none; CSK_DEBUG_CONSOLE_LISTEN replaces it
  bool allow_remote = false;  ///< true: any address (and a hostname) may be given
};

/// The `journal:` section: each entity store's crash journal and checkpoints
/// (docs/durability.md). Under a supervisor it is on by default, in memory the supervisor
/// holds; a standalone node keeps one only with `persist`.
struct journal_config {
  bool enabled = true;                     ///< false: entity state lives in the worker only
  std::uint32_t size_mb = 64;              ///< a new region's ring per store, 1..65536
  std::uint32_t checkpoint_percent = 50;   ///< a checkpoint starts when the ring is this full, 10..90
  std::uint32_t checkpoint_growth_percent = 100; ///< also when records reach this % of the last checkpoint, 0..10000; 0 = off
  std::uint32_t checkpoint_min_mb = 4;     ///< ... and at least this many MiB, 1..65536
  std::uint32_t checkpoint_interval_s = 0; ///< also this often when something changed; 0 = off
  std::uint32_t checkpoint_page = 2000;    ///< entities per checkpoint page, 1..1000000
  std::uint32_t checkpoint_pause_ms = 0;   ///< between two pages of a checkpoint, 0..60000
};

/// The `persist:` section: the same journal and checkpoints as files in `dir`, so the
/// state also survives the supervisor and (per `fsync`) the machine.
struct persist_config {
  std::string dir;                 ///< "" = memory only; relative to the config file
  std::string fsync = "everysec";  ///< "always", "everysec" or "no"
};

struct node_config {
  runtime_config runtime;
  log_config log;
  std::vector<service_config> services;
  cluster_config cluster;
  supervisor_config supervisor;
  std::vector<gate_config> gates;
  admin_config admin;
  debug_console_config debug_console;
  journal_config journal;
  persist_config persist;
};

/// A listening socket the node needs: the supervisor binds it, the worker adopts it.
/// Names: "cluster", "gate:<name>", "admin", "debug_console".
struct listener_spec {
  std::string name;
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const listener_spec&, const listener_spec&) = default;
};

/// A peer's address from the node table. `host` is an IPv4 address, a hostname, or an
/// IPv6 address without the brackets.
struct cluster_node_address {
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const cluster_node_address&, const cluster_node_address&) = default;
};

/// The node table: skynet's clustername.lua, loaded from it (cluster_names_lua.hpp) or
/// from its YAML form (load_config.hpp).
struct cluster_names {
  /// name -> address, or nullopt for `name: false` (the node is marked down)
  std::map<std::string, std::optional<cluster_node_address>> nodes;
  bool nowaiting = false;  ///< `__nowaiting: true`: calls to unknown nodes fail at once
};

}  // namespace csk
