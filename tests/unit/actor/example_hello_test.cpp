// The hello example: its config file loads, its services answer, its timers tick
// (manual scheduler), and the hello-node program runs as a real process.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "common/config/load_config.hpp"
#include "examples/service/hello.hpp"
#include "worker/node.hpp"

namespace csk {
namespace {

using namespace std::chrono_literals;

TEST(ExampleHello, ConfigBootsAndServicesAnswerAndTick) {
  auto cfg = load_config_file(std::string(CSK_SOURCE_DIR) + "/examples/service/config.yaml");
  ASSERT_TRUE(cfg.has_value()) << cfg.error();
  auto opts = runtime_options_from(cfg->runtime);
  EXPECT_EQ(opts.threads, 2);
  EXPECT_EQ(opts.call_timeout, 3000ms);
  opts.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(opts);
  examples::register_hello_types(rt);
  ASSERT_TRUE(boot_services(rt, cfg->services).has_value());
  EXPECT_EQ(rt.handles_of(".hello").size(), 2u);
  rt.start();

  auto g1 = rt.call(".hello", {"hello", "ann"});
  auto g2 = rt.call(".hello", {"hello", "bob"});
  rt.run_until_idle();
  auto r1 = g1.get();
  auto r2 = g2.get();
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_EQ(r1->at(0).as_string(), "hello, ann!");
  EXPECT_EQ(r1->at(1).as_integer(), 1);
  EXPECT_EQ(r2->at(1).as_integer(), 2);

  for (int i = 0; i < 3; ++i) {  // interval_ms: 1000 in the config; each tick re-arms
    rt.advance_time(999ms);
    rt.run_until_idle();
    rt.advance_time(1ms);
    rt.run_until_idle();
  }
  for (int i = 0; i < 2; ++i) {
    auto s = rt.call(".hello", {"stats"});
    rt.run_until_idle();
    auto r = s.get();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->at(0).as_integer(), 1);  // each instance greeted once (round robin)
    EXPECT_EQ(r->at(1).as_integer(), 3);  // and saw three ticks
  }
}

TEST(ExampleHello, BootNamesTheFailingEntry) {
  auto cfg = load_config_string("services:\n  - type: counter\n    name: .c\n  - type: nosuch\n");
  ASSERT_TRUE(cfg.has_value()) << cfg.error();
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(o);
  examples::register_hello_types(rt);
  auto r = boot_services(rt, cfg->services);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("services[1] (nosuch)"), std::string::npos) << r.error();
}

TEST(ExampleHello, ProgramRunsTheDemo) {
  const std::string cmd = std::string(CSK_HELLO_NODE) + " " + CSK_SOURCE_DIR + "/examples/service/config.yaml --demo world 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find("hello, world! visitor #1\nhello, world! visitor #2\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace csk
