// The `debug_console:` key (common/config): its two forms, the loopback rule and the error
// that says how to lift it, CSK_DEBUG_CONSOLE_LISTEN, and the listener the supervisor binds.

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "common/config/load_config.hpp"
#include "tests/support/scoped_env.hpp"

namespace csk {
namespace {

using test::scoped_env;

class DebugConsoleConfig : public ::testing::Test {
 protected:
  scoped_env no_env_{debug_console_listen_env, nullptr};
  scoped_env no_cluster_env_{cluster_listen_env, nullptr};
};

TEST_F(DebugConsoleConfig, AbsentIsNone) {
  auto c = load_config_string("runtime: {threads: 1}\n");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_TRUE(c->debug_console.listen.empty());
  EXPECT_TRUE(listeners_of(*c)->empty());
}

TEST_F(DebugConsoleConfig, TheShortFormIsTheAddress) {
  auto c = load_config_string("debug_console: \"127.0.0.1:8000\"\n");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->debug_console.listen, "127.0.0.1:8000");
  EXPECT_FALSE(c->debug_console.allow_remote);
  auto l = listeners_of(*c);
  ASSERT_TRUE(l.has_value()) << l.error();
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0], (listener_spec{"debug_console", "127.0.0.1", 8000}));
}

TEST_F(DebugConsoleConfig, EveryLoopbackAddressIsAccepted) {
  for (const char* a : {"127.0.0.1:0", "127.1.2.3:8000", "[::1]:8000", "[::ffff:127.0.0.1]:8000"}) {
    auto c = load_config_string(std::string("debug_console: \"") + a + "\"\n");
    EXPECT_TRUE(c.has_value()) << a << ": " << c.error();
  }
}

TEST_F(DebugConsoleConfig, ANonLoopbackAddressIsRefusedWithHowToAllowIt) {
  auto c = load_config_string("runtime: {threads: 1}\ndebug_console: \"0.0.0.0:8000\"\n");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(),
            "debug_console (line 2): 0.0.0.0:8000 is not a loopback address, and the console runs any verb (call, "
            "kill, start) for whoever connects: give 127.0.0.1 or [::1], or to listen there anyway write "
            "debug_console: {listen: \"0.0.0.0:8000\", allow_remote: true}");
  for (const char* a : {"10.0.0.1:8000", "[::]:8000", "[2001:db8::1]:8000"}) {
    auto d = load_config_string(std::string("debug_console: \"") + a + "\"\n");
    ASSERT_FALSE(d.has_value()) << a;
    EXPECT_NE(d.error().find("allow_remote: true"), std::string::npos) << d.error();
  }
}

TEST_F(DebugConsoleConfig, AHostnameIsRefusedNotResolved) {
  auto c = load_config_string("debug_console: \"localhost:8000\"\n");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().rfind("debug_console (line 1): \"localhost\" is a hostname, not known to be loopback", 0), 0u)
      << c.error();
}

TEST_F(DebugConsoleConfig, AllowRemoteAcceptsAnyAddress) {
  auto c = load_config_string("debug_console: {listen: \"0.0.0.0:8000\", allow_remote: true}\n");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->debug_console.listen, "0.0.0.0:8000");
  EXPECT_TRUE(c->debug_console.allow_remote);
  EXPECT_TRUE(load_config_string("debug_console: {listen: \"node-a.example:8000\", allow_remote: true}\n").has_value());
  EXPECT_FALSE(load_config_string("debug_console: {listen: \"0.0.0.0:8000\", allow_remote: false}\n").has_value());
}

TEST_F(DebugConsoleConfig, BadValuesAreReported) {
  auto c = load_config_string("debug_console: {listen: \"127.0.0.1\", remote: true}\n");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().find("debug_console.listen (line 1): expected \"host:port\""), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("debug_console.remote (line 1): unknown key"), std::string::npos) << c.error();
  EXPECT_FALSE(load_config_string("debug_console: [1]\n").has_value());
  EXPECT_TRUE(load_config_string("debug_console: \"\"\n")->debug_console.listen.empty()) << "\"\" is none";
}

TEST_F(DebugConsoleConfig, TheEnvironmentSetsTheAddressUnderTheSameRule) {
  {
    scoped_env env(debug_console_listen_env, "127.0.0.1:9001");
    auto c = load_config_string("");
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ(c->debug_console.listen, "127.0.0.1:9001");
  }
  {
    scoped_env env(debug_console_listen_env, "0.0.0.0:9001");
    auto c = load_config_string("debug_console: \"127.0.0.1:8000\"\n");
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().rfind("CSK_DEBUG_CONSOLE_LISTEN (environment): 0.0.0.0:9001 is not a loopback address", 0), 0u)
        << c.error();
    EXPECT_TRUE(load_config_string("debug_console: {allow_remote: true}\n").has_value()) << "the file may allow it";
  }
}

TEST_F(DebugConsoleConfig, ItMayNotTakeAnotherListenersPort) {
  auto c = load_config_string("admin: {listen: \"127.0.0.1:9100\"}\ndebug_console: \"127.0.0.1:9100\"\n");
  ASSERT_TRUE(c.has_value()) << c.error();
  auto l = listeners_of(*c);
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error(), "debug_console: 127.0.0.1:9100 is also admin's address");
}

}  // namespace
}  // namespace csk
