// The config loader and the gate service agree on a gate's options: the same ranges
// (common/config/gate_options.hpp), and the options table the worker builds from a
// `gates:` entry (gate_options_table) is what gate_options_from accepts.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config/gate_options.hpp"
#include "common/config/load_config.hpp"
#include "services/gate/gate.hpp"

namespace csk::test {
namespace {

struct limit {
  const char* key;
  gate_limits::range range;
};

const std::vector<limit> limits = {
    {"max_connections", gate_limits::max_connections}, {"max_in_flight", gate_limits::max_in_flight},
    {"max_outbound_kb", gate_limits::max_outbound_kb}, {"idle_timeout_ms", gate_limits::idle_timeout_ms},
    {"max_message", gate_limits::max_message}, {"message_timeout_ms", gate_limits::message_timeout_ms},
};

std::string gate_yaml(const std::string& key, std::int64_t value) {
  return "gates:\n  - name: g\n    listen: \"127.0.0.1:0\"\n    type: t\n    " + key + ": " + std::to_string(value) + "\n";
}

TEST(GateOptions, TheLoaderRefusesWhatTheGateRefuses) {
  for (const auto& [key, r] : limits) {
    SCOPED_TRACE(key);
    for (const std::int64_t bad : {r.min - 1, r.max + 1}) {
      auto loaded = load_config_string(gate_yaml(key, bad));
      ASSERT_FALSE(loaded.has_value()) << key << " = " << bad << " loaded";
      EXPECT_EQ(loaded.error(), "gates[0]." + std::string(key) + " (line 5): must be between " + std::to_string(r.min) +
                                    " and " + std::to_string(r.max) + ", got " + std::to_string(bad));
      lua_table t;
      t.set(key, bad);
      auto o = gate::gate_options_from(lua_value(std::move(t)));
      ASSERT_FALSE(o.has_value()) << key << " = " << bad << " accepted by the gate";
      EXPECT_NE(o.error().find(key), std::string::npos) << o.error();
    }
  }
}

TEST(GateOptions, BoundariesTheLoaderAcceptsTheGateAccepts) {
  for (const auto& [key, r] : limits) {
    SCOPED_TRACE(key);
    for (const std::int64_t good : {r.min, r.max}) {
      auto loaded = load_config_string(gate_yaml(key, good));
      ASSERT_TRUE(loaded.has_value()) << loaded.error();
      ASSERT_EQ(loaded->gates.size(), 1u);
      auto o = gate::gate_options_from(lua_value(gate_options_table(loaded->gates[0])));
      ASSERT_TRUE(o.has_value()) << key << " = " << good << ": " << o.error();
    }
  }
}

TEST(GateOptions, TheOptionsTableCarriesEveryKey) {
  auto loaded = load_config_string(R"(gates:
  - name: g
    listen: "127.0.0.1:7000"
    type: t
    max_connections: 1000000
    max_in_flight: 3
    max_outbound_kb: 2097152
    idle_timeout_ms: 4294967295
    max_message: 2147483648
    message_timeout_ms: 2500
)");
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  auto o = gate::gate_options_from(lua_value(gate_options_table(loaded->gates[0])));
  ASSERT_TRUE(o.has_value()) << o.error();
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 7000);
  EXPECT_EQ(o->max_connections, 1000000u);
  EXPECT_EQ(o->max_in_flight, 3u);
  EXPECT_EQ(o->max_outbound_bytes, std::size_t{2097152} << 10);
  EXPECT_EQ(o->idle_timeout, std::chrono::milliseconds(4294967295));
  EXPECT_EQ(o->max_message, std::size_t{2147483648});
  EXPECT_EQ(o->message_timeout, std::chrono::milliseconds(2500));
}

TEST(GateOptions, DefaultsAgree) {
  auto loaded = load_config_string("gates:\n  - {name: g, listen: \"127.0.0.1:0\", type: t}\n");
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  auto o = gate::gate_options_from(lua_value(gate_options_table(loaded->gates[0])));
  ASSERT_TRUE(o.has_value()) << o.error();
  const gate::gate_options defaults;
  EXPECT_EQ(o->max_connections, defaults.max_connections);
  EXPECT_EQ(o->max_in_flight, defaults.max_in_flight);
  EXPECT_EQ(o->max_outbound_bytes, defaults.max_outbound_bytes);
  EXPECT_EQ(o->idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(o->max_message, defaults.max_message);
  EXPECT_EQ(o->message_timeout, defaults.message_timeout);
}

}  // namespace
}  // namespace csk::test
