#pragma once
// The process's registry of entity types: stable name -> what this binary knows about the
// type (type_desc: class version, oldest readable version, key kind) and how to make its
// entity service. Filled at startup (entity::register_type in service.hpp, or CSK_ENTITY);
// read by the compatibility check (snapshot.hpp) and by install_service_types.
//
// Thread rules: every function locks; register types before spawning their services.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <vector>

#include "common/actor/runtime.hpp"
#include "services/entity/snapshot.hpp"

namespace csk::entity {

struct registered_type {
  type_desc desc;
  std::type_index cpp_type;  ///< the entity struct
  std::type_index key_type;  ///< std::string or std::int64_t
  std::function<std::unique_ptr<actor::service>()> make_service;
};

/// Adds a type. Registering the same (name, C++ type, key, versions) again is a no-op;
/// anything else under a taken name throws std::invalid_argument, as does a bad desc.
void add_type(registered_type t);

/// What this binary knows about `name`, or nothing.
std::optional<type_desc> find_type(std::string_view name);
/// Every registered type, by name.
std::vector<type_desc> registered_types();

/// The key that unlocks an entity service's upgrade commands (seal, unseal, track, untrack,
/// delta, restore, apply): they are sent as {upgrade_key(), command, args...}; sent plainly
/// they are refused. "__entity_upgrade:" and a random number chosen once per process: a
/// cluster peer can address a store (skynet resolves ".name" addresses remotely) but cannot
/// know the key, so it cannot seal a store or rewrite it wholesale. Any thread.
const std::string& upgrade_key();

/// The runtime service type of an entity type: "entity:" + name.
std::string service_type_name(std::string_view entity_type);
/// Registers every entity type known now as a runtime service type ("entity:<name>"), so
/// `rt.spawn("entity:game.player", {options}, {".players"})` and configs can start them.
void install_service_types(actor::runtime& rt);

}  // namespace csk::entity
