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
//   kvstore  (entity, data only)  an entity service of type "example.kv" (string keys,
//            struct kv_value, class version 1): the messages of services/entity/service.hpp
//            (get/set/delete/mutate/..., snapshot/restore); mutation "incr" is INCR, run in
//            the store (atomic, and a missing key is created). Being an entity service, its
//            data moves to the new worker in a `cppskynet upgrade`. Its id (the upgrade's
//            key for it) is "example.kv" unless args[0] = {id = "..."} says otherwise: one
//            store per worker, or give each its own id.
//   kv_gate  (system, logic only) parses lines, calls .kvstore with co_await, answers
//
// The framing (line_framing) replaces the gate's default 2-byte length prefix: it is
// what the gate's unpack/frame hooks are for.

#include <cstdint>
#include <memory>
#include <string>

#include <cereal/cereal.hpp>

#include "common/actor/runtime.hpp"
#include "common/wire/lua_value.hpp"
#include "services/gate/gate.hpp"

namespace csk::examples {

/// '\n'-terminated lines; a line over max_line bytes is a protocol error.
class line_framing final : public gate::framing {
 public:
  static constexpr std::size_t max_line = 4096;
  net::unpack_result unpack(bytes_view buffered) const override;
  void frame(byte_buffer& out, bytes_view body) const override;
};

/// What one key holds: the protocol's values are strings (INCR writes the decimal text of
/// the new number). A stored value is never empty (from_lua refuses "": a protocol word
/// never is), so the empty default is what INCR sees for a key it creates.
struct kv_value {
  std::string value;

  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    ar(value);
  }
};

/// {value = "..."}; from_lua also takes a table without `value` (keeps the current one, as
/// `update` wants) but refuses a result that is empty.
lua_value to_lua(const kv_value& v);
void from_lua(const lua_value& in, kv_value& v);

/// Registers the entity type "example.kv" (kv_value, string keys; mutation "incr": adds 1
/// to a decimal value, a missing key counting from 0, replies the new number; once per
/// process) and the runtime service types "kvstore" (its entity service: the `services:`
/// entry of a config), "entity:example.kv" (the same) and "kv_gate" (the gate, configured
/// at spawn: args[0] the gate options table, args[1] the store's name, default ".kvstore";
/// this is how a config's `gates:` entry starts it).
void register_kv_types(actor::runtime& rt);

/// The kv gate, serving `o` with line framing; it calls the service named `store`.
std::unique_ptr<gate::gate_service> make_kv_gate(net::net& n, gate::gate_options o, std::string store = ".kvstore");

}  // namespace csk::examples

CEREAL_CLASS_VERSION(csk::examples::kv_value, 1)
