#pragma once
// The entity example: named counters kept by an entity service (data only) and served by
// a system service (logic only).
//
//   entity type "example.counter" (struct counter, string keys), class version 2
//     mutation "incr" [n]   adds n (default 1), creating the counter at 0 if absent
//     timer "reset"         sets the value back to 0
//   system service counter_api (".counter_api", "@counter")
//     incr NAME [N]         -> new value
//     get NAME              -> value (0 if absent)
//     reset_in NAME MS      -> true: the counter goes back to 0 after MS
//
// Version 1 of `counter` had only `value`; version 2 adds `increments` (how many incr
// calls). Its serialize reads both, so a version-2 binary restores a version-1 snapshot.

#include <cstdint>
#include <string>

#include <cereal/cereal.hpp>

#include "common/actor/runtime.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::examples {

struct counter {
  std::int64_t value = 0;
  std::int64_t increments = 0;  // since version 2

  template <class Archive>
  void serialize(Archive& ar, std::uint32_t version) {
    ar(value);
    if (version >= 2) ar(increments);
  }
};

lua_value to_lua(const counter& c);
void from_lua(const lua_value& in, counter& c);

/// Registers the entity type (and its hooks) and the runtime service types
/// "entity:example.counter" and "counter_api".
void register_counter_types(actor::runtime& rt);

/// Spawns the counter store (".counters", id "counters") and the API (".counter_api", "@counter").
void spawn_counter_services(actor::runtime& rt);

}  // namespace csk::examples

CEREAL_CLASS_VERSION(csk::examples::counter, 2)
