// The harness's pure parts, on fixed inputs (no peer needed): values compared as Lua sees
// them after an echo, the lab's JSONL reports, build.sh's last line.

#include "tests/interop/interop_fixture.hpp"

namespace csk::interop {
namespace {

TEST(InteropHarness, LuaSameComparesTablesAsLuaSeesThem) {
  // Lua re-packs {1, nil, 3} with a border of its choosing: array [1] + hash {3 = 3}.
  lua_table moved({1});
  moved.set(3, 3);
  EXPECT_TRUE(lua_same(lua_table({1, nullptr, 3}), moved));
  // Hash order does not matter; the last duplicate key wins; nil values are absent.
  lua_table ab, ba, dup, nil_value;
  ab.set("a", 1).set("b", 2);
  ba.set("b", 2).set("a", 1);
  dup.set("a", 0).set("b", 2).set("a", 1);
  nil_value.set("a", 1).set("b", 2).set("c", nullptr);
  EXPECT_TRUE(lua_same(ab, ba));
  EXPECT_TRUE(lua_same(ab, dup));
  EXPECT_TRUE(lua_same(ab, nil_value));
  // Nested tables compare the same way; differences anywhere are seen.
  EXPECT_TRUE(lua_same(lua_table({lua_value(ab)}), lua_table({lua_value(ba)})));
  EXPECT_FALSE(lua_same(lua_table({lua_value(ab)}), lua_table({lua_value(lua_table().set("a", 1))})));
  EXPECT_FALSE(lua_same(ab, lua_table().set("a", 1).set("b", 3)));
  EXPECT_FALSE(lua_same(lua_table({1, 2}), lua_table({1, 2, 3})));
  // Everything else as lua_value compares: subtypes and bit patterns.
  EXPECT_FALSE(lua_same(1, 1.0));
  EXPECT_FALSE(lua_same(0.0, -0.0));
  EXPECT_TRUE(lua_same(std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()));
  EXPECT_TRUE(lua_same(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(lua_same(std::string("a\0b", 3), std::string("a")));
}

TEST(InteropHarness, LabReportSplitsResultsFromTheTally) {
  const lab_report r = lab_report::from({
      json::parse(R"({"seq":1,"name":"echo_small","ok":true,"check":"pass"})"),
      json::parse(R"({"seq":2,"name":"fail_raises","ok":false,"error":"call failed","check":"FAIL"})"),
      json::parse(R"({"seq":3,"name":"boom","lab_error":"unknown var echo"})"),
      json::parse(R"({"done":true,"checks_passed":1,"checks_failed":1})"),
  });
  ASSERT_TRUE(r.done.has_value());
  EXPECT_EQ(r.done->value("checks_passed", -1), 1);
  ASSERT_EQ(r.results.size(), 3u);
  ASSERT_NE(r.result("fail_raises"), nullptr);
  EXPECT_EQ(r.result("fail_raises")->value("error", ""), "call failed");
  EXPECT_EQ(r.result("nothing"), nullptr);
  EXPECT_EQ(r.problems(),
            R"({"check":"FAIL","error":"call failed","name":"fail_raises","ok":false,"seq":2})"
            "\n"
            R"({"lab_error":"unknown var echo","name":"boom","seq":3})"
            "\n");
}

TEST(InteropHarness, LastLineIsBuildShsAnswer) {
  EXPECT_EQ(last_line("building...\n/home/u/.cache/cppskynet-skynet-peer/skynet-f19d1605\n"),
            "/home/u/.cache/cppskynet-skynet-peer/skynet-f19d1605");
  EXPECT_EQ(last_line("/a/b"), "/a/b");
  EXPECT_EQ(last_line(""), "");
}

}  // namespace
}  // namespace csk::interop
