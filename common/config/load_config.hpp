#pragma once
// Loading a node_config, and the cluster node table, from YAML (the node table also from
// skynet's clustername.lua: cluster_names_lua.hpp). yaml-cpp stays inside load_config.cpp:
// callers see plain structs or one error string.
//
// Errors list every problem found, one per line, in line order, each with its YAML
// path and line: `runtime.threads (line 3): must be between 1 and 256 ...`,
// `runtime.thread (line 3): unknown key`, `services[1].type (line 9): required`.
// Unknown keys and wrong types are errors, never silently defaulted.
//
// Service args: null -> nil, true/false -> boolean, integers that fit int64 -> integer,
// other numbers -> real, other scalars -> string (YAML 1.2 core schema; quoted scalars
// and !!str always stay strings), sequences -> array part, maps -> hash part (keys
// converted the same way; nil/NaN and duplicate keys are errors). Limits: nesting
// max_arg_depth, and 100000 values in all args together (bounds YAML alias expansion).
//
// The cluster section:
//   cluster:
//     self: node1                  # a node name (rules below); "" or absent: no listener
//     names_file: clustername.yaml # the node table
//     listen: "0.0.0.0:2528"       # overrides the table's address for `self`; port 0 = ephemeral
//     max_message_mb: 64           # 1..2047
//     max_connections: 1023        # >= 1
//     idle_timeout_ms: 0           # 0 = none
// `self` needs `names_file` or `listen` (else there is no address to listen on), and
// `listen` needs `self`. The table itself is loaded separately (load_cluster_names_*),
// because a reload reads it again without a new config.
//
// The supervisor section (cppskynet run; defaults in config.hpp):
//   supervisor:
//     worker: ""                   # "" = cppskynet-worker beside the running program
//     control_socket: cppskynet.sock
//     pid_file: ""                 # "" = none
//     heartbeat_ms: 1000           # >= 1
//     heartbeat_timeout_ms: 5000   # > heartbeat_ms
//     ready_timeout_ms: 30000      # >= 1
//     stop_timeout_ms: 10000
//     restart_backoff_ms: 100      # doubles per consecutive failure ...
//     restart_backoff_max_ms: 5000 # ... up to this, >= restart_backoff_ms
//     crash_loop_restarts: 5       # this many restarts within the window: give up
//     crash_loop_window_ms: 60000
// load_config_file makes relative worker, control_socket and pid_file paths relative to
// the file's directory, like names_file and log.file.
//
// Gates (listeners for custom protocols) and the admin endpoint:
//   gates:
//     - name: kv                   # required, unique: 1..64 of [A-Za-z0-9_.-]
//       listen: "0.0.0.0:7000"     # required; port 0 = ephemeral
//       type: kv_gate              # required: the service type
//       args: [...]                # like a service's args
//       max_connections: 1024      # 1..1000000 (the ranges: gate_options.hpp, shared
//       max_in_flight: 16          # 1..1000000  with the gate service)
//       max_outbound_kb: 1024      # 1..2097152
//       idle_timeout_ms: 0         # 0 = none
//       max_message: 65537         # bytes, 1..2147483648
//       message_timeout_ms: 0      # per on_message; 0 = runtime.call_timeout_ms
//   admin:
//     listen: ""                   # "host:port" or "" = none
//   debug_console: "127.0.0.1:8000"  # skynet's debug console (worker/debug_console.hpp), or
//   debug_console:                   # the long form:
//     listen: "0.0.0.0:8000"
//     allow_remote: true             # default false: only 127.0.0.0/8 and ::1 (IP literals)
// Without allow_remote a console on any other address (a wildcard, a hostname) is an
// error that says how to allow it: the console runs any verb for whoever connects.
//
// Environment: if CSK_CLUSTER_LISTEN is set and not empty, both config loaders use it
// as cluster.listen, replacing the file's value, so a node's port can be set without
// editing files. It is checked like the key; its problems are listed last, as
// `CSK_CLUSTER_LISTEN (environment): ...`. CSK_GATE_<NAME>_LISTEN does the same for a
// gate's listen (gate_listen_env below), CSK_DEBUG_CONSOLE_LISTEN for debug_console's
// (under the same loopback rule).
//
// The node table (skynet's clustername.lua as YAML; a file named *.lua is the Lua form
// itself, cluster_names_lua.hpp) is one map:
//   node1: "127.0.0.1:2528"        # IPv4, hostname, or "[::1]:2528"; port 1..65535
//   node2: false                   # marked down: calls fail
//   __nowaiting: true              # calls to unknown nodes fail at once instead of waiting
// Node names are 1..255 bytes and do not start with "__"; keys starting with "__" are
// options, and __nowaiting (boolean) is the only one. `true` as a value is an error.
// An empty document is an empty table.
//
// Threads: all functions may be called from any thread. They use no globals and do not
// log; the config loaders read the environment (getenv), so no thread may setenv meanwhile.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/config/config.hpp"

namespace csk {

/// Deepest nesting of sequences/maps inside one service arg (skynet.pack packs 33).
inline constexpr int max_arg_depth = 32;

/// The environment variable that overrides cluster.listen.
inline constexpr const char* cluster_listen_env = "CSK_CLUSTER_LISTEN";
/// The environment variable that replaces cluster.names_file (a Lua team's own
/// clustername.lua, without editing the config); relative to the working directory.
inline constexpr const char* cluster_names_file_env = "CSK_CLUSTER_NAMES_FILE";
/// The environment variable that sets debug_console's address.
inline constexpr const char* debug_console_listen_env = "CSK_DEBUG_CONSOLE_LISTEN";
/// The variable that replaces gate `name`'s listen address: CSK_GATE_<NAME>_LISTEN, the
/// name in upper case with '-' and '.' as '_' (gate "kv": CSK_GATE_KV_LISTEN). Checked
/// like the key; its problems are listed last, as `CSK_GATE_KV_LISTEN (environment): ...`.
std::string gate_listen_env(std::string_view gate_name);

/// Reads and loads a YAML file; a file that cannot be read gives one error line.
/// Relative paths (cluster.names_file, log.file, supervisor.worker, .control_socket,
/// .pid_file) are made relative to the file's directory. CSK_CLUSTER_NAMES_FILE, when set
/// and not empty, replaces cluster.names_file (made absolute from the working directory).
[[nodiscard]] result<node_config, std::string> load_config_file(const std::string& path);

/// Loads YAML text. An empty document gives all defaults (plus CSK_CLUSTER_LISTEN).
[[nodiscard]] result<node_config, std::string> load_config_string(std::string_view yaml);

/// Reads and loads a node table: a path ending in ".lua" is skynet's clustername.lua
/// (load_cluster_names_lua), any other is YAML. A file that cannot be read, or is larger
/// than names_file_max_bytes (1 MiB; refused by its size, before it is read), gives one
/// error line that starts with the path; the table's own problems do not name the file.
/// The one entry point for every reader: the worker (start, reload, file watch), the
/// supervisor (listeners_of), cppskynet check and call --names.
[[nodiscard]] result<cluster_names, std::string> load_cluster_names_file(const std::string& path);

/// Loads a node table from YAML text.
[[nodiscard]] result<cluster_names, std::string> load_cluster_names_string(std::string_view yaml);

/// Every listening socket the node needs, in this order: "cluster" (cluster.listen, which
/// already holds CSK_CLUSTER_LISTEN, else the node table's address for cluster.self; none
/// when self is ""), "gate:<name>" per gate, "admin" if admin.listen is set,
/// "debug_console" if debug_console.listen is set. The
/// supervisor binds these and the worker adopts them by name, so both call this.
/// Reads the node table file when the cluster address comes from it. Errors: no address
/// for self, self down in the table, a bad address, two listeners whose addresses
/// overlap (listen_addresses_overlap).
[[nodiscard]] result<std::vector<listener_spec>, std::string> listeners_of(const node_config& cfg);

/// Whether two listeners (host as in listener_spec: no brackets) would take the same
/// port: never with port 0 (each gets its own); else the same address (compared as
/// addresses: "::0" is "::", "::ffff:127.0.0.1" is 127.0.0.1), or a wildcard covering the
/// other: 0.0.0.0 covers IPv4 addresses, hostnames and "::"; "::" (dual-stack) covers
/// everything. IPv4 and IPv6 addresses that are not wildcards do not overlap. Hostnames
/// are not resolved: "localhost" overlaps only itself (any case) and the wildcards.
[[nodiscard]] bool listen_addresses_overlap(const std::string& host_a, std::uint16_t port_a,
                                            const std::string& host_b, std::uint16_t port_b);

/// Parses "host:port": host is dotted IPv4, a hostname (labels of letters, digits, '-'
/// and '_', at most 253 bytes; a last label of only digits must make a valid IPv4
/// address), or "[IPv6]" without a zone ("[::1]:2528"; host is returned without the
/// brackets). Port is decimal, 1..65535, or 0..65535 with allow_port_zero. Pure.
[[nodiscard]] std::optional<cluster_node_address> parse_host_port(std::string_view text,
                                                                   bool allow_port_zero);

}  // namespace csk
