#pragma once
// Where this worker's entity stores keep their journals (docs/durability.md): the
// entity::region_source run_node attaches before it spawns any service.
//
//   persist.dir set   files DIR/<id>.journal, .slot0, .slot1 (id with anything outside
//                     [A-Za-z0-9._-] as %XX); a standalone node locks DIR itself, under a
//                     supervisor the supervisor holds the lock and this process its copy
//   otherwise         memfds: the ones the supervisor passed ("state:<id>:journal",
//                     ":slot0", ":slot1" in the handshake's fd set) or, for a store it
//                     did not know, new ones sent to it at once (channel keep) before the
//                     store writes anything, so a crash of this process loses nothing
//
// A standalone node without persist keeps no journal (nobody would hold the memory).
//
// Threads: open() and unreadable() lock; any thread (a store's init runs on the thread
// that spawns it).

#include <map>
#include <mutex>
#include <string>

#include "common/base/unique_fd.hpp"
#include "common/config/config.hpp"
#include "services/entity/region.hpp"

namespace csk {

class supervisor_link;

/// The journal options of a config.
entity::journal_options journal_options_from(const node_config& cfg);

class state_regions final : public entity::region_source {
 public:
  /// Whether a node with this config keeps journals at all.
  static bool wanted(const node_config& cfg, bool supervised);

  /// `inherited`: the "state:..." entries of the handshake's fd set (moved in). `link`:
  /// nullptr when standalone.
  state_regions(const node_config& cfg, std::map<std::string, unique_fd> inherited, supervisor_link* link);

  result<entity::region_files, std::string> open(const std::string& store_id) override;
  const entity::journal_options& options() const override { return options_; }
  bool takeover() const override { return takeover_; }
  void unreadable(const std::string& why) override;

  /// What a store said it cannot read ("" if none did).
  std::string unreadable_reason() const;
  /// The held files the supervisor passed that no store opened (kept, never dropped).
  std::vector<std::string> unclaimed() const;
  /// A standalone node with persist: lock the directory (under a supervisor, the
  /// supervisor did and passed "state:lock").
  result<void, std::string> lock_dir();

 private:
  result<entity::region_files, std::string> open_files(const std::string& store_id);
  result<entity::region_files, std::string> open_memory(const std::string& store_id);

  entity::journal_options options_;
  std::string dir_;
  supervisor_link* link_;
  bool takeover_ = false;
  mutable std::mutex mu_;
  std::map<std::string, unique_fd> inherited_;
  unique_fd lock_;  ///< persist.dir's lock, held while this process lives
  std::string unreadable_;
};

}  // namespace csk
