// The console's text rendering (worker/console_text.hpp), pure: each verb's value against
// the lines real skynet prints for it (../shared/interop/console/telnet_transcript.txt),
// and the JSON rendering.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "worker/console_text.hpp"

namespace csk::console {
namespace {

using json = nlohmann::json;

std::string text(std::string verb, json value) { return render_text(answer{std::move(verb), true, std::move(value), {}}); }

std::string error_text(std::string verb, std::string why) { return render_text(answer{std::move(verb), false, {}, std::move(why)}); }

TEST(ConsoleText, HelpIsVerbTabDescriptionSorted) {
  const json help = {{"list", "List all the service"}, {"help", "This help message"}, {"call", "call address ..."}};
  EXPECT_EQ(text("help", help), "call\tcall address ...\nhelp\tThis help message\nlist\tList all the service\n<CMD OK>\n");
}

TEST(ConsoleText, ListIsAddressTabTypeAndNames) {
  const json list = json::array({{{"handle", ":0000000c"}, {"type", "lab_echo"}, {"names", {".echo", "@echo"}}},
                                 {{"handle", ":00000004"}, {"type", "cdummy"}, {"names", json::array()}},
                                 {{"handle", ":00000005"}, {"type", ""}, {"names", json::array()}}});
  EXPECT_EQ(text("list", list), ":00000004\tcdummy\n:00000005\t-\n:0000000c\tlab_echo .echo @echo\n<CMD OK>\n");
}

TEST(ConsoleText, StatHasSkynetsFourColumns) {
  const json stat = {{"services", 2},
                     {"by_service", json::array({{{"handle", ":00000009"}, {"cpu_ms", 3.1084}, {"messages", 11},
                                                  {"mailbox", 0}, {"tasks", 1}},
                                                 {{"handle", ":00000004"}, {"cpu_ms", 0.0}, {"messages", 5},
                                                  {"mailbox", 2}, {"tasks", 0}}})}};
  EXPECT_EQ(text("stat", stat),
            ":00000004\tcpu:0.0\tmessage:5\tmqlen:2\ttask:0\n"
            ":00000009\tcpu:0.003108\tmessage:11\tmqlen:0\ttask:1\n<CMD OK>\n");
}

TEST(ConsoleText, MemAndGcAreKbLinesOfTheProcess) {
  const json mem = {{"VmRSS_kb", 48460}, {"VmHWM_kb", 50000}, {"VmSize_kb", 123}};
  const std::string expected =
      "VmHWM\t50000.00 Kb (process peak resident)\nVmRSS\t48460.00 Kb (process resident)\n"
      "VmSize\t123.00 Kb (process virtual)\n<CMD OK>\n";
  EXPECT_EQ(text("mem", mem), expected);
  EXPECT_EQ(text("gc", mem), expected);
}

TEST(ConsoleText, UnknownVerbIsSkynetsWordsThenAnEmptyLine) {
  // The transcript, byte for byte: skynet prints the nil error as an empty line.
  EXPECT_EQ(error_text("nosuch", std::string(invalid_command)),
            "Invalid command, type help for command list\n\n<CMD Error>\n");
}

TEST(ConsoleText, AnErrorIsItsTextThenCmdError) {
  EXPECT_EQ(error_text("call", "call failed"), "call failed\n<CMD Error>\n");
}

TEST(ConsoleText, NothingToPrintIsJustCmdOk) {
  EXPECT_EQ(text("setenv", nullptr), "<CMD OK>\n");
  EXPECT_EQ(text("send", nullptr), "<CMD OK>\n");
}

TEST(ConsoleText, CallIsTablePackOfTheResults) {
  EXPECT_EQ(text("call", json::array({"hello", 42, 2.5, true, nullptr, {{"b", 2}, {"a", 1}}})),
            "1\thello\n2\t42\n3\t2.5\n4\ttrue\n5\tnil\n6\ta:1\tb:2\nn\t6\n<CMD OK>\n");
  EXPECT_EQ(text("call", json::array()), "n\t0\n<CMD OK>\n");
}

TEST(ConsoleText, PingIsTheRoundTripInSkynetTicks) {
  EXPECT_EQ(text("ping", {{"alive", true}, {"round_trip_us", 123.0}}), "0\n<CMD OK>\n");
  EXPECT_EQ(text("ping", {{"alive", true}, {"round_trip_us", 25000.0}}), "2\n<CMD OK>\n");
}

TEST(ConsoleText, GetenvKillStartServiceAreKeyTabValue) {
  EXPECT_EQ(text("getenv", {{"thread", "2"}}), "thread\t2\n<CMD OK>\n");
  EXPECT_EQ(text("getenv", {{"labx", nullptr}}), "labx\tnil\n<CMD OK>\n");
  EXPECT_EQ(text("kill", {{"handle", ":0000000c"}, {"description", "lab_echo .echo"}}), ":0000000c\tlab_echo .echo\n<CMD OK>\n");
  EXPECT_EQ(text("start", {{"handle", ":00000013"}, {"type", "lab_echo"}}), ":00000013\tlab_echo\n<CMD OK>\n");
  EXPECT_EQ(text("service", {{"@echo", {":0000000c"}}, {".kv", {":0000000d", ":0000000e"}}}),
            ".kv\t:0000000d :0000000e\n@echo\t:0000000c\n<CMD OK>\n");
  EXPECT_EQ(text("cmem", {{"block", 0}, {"total", 1234}}), "block\t0\ntotal\t1234\n<CMD OK>\n");
  EXPECT_EQ(text("checkpoint", {{"tallies", true}}), "tallies\ttrue\n<CMD OK>\n");
}

TEST(ConsoleText, NetstatIsNumberedKeyValueEntries) {
  const json v = {{"cluster",
                   {{"port", 2548},
                    {"inbound", {3}},
                    {"connections", json::array({{{"id", 3}, {"peer", "127.0.0.1:60978"}, {"in_flight", 0},
                                                  {"bytes_in", 57}, {"bytes_out", 2874}, {"queued_bytes", 0},
                                                  {"pending_bytes", 0}, {"mailbox_pauses", 0}, {"memory_pauses", 0}}})},
                    {"peers", json::array({{{"node", "db"}, {"connected", true}, {"waiting", 2}, {"bytes_in", 10},
                                            {"bytes_out", 20}},
                                           {{"node", "down"}, {"connected", false}}})}}},
                  {"gate_stats", json::array({{{"name", ".gate.kv"}, {"handle", ":00000012"}, {"accepted", 4},
                                               {"open", 1}, {"held_bytes", 0}}})},
                  {"budget", {{"held", 0}, {"high", 1024}}},
                  {"net", nullptr}};
  EXPECT_EQ(text("netstat", v),
            "1\taccept:1\tname:cluster\tport:2548\ttype:LISTEN\n"
            "2\tid:3\tin_flight:0\tmailbox_pauses:0\tmemory_pauses:0\tpeer:127.0.0.1:60978\tread:57\ttype:TCP\t"
            "write:2.806640625K\n"
            "3\tnode:db\tread:10\ttype:TCP\twaiting:2\twrite:20\n"
            "4\taccept:4\taddress::00000012\tname:.gate.kv\topen:1\ttype:LISTEN\n"
            "budget\theld:0\thigh:1024\n<CMD OK>\n");
}

TEST(ConsoleText, ArrayKeysSortAsStringsAsSkynetsDumpList) {
  json eleven = json::array();
  for (int i = 1; i <= 11; ++i) eleven.push_back(i);
  EXPECT_EQ(dump_list(eleven), "1\t1\n10\t10\n11\t11\n2\t2\n3\t3\n4\t4\n5\t5\n6\t6\n7\t7\n8\t8\n9\t9\n");
}

TEST(ConsoleText, ProfactiveAndDumpheapInSkynetsWords) {
  EXPECT_EQ(text("profactive", {{"active", false}}), "heap profilling is deactive\n<CMD OK>\n");
  EXPECT_EQ(text("profactive", {{"active", true}}), "heap profilling is active\n<CMD OK>\n");
  EXPECT_EQ(text("dumpheap", {{"file", "/tmp/h.heap"}}), "/tmp/h.heap\n<CMD OK>\n");
}

TEST(ConsoleText, JournalAndInfoFlattenTables) {
  EXPECT_EQ(text("journal", json::array({{{"id", "tallies"}, {"journal", {{"entities", 3}, {"bytes", 10}}}},
                                         {{"id", "plain"}, {"journal", nullptr}}})),
            "plain\tno journal\ntallies\tbytes:10\tentities:3\n<CMD OK>\n");
  EXPECT_EQ(text("info", {{"handle", ":0000000a"}, {"names", {".a", "@a"}}, {"mailbox", 0}}),
            "handle\t:0000000a\nmailbox\t0\nnames\t.a @a\n<CMD OK>\n");
}

TEST(ConsoleText, SupervisorVerbs) {
  EXPECT_EQ(text("generations", json::array({{{"generation", 2}, {"pid", 10}, {"state", "ready"}}})),
            "2\tpid:10\tstate:ready\n<CMD OK>\n");
  EXPECT_EQ(text("upgrade", {{"started", true}, {"from_generation", 1}, {"to_generation", 2}}),
            "upgrade started: gen 1 -> gen 2; `generations` shows when it serves\n<CMD OK>\n");
  EXPECT_EQ(text("upgrade", {{"ok", true}, {"to_generation", 2}}), "ok\ttrue\nto_generation\t2\n<CMD OK>\n");
}

TEST(ConsoleText, LuaNumbersAndSkynetBytes) {
  EXPECT_EQ(lua_number(json(3)), "3");
  EXPECT_EQ(lua_number(json(0.0)), "0.0");
  EXPECT_EQ(lua_number(json(0.000439)), "0.000439");
  EXPECT_EQ(lua_number(json(2.0)), "2.0");
  EXPECT_EQ(lua_number(json(1e15)), "1e+15");
  EXPECT_EQ(lua_number(json(-1.5)), "-1.5");
  EXPECT_EQ(skynet_bytes(0), "");
  EXPECT_EQ(skynet_bytes(57), "57");
  EXPECT_EQ(skynet_bytes(1024), "1.0K");
  EXPECT_EQ(skynet_bytes(2874), "2.806640625K");
  EXPECT_EQ(skynet_bytes(3u << 19), "1.5M");
}

TEST(ConsoleJson, TheReplyFormRoundTrips) {
  const answer ok{"list", true, json::array({1}), {}};
  EXPECT_EQ(render_json(ok), R"({"answer":[1],"ok":true})");
  const answer back = from_reply("list", json::parse(render_json(ok)));
  EXPECT_TRUE(back.ok);
  EXPECT_EQ(back.value, json::array({1}));
  const answer bad = from_reply("info", json::parse(render_json(answer{"info", false, {}, "no service @x"})));
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.error, "no service @x");
  EXPECT_EQ(render_text(from_reply("x", json{{"error", "unknown command console"}})), "unknown command console\n<CMD Error>\n");
}

}  // namespace
}  // namespace csk::console
