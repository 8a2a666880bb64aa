#pragma once
// entity::client<T, Key>: typed calls from a system service to an entity service.
//
// Entity and system services are actors: a system service reaches the data only by
// message (no shared pointers into another service's store, which would break the
// one-thread-per-service rule). The client builds those messages and converts the
// answers with the type's to_lua/from_lua:
//
//   entity::client<player> players(".players");
//   auto op = players.get(ctx, "bob");      // an actor::task
//   std::optional<player> p = co_await op;  // throws on a failed call
//
// A client is a small value (the address); keep it in the system service.

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/actor/service.hpp"
#include "services/entity/convert.hpp"
#include "services/entity/store.hpp"

namespace csk::entity {

template <class T, class Key = std::string>
class client {
 public:
  explicit client(actor::address to) : to_(std::move(to)) {}
  const actor::address& address() const noexcept { return to_; }

  actor::task<std::optional<T>> get(actor::context& ctx, Key k) {
    auto op = ctx.call(to_, actor::values{lua_value("get"), key_to_lua(k)});
    auto r = co_await op;
    const actor::values v = check(r, "get");
    if (v.empty() || v[0].is_nil()) co_return std::nullopt;
    T out{};
    from_lua(v[0], out);
    co_return out;
  }

  /// ttl: an expiry for the key (none: its timers stay as they are).
  actor::task<void> set(actor::context& ctx, Key k, const T& value,
                        std::optional<std::chrono::milliseconds> ttl = std::nullopt) {
    actor::values args{lua_value("set"), key_to_lua(k), to_lua(value)};
    if (ttl) args.emplace_back(static_cast<std::int64_t>(ttl->count()));
    auto op = ctx.call(to_, std::move(args));
    auto r = co_await op;
    check(r, "set");
  }

  /// True if the key was there.
  actor::task<bool> remove(actor::context& ctx, Key k) {
    auto op = ctx.call(to_, actor::values{lua_value("delete"), key_to_lua(k)});
    auto r = co_await op;
    const actor::values v = check(r, "delete");
    co_return !v.empty() && v[0].is_integer() && v[0].as_integer() == 1;
  }

  /// Runs the type's mutation hook `name` on the key; its reply.
  actor::task<actor::values> mutate(actor::context& ctx, Key k, std::string name, actor::values args = {}) {
    actor::values a{lua_value("mutate"), key_to_lua(k), lua_value(std::move(name))};
    for (auto& v : args) a.push_back(std::move(v));
    auto op = ctx.call(to_, std::move(a));
    auto r = co_await op;
    co_return check(r, "mutate");
  }

 private:
  static actor::values check(actor::call_result& r, const char* what) {
    if (!r) throw std::runtime_error(std::string("entity ") + what + ": " + r.error().text);
    return std::move(*r);
  }

  actor::address to_;
};

}  // namespace csk::entity
