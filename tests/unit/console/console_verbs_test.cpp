// The console's verbs (worker/console.hpp) on a real threaded runtime: what each answers,
// in JSON and in skynet's text, and what they do (kill retires a service and answers its
// callers, start spawns one, setenv refuses a key set before, unknown and unsupported
// verbs say why).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/actor/runtime.hpp"
#include "common/wire/seri.hpp"
#include "tests/support/temp_dir.hpp"
#include "worker/console.hpp"
#include "worker/message_log.hpp"

namespace csk::console {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using actor::values;

/// echo (answers its args), nap N (sleeps N ms, then answers nothing).
class echo_service : public actor::dispatch_service {
 public:
  echo_service() {
    on_sync("echo", [](actor::context&, values& a) { return a; });
    on("nap", [](actor::context& ctx, values& a) -> actor::task<values> {
      co_await ctx.sleep(std::chrono::milliseconds(a.at(0).as_integer()));
      co_return values{};
    });
    on_sync("tag", [](actor::context& ctx, values&) { return values{ctx.trace_tag()}; });
  }
  void signal(int sig) override { last_signal.store(sig); }
  static inline std::atomic<int> last_signal{-1};
};

template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

class ConsoleVerbs : public test::temp_dir_test {
 protected:
  ConsoleVerbs() : rt_(options()) {
    rt_.register_type("echo", [] { return std::make_unique<echo_service>(); });
    echo_ = *rt_.spawn("echo", {}, {".echo", "@echo"});
    rt_.start();
    p_.rt = &rt_;
    p_.started = std::chrono::steady_clock::now();
    p_.call_timeout = 2000ms;
    p_.env = &env_;
    env_.set("thread", "2");
  }
  ~ConsoleVerbs() override { rt_.shutdown(); }

  static actor::runtime_options options() {
    actor::runtime_options o;
    o.threads = 2;
    o.harbor = 3;
    return o;
  }
  answer ask(std::string_view line) { return run(p_, line); }
  std::string text(std::string_view line) { return render_text(run(p_, line)); }
  std::string handle() const { return actor::handle_string(echo_); }

  env_table env_;
  actor::runtime rt_;
  actor::handle_t echo_ = 0;
  parts p_;
};

TEST_F(ConsoleVerbs, ListShowsTypeAndNames) {
  const answer a = ask("list");
  ASSERT_TRUE(a.ok) << a.error;
  ASSERT_EQ(a.value.size(), 1u);
  EXPECT_EQ(a.value[0]["type"], "echo");
  EXPECT_EQ(a.value[0]["names"], json::array({".echo", "@echo"}));
  EXPECT_EQ(text("list"), handle() + "\techo .echo @echo\n<CMD OK>\n");
}

TEST_F(ConsoleVerbs, StatCountsEachServicesMessages) {
  ASSERT_TRUE(ask("call .echo echo x").ok);
  const answer a = ask("stat");
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.value["services"], 1);
  ASSERT_EQ(a.value["by_service"].size(), 1u);
  EXPECT_GE(a.value["by_service"][0]["messages"].get<int>(), 1);
  const std::string t = text("stat");
  EXPECT_EQ(t.rfind(handle() + "\tcpu:", 0), 0u) << t;
  EXPECT_NE(t.find("\tmessage:"), std::string::npos) << t;
  EXPECT_NE(t.find("\tmqlen:0\ttask:0\n<CMD OK>\n"), std::string::npos) << t;
}

TEST_F(ConsoleVerbs, CallTakesSkynetsCommasAndJsonArgs) {
  const answer a = ask(R"(call .echo "echo", "hi", 1, {"k":2})");
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.value, json::parse(R"(["hi",1,{"k":2}])"));
  EXPECT_EQ(text("call @echo echo hi"), "1\thi\nn\t1\n<CMD OK>\n");
  const answer bad = ask("call .echo frob");
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.error.find("unknown command"), std::string::npos) << bad.error;
}

TEST_F(ConsoleVerbs, AddressesAsSkynetWritesThem) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "%x", echo_ & actor::handle_mask);
  EXPECT_TRUE(ask(std::string("info ") + hex).ok) << "hex digits without ':' get the harbor, as skynet's adjust_address";
  EXPECT_TRUE(ask("info " + handle()).ok);
  EXPECT_EQ(text("info .nobody"), "no service .nobody\n<CMD Error>\n");
  EXPECT_EQ(text("info zz"), "bad address 'zz' (.name, @name or :0000000a)\n<CMD Error>\n");
  EXPECT_EQ(text("info"), "usage: info ADDR\n<CMD Error>\n");
}

TEST_F(ConsoleVerbs, PingAnswersSkynetTicks) {
  const answer a = ask("ping .echo");
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_TRUE(a.value["alive"].get<bool>());
  const std::string t = text("ping .echo");
  // skynet's ticks (1/100 s), a whole number: how many depends on the machine (a loaded
  // one under TSan took 20 ms), so only the shape is asserted.
  EXPECT_TRUE(std::regex_match(t, std::regex("[0-9]+\n<CMD OK>\n"))) << t;
}

TEST_F(ConsoleVerbs, TaskCountsSuspendedHandlersAndKillAnswersTheirCallers) {
  auto napping = rt_.call(echo_, values{"nap", 60000}, 30s);
  ASSERT_TRUE(eventually([&] { return ask("task .echo").value.value("tasks", 0) == 1; })) << text("task .echo");
  EXPECT_NE(text("stat").find("\ttask:1\n"), std::string::npos) << text("stat");
  EXPECT_EQ(text("kill .echo"), handle() + "\techo .echo @echo\n<CMD OK>\n");
  ASSERT_EQ(napping.wait_for(10s), std::future_status::ready);
  auto r = napping.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, actor::call_errc::service_exited);
  EXPECT_TRUE(eventually([&] { return ask("list").value.empty(); })) << text("list");
  EXPECT_EQ(text("kill .echo"), "no service .echo\n<CMD Error>\n");
}

TEST_F(ConsoleVerbs, KillOfAnIdleServiceRetiresIt) {
  ASSERT_TRUE(ask("call .echo echo x").ok);  // it has run a turn and sleeps now
  EXPECT_EQ(text("exit .echo"), "<CMD OK>\n");
  EXPECT_TRUE(eventually([&] { return !rt_.alive(echo_); }));
  EXPECT_FALSE(ask("call .echo echo x").ok);
}

TEST_F(ConsoleVerbs, StartSpawnsARegisteredType) {
  const answer a = ask("start echo");
  ASSERT_TRUE(a.ok) << a.error;
  const std::string h = a.value["handle"];
  EXPECT_NE(text("list").find(h + "\techo\n"), std::string::npos) << text("list");
  EXPECT_EQ(ask("list").value.size(), 2u);
  const answer bad = ask("start nosuchtype");
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.error.find("unknown service type 'nosuchtype'"), std::string::npos) << bad.error;
}

TEST_F(ConsoleVerbs, ServiceListsNamedServices) {
  EXPECT_EQ(text("service"), ".echo\t" + handle() + "\n@echo\t" + handle() + "\n<CMD OK>\n");
}

TEST_F(ConsoleVerbs, GetenvAndSetenvAsSkynet) {
  EXPECT_EQ(text("getenv thread"), "thread\t2\n<CMD OK>\n");
  EXPECT_EQ(text("getenv labx"), "labx\tnil\n<CMD OK>\n");
  EXPECT_EQ(text("setenv labx 1"), "<CMD OK>\n");
  EXPECT_EQ(text("getenv labx"), "labx\t1\n<CMD OK>\n");
  EXPECT_EQ(text("setenv labx 2"), "Can't setenv exist key : labx\n<CMD Error>\n");
}

TEST_F(ConsoleVerbs, UnknownAndUnsupportedVerbsSayWhy) {
  EXPECT_EQ(text("nosuch"), "Invalid command, type help for command list\n\n<CMD Error>\n");
  EXPECT_EQ(text("\r"), "Invalid command, type help for command list\n\n<CMD Error>\n") << "a line of blanks, as skynet";
  for (const char* verb : {"inject", "snax", "clearcache", "debug", "jmem", "dbgcmd", "killtask", "uniqtask", "log",
                           }) {
    const answer a = ask(std::string(verb) + " .echo");
    EXPECT_FALSE(a.ok) << verb;
    EXPECT_EQ(a.error.rfind(std::string(verb) + ": ", 0), 0u) << a.error;
    EXPECT_EQ(a.error.find('\n'), std::string::npos) << "one line: " << a.error;
  }
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string hex_of(const byte_buffer& b) {
  std::string out;
  char two[3];
  for (auto c : b) {
    std::snprintf(two, sizeof two, "%02x", c);
    out += two;
  }
  return out;
}

TEST(MessageLogLine, IsSkynetLogOutput) {
  const std::uint8_t payload[] = {0x04, 0x0a, 0xff};
  EXPECT_EQ(message_log_line(0x0100000a, 10, 3, 1234, payload), ":0100000a 10 3 1234 040aff\n");
  EXPECT_EQ(message_log_line(0, 1, 0xffffffffu, 0, {}), ":00000000 1 -1 0 \n") << "session as skynet's int";
  EXPECT_EQ(skynet_ptype(actor::msg_type::call), 10);
  EXPECT_EQ(skynet_ptype(actor::msg_type::timer), 1);
  EXPECT_EQ(skynet_ptype(actor::msg_type::error), 7);
  actor::message err;
  err.type = actor::msg_type::error;
  err.error = "no";
  EXPECT_EQ(message_payload(err), (byte_buffer{'n', 'o'}));
}

// skynet's logon: <logpath>/%08x.log, a line per message (":source 10 session time hex"),
// opened and closed with skynet's lines; logpath from the env table, else parts' log_dir.
TEST_F(ConsoleVerbs, LogonWritesSkynetsPerServiceLogFileUntilLogoff) {
  ASSERT_TRUE(env_.set("logpath", dir_.string()));
  EXPECT_EQ(text("logon .echo"), "<CMD OK>\n");
  ASSERT_TRUE(ask("call .echo echo hi").ok);
  EXPECT_EQ(text("logoff .echo"), "<CMD OK>\n");
  char name[16];
  std::snprintf(name, sizeof name, "%08x.log", echo_);
  const auto file = dir_ / name;
  ASSERT_TRUE(eventually([&] { return read_file(file).find("close time: ") != std::string::npos; }))
      << "the runtime lets go of the file once the turn that had it ends: " << read_file(file);
  const std::string got = read_file(file);
  EXPECT_EQ(got.rfind("open time: ", 0), 0u) << got;
  const std::string payload = hex_of(*seri::pack(values{"echo", "hi"}));
  const std::size_t at = got.find(" " + payload + "\n");
  ASSERT_NE(at, std::string::npos) << "the call's arguments, lua-seri in hex: " << got;
  const std::size_t line = got.rfind('\n', at) + 1;
  EXPECT_EQ(got[line], ':') << got;
  EXPECT_NE(got.find(" 10 ", line), std::string::npos) << "PTYPE_LUA: " << got;
  EXPECT_EQ(ask("call .echo echo more").ok, true);
  EXPECT_EQ(read_file(file).find(hex_of(*seri::pack(values{"echo", "more"}))), std::string::npos) << "after logoff";
}

TEST_F(ConsoleVerbs, LogonWithoutLogpathUsesTheNodesLogDirAndSaysWhyItCannotOpen) {
  p_.log_dir = dir_.string();
  EXPECT_EQ(text("logon .echo"), "<CMD OK>\n");
  char name[16];
  std::snprintf(name, sizeof name, "%08x.log", echo_);
  EXPECT_TRUE(std::filesystem::exists(dir_ / name));
  EXPECT_EQ(text("logoff .echo"), "<CMD OK>\n");
  p_.log_dir = (dir_ / "missing").string();
  const answer a = ask("logon .echo");
  EXPECT_FALSE(a.ok);
  EXPECT_EQ(a.error.rfind("logon: cannot open " + p_.log_dir + "/", 0), 0u) << a.error;
  EXPECT_EQ(text("logon .nobody"), "no service .nobody\n<CMD Error>\n");
}

// skynet's `trace ADDR [proto] [on|off]`: on traces every request, off forces it off, no
// flag is the default again; only the "lua" protocol exists.
TEST_F(ConsoleVerbs, TraceSwitchesAServicesTracing) {
  const auto tag = [&] {
    const answer a = ask("call .echo tag");
    EXPECT_TRUE(a.ok) << a.error;
    return a.value.at(0).get<std::string>();
  };
  EXPECT_EQ(tag(), "");
  EXPECT_EQ(text("trace .echo on"), "<CMD OK>\n");
  EXPECT_EQ(tag().rfind(handle() + "-", 0), 0u);
  EXPECT_EQ(text("trace .echo"), "<CMD OK>\n");
  EXPECT_EQ(tag(), "");
  EXPECT_EQ(text("trace .echo lua on"), "<CMD OK>\n");
  EXPECT_NE(tag(), "");
  EXPECT_EQ(text("trace .echo lua off"), "<CMD OK>\n");
  EXPECT_EQ(tag(), "");
  EXPECT_EQ(text("trace .echo text on"), "trace: no protocol text in a C++ service (only lua)\n<CMD Error>\n");
  EXPECT_EQ(text("trace"), "usage: trace ADDR [proto] [on|off]\n<CMD Error>\n");
}

TEST_F(ConsoleVerbs, SignalCallsTheServicesHook) {
  EXPECT_EQ(text("signal .echo 3"), "<CMD OK>\n");
  EXPECT_EQ(echo_service::last_signal.load(), 3);
  EXPECT_EQ(text("signal .echo"), "<CMD OK>\n");
  EXPECT_EQ(echo_service::last_signal.load(), 0) << "skynet's default signal is 0";
  EXPECT_EQ(text("signal .echo x"), "signal: bad signal 'x' (a number)\n<CMD Error>\n");
}

TEST_F(ConsoleVerbs, HelpHasEverySkynetVerbSorted) {
  const answer a = ask("help");
  ASSERT_TRUE(a.ok);
  for (const char* verb : {"call", "clearcache", "cmem", "dbgcmd", "debug", "dumpheap", "exit", "gc", "getenv", "help",
                           "info", "inject", "jmem", "kill", "killtask", "list", "log", "logoff", "logon", "mem",
                           "netstat", "ping", "profactive", "service", "setenv", "signal", "snax", "start", "stat",
                           "task", "trace", "uniqtask"}) {
    EXPECT_TRUE(a.value.contains(verb)) << verb;
  }
  for (const char* ours : {"send", "journal", "checkpoint", "generations", "upgrade"}) EXPECT_TRUE(a.value.contains(ours)) << ours;
  const std::string t = text("help");
  EXPECT_EQ(t.rfind("call\tcall address ...\n", 0), 0u) << t;
  EXPECT_NE(t.find("\nhelp\tThis help message\n"), std::string::npos);
}

TEST_F(ConsoleVerbs, MemoryVerbs) {
  const answer mem = ask("mem");
  ASSERT_TRUE(mem.ok);
  EXPECT_GT(mem.value["VmRSS_kb"].get<std::uint64_t>(), 0u);
  EXPECT_NE(text("mem").find("VmRSS\t"), std::string::npos);
  bool released = false;
  p_.release_memory = [&] { released = true; };
  EXPECT_TRUE(ask("gc").ok);
  EXPECT_TRUE(released) << "gc gives the free memory back";
  const answer cmem = ask("cmem");
  EXPECT_EQ(cmem.value["block"], 0);
  EXPECT_GT(cmem.value["total"].get<std::uint64_t>(), 0u);
  // This test program links no heap profiler: the console says so, and that it is off.
  EXPECT_EQ(text("profactive"), "heap profilling is deactive\n<CMD OK>\n");
  EXPECT_FALSE(ask("profactive on").ok);
  EXPECT_FALSE(ask("dumpheap").ok);
}

TEST_F(ConsoleVerbs, SupervisorVerbsGoThroughItOrSayThereIsNone) {
  EXPECT_EQ(text("generations"), "generations: no supervisor (a standalone node)\n<CMD Error>\n");
  std::string asked;
  p_.supervisor = [&](const std::string& line) -> result<json, std::string> {
    asked = line;
    if (line == "generations") return json{{"ok", true}, {"answer", json::array({{{"generation", 1}, {"pid", 7}}})}};
    return json{{"ok", false}, {"error", "an upgrade is already in progress"}};
  };
  EXPECT_EQ(text("generations"), "1\tpid:7\n<CMD OK>\n");
  EXPECT_EQ(text("upgrade --timeout 5"), "an upgrade is already in progress\n<CMD Error>\n");
  EXPECT_EQ(asked, "upgrade --timeout 5");
}

}  // namespace
}  // namespace csk::console
