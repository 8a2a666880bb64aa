// Everyday JSON for command-line arguments and printed replies.

#include <gtest/gtest.h>

#include "tools/wire/plain_json.hpp"

namespace csk::tools {
namespace {

TEST(PlainJson, CommandLineArgumentsBecomeLuaValues) {
  EXPECT_TRUE(parse_cli_arg("42") == lua_value(42));
  EXPECT_TRUE(parse_cli_arg("1.0") == lua_value(1.0));  // a real stays a real
  EXPECT_TRUE(parse_cli_arg("-7") == lua_value(-7));
  EXPECT_TRUE(parse_cli_arg("true") == lua_value(true));
  EXPECT_TRUE(parse_cli_arg("null").is_nil());
  EXPECT_TRUE(parse_cli_arg("hello") == lua_value("hello"));        // a bare word
  EXPECT_TRUE(parse_cli_arg("\"42\"") == lua_value("42"));          // quoted: a string
  EXPECT_TRUE(parse_cli_arg("hello world") == lua_value("hello world"));
  const lua_value arr = parse_cli_arg("[1, \"two\", [3]]");
  ASSERT_TRUE(arr.is_table());
  EXPECT_EQ(arr.as_table().array.size(), 3u);
  const lua_value obj = parse_cli_arg("{\"k\": 1}");
  ASSERT_TRUE(obj.is_table());
  EXPECT_EQ(obj.as_table().find("k")->as_integer(), 1);
  EXPECT_TRUE(parse_cli_arg("9223372036854775807") == lua_value(INT64_MAX));
}

TEST(PlainJson, RepliesPrintAsEverydayJson) {
  lua_table t({lua_value(1), lua_value("a")});
  EXPECT_EQ(to_plain_json(lua_value(t)).dump(), "[1,\"a\"]");
  t.set("k", lua_value(2.5));
  EXPECT_EQ(to_plain_json(lua_value(t)).dump(), "{\"1\":1,\"2\":\"a\",\"k\":2.5}");
  EXPECT_EQ(to_plain_json(lua_value(std::string("\xff\x01", 2))).dump(), "{\"hex\":\"ff01\"}");
  EXPECT_EQ(to_plain_json(lua_value(std::nan(""))).dump(), "\"nan\"");
  EXPECT_EQ(to_plain_json(lua_value()).dump(), "null");
  EXPECT_EQ(to_plain_json(lua_value("h\xc3\xa9llo")).dump(), "\"h\xc3\xa9llo\"");
}

}  // namespace
}  // namespace csk::tools
