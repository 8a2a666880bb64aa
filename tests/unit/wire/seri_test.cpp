// skynet.pack / skynet.unpack rules, case by case, with byte vectors.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "common/wire/seri.hpp"

namespace csk {
namespace {

std::string pack_hex(std::vector<lua_value> values) {
  auto r = seri::pack(values);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? to_hex(*r) : std::string();
}

std::vector<lua_value> unpack_hex(std::string_view hex) {
  byte_buffer b;
  EXPECT_TRUE(from_hex(hex, b));
  auto r = seri::unpack(b);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(*r) : std::vector<lua_value>{};
}

seri::seri_error unpack_error(std::string_view hex) {
  byte_buffer b;
  EXPECT_TRUE(from_hex(hex, b));
  auto r = seri::unpack(b);
  EXPECT_FALSE(r.has_value());
  return r ? seri::seri_error{} : r.error();
}

TEST(Seri, IntegerWidthsFollowSkynet) {
  const std::vector<std::pair<std::int64_t, std::string>> cases = {
      {0, "02"},
      {1, "0a01"},
      {255, "0aff"},
      {256, "120001"},
      {65535, "12ffff"},
      {65536, "2200000100"},
      {2147483647, "22ffffff7f"},
      {2147483648, "320000008000000000"},
      {-1, "22ffffffff"},
      {-255, "2201ffffff"},  // negatives never use byte or word
      {-2147483648LL, "2200000080"},
      {-2147483649LL, "32ffffff7fffffffff"},
      {std::numeric_limits<std::int64_t>::min(), "320000000000000080"},
      {std::numeric_limits<std::int64_t>::max(), "32ffffffffffffff7f"},
  };
  for (const auto& [v, hex] : cases) {
    EXPECT_EQ(pack_hex({lua_value(v)}), hex) << v;
    auto back = unpack_hex(hex);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_TRUE(back[0].is_integer());
    EXPECT_EQ(back[0].as_integer(), v);
  }
}

TEST(Seri, ByteAndWordAreUnsignedDwordAndQwordSigned) {
  EXPECT_EQ(unpack_hex("0aff")[0].as_integer(), 255);
  EXPECT_EQ(unpack_hex("12ffff")[0].as_integer(), 65535);
  EXPECT_EQ(unpack_hex("22ffffffff")[0].as_integer(), -1);
  EXPECT_EQ(unpack_hex("32ffffffffffffffff")[0].as_integer(), -1);
  // Non-canonical widths are accepted and remembered.
  auto v = unpack_hex("2201000000");
  EXPECT_EQ(v[0].as_integer(), 1);
  EXPECT_EQ(v[0].enc(), seri_enc::dword);
}

TEST(Seri, IntegerAndRealStayDistinct) {
  EXPECT_EQ(pack_hex({lua_value(1)}), "0a01");
  EXPECT_EQ(pack_hex({lua_value(1.0)}), "42000000000000f03f");
  EXPECT_FALSE(lua_value(1) == lua_value(1.0));
  auto v = unpack_hex("42000000000000f03f");
  EXPECT_TRUE(v[0].is_real());
  EXPECT_EQ(v[0].as_real(), 1.0);
}

TEST(Seri, RealsKeepEveryBit) {
  for (double d : {0.0, -0.0, 0.1, 1e300, -1e-300, std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::denorm_min()}) {
    auto packed = seri::pack(std::vector<lua_value>{d});
    ASSERT_TRUE(packed.has_value());
    auto back = seri::unpack(*packed);
    ASSERT_TRUE(back.has_value());
    EXPECT_TRUE((*back)[0] == lua_value(d)) << d;  // bitwise: NaN == NaN, 0.0 != -0.0
  }
  EXPECT_FALSE(lua_value(0.0) == lua_value(-0.0));
}

TEST(Seri, StringLengthForms) {
  EXPECT_EQ(pack_hex({""}), "04");
  EXPECT_EQ(pack_hex({"hello"}), "2c68656c6c6f");
  EXPECT_EQ(pack_hex({std::string(31, 'x')}).substr(0, 2), "fc");
  EXPECT_EQ(pack_hex({std::string(32, 'x')}).substr(0, 6), "152000");
  EXPECT_EQ(pack_hex({std::string(65535, 'x')}).substr(0, 6), "15ffff");
  EXPECT_EQ(pack_hex({std::string(65536, 'x')}).substr(0, 10), "2500000100");
  // Binary and embedded NULs travel unchanged.
  const std::string bin("\0\1\xff\0", 4);
  auto back = unpack_hex(pack_hex({bin}));
  EXPECT_EQ(back[0].as_string(), bin);
  // Non-canonical lengths decode.
  EXPECT_EQ(unpack_hex("150300616263")[0].as_string(), "abc");
  EXPECT_EQ(unpack_hex("2503000000616263")[0].as_string(), "abc");
}

TEST(Seri, TableArrayPartMayHoldNils) {
  lua_table t({lua_value(1), lua_value(), lua_value(3)});
  EXPECT_EQ(pack_hex({t}), "1e0a01000a0300");
  auto back = unpack_hex("1e0a01000a0300");
  ASSERT_TRUE(back[0].is_table());
  ASSERT_EQ(back[0].as_table().array.size(), 3u);
  EXPECT_TRUE(back[0].as_table().array[1].is_nil());
  EXPECT_TRUE(back[0].as_table().hash.empty());
}

TEST(Seri, ArraySizeFromThirtyOneIsAnIntegerValue) {
  std::vector<lua_value> items(31, lua_value(0));
  const std::string hex = pack_hex({lua_table(items)});
  EXPECT_EQ(hex.substr(0, 6), "fe0a1f");
  std::vector<lua_value> big(256, lua_value(0));
  EXPECT_EQ(pack_hex({lua_table(big)}).substr(0, 8), "fe120001");
  // The decoder takes any integer width after cookie 31, even for a small size.
  auto v = unpack_hex("fe0a02020a0500");
  ASSERT_EQ(v[0].as_table().array.size(), 2u);
  EXPECT_EQ(v[0].as_table().array_len_enc, seri_enc::byte);
}

TEST(Seri, HashPartKeepsWireOrderAndDuplicates) {
  auto v = unpack_hex("060a010a020a010a0300");  // {[1]=2, [1]=3}
  const auto& t = v[0].as_table();
  ASSERT_EQ(t.hash.size(), 2u);
  EXPECT_EQ(t.find(lua_value(1))->as_integer(), 3);  // Lua's rawset: last one wins
  EXPECT_EQ(pack_hex(v), "060a010a020a010a0300");
}

TEST(Seri, TableFindLooksLikeLua) {
  lua_table t({lua_value("a"), lua_value("b")});
  t.set("name", "x").set(lua_value(5), lua_value(true));
  EXPECT_EQ(t.find(lua_value(2))->as_string(), "b");
  EXPECT_EQ(t.find("name")->as_string(), "x");
  EXPECT_TRUE(t.find(lua_value(5))->as_boolean());
  EXPECT_EQ(t.find("missing"), nullptr);
  EXPECT_EQ(t.find(lua_value(3)), nullptr);
}

TEST(Seri, PackRefusesWhatLuaCannotHold) {
  lua_table t;
  t.set(lua_value(), lua_value(1));
  byte_buffer out = {0xaa};
  auto r = seri::pack(std::vector<lua_value>{lua_value(7), lua_value(t)}, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, seri::seri_errc::nil_key);
  EXPECT_EQ(out, byte_buffer{0xaa});  // left as it was

  lua_table nan_key;
  nan_key.set(lua_value(std::nan("")), lua_value(1));
  EXPECT_FALSE(seri::pack(std::vector<lua_value>{nan_key}).has_value());
}

TEST(Seri, UnpackErrorsCountRemainingBytesAsSkynet) {
  EXPECT_EQ(unpack_error("07").message().substr(0, 26), "Invalid serialize stream 0");
  EXPECT_EQ(unpack_error("1200").remaining, 1u);
  EXPECT_EQ(unpack_error("150500616263").remaining, 3u);
  const auto e = unpack_error("0a0107");
  EXPECT_EQ(e.offset, 3u);
  EXPECT_NE(e.message().find("at byte 3"), std::string::npos) << e.message();
  EXPECT_EQ(unpack_error("0642000000000000f8ff0200").code, seri::seri_errc::nan_key);
}

TEST(Seri, HugeLengthsFailWithoutAllocating) {
  // A 4 GiB string length and a 2^62 array size backed by a few bytes.
  EXPECT_EQ(unpack_error("25ffffffff41").code, seri::seri_errc::invalid_stream);
  EXPECT_EQ(unpack_error("fe320000000000000040020202").code, seri::seri_errc::invalid_stream);
  EXPECT_EQ(unpack_error("fe22ffffffff").code, seri::seri_errc::invalid_stream);  // negative size
}

TEST(Seri, UnpackDepthIsBounded) {
  std::string hex;
  for (int i = 0; i < 200; ++i) hex += "0e";
  EXPECT_EQ(unpack_error(hex).code, seri::seri_errc::too_deep);
  // The limit is configurable; skynet never sends more than 33 levels.
  std::string ok;
  for (int i = 0; i < 40; ++i) ok += "0e";
  ok += "0600";
  for (int i = 0; i < 40; ++i) ok += "00";
  byte_buffer b;
  ASSERT_TRUE(from_hex(ok, b));
  EXPECT_TRUE(seri::unpack(b).has_value());
  EXPECT_FALSE(seri::unpack(b, seri::unpack_limits{.max_depth = 20}).has_value());
}

// A random value generator for the round-trip property.
lua_value random_value(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 3 ? 5 : 7);
  switch (kind(rng)) {
    case 0: return lua_value();
    case 1: return lua_value(rng() % 2 == 0);
    case 2: return lua_value(static_cast<std::int64_t>(rng()) >> (rng() % 64));
    case 3: {
      std::uint64_t bits = rng();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return lua_value(d);
    }
    case 4: return lua_value(std::string(rng() % 40, static_cast<char>(rng())));
    case 5: return lua_value(std::string(depth == 0 ? rng() % 70000 : rng() % 300, 'z'));
    default: {
      lua_table t;
      const auto n = rng() % 40;
      for (std::uint64_t i = 0; i < n; ++i) t.array.push_back(random_value(rng, depth + 1));
      const auto m = rng() % 5;
      for (std::uint64_t i = 0; i < m; ++i) {
        lua_value k = random_value(rng, depth + 1);
        if (k.is_nil() || (k.is_real() && std::isnan(k.as_real()))) k = lua_value("k");
        t.set(std::move(k), random_value(rng, depth + 1));
      }
      return lua_value(std::move(t));
    }
  }
}

TEST(Seri, RandomValuesRoundTrip) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 300; ++i) {
    std::vector<lua_value> values;
    const auto n = rng() % 4;
    for (std::uint64_t j = 0; j < n; ++j) values.push_back(random_value(rng, 0));
    auto packed = seri::pack(values);
    ASSERT_TRUE(packed.has_value()) << packed.error().message();
    auto back = seri::unpack(*packed);
    ASSERT_TRUE(back.has_value()) << back.error().message();
    ASSERT_EQ(back->size(), values.size());
    for (std::size_t j = 0; j < values.size(); ++j) EXPECT_TRUE((*back)[j] == values[j]) << values[j].debug_string();
    auto again = seri::pack(*back);
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(*again == *packed);
  }
}

}  // namespace
}  // namespace csk
