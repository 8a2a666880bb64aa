#pragma once
// csk::mysql: the "mysql" service type. Other services call it like any service and
// get Lua values back; the statements run on the pool's own I/O threads (pool.hpp),
// never on a runtime worker. Options, messages, reply shapes and errors: README.md.
//
//   mysql::register_types(rt);
//   rt.spawn("mysql", {mysql::to_lua(mysql::options{.unix_path = "/run/mysqld/mysqld.sock",
//                                                   .user = "app", .database = "game"})}, {".db"});
//   ...inside a service:
//   auto op = ctx.call(".db", values{"execute", "SELECT name FROM users WHERE id = ?", id});
//   actor::call_result r = co_await op;   // r: values{{rows = {...}, columns = {"name"}}}
//                                         // or an error "mysql: ..."
//
// Thread rules: register_types before spawning; parse_options / to_lua / parse_request
// are pure.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::mysql {

/// The service type name given to register_type.
inline constexpr const char* type_name = "mysql";

/// Where and how the pool connects. Spawn args[0] is a table with these keys (Lua
/// names in the comments); a missing table or key takes the default.
struct options {
  std::string host = "127.0.0.1";                    ///< host (TCP)
  int port = 3306;                                   ///< port
  std::string unix_path;                             ///< unix: socket path, used instead of host/port if set
  std::string user;                                  ///< user (empty: the connector's default)
  std::string password;                              ///< password
  std::string database;                              ///< database: the default schema (empty: none)
  int pool = 4;                                      ///< pool: connections (1..64), one I/O thread each
  std::chrono::milliseconds connect_timeout{2000};   ///< connect_timeout_ms (the connector counts whole seconds)
  std::chrono::milliseconds query_timeout{10000};    ///< query_timeout_ms: one statement, send to last row

  /// "unix:/path" or "host:port", for messages.
  std::string where() const;
};

/// Reads the options table. Throws std::invalid_argument naming the key for an unknown
/// key, a wrong type or an out-of-range value ("mysql: unknown option 'prot' ...").
options parse_options(const lua_value& table);
/// The options as the table parse_options reads (for spawn args).
lua_value to_lua(const options& o);

/// One job for the pool: {"query", sql} (text protocol, no parameters),
/// {"execute", sql, p1, p2, ...} (a prepared statement, parameters bound to the `?`s), or
/// {"transaction", {sql, p1, ...}, {sql, ...}, ...} (prepared statements in one
/// transaction on one connection: all committed, or all rolled back).
struct request {
  bool prepared = false;
  std::string sql;
  std::vector<lua_value> params;  ///< nil, boolean, integer, real or string
  std::vector<request> steps;     ///< a transaction's statements (each prepared); sql is empty
};

/// Checks a message and turns it into a request. Throws std::invalid_argument with the
/// text of the error reply ("mysql: ...") for an unknown command, a missing SQL text,
/// parameters to "query", a parameter of another type (a table, ...), a statement that
/// changes one connection's state (BEGIN, SET, USE, ...), or a transaction step that is
/// not a list {sql, params...}.
request parse_request(const actor::values& args);

/// Registers the "mysql" type.
void register_types(actor::runtime& rt);

}  // namespace csk::mysql
