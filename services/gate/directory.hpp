#pragma once
// csk::gate::directory: the gates of one runtime, so that the admin endpoint and the
// console can read every gate's figures (gate_service::stats). The worker sets one as the
// runtime's extension before it spawns gates; each gate_service adds itself in init and
// leaves in stop (or its destructor). Without the extension gates are simply not listed.
//
// Threads: any. each() holds the directory's lock while it calls `fn`: fn may call the
// gate's stats() (the gate's own lock, never held with this one the other way round) but
// must not spawn or stop services.

#include <map>
#include <mutex>
#include <utility>

#include "common/actor/message.hpp"

namespace csk::gate {

class gate_service;

class directory {
 public:
  void add(actor::handle_t h, gate_service* g) {
    std::lock_guard lock(mu_);
    gates_[h] = g;
  }
  void remove(actor::handle_t h) {
    std::lock_guard lock(mu_);
    gates_.erase(h);
  }
  /// fn(handle, const gate_service&) for every gate, by handle.
  template <class F>
  void each(F&& fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [h, g] : gates_) fn(h, *g);
  }

 private:
  mutable std::mutex mu_;
  std::map<actor::handle_t, gate_service*> gates_;
};

}  // namespace csk::gate
