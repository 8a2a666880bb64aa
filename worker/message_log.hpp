// skynet's per-service message log (the console's logon/logoff; skynet-src/skynet_log.c):
// a file <logpath>/%08x.log per service, a line per message it handles:
//   ":%08x %d %d %u <hex>\n"  source, skynet's PTYPE, session, centiseconds since the
//                             node started, the payload as lower-case hex
// between "open time: <cs> <ctime>" and "close time: <cs>" lines, so a skynet team's
// tools read ours. The payload is what skynet would have carried: lua-seri of the
// arguments (sends, calls, replies), the error text (errors), nothing (timers).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/actor/runtime.hpp"
#include "common/base/bytes.hpp"
#include "common/base/result.hpp"

namespace csk::console {

/// skynet's PTYPE for a message: 10 (lua) for sends and calls, 1 (response) for
/// replies and timers, 7 (error) for errors.
int skynet_ptype(actor::msg_type t);

/// One message line, as skynet_log_output writes it. Pure.
std::string message_log_line(actor::handle_t source, int ptype, actor::session_t session, std::uint32_t centiseconds,
                             bytes_view payload);

/// The bytes skynet's message would have carried (see the header comment).
byte_buffer message_payload(const actor::message& m);

/// Opens (appends to) `dir`/%08x.log for service `h` and writes its open line; the
/// observer writes a line per message and the close line when the runtime drops its last
/// copy (logoff, the service's end, or another logon). `started`: the node's start
/// (skynet_now's zero). Error: the path and the reason.
result<std::shared_ptr<const actor::runtime::message_log>, std::string> open_message_log(
    const std::string& dir, actor::handle_t h, std::chrono::steady_clock::time_point started);

}  // namespace csk::console
