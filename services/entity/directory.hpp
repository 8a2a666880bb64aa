#pragma once
// entity::directory: which entity services live in a runtime, by a stable id. The upgrade
// machinery lists them in the old worker and pairs each with the service of the same id
// in the new one (handles are not stable across processes; ids are).
//
// Attach one to a runtime (attach_directory) before spawning entity services; each
// entity service adds itself in init (id taken: the spawn fails) and removes itself in
// stop. Without a directory, entity services work the same and are just not listed.
//
// Thread rules: every method locks; safe from any thread.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "services/entity/journal.hpp"

namespace csk::entity {

class directory {
 public:
  struct entry {
    std::string id;    ///< the service's id option (default: its type name)
    std::string type;  ///< entity type name
    actor::handle_t handle = 0;
    /// Its journal's counters, or nullptr when it keeps none (journal.hpp).
    std::shared_ptr<const journal_stats> journal;
    friend bool operator==(const entry&, const entry&) = default;
  };

  result<void, std::string> add(entry e) {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(e.id);
    if (it != by_id_.end()) {
      return unexpected("entity id '" + e.id + "' is already used by " + actor::handle_string(it->second.handle));
    }
    const std::string id = e.id;
    by_id_.emplace(id, std::move(e));
    return {};
  }
  /// Sets the journal counters of the store `h` (it opens its journal after add()).
  void set_journal(actor::handle_t h, std::shared_ptr<const journal_stats> stats) {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : by_id_) {
      if (e.handle == h) e.journal = std::move(stats);
    }
  }
  void remove(actor::handle_t h) {
    std::lock_guard lock(mu_);
    for (auto it = by_id_.begin(); it != by_id_.end(); ++it) {
      if (it->second.handle == h) {
        by_id_.erase(it);
        return;
      }
    }
  }
  /// Every entity service, by id.
  std::vector<entry> list() const {
    std::lock_guard lock(mu_);
    std::vector<entry> out;
    out.reserve(by_id_.size());
    for (const auto& [id, e] : by_id_) out.push_back(e);
    return out;
  }
  std::optional<entry> find(std::string_view id) const {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> by_id_;
};

/// Makes `d` the directory of `rt` (nullptr detaches). `d` must outlive the runtime's
/// entity services.
inline void attach_directory(actor::runtime& rt, directory* d) { rt.set_extension(std::type_index(typeid(directory)), d); }

}  // namespace csk::entity
