#pragma once
// csk::actor::session_map<V>: a map from a nonzero 32-bit session to V, for the tables
// that every call touches twice (the runtime's external calls, the cluster sender's
// pending calls). std::unordered_map allocates a node per entry, and the two touches
// usually happen on different threads, so every call paid a malloc on one thread and a
// free on another; here entries live in one array that only grows.
//
// Sessions are counters, so the live ones are (nearly) consecutive: the array is
// indexed directly by the low bits of the session (no probing: a probed run of
// consecutive keys made every erase walk the whole run). A session whose slot holds an
// older, still open session goes to a small overflow map; that takes a call that stays
// open while `capacity` newer ones are made, and the array doubles once it is half full.
// All operations are O(1).
//
// Thread rule: not synchronised (its owner's lock guards it).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace csk::actor {

template <class V>
class session_map {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  bool contains(std::uint32_t key) const noexcept {
    if (key == 0 || size_ == 0) return false;
    if (slots_[key & mask_].key == key) return true;
    return !overflow_.empty() && overflow_.count(key) != 0;
  }

  V* find(std::uint32_t key) noexcept {
    if (key == 0 || size_ == 0) return nullptr;
    slot& s = slots_[key & mask_];
    if (s.key == key) return &s.value;
    if (overflow_.empty()) return nullptr;
    auto it = overflow_.find(key);
    return it == overflow_.end() ? nullptr : &it->second;
  }

  /// Inserts (key must be nonzero and absent). Returns the stored value; valid until
  /// the next insert or erase.
  V& insert(std::uint32_t key, V value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    ++size_;
    slot& s = slots_[key & mask_];
    if (s.key == 0) {
      s.key = key;
      s.value = std::move(value);
      return s.value;
    }
    return overflow_.emplace(key, std::move(value)).first->second;
  }

  /// Removes `key` and returns its value, or nullopt if absent.
  std::optional<V> take(std::uint32_t key) {
    if (key == 0 || size_ == 0) return std::nullopt;
    slot& s = slots_[key & mask_];
    if (s.key == key) {
      std::optional<V> out(std::move(s.value));
      s.key = 0;
      s.value = V{};
      --size_;
      return out;
    }
    if (overflow_.empty()) return std::nullopt;
    auto it = overflow_.find(key);
    if (it == overflow_.end()) return std::nullopt;
    std::optional<V> out(std::move(it->second));
    overflow_.erase(it);
    --size_;
    return out;
  }

  bool erase(std::uint32_t key) { return take(key).has_value(); }

  /// Moves every entry out (in no particular order) and leaves the map empty.
  std::vector<std::pair<std::uint32_t, V>> drain() {
    std::vector<std::pair<std::uint32_t, V>> out;
    out.reserve(size_);
    for (auto& s : slots_) {
      if (s.key != 0) {
        out.emplace_back(s.key, std::move(s.value));
        s.key = 0;
        s.value = V{};
      }
    }
    for (auto& [k, v] : overflow_) out.emplace_back(k, std::move(v));
    overflow_.clear();
    size_ = 0;
    return out;
  }

 private:
  struct slot {
    std::uint32_t key = 0;  // 0 = empty
    V value{};
  };

  void grow() {
    std::vector<slot> old;
    old.swap(slots_);
    std::unordered_map<std::uint32_t, V> old_overflow;
    old_overflow.swap(overflow_);
    const std::size_t n = old.empty() ? 16 : old.size() * 2;
    slots_.resize(n);
    mask_ = n - 1;
    size_ = 0;
    for (auto& s : old) {
      if (s.key != 0) insert(s.key, std::move(s.value));
    }
    for (auto& [k, v] : old_overflow) insert(k, std::move(v));
  }

  std::vector<slot> slots_;
  std::unordered_map<std::uint32_t, V> overflow_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace csk::actor
