#pragma once
// csk::mysql's connections: the io_pool driver that runs statements with Connector/C's
// blocking API. The only Connector/C user (pool.cpp). The pool around them (one I/O thread
// per connection, the shared queue, connect backoff, the idle check, the query-timeout
// watchdog, stop): io_pool/pool.hpp.
//
// Query timeout: the pool's watchdog shuts a connection's socket down when its statement
// passes query_timeout_ms, which fails the blocked read at once; the statement fails with
// "query timed out" and the connection is reconnected by the next one. The connector's own
// read/write timeouts (whole seconds, one more than that) are only a backstop.
//
// Prepared statements are cached per connection by SQL text (up to 128; the cache is
// emptied when full), and dropped with the connection.

#include <memory>

#include "services/io_pool/pool.hpp"
#include "services/mysql/mysql.hpp"

namespace csk::mysql {

/// A reply as a Lua value (the result table), or the error text ("mysql: ...").
using reply = io_pool::reply;

/// The pool's settings for `o`: o.pool connections to o.where(), query_timeout_ms per job.
io_pool::settings pool_settings(const options& o);
/// One MariaDB connection to the server `o` names; the pool connects it on its I/O thread.
/// The first call initialises the connector library.
std::unique_ptr<io_pool::driver<request>> make_connection(const options& o);

}  // namespace csk::mysql
