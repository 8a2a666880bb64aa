#pragma once
// csk::entity::store<T, Key>: the state of one entity service, as a plain C++ object.
//
// A keyed store of one entity type T (a struct with a cereal serialize(Archive&,
// std::uint32_t version) and CEREAL_CLASS_VERSION), with per-key timers (absolute
// deadlines, see clock.hpp), change tracking for the upgrade's pre-copy, and snapshots
// (format in snapshot.hpp).
//
// Keys are std::string or std::int64_t, kept in increasing order (std::map): iteration is
// by cursor (the last key seen), so it is stable while the store changes, and a snapshot
// of one state is always the same bytes.
//
// Thread rules: none. A store belongs to one entity service and is used only inside that
// service's dispatch (entity_service in service.hpp), or by one thread (tests, benchmarks).
//
// Errors: restore() and apply() return an error text and leave the store as it was (a
// failed restore leaves it empty); they never throw for bad input and never allocate from
// a length the input cannot back. Misuse (restore into a non-empty store, delta without
// tracking) is an error result too.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "services/entity/archive.hpp"
#include "services/entity/clock.hpp"
#include "services/entity/snapshot.hpp"

namespace csk::entity {

template <class Key>
constexpr key_kind key_kind_of() {
  static_assert(std::is_same_v<Key, std::string> || std::is_same_v<Key, std::int64_t>,
                "entity keys are std::string or std::int64_t");
  return std::is_same_v<Key, std::string> ? key_kind::string : key_kind::integer;
}

/// The class version cereal writes for T (CEREAL_CLASS_VERSION, 0 without one).
template <class T>
std::uint32_t class_version_of() {
  if constexpr (requires { cereal::detail::Version<T>::registerVersion(); }) {
    return cereal::detail::Version<T>::registerVersion();  // safe during static initialisation
  } else {
    return cereal::detail::Version<T>::version;
  }
}

/// The type_desc of T: `min_version` is the oldest class version T's serialize() still
/// reads; by default only its own version.
template <class T, class Key = std::string>
type_desc describe(std::string name, std::optional<std::uint32_t> min_version = std::nullopt) {
  const std::uint32_t v = class_version_of<T>();
  return type_desc{std::move(name), v, min_version.value_or(v), key_kind_of<Key>()};
}

/// Throws std::invalid_argument unless `d` can be registered: a name of 1..255 bytes of
/// [A-Za-z0-9_.:-], min_version <= version.
void validate(const type_desc& d);

/// One timer of one entity: fires once at `deadline_ms` (entity clock).
struct timer {
  std::string name;
  std::int64_t deadline_ms = 0;
  friend bool operator==(const timer&, const timer&) = default;
};

/// The built-in timer that deletes its entity (TTL).
inline constexpr std::string_view expire_timer = "@expire";
inline constexpr std::size_t max_timer_name = 255;

template <class Key>
struct change_set {
  std::vector<Key> changed;  ///< present now, changed since the mark (increasing order)
  std::vector<Key> deleted;  ///< absent now, present or set at some point since the mark
};

template <class Key>
struct fired_timer {
  Key key;
  std::string name;
  std::int64_t deadline_ms = 0;
};

/// How restore/apply treat deadlines: `absolute` keeps them (same host, same monotonic
/// clock: the time a snapshot spends in transit counts); `rebase` keeps the time that was
/// left when the snapshot was written (another host, or a clock that restarted).
enum class timer_base : std::uint8_t { absolute, rebase };

struct apply_stats {
  std::size_t changed = 0;
  std::size_t deleted = 0;
};

/// Where a snapshot goes: one byte_buffer, or chunks handed to a sink as they fill up.
class writer {
 public:
  explicit writer(byte_buffer& out) : out_(&out) {}
  /// Calls `sink` with each chunk of about `chunk_bytes` (and the rest at the end).
  explicit writer(std::function<void(bytes_view)> sink, std::size_t chunk_bytes = std::size_t{1} << 20)
      : out_(&own_), sink_(std::move(sink)), chunk_(chunk_bytes) {
    own_.reserve(chunk_bytes + chunk_bytes / 4);
  }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  byte_buffer& buffer() noexcept { return *out_; }
  void maybe_flush() {
    if (sink_ && out_->size() >= chunk_) flush();
  }
  void flush() {
    if (sink_ && !out_->empty()) {
      sink_(bytes_view(*out_));
      out_->clear();
    }
  }

 private:
  byte_buffer own_;
  byte_buffer* out_;
  std::function<void(bytes_view)> sink_;
  std::size_t chunk_ = 0;
};

template <class T, class Key = std::string>
class store {
 public:
  using key_type = Key;
  using value_type = T;
  struct entry {
    T value{};
    std::vector<timer> timers;  ///< increasing name order
  };
  using map_type = std::map<Key, entry, std::less<>>;

  explicit store(type_desc desc, const clock* c = nullptr) : desc_(std::move(desc)), clock_(c) {
    validate(desc_);
    if (desc_.key != key_kind_of<Key>()) throw std::invalid_argument("entity type '" + desc_.name + "': key kind mismatch");
  }

  const type_desc& type() const noexcept { return desc_; }
  void set_clock(const clock* c) noexcept { clock_ = c; }
  std::int64_t now_ms() const noexcept { return (clock_ != nullptr ? *clock_ : default_clock()).now_ms(); }

  // -- data ----------------------------------------------------------------------

  std::size_t size() const noexcept { return entries_.size(); }
  bool contains(const Key& k) const { return entries_.find(k) != entries_.end(); }
  const T* find(const Key& k) const {
    auto it = entries_.find(k);
    return it == entries_.end() ? nullptr : &it->second.value;
  }
  /// Mutable access; the key counts as changed (tracking).
  T* modify(const Key& k) {
    auto it = entries_.find(k);
    if (it == entries_.end()) return nullptr;
    touch(k);
    return &it->second.value;
  }
  /// Inserts or replaces the value; the key's timers stay. True if it was inserted.
  bool set(Key k, T v) {
    touch(k);
    auto [it, inserted] = entries_.try_emplace(std::move(k));
    it->second.value = std::move(v);
    return inserted;
  }
  /// Deletes the key and its timers. False if it was absent.
  bool erase(const Key& k) {
    auto it = entries_.find(k);
    if (it == entries_.end()) return false;
    touch(k);
    for (const auto& t : it->second.timers) unindex(t.deadline_ms, k, t.name);
    entries_.erase(it);
    return true;
  }
  void clear() {
    if (tracking_) {
      for (const auto& [k, e] : entries_) dirty_.insert(k);
    }
    if (journaling_) {
      jkeys_.clear();
      jcleared_ = true;
    }
    entries_.clear();
    index_.clear();
  }
  /// Moves every deadline by `delta_ms` (a region recovered after a reboot: the monotonic
  /// clock started again). Not a change: nothing is tracked or journaled.
  void shift_timers(std::int64_t delta_ms) {
    index_.clear();
    for (auto& [k, e] : entries_) {
      for (auto& t : e.timers) {
        t.deadline_ms = rebased(t.deadline_ms, 0, delta_ms);
        index_.insert(index_key{t.deadline_ms, k, t.name});
      }
    }
  }
  /// Visits up to `limit` entries after `after` (from the first without one), in key
  /// order. Returns the cursor for the next page: the last key visited, or nothing when
  /// the end was reached.
  template <class F>
  std::optional<Key> scan(const std::optional<Key>& after, std::size_t limit, F&& f) const {
    auto it = after ? entries_.upper_bound(*after) : entries_.begin();
    const Key* last = nullptr;
    for (std::size_t n = 0; it != entries_.end() && n < limit; ++it, ++n) {
      f(it->first, it->second.value);
      last = &it->first;
    }
    if (it == entries_.end() || last == nullptr) return std::nullopt;
    return *last;
  }
  const map_type& entries() const noexcept { return entries_; }

  // -- timers ----------------------------------------------------------------------

  /// Sets (or moves) the key's timer `name` to `deadline_ms`. False if the key is absent.
  /// Throws std::invalid_argument for an empty name or one longer than 255 bytes.
  bool schedule(const Key& k, std::string name, std::int64_t deadline_ms) {
    if (name.empty() || name.size() > max_timer_name) throw std::invalid_argument("timer names are 1..255 bytes");
    auto it = entries_.find(k);
    if (it == entries_.end()) return false;
    touch(k);
    auto& ts = it->second.timers;
    auto pos = std::lower_bound(ts.begin(), ts.end(), name, [](const timer& t, const std::string& n) { return t.name < n; });
    if (pos != ts.end() && pos->name == name) {
      unindex(pos->deadline_ms, k, pos->name);
      pos->deadline_ms = deadline_ms;
    } else {
      pos = ts.insert(pos, timer{name, deadline_ms});
    }
    index_.insert(index_key{deadline_ms, k, std::move(name)});
    return true;
  }
  /// Removes the key's timer `name`. False if there was none.
  bool cancel(const Key& k, std::string_view name) {
    auto it = entries_.find(k);
    if (it == entries_.end()) return false;
    auto& ts = it->second.timers;
    auto pos = std::find_if(ts.begin(), ts.end(), [&](const timer& t) { return t.name == name; });
    if (pos == ts.end()) return false;
    touch(k);
    unindex(pos->deadline_ms, k, pos->name);
    ts.erase(pos);
    return true;
  }
  std::optional<std::int64_t> deadline(const Key& k, std::string_view name) const {
    const auto* ts = timers(k);
    if (ts == nullptr) return std::nullopt;
    for (const auto& t : *ts) {
      if (t.name == name) return t.deadline_ms;
    }
    return std::nullopt;
  }
  const std::vector<timer>* timers(const Key& k) const {
    auto it = entries_.find(k);
    return it == entries_.end() ? nullptr : &it->second.timers;
  }
  std::size_t timer_count() const noexcept { return index_.size(); }
  std::optional<std::int64_t> next_deadline() const {
    if (index_.empty()) return std::nullopt;
    return std::get<0>(*index_.begin());
  }
  /// Takes the earliest timer due at `now` (deadline <= now) off the store. An expire
  /// timer deletes its entity here; any other is the caller's to run. Nothing when no
  /// timer is due.
  std::optional<fired_timer<Key>> pop_due(std::int64_t now) {
    if (index_.empty() || std::get<0>(*index_.begin()) > now) return std::nullopt;
    auto node = index_.extract(index_.begin());
    // (not a structured binding: clang 14 cannot capture those in a lambda)
    const std::int64_t deadline = std::get<0>(node.value());
    Key& key = std::get<1>(node.value());
    std::string& name = std::get<2>(node.value());
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      touch(key);
      if (name == expire_timer) {
        for (const auto& t : it->second.timers) {
          if (t.name != name) unindex(t.deadline_ms, key, t.name);
        }
        entries_.erase(it);
      } else {
        auto& ts = it->second.timers;
        auto pos = std::find_if(ts.begin(), ts.end(), [&](const timer& t) { return t.name == name; });
        if (pos != ts.end()) ts.erase(pos);
      }
    }
    return fired_timer<Key>{std::move(key), std::move(name), deadline};
  }

  // -- change tracking ----------------------------------------------------------------

  /// Sets the mark: from now on every changed, deleted or re-timed key is remembered.
  /// Called again, it forgets what was remembered (a new mark).
  void begin_tracking() {
    tracking_ = true;
    dirty_.clear();
  }
  void end_tracking() {
    tracking_ = false;
    dirty_.clear();
  }
  bool tracking() const noexcept { return tracking_; }
  std::size_t changed_keys() const noexcept { return dirty_.size(); }
  change_set<Key> changes() const {
    change_set<Key> out;
    for (const auto& k : dirty_) (entries_.count(k) != 0 ? out.changed : out.deleted).push_back(k);
    std::sort(out.changed.begin(), out.changed.end());
    std::sort(out.deleted.begin(), out.deleted.end());
    return out;
  }

  // -- journaling ---------------------------------------------------------------------
  //
  // The journal (journal.hpp) gets one record per message that changed the store: the
  // whole entries of the keys it changed and the keys it deleted (a delta), written by
  // take_journal() right after the message, before its reply.

  /// On: every change from now on is remembered until take_journal(). Off: forgotten.
  void set_journaling(bool on) {
    journaling_ = on;
    drop_journal();
  }
  bool journaling() const noexcept { return journaling_; }
  bool journal_pending() const noexcept { return jcleared_ || jall_ || !jkeys_.empty(); }
  /// Forgets what changed (a checkpoint of the whole store covers it).
  void drop_journal() noexcept {
    jkeys_.clear();
    jcleared_ = jall_ = false;
  }
  struct journal_batch {
    bool everything = false;  ///< a restore replaced the whole store: only a checkpoint covers it
    bool cleared = false;     ///< clear() came first (a clear record)
    bool delta = false;       ///< `out` holds a delta of the keys changed (after the clear)
  };
  /// What changed since the last call, as records: `out` receives the delta's bytes.
  /// Forgets it.
  journal_batch take_journal(byte_buffer& out) {
    journal_batch b;
    b.everything = jall_;
    b.cleared = jcleared_;
    if (!jall_ && !jkeys_.empty()) {
      if (jkeys_.size() > 1) {
        std::sort(jkeys_.begin(), jkeys_.end());
        jkeys_.erase(std::unique(jkeys_.begin(), jkeys_.end()), jkeys_.end());
      }
      jchanged_.clear();  // kept between calls: no allocation per record
      jdeleted_.clear();
      for (const auto& k : jkeys_) {
        auto it = entries_.find(k);
        if (it != entries_.end()) {
          jchanged_.push_back(it);
        } else {
          jdeleted_.push_back(&k);
        }
      }
      out.clear();
      writer w(out);
      write_delta(w, jchanged_, jdeleted_);
      b.delta = true;
    }
    drop_journal();
    return b;
  }

  // -- snapshots ------------------------------------------------------------------------

  snapshot_header header(snapshot_kind kind = snapshot_kind::full, std::uint64_t entries = 0,
                         std::uint64_t deleted = 0) const {
    snapshot_header h;
    h.kind = kind;
    h.key = desc_.key;
    h.version = desc_.version;
    h.clock_ms = now_ms();
    h.entries = kind == snapshot_kind::full ? entries_.size() : entries;
    h.deleted = deleted;
    h.type = desc_.name;
    return h;
  }

  /// The whole store (kind full).
  void snapshot(writer& w) const {
    write_header(w.buffer(), header(snapshot_kind::full));
    {
      detail::output_archive ar(w.buffer());
      for (const auto& [k, e] : entries_) {
        write_entry(ar, k, e);
        w.maybe_flush();
      }
    }
    end(w);
  }
  void snapshot(byte_buffer& out) const {
    writer w(out);
    snapshot(w);
  }

  /// Up to `limit` entries after `after` (kind page), so that a large store can be copied
  /// in pieces between other messages. Returns the cursor of the next page, or nothing
  /// after the last. Pages are applied with apply().
  std::optional<Key> snapshot_page(writer& w, const std::optional<Key>& after, std::size_t limit) const {
    auto first = after ? entries_.upper_bound(*after) : entries_.begin();
    auto last = first;
    std::size_t n = 0;
    while (last != entries_.end() && n < limit) {
      ++last;
      ++n;
    }
    write_header(w.buffer(), header(snapshot_kind::page, n));
    {
      detail::output_archive ar(w.buffer());
      for (auto it = first; it != last; ++it) {
        write_entry(ar, it->first, it->second);
        w.maybe_flush();
      }
    }
    end(w);
    if (last == entries_.end() || n == 0) return std::nullopt;
    return std::prev(last)->first;
  }

  /// The keys changed since the mark (kind delta): their whole entries (value and
  /// timers), then the deleted keys. With `restart`, a new mark is set (the next delta
  /// has only what changes after this one). Fails when tracking is off.
  result<void, std::string> delta_snapshot(writer& w, bool restart = true) {
    if (!tracking_) return unexpected(std::string("entity '" + desc_.name + "': delta snapshot without tracking"));
    // One lookup per dirty key; then changed and deleted keys in increasing order.
    using map_it = typename map_type::const_iterator;
    std::vector<map_it> changed;
    std::vector<const Key*> deleted;
    changed.reserve(dirty_.size());
    for (const auto& k : dirty_) {
      auto it = entries_.find(k);
      if (it != entries_.end()) {
        changed.push_back(it);
      } else {
        deleted.push_back(&k);
      }
    }
    std::sort(changed.begin(), changed.end(), [](const map_it& x, const map_it& y) { return x->first < y->first; });
    std::sort(deleted.begin(), deleted.end(), [](const Key* x, const Key* y) { return *x < *y; });
    write_delta(w, changed, deleted);
    if (restart) dirty_.clear();
    return {};
  }
  result<void, std::string> delta_snapshot(byte_buffer& out, bool restart = true) {
    writer w(out);
    return delta_snapshot(w, restart);
  }

  /// Reads a full snapshot into this (empty) store. On error the store stays empty.
  /// Returns the number of entries.
  result<std::size_t, std::string> restore(bytes_view in, timer_base base = timer_base::absolute) {
    if (!entries_.empty()) {
      return unexpected("entity '" + desc_.name + "': restore needs an empty store (it has " +
                        std::to_string(entries_.size()) + " entries)");
    }
    staged st;
    if (auto r = parse(in, st, true, base); !r) return unexpected(r.error());
    entries_.swap(st.map);
    for (const auto& [k, e] : entries_) {
      for (const auto& t : e.timers) index_.insert(index_key{t.deadline_ms, k, t.name});
      if (tracking_) dirty_.insert(k);
    }
    if (journaling_) jall_ = true;
    return entries_.size();
  }

  /// Applies a page or a delta: each entry replaces the key's value and timers, each
  /// deleted key is erased. On error nothing is applied.
  result<apply_stats, std::string> apply(bytes_view in, timer_base base = timer_base::absolute) {
    staged st;
    if (auto r = parse(in, st, false, base); !r) return unexpected(r.error());
    apply_stats s;
    for (auto& [k, e] : st.list) {
      // Pages arrive in key order (a pre-copy, a checkpoint): a key past the last one goes
      // at the end without a search.
      if (entries_.empty() || entries_.rbegin()->first < k) {
        auto it = entries_.emplace_hint(entries_.end(), k, std::move(e));
        for (const auto& t : it->second.timers) index_.insert(index_key{t.deadline_ms, k, t.name});
        touch(k);
        ++s.changed;
        continue;
      }
      auto it = entries_.find(k);
      if (it != entries_.end()) {
        for (const auto& t : it->second.timers) unindex(t.deadline_ms, k, t.name);
        it->second = std::move(e);
      } else {
        it = entries_.emplace(k, std::move(e)).first;
      }
      for (const auto& t : it->second.timers) index_.insert(index_key{t.deadline_ms, k, t.name});
      touch(k);
      ++s.changed;
    }
    for (const auto& k : st.deleted) {
      if (erase(k)) ++s.deleted;
    }
    return s;
  }

 private:
  using index_key = std::tuple<std::int64_t, Key, std::string>;

  struct staged {
    map_type map;                               // restore
    std::vector<std::pair<Key, entry>> list;    // apply
    std::vector<Key> deleted;
  };

  void unindex(std::int64_t deadline, const Key& k, const std::string& name) {
    auto it = index_.find(std::forward_as_tuple(deadline, k, name));
    if (it != index_.end()) index_.erase(it);
  }

  void touch(const Key& k) {
    if (tracking_) dirty_.insert(k);
    if (journaling_) jkeys_.push_back(k);
  }

  // A delta: the whole entries of `changed`, then the `deleted` keys (both in key order).
  void write_delta(writer& w, const std::vector<typename map_type::const_iterator>& changed,
                   const std::vector<const Key*>& deleted) const {
    write_header(w.buffer(), header(snapshot_kind::delta, changed.size(), deleted.size()));
    {
      detail::output_archive ar(w.buffer());
      for (const auto& it : changed) {
        write_entry(ar, it->first, it->second);
        w.maybe_flush();
      }
      for (const Key* k : deleted) ar(*k);
    }
    end(w);
  }

  static void write_entry(detail::output_archive& ar, const Key& k, const entry& e) {
    ar(k);
    ar(e.value);
    ar(static_cast<std::uint32_t>(e.timers.size()));
    for (const auto& t : e.timers) {
      ar(t.name);
      ar(t.deadline_ms);
    }
  }

  static void end(writer& w) {
    auto& b = w.buffer();
    b.insert(b.end(), std::begin(snapshot_end), std::end(snapshot_end));
    w.flush();
  }

  static std::string key_text(const Key& k) {
    if constexpr (std::is_same_v<Key, std::string>) {
      return "'" + (k.size() > 64 ? k.substr(0, 64) + "..." : k) + "'";
    } else {
      return std::to_string(k);
    }
  }

  static std::int64_t rebased(std::int64_t deadline, std::int64_t written_at, std::int64_t now) {
    // deadline - written_at + now, saturated.
    const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
    const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
    std::int64_t left = 0;
    if (__builtin_sub_overflow(deadline, written_at, &left)) left = deadline < written_at ? lo : hi;
    std::int64_t out = 0;
    if (__builtin_add_overflow(left, now, &out)) out = left < 0 ? lo : hi;
    return out;
  }

  // Reads one snapshot (full: into st.map; page or delta: into st.list/st.deleted).
  result<void, std::string> parse(bytes_view in, staged& st, bool full, timer_base base) const {
    const std::string who = "entity snapshot of '" + desc_.name + "'";
    std::size_t hsize = 0;
    auto h = read_header(in, &hsize);
    if (!h) return unexpected(who + ": " + h.error());
    if (full && h->kind != snapshot_kind::full) {
      return unexpected(who + ": restore takes a full snapshot, this is a " + snapshot_kind_name(h->kind));
    }
    if (!full && h->kind == snapshot_kind::full) {
      return unexpected(who + ": apply takes a page or a delta, this is a full snapshot (use restore)");
    }
    if (h->type != desc_.name) {
      return unexpected(who + ": the snapshot is of entity type '" + h->type + "'");
    }
    if (auto ok = check_compatible(*h, desc_); !ok) return unexpected(ok.error());
    const std::int64_t now = base == timer_base::rebase ? now_ms() : 0;
    detail::input_archive ar(in.subspan(hsize));
    std::uint64_t i = 0;
    const char* part = "entry";
    try {
      if (!full) st.list.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(h->entries, 4096)));
      for (; i < h->entries; ++i) {
        Key k{};
        ar(k);
        const Key* prev = nullptr;
        if (full) {
          if (!st.map.empty()) prev = &st.map.rbegin()->first;
        } else if (!st.list.empty()) {
          prev = &st.list.back().first;
        }
        if (prev != nullptr && !(*prev < k)) {
          return unexpected(who + ": entry " + std::to_string(i) + ": key " + key_text(k) + " out of order");
        }
        entry e;
        const std::size_t value_at = ar.position();
        ar(e.value);
        if (auto v = ar.first_class_version(); v && ar.first_class_version_at() == value_at && *v != h->version) {
          return unexpected(who + ": the data says class version " + std::to_string(*v) + ", the header " +
                            std::to_string(h->version));
        }
        std::uint32_t nt = 0;
        ar(nt);
        // A timer is at least 17 bytes (name length, one byte, deadline).
        if (nt > ar.remaining() / 17) {
          return unexpected(who + ": entry " + std::to_string(i) + ": " + std::to_string(nt) +
                            " timers cannot fit in the bytes left");
        }
        e.timers.resize(nt);
        for (std::uint32_t j = 0; j < nt; ++j) {
          auto& t = e.timers[j];
          ar(t.name);
          ar(t.deadline_ms);
          if (t.name.empty() || t.name.size() > max_timer_name) {
            return unexpected(who + ": entry " + std::to_string(i) + ": bad timer name length " +
                              std::to_string(t.name.size()));
          }
          if (j > 0 && !(e.timers[j - 1].name < t.name)) {
            return unexpected(who + ": entry " + std::to_string(i) + ": timers out of order");
          }
          if (base == timer_base::rebase) t.deadline_ms = rebased(t.deadline_ms, h->clock_ms, now);
        }
        if (full) {
          st.map.emplace_hint(st.map.end(), std::move(k), std::move(e));
        } else {
          st.list.emplace_back(std::move(k), std::move(e));
        }
      }
      part = "deleted key";
      st.deleted.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(h->deleted, 4096)));
      for (i = 0; i < h->deleted; ++i) {
        Key k{};
        ar(k);
        if (!st.deleted.empty() && !(st.deleted.back() < k)) {
          return unexpected(who + ": deleted key " + key_text(k) + " out of order");
        }
        st.deleted.push_back(std::move(k));
      }
      part = "end mark";
      std::uint8_t mark[4] = {};
      ar.load_bytes(mark, 4);
      if (!std::equal(std::begin(mark), std::end(mark), std::begin(snapshot_end))) {
        return unexpected(who + ": no end mark after the " + std::to_string(h->entries) + " entries");
      }
    } catch (const std::exception& ex) {
      st = staged{};
      const std::string where = part == std::string_view("end mark") ? part : part + (" " + std::to_string(i));
      return unexpected(who + ": " + where + ": " + ex.what());
    }
    if (ar.remaining() != 0) {
      return unexpected(who + ": " + std::to_string(ar.remaining()) + " bytes after the end mark");
    }
    return {};
  }

  type_desc desc_;
  const clock* clock_ = nullptr;
  map_type entries_;
  std::set<index_key, std::less<>> index_;  // (deadline, key, name) of every timer
  bool tracking_ = false;
  std::unordered_set<Key> dirty_;
  bool journaling_ = false;
  bool jcleared_ = false;  // clear() since the last take_journal()
  bool jall_ = false;      // restore() since the last take_journal()
  std::vector<Key> jkeys_;  // keys changed since the last take_journal() (repeats allowed)
  std::vector<typename map_type::const_iterator> jchanged_;  // take_journal()'s scratch
  std::vector<const Key*> jdeleted_;
};

}  // namespace csk::entity
