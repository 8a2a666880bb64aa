#pragma once
// Entity services (data only): see docs/upgrade.md, "Entity services and snapshots".
//   store.hpp     the store of one type: data, timers, change tracking, snapshots
//   snapshot.hpp  the snapshot header and the compatibility rule
//   convert.hpp   entity values <-> Lua values
//   service.hpp   the entity service, register_type / CSK_ENTITY, the message catalog
//   client.hpp    typed calls from system services
//   directory.hpp the entity services of a runtime, by stable id
//   registry.hpp  the process's entity types
#include "services/entity/client.hpp"
#include "services/entity/clock.hpp"
#include "services/entity/convert.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/registry.hpp"
#include "services/entity/service.hpp"
#include "services/entity/snapshot.hpp"
#include "services/entity/store.hpp"
