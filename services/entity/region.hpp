#pragma once
// Where an entity store's journal lives: the runtime extension `entity::region_source`.
//
// The worker attaches one (worker/state_regions.hpp: under a supervisor, memfds the
// supervisor holds, or files in persist.dir) before it spawns entity services; each store
// opens its region in init. Without one, stores keep no journal (unit tests, a
// standalone node without persist) and behave exactly as before.
//
// Thread rules: open() and unreadable() from any thread (a store's init runs on whatever
// thread spawns it); the source locks.

#include <string>
#include <typeindex>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "services/entity/journal.hpp"

namespace csk::entity {

class region_source {
 public:
  virtual ~region_source() = default;
  /// The files of store `store_id`'s state: the ones an earlier worker left (held by the
  /// supervisor, or in persist.dir), or new empty ones, now kept where the next worker
  /// will find them.
  virtual result<region_files, std::string> open(const std::string& store_id) = 0;
  virtual const journal_options& options() const = 0;
  /// This worker is the new one of an upgrade: its stores neither read nor write their
  /// regions before the upgrade's commit (the old worker is still writing them); the
  /// pre-copy fills them and `unseal` makes them the writers.
  virtual bool takeover() const = 0;
  /// A store found state this binary cannot read (a newer version, another type): the
  /// worker will exit without serving, with the exit code that tells the supervisor to
  /// keep the state for a binary that can.
  virtual void unreadable(const std::string& why) = 0;
};

/// Makes `s` the region source of `rt` for stores spawned afterwards (nullptr: none).
inline void attach_region_source(actor::runtime& rt, region_source* s) {
  rt.set_extension(std::type_index(typeid(region_source)), s);
}

}  // namespace csk::entity
