#pragma once
// Handles, sessions and messages of the actor runtime.
//
// A handle is skynet's 32-bit service address: the harbor (node id) in the high
// 8 bits, the local index in the low 24. Handle 0 is "nobody" (the runtime itself).
// A session numbers one outstanding request of the service that allocated it;
// replies and timer expiries come back to that service carrying the session.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/wire/lua_value.hpp"

namespace csk::actor {

using handle_t = std::uint32_t;
using session_t = std::uint32_t;
using values = std::vector<lua_value>;

inline constexpr int harbor_shift = 24;
inline constexpr handle_t handle_mask = 0x00ffffff;

constexpr std::uint32_t harbor_of(handle_t h) noexcept { return h >> harbor_shift; }

enum class msg_type : std::uint8_t {
  send = 0,      ///< one-way (skynet's send / cluster push): session 0, no reply
  call = 1,      ///< request: the receiver answers `session` with response or error
  response = 2,  ///< reply to our call `session`
  error = 3,     ///< error reply to our call `session`; `error` holds the text
  timer = 4,     ///< our timer `session` expired
};

const char* msg_type_name(msg_type t) noexcept;

/// Why a call failed. Numbers are pinned (they reach logs and, later, the wire).
enum class call_errc : std::uint8_t {
  none = 0,
  timeout = 1,          ///< no reply within the call's timeout (a late reply is dropped)
  remote_error = 2,     ///< the handler raised an error; the text says what
  invalid_address = 3,  ///< no service with that handle or name
  service_exited = 4,   ///< the target exited before it answered
  shutting_down = 5,    ///< the node is stopping
  overloaded = 6,       ///< the target's mailbox is at runtime_options::mailbox_limit
};
const char* call_errc_name(call_errc c) noexcept;

/// A skynet trace tag (skynet.trace, the cluster trace frame): immutable text shared by
/// every message and handler it follows. nullptr = not traced, so an untraced message
/// carries a null pointer and allocates nothing.
using trace_ptr = std::shared_ptr<const std::string>;

struct message {
  handle_t source = 0;
  session_t session = 0;
  msg_type type = msg_type::send;
  call_errc code = call_errc::none;  ///< error replies only
  values args;        ///< send/call: by convention args[0] is the command name
  std::string error;  ///< error replies only
  /// Bytes charged to runtime_options::budget while the message waits in a mailbox (set
  /// by feeders that read it from a peer: its wire size plus overhead); 0 = not counted.
  std::uint32_t charge = 0;
  /// Calls only: the caller's trace tag (skynet's PTYPE_TRACE before the request). The
  /// handler of this message runs under it (context::trace_tag()).
  trace_ptr trace = nullptr;
};

/// Renders a handle the way skynet prints it: ":0000000a".
std::string handle_string(handle_t h);

/// One trace line, the text skynet's logger writes for c.trace (lua-skynet.c ltrace,
/// prefixed by service_logger with the address): "[:0000000a] <TRACE tag> ns what".
/// Pure: `ns` is the CLOCK_MONOTONIC reading in nanoseconds.
std::string trace_line(handle_t h, std::string_view tag, std::int64_t ns, std::string_view what);
/// Logs trace_line(h, tag, now, what) at info on the "actor" logger, now = CLOCK_MONOTONIC
/// (skynet's clock for trace lines, so lines from both sides of a call on one machine
/// compare). Any thread.
void trace_log(handle_t h, std::string_view tag, std::string_view what);

}  // namespace csk::actor
