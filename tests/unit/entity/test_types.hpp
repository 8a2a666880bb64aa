#pragma once
// Entity types of the entity tests.

#include <cstdint>
#include <string>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "services/entity/convert.hpp"

namespace csk::entity::test {

/// The main test entity: string keys (registered as "test.player").
struct player {
  std::string name;
  std::int64_t hp = 0;
  std::int32_t level = 1;
  double speed = 1.5;
  std::vector<std::int64_t> items;

  template <class A>
  void serialize(A& ar, std::uint32_t /*version*/) {
    ar(name, hp, level, speed, items);
  }
  friend bool operator==(const player&, const player&) = default;
};

inline lua_value to_lua(const player& p) {
  return fields().add("name", p.name).add("hp", p.hp).add("level", p.level).add("speed", p.speed).add("items", p.items).table();
}
inline void from_lua(const lua_value& in, player& p) {
  field_reader(in, "test.player")
      .get("name", p.name)
      .get("hp", p.hp)
      .get("level", p.level)
      .get("speed", p.speed)
      .get("items", p.items)
      .done();
}

/// Integer keys (registered as "test.counter").
struct counter {
  std::int64_t n = 0;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(n);
  }
  friend bool operator==(const counter&, const counter&) = default;
};
inline lua_value to_lua(const counter& c) { return fields().add("n", c.n).table(); }
inline void from_lua(const lua_value& in, counter& c) { field_reader(in, "test.counter").get("n", c.n).done(); }

/// Two versions of one type, "test.profile": v1 is an older binary's struct (never
/// registered, used through a plain store), v2 the newer one (registered, reads v1).
struct profile_v1 {
  std::string name;
  std::int32_t score = 0;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(name, score);
  }
};

struct profile_v2 {
  std::string name;
  std::int64_t score = 0;
  std::string title = "none";
  template <class A>
  void serialize(A& ar, std::uint32_t version) {
    if (version >= 2) {
      ar(name, score, title);
    } else {
      std::int32_t s = 0;
      ar(name, s);
      score = s;
      title = "from v1";
    }
  }
  friend bool operator==(const profile_v2&, const profile_v2&) = default;
};
inline lua_value to_lua(const profile_v2& p) {
  return fields().add("name", p.name).add("score", p.score).add("title", p.title).table();
}
inline void from_lua(const lua_value& in, profile_v2& p) {
  field_reader(in, "test.profile").get("name", p.name).get("score", p.score).get("title", p.title).done();
}

/// A third version, newer than this binary's registration (to be refused).
struct profile_v3 {
  std::string name;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(name);
  }
};
inline lua_value to_lua(const profile_v3& p) { return fields().add("name", p.name).table(); }
inline void from_lua(const lua_value& in, profile_v3& p) { field_reader(in, "test.profile").get("name", p.name).done(); }

}  // namespace csk::entity::test

CEREAL_CLASS_VERSION(csk::entity::test::player, 1)
CEREAL_CLASS_VERSION(csk::entity::test::counter, 1)
CEREAL_CLASS_VERSION(csk::entity::test::profile_v1, 1)
CEREAL_CLASS_VERSION(csk::entity::test::profile_v2, 2)
CEREAL_CLASS_VERSION(csk::entity::test::profile_v3, 3)
