#pragma once
// csk::redis: the "redis" service type. Other services call it like any service and
// get Lua values back; the queries run on the pool's own I/O threads (pool.hpp), never
// on a runtime worker. Options, message format, reply mapping and errors: README.md.
//
//   redis::register_types(rt);
//   rt.spawn("redis", {redis::to_lua(redis::options{.unix_path = "/run/redis.sock"})}, {".redis"});
//   ...inside a service:
//   auto op = redis::call(ctx, ".redis", {"INCRBY", "hits", 5});
//   actor::call_result r = co_await op;   // r: values{5}, or an error "redis: ..."
//
// Thread rules: register_types before spawning; parse_options / to_lua are pure.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::redis {

/// The service type name given to register_type.
inline constexpr const char* type_name = "redis";

/// Where and how the pool connects. Spawn args[0] is a table with these keys (Lua
/// names in the comments); a missing table or key takes the default.
struct options {
  std::string host = "127.0.0.1";                    ///< host
  int port = 6379;                                   ///< port
  std::string unix_path;                             ///< unix: socket path, used if not empty
  int pool = 4;                                      ///< pool: connections (1..64), one I/O thread each
  int db = 0;                                        ///< db: SELECTed on connect
  std::string password;                              ///< password: AUTH on connect if not empty
  std::chrono::milliseconds connect_timeout{1000};   ///< connect_timeout_ms
  std::chrono::milliseconds command_timeout{5000};   ///< command_timeout_ms: send + wait for the reply

  /// "unix:/path" or "host:port", for messages.
  std::string where() const;
};

/// Reads the options table. Throws std::invalid_argument naming the key for an unknown
/// key, a wrong type or an out-of-range value ("redis: unknown option 'prot'").
options parse_options(const lua_value& table);
/// The options as the table parse_options reads (for spawn args).
lua_value to_lua(const options& o);

/// Registers the "redis" type.
void register_types(actor::runtime& rt);

/// The command words as redis receives them: strings as they are (binary-safe),
/// integers and reals as decimal text. Throws std::invalid_argument for an empty
/// command, another argument type, or a command that would change the state of one
/// pooled connection (SELECT, AUTH, MULTI/EXEC, WATCH, SUBSCRIBE, MONITOR, ...).
std::vector<std::string> command_words(const actor::values& args);

/// `auto op = redis::call(ctx, ".redis", {"GET", "k"}); auto r = co_await op;`: a plain
/// ctx.call; the reply is one value (see README.md), or an error "redis: ...".
/// timeout 0 = the node's default call timeout (keep it above command_timeout_ms).
inline actor::call_awaiter call(actor::context& ctx, const actor::address& to, actor::values command,
                                std::chrono::milliseconds timeout = {}) {
  return ctx.call(to, std::move(command), timeout);
}

}  // namespace csk::redis
