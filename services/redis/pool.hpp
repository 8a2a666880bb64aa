#pragma once
// csk::redis's connections: the io_pool driver that runs commands with hiredis's blocking
// API. The only hiredis user (pool.cpp). The pool around them (one I/O thread per
// connection, the shared queue, connect backoff, the idle check, stop): io_pool/pool.hpp.
//
// A connection connects with connect_timeout_ms, then AUTHs and SELECTs as the options
// say (stop() can interrupt those). hiredis times each command out itself after
// command_timeout_ms (no watchdog): the command fails with "command timed out" and the
// connection is reset; EOF or an I/O error fails it with "connection lost".

#include <memory>
#include <string>
#include <vector>

#include "services/io_pool/pool.hpp"
#include "services/redis/redis.hpp"

namespace csk::redis {

/// A reply as a Lua value, or the error text ("redis: ...").
using reply = io_pool::reply;
/// One job: the command words, as command_words() gives them.
using command = std::vector<std::string>;

/// The pool's settings for `o`: o.pool connections to o.where().
io_pool::settings pool_settings(const options& o);
/// One hiredis connection to the server `o` names; the pool connects it on its I/O thread.
std::unique_ptr<io_pool::driver<command>> make_connection(const options& o);

}  // namespace csk::redis
