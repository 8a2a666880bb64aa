// Entity services in the actor runtime (manual mode: the test moves time with
// manual_clock::advance(rt, d), which moves the entity clock and the runtime's timers
// together): every message, timers, snapshots between two runtimes, change tracking, the
// directory and the typed client; one threaded case for the sanitizers.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "common/actor/runtime.hpp"
#include "common/log/log.hpp"
#include "services/entity/entity.hpp"
#include "tests/unit/entity/test_types.hpp"

namespace csk::entity::test {
namespace {

using namespace std::chrono_literals;
using actor::runtime;
using actor::runtime_options;
using actor::values;

runtime_options manual() {
  runtime_options o;
  o.run_mode = runtime_options::mode::manual;
  o.tick = 10ms;
  o.call_timeout = 1000ms;
  return o;
}

void register_test_types() {
  static const bool once = [] {
    register_type<player>("test.player")
        .mutation("heal",
                  [](player& p, values& a) {
                    p.hp += a.at(0).as_integer();
                    return values{p.hp};
                  })
        .mutation("break",
                  [](player& p, values&) -> values {
                    p.hp = -1;  // then fails: the stored value must not change
                    throw std::runtime_error("broken on purpose");
                  })
        .on_timer("regen", [](entity_type<player>::timer_call& t) {
          t.value.hp += 10;
          if (t.value.hp < 130) t.data.schedule(t.key, t.name, t.deadline_ms + 100);  // again in 100 ms
        });
    register_type<counter, std::int64_t>("test.counter")
        .mutation("incr",
                  [](counter& c, values& a) {
                    c.n += a.empty() ? 1 : a[0].as_integer();
                    return values{c.n};
                  })
        .mutation(
            "upsert",
            [](counter& c, values&) {
              c.n += 100;
              return values{c.n};
            },
            entity_type<counter, std::int64_t>::missing::create);
    register_type<profile_v2>("test.profile", 1);
    return true;
  }();
  (void)once;
}

class EntityService : public ::testing::Test {
 protected:
  void SetUp() override { register_test_types(); }
};

values call(runtime& rt, const actor::address& to, values args) {
  auto f = rt.call(to, std::move(args));
  rt.run_until_idle();
  EXPECT_EQ(f.wait_for(0s), std::future_status::ready);
  auto r = f.get();
  EXPECT_TRUE(r.has_value()) << r.error().text;
  return r ? *r : values{};
}

std::string call_error(runtime& rt, const actor::address& to, values args) {
  auto f = rt.call(to, std::move(args));
  rt.run_until_idle();
  auto r = f.get();
  EXPECT_FALSE(r.has_value());
  return r ? std::string("(no error)") : r.error().text;
}

lua_value player_value(const std::string& name, std::int64_t hp) {
  return lua_value(lua_table{}.set("name", name).set("hp", hp));
}

player as_player(const lua_value& v) {
  player p;
  from_lua(v, p);
  return p;
}

/// Records every message it gets.
class sink : public actor::service {
 public:
  explicit sink(std::vector<values>* got) : got_(got) {}
  actor::task<values> handle(actor::context&, actor::message& m) override {
    got_->push_back(m.args);
    co_return values{};
  }

 private:
  std::vector<values>* got_;
};

TEST_F(EntityService, DataMessages) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();

  EXPECT_TRUE(call(rt, ".p", {"get", "ann"}).at(0).is_nil());
  EXPECT_TRUE(call(rt, ".p", {"set", "ann", player_value("Ann", 10)}).empty());
  auto got = as_player(call(rt, ".p", {"get", "ann"}).at(0));
  EXPECT_EQ(got.name, "Ann");
  EXPECT_EQ(got.hp, 10);
  EXPECT_EQ(got.level, 1);  // missing fields keep their defaults

  // update: a table of fields, or name/value pairs; only those fields change.
  got = as_player(call(rt, ".p", {"update", "ann", lua_value(lua_table{}.set("level", 5))}).at(0));
  EXPECT_EQ(got.level, 5);
  EXPECT_EQ(got.hp, 10);
  got = as_player(call(rt, ".p", {"update", "ann", "hp", 20, "speed", 2.5}).at(0));
  EXPECT_EQ(got.hp, 20);
  EXPECT_EQ(got.speed, 2.5);
  EXPECT_EQ(got.level, 5);

  // mutate: a registered hook, all or nothing.
  EXPECT_EQ(call(rt, ".p", {"mutate", "ann", "heal", 5}).at(0).as_integer(), 25);
  EXPECT_NE(call_error(rt, ".p", {"mutate", "ann", "break"}).find("broken on purpose"), std::string::npos);
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 25);

  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 1);
  EXPECT_EQ(call(rt, ".p", {"delete", "ann"}).at(0).as_integer(), 1);
  EXPECT_EQ(call(rt, ".p", {"delete", "ann"}).at(0).as_integer(), 0);
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 0);

  call(rt, ".p", {"set", "bob", player_value("Bob", 1)});
  call(rt, ".p", {"clear"});
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 0);
}

TEST_F(EntityService, ErrorsNameTheProblemAndChangeNothing) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 10)});
  EXPECT_EQ(call_error(rt, ".p", {"nope"}), "entity 'test.player' (test.player): unknown command 'nope'");
  EXPECT_EQ(call_error(rt, ".p", {"get", 5}), "key: string expected, got integer");
  EXPECT_EQ(call_error(rt, ".p", {"get"}), "get: key missing");
  EXPECT_EQ(call_error(rt, ".p", {"set", "x", lua_value(lua_table{}.set("mana", 3))}),
            "test.player: unknown field 'mana'");
  EXPECT_EQ(call_error(rt, ".p", {"set", "x", lua_value(lua_table{}.set("hp", "lots"))}),
            "test.player.hp: integer expected, got string");
  EXPECT_EQ(call_error(rt, ".p", {"update", "ann", "hp", "lots"}), "test.player.hp: integer expected, got string");
  EXPECT_EQ(call_error(rt, ".p", {"update", "zed", "hp", 1}), "entity 'test.player' (test.player): no entity 'zed'");
  EXPECT_EQ(call_error(rt, ".p", {"mutate", "ann", "fly"}), "entity 'test.player' (test.player): no mutation 'fly'");
  EXPECT_EQ(call_error(rt, ".p", {"expire", "ann", -1}), "expire: milliseconds must be an integer in 0..1099511627776");
  EXPECT_EQ(call_error(rt, ".p", {"schedule", "ann", "@expire", 10}),
            "schedule: timer names are strings of 1..255 bytes, not starting with '@'");
  EXPECT_EQ(call_error(rt, ".p", {"schedule", "ann", "dance", 10}),
            "entity 'test.player' (test.player): no timer hook 'dance' and no notify address");
  EXPECT_EQ(call_error(rt, ".p", {"iterate", lua_value{}, 0}), "iterate: limit must be 1..10000");
  EXPECT_EQ(call_error(rt, ".p", {entity::upgrade_key(), "delta"}), "entity 'test.player': delta snapshot without tracking");
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 10);
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 1);
}

// What a cluster peer (which can address ".p": skynet resolves .names remotely) sends
// without the process's key: the upgrade commands are refused and change nothing.
TEST_F(EntityService, UpgradeCommandsNeedTheUpgradeKey) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 10)});
  const std::string snap = call(rt, ".p", {"snapshot"}).at(0).as_string();  // reads need no key
  for (values cmd : {values{"seal"}, values{"unseal"}, values{"track"}, values{"untrack"}, values{"delta"},
                     values{"delta", true}, values{"restore", snap}, values{"apply", snap}}) {
    const std::string name = cmd.at(0).as_string();
    EXPECT_EQ(call_error(rt, ".p", std::move(cmd)),
              "entity 'test.player' (test.player): '" + name +
                  "' is for the upgrade machinery only (sent with entity::upgrade_key())");
  }
  EXPECT_EQ(call_error(rt, ".p", {"__entity_upgrade:0000000000000000", "seal"}),
            "entity 'test.player' (test.player): unknown command '__entity_upgrade:0000000000000000'")
      << "a guessed key is just an unknown command";
  EXPECT_FALSE(call(rt, ".p", {"info"}).at(0).as_table().find("sealed")->as_boolean());
  EXPECT_FALSE(call(rt, ".p", {"info"}).at(0).as_table().find("tracking")->as_boolean());
  call(rt, ".p", {"set", "bob", player_value("Bob", 1)});  // not sealed: writes work
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 2);
}

TEST_F(EntityService, IterateIsPagedByCursorInKeyOrder) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();
  for (int i = 0; i < 25; ++i) call(rt, ".p", {"set", "k" + std::to_string(100 + i), player_value("x", i)});

  std::vector<std::string> seen;
  lua_value cursor;
  int pages = 0;
  do {
    auto r = call(rt, ".p", {"iterate", cursor, 10});
    ASSERT_EQ(r.size(), 2u);
    for (const auto& [k, v] : r[0].as_table().hash) seen.push_back(k.as_string());
    cursor = r[1];
    ++pages;
    if (pages == 1) {
      // Changes between pages: a deleted key behind the cursor and one ahead, a new one ahead.
      call(rt, ".p", {"delete", "k100"});
      call(rt, ".p", {"delete", "k120"});
      call(rt, ".p", {"set", "k999", player_value("late", 1)});
    }
  } while (!cursor.is_nil());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);  // 25 - k120 + k999; k100 was already seen
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "k120"), 0);
  EXPECT_EQ(seen.back(), "k999");
}

TEST_F(EntityService, TtlDeletesAtTheDeadline) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 1), 100});
  call(rt, ".p", {"set", "bob", player_value("Bob", 1)});
  EXPECT_TRUE(call(rt, ".p", {"expire", "bob", 250}).at(0).as_boolean());
  EXPECT_FALSE(call(rt, ".p", {"expire", "nobody", 250}).at(0).as_boolean());
  EXPECT_EQ(call(rt, ".p", {"ttl", "ann"}).at(0).as_integer(), 100);
  EXPECT_TRUE(call(rt, ".p", {"ttl", "nobody"}).at(0).is_nil());

  clk.advance(rt, 90ms);
  rt.run_until_idle();
  EXPECT_EQ(call(rt, ".p", {"ttl", "ann"}).at(0).as_integer(), 10);
  EXPECT_FALSE(call(rt, ".p", {"get", "ann"}).at(0).is_nil());
  clk.advance(rt, 10ms);
  rt.run_until_idle();
  EXPECT_TRUE(call(rt, ".p", {"get", "ann"}).at(0).is_nil());
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 1);

  // persist removes the expiry; set keeps it.
  call(rt, ".p", {"set", "bob", player_value("Bob", 2)});
  EXPECT_EQ(call(rt, ".p", {"ttl", "bob"}).at(0).as_integer(), 150);
  EXPECT_TRUE(call(rt, ".p", {"persist", "bob"}).at(0).as_boolean());
  EXPECT_TRUE(call(rt, ".p", {"ttl", "bob"}).at(0).is_nil());
  clk.advance(rt, 500ms);
  rt.run_until_idle();
  EXPECT_FALSE(call(rt, ".p", {"get", "bob"}).at(0).is_nil());
}

TEST_F(EntityService, NamedTimersRunHooksOrNotify) {
  std::vector<values> notified;
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<sink>(&notified), {}, {".game"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(),
                       {lua_value(lua_table{}.set("id", "players2").set("notify", ".game"))}, {".q"})
                  .has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 100)});
  EXPECT_TRUE(call(rt, ".p", {"schedule", "ann", "regen", 50}).at(0).as_boolean());
  auto t = call(rt, ".p", {"timers", "ann"}).at(0);
  ASSERT_EQ(t.as_table().hash.size(), 1u);
  EXPECT_EQ(t.as_table().hash[0].first.as_string(), "regen");
  EXPECT_EQ(t.as_table().hash[0].second.as_integer(), 50);

  clk.advance(rt, 40ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 100);
  clk.advance(rt, 10ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 110);
  // The hook re-armed itself for +100 ms, twice (it stops at 130).
  clk.advance(rt, 100ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 120);
  clk.advance(rt, 100ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 130);
  EXPECT_TRUE(call(rt, ".p", {"timers", "ann"}).at(0).as_table().hash.empty());

  // A cancelled timer does not fire.
  call(rt, ".p", {"schedule", "ann", "regen", 30});
  EXPECT_TRUE(call(rt, ".p", {"cancel", "ann", "regen"}).at(0).as_boolean());
  EXPECT_FALSE(call(rt, ".p", {"cancel", "ann", "regen"}).at(0).as_boolean());
  clk.advance(rt, 100ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 130);

  // No hook for "dance": with a notify address, the system service hears about it.
  call(rt, ".q", {"set", "bob", player_value("Bob", 1)});
  call(rt, ".q", {"schedule", "bob", "dance", 20});
  clk.advance(rt, 20ms);
  rt.run_until_idle();
  ASSERT_EQ(notified.size(), 1u);
  EXPECT_EQ(notified[0], (values{"timer", "players2", "bob", "dance"}));
}

TEST_F(EntityService, SealedStoreRefusesWritesHoldsTimersAndStillApplies) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 100)});
  call(rt, ".p", {"schedule", "ann", "regen", 50});
  call(rt, ".p", {entity::upgrade_key(), "track"});
  call(rt, ".p", {"set", "bob", player_value("Bob", 7)});
  // The final delta seals in the same turn: nothing can slip in between.
  const values delta = call(rt, ".p", {entity::upgrade_key(), "delta", true});
  ASSERT_TRUE(delta.at(0).is_string());
  EXPECT_TRUE(call(rt, ".p", {"info"}).at(0).as_table().find("sealed")->as_boolean());
  for (values w : {values{"set", "cid", player_value("Cid", 1)}, values{"mutate", "ann", "heal", 5},
                   values{"delete", "ann"}, values{"update", "ann", "hp", 1}, values{"expire", "ann", 10},
                   values{"schedule", "ann", "regen", 10}, values{"cancel", "ann", "regen"}, values{"clear"}}) {
    const std::string cmd = w.at(0).as_string();
    EXPECT_NE(call_error(rt, ".p", std::move(w)).find("sealed for an upgrade, '" + cmd + "' refused"), std::string::npos)
        << cmd;
  }
  // Reads still work; the due timer does not fire while sealed.
  clk.advance(rt, 60ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 100);
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 2);
  // apply works on a sealed store (the new worker's side).
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {lua_value(lua_table{}.set("id", "p2"))}, {".q"})
                  .has_value());
  call(rt, ".q", {entity::upgrade_key(), "seal"});
  EXPECT_EQ(call(rt, ".q", {entity::upgrade_key(), "apply", delta.at(0)}).at(0).as_integer(), 1);
  EXPECT_EQ(as_player(call(rt, ".q", {"get", "bob"}).at(0)).hp, 7);
  // Unsealed, the overdue timer fires at the next tick and writes work again.
  call(rt, ".p", {entity::upgrade_key(), "unseal"});
  clk.advance(rt, 10ms);
  rt.run_until_idle();
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "ann"}).at(0)).hp, 110);
  call(rt, ".p", {"set", "cid", player_value("Cid", 1)});
  EXPECT_EQ(call(rt, ".p", {"count"}).at(0).as_integer(), 3);
}

TEST_F(EntityService, IntegerKeysAndMutations) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  install_service_types(rt);
  auto h = rt.spawn("entity:test.counter", {}, {".c"});
  ASSERT_TRUE(h.has_value()) << h.error();
  rt.start();
  call(rt, ".c", {"set", 7, lua_value(lua_table{}.set("n", 1))});
  EXPECT_EQ(call(rt, ".c", {"mutate", 7, "incr"}).at(0).as_integer(), 2);
  EXPECT_EQ(call(rt, ".c", {"mutate", 7, "incr", 40}).at(0).as_integer(), 42);
  EXPECT_EQ(call_error(rt, ".c", {"get", "7"}), "key: integer expected, got string");
  EXPECT_EQ(call_error(rt, ".c", {"mutate", 8, "incr"}), "entity 'test.counter' (test.counter): no entity 8");
  EXPECT_EQ(call(rt, ".c", {"mutate", 8, "upsert"}).at(0).as_integer(), 100);  // created, then run
  EXPECT_EQ(call(rt, ".c", {"mutate", 8, "upsert"}).at(0).as_integer(), 200);
  EXPECT_EQ(call(rt, ".c", {"delete", 8}).at(0).as_integer(), 1);
  auto it = call(rt, ".c", {"iterate"});
  ASSERT_EQ(it[0].as_table().hash.size(), 1u);
  EXPECT_EQ(it[0].as_table().hash[0].first.as_integer(), 7);
  EXPECT_TRUE(it[1].is_nil());
  auto info = call(rt, ".c", {"info"}).at(0);
  EXPECT_EQ(info.as_table().find("type")->as_string(), "test.counter");
  EXPECT_EQ(info.as_table().find("key")->as_string(), "integer");
  EXPECT_EQ(info.as_table().find("count")->as_integer(), 1);
}

/// Fills a store through messages: players, TTLs and named timers.
void populate(runtime& rt, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string k = "p" + std::to_string(1000 + i);
    call(rt, ".p", {"set", k, player_value("name " + std::to_string(i), 100 + i)});
    if (i % 4 == 0) call(rt, ".p", {"expire", k, 200 + 10 * i});
    if (i % 5 == 0) call(rt, ".p", {"schedule", k, "regen", 150});
  }
}

TEST_F(EntityService, SnapshotRestoresInAnotherRuntimeWithItsTimers) {
  manual_clock clk_a(10000);
  manual_clock clk_b(10000);  // another process on the same host: the same monotonic clock
  runtime a(manual());
  runtime b(manual());
  use_clock(a, &clk_a);
  use_clock(b, &clk_b);
  ASSERT_TRUE(a.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(b.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  a.start();
  b.start();
  populate(a, 40);
  clk_a.advance(a, 100ms);  // nothing due yet
  a.run_until_idle();

  const std::string snap = call(a, ".p", {"snapshot"}).at(0).as_string();
  auto h = check_snapshot(as_bytes(snap));
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(h->entries, 40u);

  clk_b.advance(b, 100ms);  // the same instant on b's clock (b's runtime time is its own)
  EXPECT_EQ(call(b, ".p", {entity::upgrade_key(), "restore", snap}).at(0).as_integer(), 40);
  EXPECT_EQ(call(b, ".p", {"snapshot"}).at(0).as_string(), snap);  // equal state, byte for byte
  EXPECT_EQ(call(b, ".p", {"iterate", lua_value{}, 1000}), call(a, ".p", {"iterate", lua_value{}, 1000}));

  // From here both run the same timeline: the same keys expire and regenerate at the
  // same instants.
  for (int step = 0; step < 60; ++step) {
    clk_a.advance(a, 10ms);
    clk_b.advance(b, 10ms);
    a.run_until_idle();
    b.run_until_idle();
    const auto ca = call(a, ".p", {"count"}).at(0).as_integer();
    const auto cb = call(b, ".p", {"count"}).at(0).as_integer();
    ASSERT_EQ(ca, cb) << "at step " << step;
    if (step == 10) {
      // 250 ms in: the regen timers (150 ms) have fired on both.
      EXPECT_EQ(as_player(call(b, ".p", {"get", "p1005"}).at(0)).hp, 115);
      EXPECT_EQ(as_player(call(b, ".p", {"get", "p1001"}).at(0)).hp, 101);
      EXPECT_TRUE(call(b, ".p", {"get", "p1000"}).at(0).is_nil());  // expired at +200 ms
    }
  }
  EXPECT_EQ(call(b, ".p", {"snapshot"}).at(0).as_string(), call(a, ".p", {"snapshot"}).at(0).as_string());
  // The last TTL (i = 36) ran out at +560 ms, before the end at +700 ms: every key with a TTL went.
  EXPECT_EQ(as_player(call(b, ".p", {"get", "p1005"}).at(0)).hp, 135);
  EXPECT_EQ(call(b, ".p", {"count"}).at(0).as_integer(), 30);
}

TEST_F(EntityService, OverdueTimersFireAtTheFirstTickAfterRestore) {
  manual_clock clk_a(0);
  manual_clock clk_b(0);
  runtime a(manual());
  runtime b(manual());
  use_clock(a, &clk_a);
  use_clock(b, &clk_b);
  ASSERT_TRUE(a.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(b.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  a.start();
  b.start();
  call(a, ".p", {"set", "ann", player_value("Ann", 1), 50});
  const std::string snap = call(a, ".p", {"snapshot"}).at(0).as_string();
  clk_b.set(80);  // the snapshot spent 80 ms in transit: ann's expiry is 30 ms overdue
  call(b, ".p", {entity::upgrade_key(), "restore", snap});
  EXPECT_EQ(call(b, ".p", {"ttl", "ann"}).at(0).as_integer(), 0);
  EXPECT_EQ(call(b, ".p", {"count"}).at(0).as_integer(), 1);
  clk_b.advance(b, 10ms);
  b.run_until_idle();
  EXPECT_EQ(call(b, ".p", {"count"}).at(0).as_integer(), 0);
}

TEST_F(EntityService, PreCopyThroughMessages) {
  manual_clock clk;
  runtime a(manual());
  runtime b(manual());
  use_clock(a, &clk);
  use_clock(b, &clk);
  ASSERT_TRUE(a.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(b.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  a.start();
  b.start();
  populate(a, 100);

  // The new side checks the header before any data moves.
  const std::string header = call(a, ".p", {"header"}).at(0).as_string();
  auto h = check_snapshot(as_bytes(header));
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(h->entries, 100u);

  call(a, ".p", {entity::upgrade_key(), "track"});
  lua_value cursor;
  int pages = 0;
  do {
    auto r = call(a, ".p", {"snapshot_page", cursor, 30});
    call(b, ".p", {entity::upgrade_key(), "apply", r.at(0)});
    cursor = r.at(1);
    call(a, ".p", {"mutate", "p1001", "heal", 1});  // traffic during the copy
    call(a, ".p", {"delete", "p10" + std::to_string(50 + pages)});
    ++pages;
  } while (!cursor.is_nil());
  EXPECT_EQ(pages, 4);
  auto ch = call(a, ".p", {"changes"});
  EXPECT_EQ(ch.at(0).as_integer(), 1);  // p1001
  EXPECT_EQ(ch.at(1).as_integer(), 4);  // p1050..p1053
  const std::string delta = call(a, ".p", {entity::upgrade_key(), "delta"}).at(0).as_string();
  auto applied = call(b, ".p", {entity::upgrade_key(), "apply", delta});
  EXPECT_EQ(applied.at(0).as_integer(), 1);
  EXPECT_EQ(applied.at(1).as_integer(), 3);  // p1050 went before its page was copied
  EXPECT_EQ(call(a, ".p", {"changes"}).at(0).as_integer(), 0);  // delta set a new mark
  EXPECT_EQ(call(b, ".p", {"snapshot"}).at(0).as_string(), call(a, ".p", {"snapshot"}).at(0).as_string());
}

TEST_F(EntityService, BadSnapshotIsAnErrorReplyAndTheStoreStaysEmpty) {
  manual_clock clk;
  runtime a(manual());
  use_clock(a, &clk);
  ASSERT_TRUE(a.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(a.spawn(std::make_unique<entity_service<profile_v2>>(), {}, {".profiles"}).has_value());
  a.start();
  populate(a, 5);
  std::string snap = call(a, ".p", {"snapshot"}).at(0).as_string();
  // Into the wrong type's service.
  EXPECT_EQ(call_error(a, ".profiles", {entity::upgrade_key(), "restore", snap}),
            "entity snapshot of 'test.profile': the snapshot is of entity type 'test.player'");
  snap.resize(snap.size() - 3);
  call(a, ".p", {"clear"});
  EXPECT_NE(call_error(a, ".p", {entity::upgrade_key(), "restore", snap}).find("truncated"), std::string::npos);
  EXPECT_EQ(call(a, ".p", {"count"}).at(0).as_integer(), 0);
  EXPECT_EQ(call(a, ".p", {"info"}).at(0).as_table().find("timers")->as_integer(), 0);
}

TEST_F(EntityService, OlderSnapshotVersionThroughTheService) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<profile_v2>>(), {}, {".profiles"}).has_value());
  rt.start();
  store<profile_v1> old_binary(describe<profile_v1>("test.profile"), &clk);
  old_binary.set("ann", profile_v1{"Ann", 9});
  byte_buffer b;
  old_binary.snapshot(b);
  ASSERT_TRUE(check_snapshot(b).has_value());
  call(rt, ".profiles", {entity::upgrade_key(), "restore", std::string(as_chars(b))});
  auto v = call(rt, ".profiles", {"get", "ann"}).at(0);
  EXPECT_EQ(v.as_table().find("score")->as_integer(), 9);
  EXPECT_EQ(v.as_table().find("title")->as_string(), "from v1");
}

TEST_F(EntityService, DirectoryListsServicesByStableId) {
  directory dir;
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  attach_directory(rt, &dir);
  auto p = rt.spawn(std::make_unique<entity_service<player>>(), {lua_value(lua_table{}.set("id", "players"))}, {".p"});
  auto c = rt.spawn(std::make_unique<entity_service<counter, std::int64_t>>(), {}, {".c"});
  ASSERT_TRUE(p.has_value() && c.has_value());
  auto dup = rt.spawn(std::make_unique<entity_service<player>>(), {lua_value(lua_table{}.set("id", "players"))});
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().find("entity id 'players' is already used by"), std::string::npos) << dup.error();
  rt.start();
  auto l = dir.list();
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0], (directory::entry{"players", "test.player", *p, nullptr}));
  EXPECT_EQ(l[1], (directory::entry{"test.counter", "test.counter", *c, nullptr}));
  rt.shutdown();
  EXPECT_TRUE(dir.list().empty());
}

/// A system service: logic only, reaching the data through the typed client.
class healer : public actor::dispatch_service {
 public:
  healer() {
    on("heal_all", [this](actor::context& ctx, values& a) -> actor::task<values> {
      std::int64_t total = 0;
      for (const auto& k : a) {
        auto g = players_.get(ctx, k.as_string());
        auto p = co_await g;
        if (!p) continue;
        p->hp += 5;
        auto s = players_.set(ctx, k.as_string(), *p);
        co_await s;
        total += p->hp;
      }
      auto m = counters_.mutate(ctx, 1, "incr");
      auto r = co_await m;
      auto rm = players_.remove(ctx, "nobody");
      const bool removed = co_await rm;
      co_return values{total, r.at(0), removed};
    });
  }

 private:
  client<player> players_{".p"};
  client<counter, std::int64_t> counters_{".c"};
};

TEST_F(EntityService, SystemServiceUsesTheTypedClient) {
  manual_clock clk;
  runtime rt(manual());
  use_clock(rt, &clk);
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<player>>(), {}, {".p"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<counter, std::int64_t>>(), {}, {".c"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<healer>(), {}, {".healer"}).has_value());
  rt.start();
  call(rt, ".p", {"set", "ann", player_value("Ann", 10)});
  call(rt, ".p", {"set", "bob", player_value("Bob", 20)});
  call(rt, ".c", {"set", 1, lua_value(lua_table{}.set("n", 0))});
  auto r = call(rt, ".healer", {"heal_all", "ann", "bob", "zed"});
  EXPECT_EQ(r, (values{40, 1, false}));
  EXPECT_EQ(as_player(call(rt, ".p", {"get", "bob"}).at(0)).hp, 25);
}

// Threaded: callers on several threads, the monotonic clock, a timer noticed through a
// notify service (waited for by a future, not a sleep). For TSan.
class promise_sink : public actor::service {
 public:
  explicit promise_sink(std::promise<values>* p) : p_(p) {}
  actor::task<values> handle(actor::context&, actor::message& m) override {
    if (!done_) p_->set_value(m.args);
    done_ = true;
    co_return values{};
  }

 private:
  std::promise<values>* p_;
  bool done_ = false;
};

TEST_F(EntityService, ThreadedCallersAndARealTimer) {
  std::promise<values> fired;
  runtime_options o;
  o.threads = 2;
  o.tick = 5ms;
  o.call_timeout = 10000ms;
  runtime rt(o);
  ASSERT_TRUE(rt.spawn(std::make_unique<promise_sink>(&fired), {}, {".game"}).has_value());
  ASSERT_TRUE(rt.spawn(std::make_unique<entity_service<counter, std::int64_t>>(),
                       {lua_value(lua_table{}.set("notify", ".game"))}, {".c"})
                  .has_value());
  rt.start();
  ASSERT_TRUE(rt.call(".c", {"set", 1, lua_value(lua_table{}.set("n", 0))}).get().has_value());
  constexpr int threads = 4;
  constexpr int per_thread = 200;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&rt] {
      for (int i = 0; i < per_thread; ++i) {
        auto r = rt.call(".c", {"mutate", 1, "incr"}).get();
        ASSERT_TRUE(r.has_value()) << r.error().text;
      }
    });
  }
  for (auto& t : ts) t.join();
  auto r = rt.call(".c", {"get", 1}).get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->at(0).as_table().find("n")->as_integer(), threads * per_thread);

  ASSERT_TRUE(rt.call(".c", {"schedule", 1, "ping", 20}).get().has_value());
  auto f = fired.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), (values{"timer", "test.counter", 1, "ping"}));
  rt.shutdown();
}

}  // namespace
}  // namespace csk::entity::test
