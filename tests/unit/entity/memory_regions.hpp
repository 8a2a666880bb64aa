#pragma once
// A region_source for tests: memfds kept by this object, as the supervisor keeps them for
// its workers. A store that opens its region gets duplicates; whatever it wrote stays
// here after its runtime is gone (a crash loses nothing the store wrote), so a second
// runtime given the same source recovers it.

#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>

#include "services/entity/region.hpp"

namespace csk::entity::test {

inline unique_fd make_memfd(const std::string& name) { return unique_fd(::memfd_create(name.c_str(), MFD_CLOEXEC)); }

/// The three files of a new region, and duplicates of them.
struct held_region {
  unique_fd journal, slot0, slot1;
  static held_region make(const std::string& id) {
    return {make_memfd(id + ":journal"), make_memfd(id + ":slot0"), make_memfd(id + ":slot1")};
  }
  region_files dup() const {
    region_files f;
    f.journal.reset(::dup(journal.get()));
    f.slots[0].reset(::dup(slot0.get()));
    f.slots[1].reset(::dup(slot1.get()));
    f.where = "test memory";
    return f;
  }
};

class memory_regions final : public region_source {
 public:
  explicit memory_regions(journal_options o = {}) : o_(o) {}

  result<region_files, std::string> open(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = regions_.find(id);
    if (it == regions_.end()) it = regions_.emplace(id, held_region::make(id)).first;
    ++opened_;
    return it->second.dup();
  }
  const journal_options& options() const override { return o_; }
  bool takeover() const override { return takeover_; }
  void unreadable(const std::string& why) override {
    std::lock_guard lock(mu_);
    unreadable_ = why;
  }

  journal_options& opts() { return o_; }
  void set_takeover(bool t) { takeover_ = t; }
  std::string unreadable_reason() const {
    std::lock_guard lock(mu_);
    return unreadable_;
  }
  const held_region& region(const std::string& id) const { return regions_.at(id); }
  int opened() const { return opened_; }

 private:
  journal_options o_;
  bool takeover_ = false;
  mutable std::mutex mu_;
  std::map<std::string, held_region> regions_;
  std::string unreadable_;
  int opened_ = 0;
};

}  // namespace csk::entity::test
