// Throughput of the wire library, with baselines in the same run so results can be
// read as ratios:
//   - seri pack/unpack of a typical game message  vs  memcpy of the same bytes and a
//     hand-written binary serialisation of the same data as a C++ struct;
//   - cluster frame encode/decode  vs  memcpy of the same number of bytes.
// Bytes are wire bytes (frames with their length prefix, or the packed payload);
// items are whole messages.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"

namespace {

namespace wire = csk::wire;
using csk::byte_buffer;
using csk::bytes_view;
using csk::lua_table;
using csk::lua_value;

// ------------------------------------------------------------ game payload --

constexpr int item_count = 10;

// cluster.call(node, "@player", "update", <player>): about 20 fields of every kind.
std::vector<lua_value> make_game_payload() {
  lua_table items;
  for (int i = 0; i < item_count; ++i) {
    lua_table item;
    item.set("id", 1000 + i).set("count", i * 3).set("bound", i % 2 == 0).set("durability", 0.5 + i);
    items.array.emplace_back(std::move(item));
  }
  lua_table p;
  p.set("id", 1234567)                               // dword
      .set("level", 87)                              // byte
      .set("gold", 54321)                            // word
      .set("exp", std::int64_t{123456789012})        // qword
      .set("karma", -42)                             // negative: dword
      .set("deaths", 0)                              // zero
      .set("hp", 1523.5)
      .set("speed", 3.75)
      .set("x", 100.25)
      .set("y", -20.125)
      .set("name", "Aurelia")
      .set("guild", "Knights of the Long Table")
      .set("region", "eu-west-1")
      .set("motto", std::string(  // 200 bytes: long16
                        "Fortune favours the bold, but the prepared collect the loot. ") +
                        "Fortune favours the bold, but the prepared collect the loot. " +
                        "Fortune favours the bold, but the prepared collect the loot. " + "Onwards!!!!!!!!!!!")
      .set("token", std::string(40, 'f'))
      .set("online", true)
      .set("vip", false)
      .set("last_login", 1700000000)
      .set("buffs", lua_table({3, 17, 42}))
      .set("items", std::move(items));
  return {lua_value("update"), lua_value(std::move(p))};
}

// The same data as a plain struct with a hand-written little-endian encoding:
// the least a schema-based format could cost.
struct item_rec {
  std::int32_t id = 0;
  std::int32_t count = 0;
  bool bound = false;
  double durability = 0;
};

struct player_rec {
  std::string method;
  std::int32_t id = 0;
  std::uint8_t level = 0;
  std::uint16_t gold = 0;
  std::int64_t exp = 0;
  std::int32_t karma = 0;
  std::int32_t deaths = 0;
  double hp = 0, speed = 0, x = 0, y = 0;
  std::string name, guild, region, motto, token;
  bool online = false, vip = false;
  std::int32_t last_login = 0;
  std::vector<std::int32_t> buffs;
  std::vector<item_rec> items;
};

player_rec make_player_rec(const std::vector<lua_value>& v) {
  const lua_table& t = v[1].as_table();
  auto integer = [&](const char* k) { return t.find(k)->as_integer(); };
  auto real = [&](const char* k) { return t.find(k)->as_real(); };
  auto str = [&](const char* k) { return t.find(k)->as_string(); };
  player_rec r;
  r.method = v[0].as_string();
  r.id = static_cast<std::int32_t>(integer("id"));
  r.level = static_cast<std::uint8_t>(integer("level"));
  r.gold = static_cast<std::uint16_t>(integer("gold"));
  r.exp = integer("exp");
  r.karma = static_cast<std::int32_t>(integer("karma"));
  r.deaths = static_cast<std::int32_t>(integer("deaths"));
  r.hp = real("hp");
  r.speed = real("speed");
  r.x = real("x");
  r.y = real("y");
  r.name = str("name");
  r.guild = str("guild");
  r.region = str("region");
  r.motto = str("motto");
  r.token = str("token");
  r.online = t.find("online")->as_boolean();
  r.vip = t.find("vip")->as_boolean();
  r.last_login = static_cast<std::int32_t>(integer("last_login"));
  for (const auto& b : t.find("buffs")->as_table().array) r.buffs.push_back(static_cast<std::int32_t>(b.as_integer()));
  for (const auto& it : t.find("items")->as_table().array) {
    const lua_table& i = it.as_table();
    r.items.push_back(item_rec{static_cast<std::int32_t>(i.find("id")->as_integer()),
                               static_cast<std::int32_t>(i.find("count")->as_integer()),
                               i.find("bound")->as_boolean(),
                               i.find("durability")->as_real()});
  }
  return r;
}

class struct_writer {
 public:
  explicit struct_writer(byte_buffer& out) : out_(out) {}
  template <class T>
  void pod(T v) {
    const std::size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    pod(static_cast<std::uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }

 private:
  byte_buffer& out_;
};

class struct_reader {
 public:
  explicit struct_reader(bytes_view in) : in_(in) {}
  template <class T>
  bool pod(T& v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool str(std::string& s) {
    std::uint32_t n = 0;
    if (!pod(n) || in_.size() - pos_ < n) return false;
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  bytes_view in_;
  std::size_t pos_ = 0;
};

void encode_struct(const player_rec& r, byte_buffer& out) {
  struct_writer w(out);
  w.str(r.method);
  w.pod(r.id);
  w.pod(r.level);
  w.pod(r.gold);
  w.pod(r.exp);
  w.pod(r.karma);
  w.pod(r.deaths);
  w.pod(r.hp);
  w.pod(r.speed);
  w.pod(r.x);
  w.pod(r.y);
  w.str(r.name);
  w.str(r.guild);
  w.str(r.region);
  w.str(r.motto);
  w.str(r.token);
  w.pod(static_cast<std::uint8_t>(r.online));
  w.pod(static_cast<std::uint8_t>(r.vip));
  w.pod(r.last_login);
  w.pod(static_cast<std::uint32_t>(r.buffs.size()));
  for (auto b : r.buffs) w.pod(b);
  w.pod(static_cast<std::uint32_t>(r.items.size()));
  for (const auto& i : r.items) {
    w.pod(i.id);
    w.pod(i.count);
    w.pod(static_cast<std::uint8_t>(i.bound));
    w.pod(i.durability);
  }
}

bool decode_struct(bytes_view in, player_rec& r) {
  struct_reader rd(in);
  std::uint8_t online = 0, vip = 0;
  std::uint32_t n = 0;
  bool ok = rd.str(r.method) && rd.pod(r.id) && rd.pod(r.level) && rd.pod(r.gold) && rd.pod(r.exp) &&
            rd.pod(r.karma) && rd.pod(r.deaths) && rd.pod(r.hp) && rd.pod(r.speed) && rd.pod(r.x) &&
            rd.pod(r.y) && rd.str(r.name) && rd.str(r.guild) && rd.str(r.region) && rd.str(r.motto) &&
            rd.str(r.token) && rd.pod(online) && rd.pod(vip) && rd.pod(r.last_login) && rd.pod(n);
  if (!ok || n > in.size()) return false;
  r.online = online != 0;
  r.vip = vip != 0;
  r.buffs.resize(n);
  for (auto& b : r.buffs) {
    if (!rd.pod(b)) return false;
  }
  if (!rd.pod(n) || n > in.size()) return false;
  r.items.resize(n);
  for (auto& i : r.items) {
    std::uint8_t bound = 0;
    if (!(rd.pod(i.id) && rd.pod(i.count) && rd.pod(bound) && rd.pod(i.durability))) return false;
    i.bound = bound != 0;
  }
  return rd.done();
}

// ----------------------------------------------------------- frame streams --

constexpr std::size_t small_payload_size = 100;
constexpr std::size_t large_payload_size = 100 * 1000;
constexpr std::size_t small_stream_messages = 1000;
constexpr std::size_t large_stream_messages = 20;
constexpr std::size_t socket_read_size = 64 * 1024;  // bytes per feed(), like one recv()

byte_buffer pattern(std::size_t n) {
  byte_buffer b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 131 + 7);
  return b;
}

byte_buffer request_stream(std::size_t messages, std::size_t payload_size) {
  const byte_buffer payload = pattern(payload_size);
  const wire::target to = wire::target::named("@player");
  byte_buffer out;
  for (std::size_t i = 0; i < messages; ++i) {
    if (!wire::encode_request(to, static_cast<std::uint32_t>(i + 1), false, payload, out)) std::abort();
  }
  return out;
}

byte_buffer response_stream(std::size_t messages, std::size_t payload_size) {
  const byte_buffer payload = pattern(payload_size);
  byte_buffer out;
  for (std::size_t i = 0; i < messages; ++i) {
    if (!wire::encode_response(static_cast<std::uint32_t>(i + 1), true, payload, out)) std::abort();
  }
  return out;
}

struct fixtures {
  std::vector<lua_value> payload = make_game_payload();
  byte_buffer packed = [this] {
    auto r = csk::seri::pack(payload);
    if (!r) std::abort();
    return std::move(*r);
  }();
  player_rec rec = make_player_rec(payload);
  byte_buffer rec_bytes = [this] {
    byte_buffer b;
    encode_struct(rec, b);
    return b;
  }();
  byte_buffer small_payload = pattern(small_payload_size);
  byte_buffer large_payload = pattern(large_payload_size);
  byte_buffer requests_small = request_stream(small_stream_messages, small_payload_size);
  byte_buffer requests_large = request_stream(large_stream_messages, large_payload_size);
  byte_buffer responses_small = response_stream(small_stream_messages, small_payload_size);
  byte_buffer responses_large = response_stream(large_stream_messages, large_payload_size);
};

const fixtures& fx() {
  static const fixtures f;
  return f;
}

void set_throughput(benchmark::State& state, std::size_t bytes_per_iteration, std::size_t items_per_iteration) {
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes_per_iteration));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(items_per_iteration));
}

// ------------------------------------------------------------------- seri --

void BM_SeriPack(benchmark::State& state) {
  const auto& f = fx();
  byte_buffer out;
  for (auto _ : state) {
    out.clear();
    if (!csk::seri::pack(f.payload, out)) state.SkipWithError("pack failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_throughput(state, f.packed.size(), 1);
  state.counters["wire_bytes"] = static_cast<double>(f.packed.size());
}
BENCHMARK(BM_SeriPack);

void BM_SeriUnpack(benchmark::State& state) {
  const auto& f = fx();
  for (auto _ : state) {
    auto values = csk::seri::unpack(f.packed);
    if (!values || values->size() != 2) state.SkipWithError("unpack failed");
    benchmark::DoNotOptimize(values);
  }
  set_throughput(state, f.packed.size(), 1);
  state.counters["wire_bytes"] = static_cast<double>(f.packed.size());
}
BENCHMARK(BM_SeriUnpack);

// Baseline: hand-written binary encoding of the same data held in a struct.
void BM_StructEncode(benchmark::State& state) {
  const auto& f = fx();
  byte_buffer out;
  for (auto _ : state) {
    out.clear();
    encode_struct(f.rec, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_throughput(state, f.rec_bytes.size(), 1);
  state.counters["wire_bytes"] = static_cast<double>(f.rec_bytes.size());
}
BENCHMARK(BM_StructEncode);

void BM_StructDecode(benchmark::State& state) {
  const auto& f = fx();
  for (auto _ : state) {
    player_rec r;
    if (!decode_struct(f.rec_bytes, r)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
  set_throughput(state, f.rec_bytes.size(), 1);
  state.counters["wire_bytes"] = static_cast<double>(f.rec_bytes.size());
}
BENCHMARK(BM_StructDecode);

// Baseline: copying the same number of bytes (arg = bytes), into a reused buffer.
void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const byte_buffer src = pattern(n);
  byte_buffer dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_throughput(state, n, 1);
}
BENCHMARK(BM_Memcpy)
    ->Arg(static_cast<std::int64_t>(fx().packed.size()))
    ->Arg(static_cast<std::int64_t>(fx().rec_bytes.size()))
    ->Arg(static_cast<std::int64_t>(fx().requests_small.size() / small_stream_messages))
    ->Arg(static_cast<std::int64_t>(fx().requests_large.size() / large_stream_messages))
    ->Arg(static_cast<std::int64_t>(fx().requests_small.size()))
    ->Arg(static_cast<std::int64_t>(fx().requests_large.size()));

// --------------------------------------------------------- cluster encode --

void encode_request_bench(benchmark::State& state, const byte_buffer& payload) {
  const wire::target to = wire::target::named("@player");
  byte_buffer out;
  std::uint32_t session = 0;
  for (auto _ : state) {
    out.clear();
    if (!wire::encode_request(to, ++session, false, payload, out)) state.SkipWithError("encode failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_throughput(state, out.size(), 1);
}

void BM_EncodeRequestSmall(benchmark::State& state) { encode_request_bench(state, fx().small_payload); }
BENCHMARK(BM_EncodeRequestSmall);
void BM_EncodeRequestLarge(benchmark::State& state) { encode_request_bench(state, fx().large_payload); }
BENCHMARK(BM_EncodeRequestLarge);

void encode_response_bench(benchmark::State& state, const byte_buffer& payload) {
  byte_buffer out;
  std::uint32_t session = 0;
  for (auto _ : state) {
    out.clear();
    if (!wire::encode_response(++session, true, payload, out)) state.SkipWithError("encode failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_throughput(state, out.size(), 1);
}

void BM_EncodeResponseSmall(benchmark::State& state) { encode_response_bench(state, fx().small_payload); }
BENCHMARK(BM_EncodeResponseSmall);
void BM_EncodeResponseLarge(benchmark::State& state) { encode_response_bench(state, fx().large_payload); }
BENCHMARK(BM_EncodeResponseLarge);

// --------------------------------------------------------- cluster decode --

// The whole receive path of one connection: socket-sized reads into frame_reader,
// decode every frame, reassemble whole messages.
void decode_requests_bench(benchmark::State& state, const byte_buffer& stream, std::size_t messages,
                           std::size_t payload_size) {
  wire::frame_reader reader;
  wire::request_assembler assembler;
  for (auto _ : state) {
    std::size_t got = 0;
    for (std::size_t off = 0; off < stream.size(); off += socket_read_size) {
      reader.feed(bytes_view(stream).subspan(off, std::min(socket_read_size, stream.size() - off)));
      while (auto body = reader.next()) {
        auto frame = wire::decode_request_frame(*body);
        if (!frame) {
          state.SkipWithError("bad frame");
          return;
        }
        const wire::request_event ev = assembler.push(*frame);
        if (ev.what == wire::request_event::kind::request && ev.message.payload.size() == payload_size) ++got;
        benchmark::DoNotOptimize(ev.message.payload.data());
      }
    }
    if (got != messages) {
      state.SkipWithError("wrong message count");
      return;
    }
  }
  set_throughput(state, stream.size(), messages);
}

void BM_DecodeRequestsSmall(benchmark::State& state) {
  decode_requests_bench(state, fx().requests_small, small_stream_messages, small_payload_size);
}
BENCHMARK(BM_DecodeRequestsSmall);
void BM_DecodeRequestsLarge(benchmark::State& state) {
  decode_requests_bench(state, fx().requests_large, large_stream_messages, large_payload_size);
}
BENCHMARK(BM_DecodeRequestsLarge);

void decode_responses_bench(benchmark::State& state, const byte_buffer& stream, std::size_t messages,
                            std::size_t payload_size) {
  wire::frame_reader reader;
  wire::response_assembler assembler;
  for (auto _ : state) {
    std::size_t got = 0;
    for (std::size_t off = 0; off < stream.size(); off += socket_read_size) {
      reader.feed(bytes_view(stream).subspan(off, std::min(socket_read_size, stream.size() - off)));
      while (auto body = reader.next()) {
        auto frame = wire::decode_response_frame(*body);
        if (!frame) {
          state.SkipWithError("bad frame");
          return;
        }
        const wire::response_event ev = assembler.push(*frame);
        if (ev.what == wire::response_event::kind::response && ev.message.ok &&
            ev.message.payload.size() == payload_size) {
          ++got;
        }
        benchmark::DoNotOptimize(ev.message.payload.data());
      }
    }
    if (got != messages) {
      state.SkipWithError("wrong message count");
      return;
    }
  }
  set_throughput(state, stream.size(), messages);
}

void BM_DecodeResponsesSmall(benchmark::State& state) {
  decode_responses_bench(state, fx().responses_small, small_stream_messages, small_payload_size);
}
BENCHMARK(BM_DecodeResponsesSmall);
void BM_DecodeResponsesLarge(benchmark::State& state) {
  decode_responses_bench(state, fx().responses_large, large_stream_messages, large_payload_size);
}
BENCHMARK(BM_DecodeResponsesLarge);

}  // namespace
