#pragma once
// A custom TCP protocol on the gate: a tiny key-value store spoken as text lines
// (try it with `nc 127.0.0.1 8001`).
//
//   request   COMMAND [ARG...] '\n'        ('\r' before '\n' is ignored; max 4096 bytes)
//     SET key value     -> OK
//     GET key           -> VALUE value | NIL
//     INCR key          -> INTEGER n       (a missing key counts from 0; "12" counts as 12)
//     DEL key           -> DELETED 1|0
//     PING              -> PONG
//     QUIT              -> BYE, then the server closes
//   answer    one line per request, in request order; a bad request gets "ERR <why>"
//
// Two services, the entity/system split:
//   kvstore  (entity, data only)  "get" k -> v|nil; "set" k v; "incr" k -> n; "del" k -> 0|1
//   kv_gate  (system, logic only) parses lines, calls .kvstore with co_await, answers
//
// The framing (line_framing) replaces the gate's default 2-byte length prefix: it is
// what the gate's unpack/frame hooks are for.

#include <memory>

#include "common/actor/runtime.hpp"
#include "services/gate/gate.hpp"

namespace csk::examples {

/// '\n'-terminated lines; a line over max_line bytes is a protocol error.
class line_framing final : public gate::framing {
 public:
  static constexpr std::size_t max_line = 4096;
  net::unpack_result unpack(bytes_view buffered) const override;
  void frame(byte_buffer& out, bytes_view body) const override;
};

/// Service types "kvstore" (the entity) and "kv_gate" (the gate, configured at spawn:
/// args[0] the gate options table, args[1] the store's name, default ".kvstore"; this
/// is how a config's `gates:` entry starts it).
void register_kv_types(actor::runtime& rt);

/// The kv gate, serving `o` with line framing; it calls the service named `store`.
std::unique_ptr<gate::gate_service> make_kv_gate(net::net& n, gate::gate_options o, std::string store = ".kvstore");

}  // namespace csk::examples
