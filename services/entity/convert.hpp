#pragma once
// Entity values <-> Lua values (what services send each other).
//
// An entity type T provides two free functions in its own namespace (found by ADL):
//
//   csk::lua_value to_lua(const T& v);                  // usually a table of fields
//   void from_lua(const csk::lua_value& in, T& v);      // assigns the fields `in` has
//
// from_lua assigns only what `in` carries, so the same function serves `set` (applied to
// a default T) and a partial `update` (applied to a copy of the current value); it throws
// (std::invalid_argument) on a wrong type or an unknown field, and the entity service then
// changes nothing. The helpers below keep both functions one line per field:
//
//   csk::lua_value to_lua(const player& p) {
//     return csk::entity::fields().add("name", p.name).add("hp", p.hp).table();
//   }
//   void from_lua(const csk::lua_value& in, player& p) {
//     csk::entity::field_reader(in, "game.player").get("name", p.name).get("hp", p.hp).done();
//   }
//
// Field types: bool, integers (range-checked), float/double (an integer is accepted),
// std::string, csk::lua_value (anything), std::vector<F> (a Lua array), and any type with
// its own to_lua/from_lua (a nested table).

#include <concepts>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/wire/lua_value.hpp"

namespace csk::entity {

namespace detail {
template <class V>
struct is_vector : std::false_type {};
template <class E, class A>
struct is_vector<std::vector<E, A>> : std::true_type {};
template <class>
inline constexpr bool always_false = false;

[[noreturn]] inline void bad_field(std::string_view what, std::string_view expected, const lua_value& got) {
  throw std::invalid_argument(std::string(what) + ": " + std::string(expected) + " expected, got " +
                              lua_type_name(got.type()));
}
}  // namespace detail

/// T has the two conversion functions (found by ADL in T's namespace).
template <class T>
concept lua_convertible = requires(const T& c, T& m, const lua_value& v) {
  { to_lua(c) } -> std::convertible_to<lua_value>;
  from_lua(v, m);
};

template <class V>
lua_value field_to_lua(const V& v) {
  if constexpr (std::is_same_v<V, bool>) {
    return lua_value(v);
  } else if constexpr (std::is_integral_v<V>) {
    if constexpr (std::is_unsigned_v<V> && sizeof(V) >= sizeof(std::int64_t)) {
      if (v > static_cast<V>(std::numeric_limits<std::int64_t>::max())) {
        throw std::out_of_range("unsigned value above the Lua integer range");
      }
    }
    return lua_value(static_cast<std::int64_t>(v));
  } else if constexpr (std::is_floating_point_v<V>) {
    return lua_value(static_cast<double>(v));
  } else if constexpr (std::is_same_v<V, std::string>) {
    return lua_value(v);
  } else if constexpr (std::is_same_v<V, lua_value>) {
    return v;
  } else if constexpr (detail::is_vector<V>::value) {
    lua_table t;
    t.array.reserve(v.size());
    for (const auto& e : v) t.array.push_back(field_to_lua(e));
    return lua_value(std::move(t));
  } else if constexpr (requires { to_lua(v); }) {
    return to_lua(v);
  } else {
    static_assert(detail::always_false<V>, "no Lua conversion for this field type (give it to_lua/from_lua)");
  }
}

/// Assigns `in` to `out`; `what` names the field in errors.
template <class V>
void field_from_lua(const lua_value& in, V& out, std::string_view what) {
  if constexpr (std::is_same_v<V, bool>) {
    if (!in.is_boolean()) detail::bad_field(what, "boolean", in);
    out = in.as_boolean();
  } else if constexpr (std::is_integral_v<V>) {
    if (!in.is_integer()) detail::bad_field(what, "integer", in);
    const std::int64_t i = in.as_integer();
    bool fits = false;
    if constexpr (std::is_signed_v<V>) {
      fits = i >= static_cast<std::int64_t>(std::numeric_limits<V>::min()) &&
             i <= static_cast<std::int64_t>(std::numeric_limits<V>::max());
    } else {
      fits = i >= 0 && static_cast<std::uint64_t>(i) <= static_cast<std::uint64_t>(std::numeric_limits<V>::max());
    }
    if (!fits) throw std::invalid_argument(std::string(what) + ": " + std::to_string(i) + " is out of range");
    out = static_cast<V>(i);
  } else if constexpr (std::is_floating_point_v<V>) {
    if (in.is_real()) {
      out = static_cast<V>(in.as_real());
    } else if (in.is_integer()) {
      out = static_cast<V>(in.as_integer());
    } else {
      detail::bad_field(what, "number", in);
    }
  } else if constexpr (std::is_same_v<V, std::string>) {
    if (!in.is_string()) detail::bad_field(what, "string", in);
    out = in.as_string();
  } else if constexpr (std::is_same_v<V, lua_value>) {
    out = in;
  } else if constexpr (detail::is_vector<V>::value) {
    if (!in.is_table() || !in.as_table().hash.empty()) detail::bad_field(what, "array", in);
    V tmp;
    tmp.resize(in.as_table().array.size());
    for (std::size_t i = 0; i < tmp.size(); ++i) {
      field_from_lua(in.as_table().array[i], tmp[i], std::string(what) + "[" + std::to_string(i + 1) + "]");
    }
    out = std::move(tmp);
  } else if constexpr (requires { from_lua(in, out); }) {
    from_lua(in, out);
  } else {
    static_assert(detail::always_false<V>, "no Lua conversion for this field type (give it to_lua/from_lua)");
  }
}

/// Builds a table of named fields (hash part, in the order added).
class fields {
 public:
  template <class V>
  fields& add(std::string_view name, const V& v) {
    t_.set(lua_value(name), field_to_lua(v));
    return *this;
  }
  lua_value table() { return lua_value(std::move(t_)); }

 private:
  lua_table t_;
};

/// Reads named fields out of a table: get() assigns a field the table has (a missing one
/// is left alone), done() throws if the table had a key no get() asked for.
class field_reader {
 public:
  /// `what` names the value in errors (the entity type's name, usually).
  field_reader(const lua_value& in, std::string_view what) : what_(what) {
    if (!in.is_table()) detail::bad_field(what_, "table", in);
    t_ = &in.as_table();
    used_.assign(t_->hash.size(), false);
  }

  template <class V>
  field_reader& get(std::string_view name, V& out) {
    // Like Lua after unpack: the last pair with that key wins.
    for (std::size_t i = t_->hash.size(); i-- > 0;) {
      const auto& [k, v] = t_->hash[i];
      if (!k.is_string() || k.as_string() != name) continue;
      if (!used_[i]) {
        for (std::size_t j = 0; j <= i; ++j) {
          const auto& kj = t_->hash[j].first;
          if (kj.is_string() && kj.as_string() == name) used_[j] = true;
        }
      }
      if (!v.is_nil()) field_from_lua(v, out, std::string(what_) + "." + std::string(name));
      return *this;
    }
    return *this;
  }

  void done() const {
    if (!t_->array.empty()) {
      throw std::invalid_argument(std::string(what_) + ": positional values in a table of fields");
    }
    for (std::size_t i = 0; i < used_.size(); ++i) {
      if (used_[i]) continue;
      const auto& k = t_->hash[i].first;
      throw std::invalid_argument(std::string(what_) + ": unknown field " +
                                  (k.is_string() ? "'" + k.as_string() + "'" : k.debug_string()));
    }
  }

 private:
  std::string what_;
  const lua_table* t_ = nullptr;
  std::vector<bool> used_;
};

// -- keys -------------------------------------------------------------------------------

template <class Key>
lua_value key_to_lua(const Key& k) {
  return lua_value(k);
}

/// A string key must be a Lua string, an integer key a Lua integer.
template <class Key>
Key key_from_lua(const lua_value& v) {
  if constexpr (std::is_same_v<Key, std::string>) {
    if (!v.is_string()) detail::bad_field("key", "string", v);
    return v.as_string();
  } else {
    if (!v.is_integer()) detail::bad_field("key", "integer", v);
    return v.as_integer();
  }
}

}  // namespace csk::entity
