#pragma once
// Entity services: a keyed store of one entity type, as an actor service.
//
// Declaring a type (once per process, before spawning its services):
//
//   struct player { std::string name; std::int64_t hp = 0;
//     template <class A> void serialize(A& ar, std::uint32_t version) { ar(name, hp); } };
//   CEREAL_CLASS_VERSION(player, 1)
//   csk::lua_value to_lua(const player&);             // see convert.hpp
//   void from_lua(const csk::lua_value&, player&);
//
//   csk::entity::register_type<player>("game.player")          // string keys
//       .mutation("heal", [](player& p, csk::actor::values& a) { p.hp += a.at(0).as_integer(); return csk::actor::values{p.hp}; })
//       .on_timer("regen", [](auto& t) { ... });
//   // or, at namespace scope: CSK_ENTITY(player, "game.player");
//   // integer keys: register_type<player, std::int64_t>(...) / CSK_ENTITY_KEYED(player, std::int64_t, ...)
//
// Spawning one: rt.spawn(std::make_unique<entity_service<player>>(), {options}, {".players"}),
// or install_service_types(rt) then rt.spawn("entity:game.player", {options}, {".players"}).
// options (args[0], optional) is a table: id = "players" (the store's stable id for the
// upgrade, default the type name), notify = ".game" (where timers without a C++ hook go).
//
// Messages (args[0] is the command; k is a key: a string, or an integer for integer keys):
//
//   get k                      -> value | nil
//   set k value [ttl_ms]       -> (nothing)     the key's timers stay; ttl_ms sets its expiry
//   update k {field=v,...}     -> new value     partial update (from_lua on a copy); also
//   update k field v ...                        as name/value pairs; error if k is absent
//   mutate k hook args...      -> hook's values a registered mutation (read-modify-write;
//                                 creates k first if the hook was registered with missing::create)
//   delete k                   -> 1 | 0
//   count                      -> n
//   iterate [cursor [limit]]   -> {k=v,...} (key order), next cursor | nil at the end
//                                 limit 1..10000, default 100; cursor = the last key seen
//   expire k ms / persist k / ttl k     the key's expiry (TTL): set / remove / ms left | nil
//   schedule k name ms / cancel k name  a named timer: runs the type's on_timer hook, or
//                                 sends {"timer", id, k, name} to `notify`
//   timers k                   -> {name=ms left,...} | nil
//   clear                      -> (nothing)     deletes everything
//
// For the upgrade machinery (snapshot.hpp has the format). track, untrack, delta, restore,
// apply, seal, unseal, checkpoint and recover are sent as {entity::upgrade_key(), command,
// args...} (registry.hpp):
// plain, they are refused, so a cluster peer that can address the store cannot seal it,
// rewrite it wholesale or move the change mark of an upgrade in progress. The read-only
// ones (info, header, snapshot, snapshot_page, changes) need no key.
//
//   info                       -> {type, version, min_version, key, id, count, timers, tracking}
//   header                     -> the header a full snapshot would have (check_snapshot it)
//   snapshot                   -> full snapshot (bytes)
//   snapshot_page [cursor [limit]] -> page (bytes), next cursor | nil   (limit default 10000)
//   track / untrack            -> (nothing)     set the change mark / stop tracking
//   changes                    -> changed keys, deleted keys (counts, since the mark)
//   delta                      -> delta since the mark (bytes); sets a new mark
//   restore bytes [rebase]     -> entries       into an empty store (else an error)
//   apply bytes [rebase]       -> changed, deleted   a page or a delta
//   checkpoint                 -> true if a background checkpoint of the journal started
//   recover                    -> true: a store in standby (an upgrade's new worker) that the
//                                 pre-copy did not fill loads its region and writes from now on
//   (checkpoint_step is the store's own message to itself: one page of a checkpoint)
//   seal / unseal              -> (nothing)     sealed: every write (set, update, mutate,
//                                 delete, expire, persist, schedule, cancel, clear) is
//                                 refused with an error and no timer fires; reads,
//                                 snapshots, restore and apply still work. The old worker
//                                 seals with its final delta, the new one until it serves.
//   delta true                 -> the delta, and seals the store in the same turn
//
// Errors are error replies naming the type and key; a failed message changes nothing.
//
// Thread rules: the store is the service's, touched only in its dispatch. data() is for
// the service's own hooks, and for tests in manual mode on the owner thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "common/log/log.hpp"
#include "services/entity/clock.hpp"
#include "services/entity/convert.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/journal.hpp"
#include "services/entity/region.hpp"
#include "services/entity/registry.hpp"
#include "services/entity/store.hpp"

namespace csk::entity {

/// Makes `c` the entity clock of `rt` for services spawned afterwards (nullptr: the
/// monotonic clock). `c` must outlive them.
inline void use_clock(actor::runtime& rt, const clock* c) {
  rt.set_extension(std::type_index(typeid(clock)), const_cast<clock*>(c));
}
inline const clock& clock_of(actor::runtime& rt) {
  const clock* c = rt.extension<clock>();
  return c != nullptr ? *c : default_clock();
}

/// The most milliseconds a TTL or timer may be set ahead (about 34 years).
inline constexpr std::int64_t max_delay_ms = std::int64_t{1} << 40;

template <class T, class Key>
class entity_type;

/// Registers T under a stable `name` (1..255 of [A-Za-z0-9_.:-]) and returns its hook
/// table. min_version: the oldest class version T's serialize() reads (default: only its
/// own). Registering the same type again returns the same table; a taken name throws.
template <class T, class Key = std::string>
entity_type<T, Key>& register_type(std::string name, std::optional<std::uint32_t> min_version = std::nullopt);

template <class T, class Key = std::string>
class entity_type {
 public:
  using store_type = store<T, Key>;
  /// A read-modify-write on one entity: args are those after the hook's name; the return
  /// values are the reply.
  using mutation_fn = std::function<actor::values(T& value, actor::values& args)>;
  struct timer_call {
    actor::context& ctx;
    store_type& data;
    const Key& key;
    T& value;
    const std::string& name;
    std::int64_t deadline_ms;
  };
  /// A timer hook may change the value, schedule timers (data.schedule) and send
  /// messages; if it erases its own key, `value` is gone.
  using timer_fn = std::function<void(timer_call&)>;

  const type_desc& desc() const noexcept { return desc_; }

  /// `if_missing`: what `mutate` does for an absent key: fail (an error reply), or create
  /// it from a default T and run the hook on that (an atomic upsert, e.g. a counter).
  enum class missing : std::uint8_t { fail, create };
  entity_type& mutation(std::string name, mutation_fn f, missing if_missing = missing::fail) {
    mutations_[std::move(name)] = hook{std::move(f), if_missing};
    return *this;
  }
  entity_type& on_timer(std::string name, timer_fn f) {
    if (name.empty() || name.size() > max_timer_name || name[0] == '@') {
      throw std::invalid_argument("timer hook names are 1..255 bytes and do not start with '@'");
    }
    timers_[std::move(name)] = std::move(f);
    return *this;
  }
  struct hook {
    mutation_fn fn;
    missing if_missing = missing::fail;
  };
  const hook* find_mutation(std::string_view n) const {
    auto it = mutations_.find(n);
    return it == mutations_.end() ? nullptr : &it->second;
  }
  const timer_fn* find_timer(std::string_view n) const {
    auto it = timers_.find(n);
    return it == timers_.end() ? nullptr : &it->second;
  }

  /// The registered table; throws std::logic_error if T was not registered.
  static entity_type& registered() {
    auto& p = slot();
    if (!p) throw std::logic_error("entity type not registered (call entity::register_type first)");
    return *p;
  }

 private:
  template <class U, class K>
  friend entity_type<U, K>& register_type(std::string, std::optional<std::uint32_t>);
  explicit entity_type(type_desc d) : desc_(std::move(d)) {}
  static std::unique_ptr<entity_type>& slot() {
    static std::unique_ptr<entity_type> p;
    return p;
  }

  type_desc desc_;
  std::map<std::string, hook, std::less<>> mutations_;
  std::map<std::string, timer_fn, std::less<>> timers_;
};

template <class T, class Key = std::string>
class entity_service final : public actor::service {
  static_assert(lua_convertible<T>,
                "an entity type needs to_lua(const T&) and from_lua(const csk::lua_value&, T&) in its namespace "
                "(services/entity/convert.hpp)");

 public:
  using type = entity_type<T, Key>;
  using store_type = store<T, Key>;

  entity_service() : entity_service(type::registered()) {}
  explicit entity_service(const type& t) : type_(t), store_(t.desc()), id_(t.desc().name) {}

  store_type& data() noexcept { return store_; }
  const std::string& id() const noexcept { return id_; }

  void init(actor::context& ctx, const actor::values& args) override {
    if (!args.empty() && !args[0].is_nil()) {
      field_reader opts(args[0], "entity service options");
      opts.get("id", id_).get("notify", notify_).done();
      if (id_.empty()) throw std::invalid_argument("entity service options: empty id");
    }
    store_.set_clock(&clock_of(ctx.rt()));
    if (auto* dir = ctx.rt().extension<directory>()) {
      if (auto ok = dir->add({id_, type_.desc().name, ctx.self(), nullptr}); !ok) throw std::runtime_error(ok.error());
      listed_ = dir;
    }
    if (auto* src = ctx.rt().extension<region_source>()) open_journal(ctx, *src);
  }

  void stop(actor::context& ctx) override {
    if (listed_ != nullptr) listed_->remove(ctx.self());
    listed_ = nullptr;
  }

  actor::task<actor::values> handle(actor::context& ctx, actor::message& m) override {
    actor::values out;
    try {
      out = run(ctx, m.args);
    } catch (...) {
      persist(ctx);  // a command that failed half-way may still have changed something
      rearm(ctx);
      throw;
    }
    persist(ctx);  // before the reply leaves: every acknowledged change is in the journal
    rearm(ctx);
    co_return out;
  }

 private:
  using values = actor::values;
  using handler = values (entity_service::*)(actor::context&, values&);

  // -- helpers --------------------------------------------------------------------

  std::string who() const { return "entity '" + id_ + "' (" + type_.desc().name + ")"; }

  static const lua_value& arg(const values& a, std::size_t i, const char* what) {
    if (i >= a.size()) {
      throw std::invalid_argument(a.at(0).as_string() + ": " + what + " missing");
    }
    return a[i];
  }
  static Key key_arg(const values& a) { return key_from_lua<Key>(arg(a, 1, "key")); }
  static std::int64_t ms_arg(const values& a, std::size_t i) {
    const lua_value& v = arg(a, i, "milliseconds");
    if (!v.is_integer() || v.as_integer() < 0 || v.as_integer() > max_delay_ms) {
      throw std::invalid_argument(a.at(0).as_string() + ": milliseconds must be an integer in 0.." +
                                  std::to_string(max_delay_ms));
    }
    return v.as_integer();
  }
  static std::size_t limit_arg(const values& a, std::size_t i, std::size_t def, std::size_t max) {
    if (i >= a.size() || a[i].is_nil()) return def;
    if (!a[i].is_integer() || a[i].as_integer() < 1 || static_cast<std::uint64_t>(a[i].as_integer()) > max) {
      throw std::invalid_argument(a.at(0).as_string() + ": limit must be 1.." + std::to_string(max));
    }
    return static_cast<std::size_t>(a[i].as_integer());
  }
  static std::optional<Key> cursor_arg(const values& a, std::size_t i) {
    if (i >= a.size() || a[i].is_nil()) return std::nullopt;
    return key_from_lua<Key>(a[i]);
  }
  static lua_value cursor_value(const std::optional<Key>& c) { return c ? key_to_lua(*c) : lua_value{}; }
  static std::string key_text(const Key& k) {
    if constexpr (std::is_same_v<Key, std::string>) {
      return "'" + k + "'";
    } else {
      return std::to_string(k);
    }
  }
  std::string absent(const Key& k) const { return who() + ": no entity " + key_text(k); }
  static T from_lua_value(const lua_value& v, T base) {
    from_lua(v, base);  // user's conversion, found by ADL
    return base;
  }
  static lua_value to_lua_value(const T& v) { return to_lua(v); }
  static const std::string& bytes_arg(const values& a) {
    const lua_value& v = arg(a, 1, "snapshot bytes");
    if (!v.is_string()) throw std::invalid_argument(a.at(0).as_string() + ": snapshot bytes must be a string");
    return v.as_string();
  }
  static timer_base base_arg(const values& a) {
    return a.size() > 2 && a[2].truthy() ? timer_base::rebase : timer_base::absolute;
  }
  static lua_value bytes_value(byte_buffer&& b) {
    return lua_value(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
  }

  values run(actor::context& ctx, values& a) {
    const bool keyed = !a.empty() && a[0].is_string() && a[0].as_string() == upgrade_key();
    if (keyed) a.erase(a.begin());
    if (a.empty() || !a[0].is_string()) throw std::invalid_argument(who() + ": the command name must be a string");
    static const std::map<std::string, handler, std::less<>> table = {
        {"get", &entity_service::cmd_get},
        {"set", &entity_service::cmd_set},
        {"update", &entity_service::cmd_update},
        {"mutate", &entity_service::cmd_mutate},
        {"delete", &entity_service::cmd_delete},
        {"count", &entity_service::cmd_count},
        {"iterate", &entity_service::cmd_iterate},
        {"expire", &entity_service::cmd_expire},
        {"persist", &entity_service::cmd_persist},
        {"ttl", &entity_service::cmd_ttl},
        {"schedule", &entity_service::cmd_schedule},
        {"cancel", &entity_service::cmd_cancel},
        {"timers", &entity_service::cmd_timers},
        {"clear", &entity_service::cmd_clear},
        {"info", &entity_service::cmd_info},
        {"header", &entity_service::cmd_header},
        {"snapshot", &entity_service::cmd_snapshot},
        {"snapshot_page", &entity_service::cmd_snapshot_page},
        {"track", &entity_service::cmd_track},
        {"untrack", &entity_service::cmd_untrack},
        {"changes", &entity_service::cmd_changes},
        {"delta", &entity_service::cmd_delta},
        {"restore", &entity_service::cmd_restore},
        {"apply", &entity_service::cmd_apply},
        {"seal", &entity_service::cmd_seal},
        {"unseal", &entity_service::cmd_unseal},
        {"checkpoint", &entity_service::cmd_checkpoint},
        {"checkpoint_step", &entity_service::cmd_checkpoint_step},
        {"recover", &entity_service::cmd_recover},
    };
    auto it = table.find(a[0].as_string());
    if (it == table.end()) throw std::invalid_argument(who() + ": unknown command '" + a[0].as_string() + "'");
    if (!keyed && upgrade_only(it->second)) {
      throw std::invalid_argument(who() + ": '" + a[0].as_string() +
                                  "' is for the upgrade machinery only (sent with entity::upgrade_key())");
    }
    if (sealed_ && writes(it->second)) {
      throw std::runtime_error(who() + ": sealed for an upgrade, '" + a[0].as_string() + "' refused");
    }
    // A store with a journal writes only while it can journal the change: not in standby
    // (an upgrade's new worker before its commit; `clear` of the empty store is allowed),
    // not after its journal failed to start again.
    if (journal_ && !journal_->writing() && writes(it->second) && !(standby_ && it->second == &entity_service::cmd_clear)) {
      throw std::runtime_error(who() + ": its journal is not writing (" +
                               (standby_ ? std::string("not serving yet") : std::string("see the log")) + "), '" +
                               a[0].as_string() + "' refused");
    }
    return (this->*(it->second))(ctx, a);
  }

  /// The commands that take the store out of its callers' hands (sealing it, replacing
  /// its contents, moving its change mark): upgrade_key() only.
  static bool upgrade_only(handler h) {
    return h == &entity_service::cmd_seal || h == &entity_service::cmd_unseal || h == &entity_service::cmd_track ||
           h == &entity_service::cmd_untrack || h == &entity_service::cmd_delta ||
           h == &entity_service::cmd_restore || h == &entity_service::cmd_apply ||
           h == &entity_service::cmd_checkpoint || h == &entity_service::cmd_checkpoint_step ||
           h == &entity_service::cmd_recover;
  }

  static bool writes(handler h) {
    return h == &entity_service::cmd_set || h == &entity_service::cmd_update || h == &entity_service::cmd_mutate ||
           h == &entity_service::cmd_delete || h == &entity_service::cmd_expire ||
           h == &entity_service::cmd_persist || h == &entity_service::cmd_schedule ||
           h == &entity_service::cmd_cancel || h == &entity_service::cmd_clear;
  }

  // -- data commands ------------------------------------------------------------------

  values cmd_get(actor::context&, values& a) {
    const T* v = store_.find(key_arg(a));
    return v == nullptr ? values{lua_value{}} : values{to_lua_value(*v)};
  }
  values cmd_set(actor::context&, values& a) {
    const Key k = key_arg(a);
    T v = from_lua_value(arg(a, 2, "value"), T{});
    const std::optional<std::int64_t> ttl = a.size() > 3 && !a[3].is_nil() ? std::optional(ms_arg(a, 3)) : std::nullopt;
    store_.set(k, std::move(v));
    if (ttl) store_.schedule(k, std::string(expire_timer), store_.now_ms() + *ttl);
    return {};
  }
  values cmd_update(actor::context&, values& a) {
    const Key k = key_arg(a);
    const T* cur = store_.find(k);
    if (cur == nullptr) throw std::invalid_argument(absent(k));
    T next;
    if (a.size() == 3 && a[2].is_table()) {
      next = from_lua_value(a[2], *cur);
    } else {
      if (a.size() < 4 || (a.size() - 2) % 2 != 0) {
        throw std::invalid_argument("update: a table of fields, or field/value pairs, expected");
      }
      lua_table t;
      for (std::size_t i = 2; i + 1 < a.size(); i += 2) t.set(a[i], a[i + 1]);
      next = from_lua_value(lua_value(std::move(t)), *cur);
    }
    T* slot = store_.modify(k);
    *slot = std::move(next);
    return {to_lua_value(*slot)};
  }
  values cmd_mutate(actor::context&, values& a) {
    const Key k = key_arg(a);
    const lua_value& name = arg(a, 2, "mutation name");
    if (!name.is_string()) throw std::invalid_argument("mutate: the mutation name must be a string");
    const auto* h = type_.find_mutation(name.as_string());
    if (h == nullptr) throw std::invalid_argument(who() + ": no mutation '" + name.as_string() + "'");
    const T* cur = store_.find(k);
    if (cur == nullptr && h->if_missing == type::missing::fail) throw std::invalid_argument(absent(k));
    // On a copy: a hook that throws half-way changes nothing.
    T next = cur != nullptr ? *cur : T{};
    values rest(a.begin() + 3, a.end());
    values out = h->fn(next, rest);
    if (cur != nullptr) {
      *store_.modify(k) = std::move(next);
    } else {
      store_.set(k, std::move(next));
    }
    return out;
  }
  values cmd_delete(actor::context&, values& a) { return {static_cast<std::int64_t>(store_.erase(key_arg(a)) ? 1 : 0)}; }
  values cmd_count(actor::context&, values&) { return {static_cast<std::int64_t>(store_.size())}; }
  values cmd_iterate(actor::context&, values& a) {
    lua_table t;
    const auto next = store_.scan(cursor_arg(a, 1), limit_arg(a, 2, 100, 10000), [&](const Key& k, const T& v) {
      t.set(key_to_lua(k), to_lua_value(v));
    });
    return {lua_value(std::move(t)), cursor_value(next)};
  }
  values cmd_clear(actor::context&, values&) {
    store_.clear();
    return {};
  }

  // -- timers -----------------------------------------------------------------------

  values cmd_expire(actor::context&, values& a) {
    const Key k = key_arg(a);
    return {store_.schedule(k, std::string(expire_timer), store_.now_ms() + ms_arg(a, 2))};
  }
  values cmd_persist(actor::context&, values& a) { return {store_.cancel(key_arg(a), expire_timer)}; }
  values cmd_ttl(actor::context&, values& a) {
    const auto d = store_.deadline(key_arg(a), expire_timer);
    if (!d) return {lua_value{}};
    return {std::max<std::int64_t>(0, *d - store_.now_ms())};
  }
  values cmd_schedule(actor::context&, values& a) {
    const Key k = key_arg(a);
    const lua_value& name = arg(a, 2, "timer name");
    if (!name.is_string() || name.as_string().empty() || name.as_string().size() > max_timer_name ||
        name.as_string()[0] == '@') {
      throw std::invalid_argument("schedule: timer names are strings of 1..255 bytes, not starting with '@'");
    }
    if (type_.find_timer(name.as_string()) == nullptr && notify_.empty()) {
      throw std::invalid_argument(who() + ": no timer hook '" + name.as_string() + "' and no notify address");
    }
    return {store_.schedule(k, name.as_string(), store_.now_ms() + ms_arg(a, 3))};
  }
  values cmd_cancel(actor::context&, values& a) {
    const Key k = key_arg(a);
    const lua_value& name = arg(a, 2, "timer name");
    if (!name.is_string()) throw std::invalid_argument("cancel: the timer name must be a string");
    return {store_.cancel(k, name.as_string())};
  }
  values cmd_timers(actor::context&, values& a) {
    const auto* ts = store_.timers(key_arg(a));
    if (ts == nullptr) return {lua_value{}};
    const std::int64_t now = store_.now_ms();
    lua_table t;
    for (const auto& tm : *ts) t.set(lua_value(tm.name), lua_value(std::max<std::int64_t>(0, tm.deadline_ms - now)));
    return {lua_value(std::move(t))};
  }

  // Keeps one runtime timer armed for the earliest deadline of the store.
  void rearm(actor::context& ctx) {
    const auto next = sealed_ ? std::nullopt : store_.next_deadline();
    if (!next) {
      if (armed_) ctx.cancel_timeout(armed_id_);
      armed_ = false;
      return;
    }
    if (armed_ && armed_for_ <= *next) return;  // fires early enough; it re-arms then
    if (armed_) ctx.cancel_timeout(armed_id_);
    const std::int64_t delay = std::max<std::int64_t>(0, *next - store_.now_ms());
    armed_id_ = ctx.timeout(std::chrono::milliseconds(delay), [this, &ctx] { fire(ctx); });
    armed_ = true;
    armed_for_ = *next;
  }

  void fire(actor::context& ctx) {
    armed_ = false;
    if (sealed_) return;  // unseal re-arms (handle() calls rearm after every command)
    const std::int64_t now = store_.now_ms();
    // A hook that keeps re-scheduling itself in the past cannot hold the service: at
    // most this many timers per turn, the rest at the next tick.
    for (int n = 0; n < 4096; ++n) {
      auto f = store_.pop_due(now);
      if (!f) break;
      if (f->name == expire_timer) continue;
      run_timer(ctx, *f);
    }
    persist(ctx);
    rearm(ctx);
  }

  void run_timer(actor::context& ctx, fired_timer<Key>& f) {
    T* v = store_.modify(f.key);
    if (v == nullptr) return;
    if (const auto* hook = type_.find_timer(f.name)) {
      try {
        typename type::timer_call call{ctx, store_, f.key, *v, f.name, f.deadline_ms};
        (*hook)(call);
      } catch (const std::exception& ex) {
        logger("service")->error("{} {}: timer '{}' of {} raised: {}", actor::handle_string(ctx.self()), who(), f.name,
                                 key_text(f.key), ex.what());
      }
      return;
    }
    if (!notify_.empty()) {
      persist(ctx);  // the timer is gone from the journal before anyone hears it fired
      ctx.send(notify_, values{lua_value("timer"), lua_value(id_), key_to_lua(f.key), lua_value(f.name)});
      return;
    }
    logger("service")->warn("{} {}: timer '{}' of {} fired with no hook and no notify address",
                            actor::handle_string(ctx.self()), who(), f.name, key_text(f.key));
  }

  // -- upgrade machinery ----------------------------------------------------------------

  values cmd_info(actor::context&, values&) {
    const auto& d = type_.desc();
    lua_table t;
    t.set("type", d.name)
        .set("version", static_cast<std::int64_t>(d.version))
        .set("min_version", static_cast<std::int64_t>(d.min_version))
        .set("key", key_kind_name(d.key))
        .set("id", id_)
        .set("count", static_cast<std::int64_t>(store_.size()))
        .set("timers", static_cast<std::int64_t>(store_.timer_count()))
        .set("tracking", store_.tracking())
        .set("sealed", sealed_);
    return {lua_value(std::move(t))};
  }
  values cmd_header(actor::context&, values&) {
    byte_buffer out;
    write_header(out, store_.header(snapshot_kind::full));
    return {bytes_value(std::move(out))};
  }
  values cmd_snapshot(actor::context&, values&) {
    byte_buffer out;
    store_.snapshot(out);
    return {bytes_value(std::move(out))};
  }
  values cmd_snapshot_page(actor::context&, values& a) {
    byte_buffer out;
    writer w(out);
    const auto next = store_.snapshot_page(w, cursor_arg(a, 1), limit_arg(a, 2, 10000, std::size_t{1} << 24));
    return {bytes_value(std::move(out)), cursor_value(next)};
  }
  values cmd_track(actor::context&, values&) {
    store_.begin_tracking();
    return {};
  }
  values cmd_untrack(actor::context&, values&) {
    store_.end_tracking();
    return {};
  }
  values cmd_changes(actor::context&, values&) {
    if (!store_.tracking()) throw std::invalid_argument(who() + ": tracking is off");
    const auto ch = store_.changes();
    return {static_cast<std::int64_t>(ch.changed.size()), static_cast<std::int64_t>(ch.deleted.size())};
  }
  values cmd_delta(actor::context& ctx, values& a) {
    byte_buffer out;
    if (auto r = store_.delta_snapshot(out, true); !r) throw std::invalid_argument(r.error());
    if (a.size() > 1 && a[1].truthy()) seal(ctx);
    return {bytes_value(std::move(out))};
  }
  values cmd_seal(actor::context& ctx, values&) {
    seal(ctx);
    return {};
  }
  values cmd_unseal(actor::context& ctx, values&) {
    if (journal_) resume_journal(ctx);  // throws: the store stays sealed (no write it cannot journal)
    sealed_ = false;
    return {};
  }
  // Sealed for an upgrade: nothing changes and nothing is written to the journal until
  // unseal (the other worker may become its writer meanwhile).
  void seal(actor::context& ctx) {
    persist(ctx);
    sealed_ = true;
    if (journal_) {
      journal_->stop_writing();
      store_.set_journaling(false);
    }
  }
  values cmd_restore(actor::context&, values& a) {
    auto r = store_.restore(as_bytes(bytes_arg(a)), base_arg(a));
    if (!r) throw std::invalid_argument(r.error());
    return {static_cast<std::int64_t>(*r)};
  }
  values cmd_apply(actor::context&, values& a) {
    auto r = store_.apply(as_bytes(bytes_arg(a)), base_arg(a));
    if (!r) throw std::invalid_argument(r.error());
    return {static_cast<std::int64_t>(r->changed), static_cast<std::int64_t>(r->deleted)};
  }

  // -- the journal (journal.hpp, docs/durability.md) -------------------------------------

  using steady = std::chrono::steady_clock;

  void open_journal(actor::context& ctx, region_source& src) {
    regions_ = &src;
    auto files = src.open(id_);
    if (!files) throw std::runtime_error(who() + ": journal: " + files.error());
    auto j = store_journal::open(std::move(*files), id_, type_.desc(), src.options());
    if (!j) {
      src.unreadable(who() + ": " + j.error());
      throw std::runtime_error(who() + ": " + j.error());
    }
    journal_ = std::move(*j);
    if (listed_ != nullptr) listed_->set_journal(ctx.self(), journal_->stats());
    if (src.takeover()) {  // the old worker writes it until the commit (cmd_unseal)
      standby_ = true;
      return;
    }
    const bool checkpoint = recover();
    begin_writing(ctx, checkpoint);
  }

  // The checkpoint and the records, into this (empty) store. True when the state should
  // be checkpointed at once: written under another boot (its deadlines were shifted), or
  // the chain ended at a bad record (the bytes after it must not be read again).
  bool recover() {
    const auto t0 = steady::now();
    store_.set_journaling(false);
    if (store_.size() != 0) store_.clear();
    auto r = journal_->replay(
        [&](bytes_view page) -> result<void, std::string> {
          auto a = store_.apply(page);
          if (!a) return unexpected(a.error());
          return {};
        },
        [&](const journal::record& rec) -> result<void, std::string> {
          if (rec.kind == journal::record_kind::clear) {
            store_.clear();
            return {};
          }
          auto a = store_.apply(rec.payload);
          if (!a) return unexpected(a.error());
          return {};
        });
    if (!r) {
      store_.clear();
      const std::string why = who() + ": cannot recover its state from the journal (" + journal_->where() + "): " + r.error();
      if (regions_ != nullptr) regions_->unreadable(why);
      throw std::runtime_error(why);
    }
    if (r->other_boot) store_.shift_timers(store_.now_ms() - r->last_clock_ms);
    journal_->stats()->recovered_entities.store(store_.size());
    journal_->stats()->entities.store(store_.size());
    const double took = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
    logger("service")->info("{}: recovered {} entities from the journal ({}: {} checkpoint pages, {} records) in {:.1f} ms",
                            who(), store_.size(), journal_->where(), r->pages, r->records, took);
    if (r->bad) logger("service")->error("{}: JOURNAL RECOVERY STOPPED AT A BAD RECORD: {}", who(), r->note);
    if (r->other_boot) logger("service")->warn("{}: the journal was written before a reboot: timers keep the time they had left", who());
    return r->other_boot || r->bad;
  }

  void begin_writing(actor::context& ctx, bool checkpoint) {
    if (auto w = journal_->start_writing(); !w) throw std::runtime_error(who() + ": journal: " + w.error());
    store_.set_journaling(true);
    if (checkpoint || (journal_->fresh() && store_.size() != 0)) checkpoint_now(ctx, "a fresh start");
  }

  // unseal: this worker writes the journal again. The new worker of an upgrade continues
  // the old one's chain (its store holds that state: the pre-copy); an old worker whose
  // upgrade was rolled back reloads first if the new one wrote meanwhile.
  void resume_journal(actor::context& ctx) {
    if (journal_->writing()) return;
    if (standby_) {
      standby_ = false;
      if (journal_->fresh()) {  // the old worker kept no journal here: start one from this state
        begin_writing(ctx, true);
        return;
      }
      if (auto r = journal_->continue_after_predecessor(); !r) throw std::runtime_error(who() + ": journal: " + r.error());
      store_.set_journaling(true);
      return;
    }
    bool checkpoint = false;
    if (!journal_->writer_current()) {
      logger("service")->warn("{}: another worker wrote the journal since the seal: reloading from it", who());
      checkpoint = recover();
    }
    begin_writing(ctx, checkpoint);
  }

  // After every message (and timer turn): the keys it changed, as one record, before the
  // reply leaves. A ring without room is checkpointed instead (the checkpoint holds the
  // change); a journal that cannot keep a write fails the message.
  void persist(actor::context& ctx) {
    if (!journal_ || !journal_->writing()) {
      store_.drop_journal();
      return;
    }
    if (broken_) {
      checkpoint_now(ctx, "the journal failed before");
      return;
    }
    if (store_.journal_pending()) {
      const auto batch = store_.take_journal(jbuf_);
      bool covered = batch.everything;
      if (covered) checkpoint_now(ctx, "the whole store was replaced");
      if (!covered && batch.cleared) covered = !append(ctx, journal::record_kind::clear, {});
      if (!covered && batch.delta) (void)append(ctx, journal::record_kind::delta, jbuf_);
    }
    journal_->stats()->entities.store(store_.size(), std::memory_order_relaxed);
    if (!journal_->checkpointing() && journal_->checkpoint_due(steady::now())) start_checkpoint(ctx);
  }

  // False when a checkpoint had to be written instead (it covers the rest of the batch).
  bool append(actor::context& ctx, journal::record_kind kind, bytes_view payload) {
    if (journal_->too_large(payload.size())) {
      checkpoint_now(ctx, "a record larger than half the ring");
      return false;
    }
    if (journal_->append(kind, payload) == store_journal::append_status::ok) return true;
    journal_->stats()->forced_checkpoints.fetch_add(1, std::memory_order_relaxed);
    checkpoint_now(ctx, "the ring was full");
    return false;
  }

  // A whole checkpoint in this turn (the ring is full, or the state was replaced).
  void checkpoint_now(actor::context&, const char* why) {
    const auto t0 = steady::now();
    store_.drop_journal();
    ++checkpoint_id_;  // a background checkpoint in progress is abandoned
    auto r = journal_->begin_checkpoint(store_.now_ms());
    std::optional<Key> cursor;
    byte_buffer page;
    while (r) {
      page.clear();
      writer w(page);
      cursor = store_.snapshot_page(w, cursor, journal_->options().checkpoint_page);
      r = journal_->add_page(page);
      if (!cursor) break;
    }
    if (r) r = journal_->commit_checkpoint();
    if (!r) {
      broken_ = true;
      logger("service")->critical("{}: checkpoint failed: {}: writes fail until one succeeds", who(), r.error());
      throw std::runtime_error(who() + ": the journal cannot keep this write: " + r.error());
    }
    broken_ = false;
    logger("service")->info("{}: checkpoint of {} entities ({}) in {:.1f} ms", who(), store_.size(), why,
                            std::chrono::duration<double, std::milli>(steady::now() - t0).count());
  }

  // A background checkpoint: one page per turn (a message to itself, or a timeout with
  // journal.checkpoint_pause_ms), so the store's callers wait at most one page.
  void start_checkpoint(actor::context& ctx) {
    if (auto r = journal_->begin_checkpoint(store_.now_ms()); !r) {
      logger("service")->error("{}: checkpoint not started: {}", who(), r.error());
      return;
    }
    checkpoint_cursor_.reset();
    checkpoint_started_ = steady::now();
    next_checkpoint_step(ctx, ++checkpoint_id_);
  }
  void next_checkpoint_step(actor::context& ctx, std::uint64_t id) {
    values step{lua_value(upgrade_key()), lua_value("checkpoint_step"), lua_value(static_cast<std::int64_t>(id))};
    const auto pause = journal_->options().checkpoint_pause;
    if (pause.count() == 0) {
      ctx.send(ctx.self(), std::move(step));
      return;
    }
    const actor::handle_t self = ctx.self();
    actor::runtime* rt = &ctx.rt();
    (void)ctx.timeout(pause, [rt, self, step]() mutable { rt->send(self, std::move(step), self); });
  }
  values cmd_checkpoint_step(actor::context& ctx, values& a) {
    const auto id = a.size() > 1 && a[1].is_integer() ? static_cast<std::uint64_t>(a[1].as_integer()) : 0;
    if (!journal_ || !journal_->checkpointing() || id != checkpoint_id_) return {};  // abandoned
    byte_buffer page;
    writer w(page);
    checkpoint_cursor_ = store_.snapshot_page(w, checkpoint_cursor_, journal_->options().checkpoint_page);
    auto r = journal_->add_page(page);
    if (r && !checkpoint_cursor_) {
      r = journal_->commit_checkpoint();
      if (r) {
        logger("service")->info("{}: checkpoint of {} entities in {:.1f} ms", who(), store_.size(),
                                std::chrono::duration<double, std::milli>(steady::now() - checkpoint_started_).count());
      }
    } else if (r) {
      next_checkpoint_step(ctx, id);
    }
    if (!r) logger("service")->error("{}: checkpoint abandoned: {}", who(), r.error());
    return {};
  }
  /// recover: a store in standby that the upgrade did not fill (the old worker had no
  /// store of this id) loads what its region holds, as after a crash, and writes from now on.
  /// Anything else: a no-op.
  values cmd_recover(actor::context& ctx, values&) {
    if (!journal_ || !standby_) return {false};
    standby_ = false;
    const bool checkpoint = recover();
    begin_writing(ctx, checkpoint);
    return {true};
  }
  /// checkpoint: starts a background checkpoint now (an operator's, `cppskynet console
  /// checkpoint`); true if one started, false if one is already running or there is no
  /// journal.
  values cmd_checkpoint(actor::context& ctx, values&) {
    if (!journal_ || !journal_->writing() || journal_->checkpointing()) return {false};
    start_checkpoint(ctx);
    return {journal_->checkpointing()};
  }

  const type& type_;
  store_type store_;
  std::string id_;
  std::string notify_;
  directory* listed_ = nullptr;
  region_source* regions_ = nullptr;
  std::unique_ptr<store_journal> journal_;
  bool standby_ = false;  ///< takeover: the old worker writes the region until the commit
  bool broken_ = false;   ///< the last checkpoint failed: writes fail until one succeeds
  byte_buffer jbuf_;      ///< the record being written
  std::uint64_t checkpoint_id_ = 0;  ///< the background checkpoint in progress (its steps carry it)
  std::optional<Key> checkpoint_cursor_;
  steady::time_point checkpoint_started_{};
  bool sealed_ = false;  ///< see seal: writes refused, timers not armed
  bool armed_ = false;
  actor::timer_id armed_id_ = 0;
  std::int64_t armed_for_ = 0;
};

template <class T, class Key>
entity_type<T, Key>& register_type(std::string name, std::optional<std::uint32_t> min_version) {
  using type = entity_type<T, Key>;
  type_desc d = describe<T, Key>(std::move(name), min_version);
  validate(d);
  static std::mutex mu;  // two runtimes set up on two threads may register the same type
  std::lock_guard lock(mu);
  auto& slot = type::slot();
  if (slot) {
    const auto& have = slot->desc();
    if (have.name != d.name || have.min_version != d.min_version) {
      throw std::invalid_argument("this C++ type is already registered as entity type '" + have.name + "'");
    }
    return *slot;
  }
  add_type(registered_type{d, std::type_index(typeid(T)), std::type_index(typeid(Key)),
                           [] { return std::unique_ptr<actor::service>(std::make_unique<entity_service<T, Key>>()); }});
  slot.reset(new type(std::move(d)));
  return *slot;
}

}  // namespace csk::entity

#define CSK_ENTITY_CAT2_(a, b) a##b
#define CSK_ENTITY_CAT_(a, b) CSK_ENTITY_CAT2_(a, b)
/// Registers entity type T (string keys) under NAME at static initialisation. Use it in a
/// source file that is linked in (a static library drops unreferenced objects); otherwise
/// call entity::register_type from a startup function.
#define CSK_ENTITY(T, NAME)                                                               \
  [[maybe_unused]] static auto& CSK_ENTITY_CAT_(csk_entity_registered_, __COUNTER__) = \
      ::csk::entity::register_type<T>(NAME)
/// The same with integer (std::int64_t) or string keys chosen explicitly.
#define CSK_ENTITY_KEYED(T, KEY, NAME)                                                    \
  [[maybe_unused]] static auto& CSK_ENTITY_CAT_(csk_entity_registered_, __COUNTER__) = \
      ::csk::entity::register_type<T, KEY>(NAME)
