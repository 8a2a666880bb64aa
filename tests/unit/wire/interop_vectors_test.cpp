// Every golden vector captured from real skynet (tests/data/interop) through the
// wire library: decoding gives the vector's meaning, encoding the meaning gives the
// exact bytes, rejects are rejected as skynet rejects them, and the captured
// session streams parse in any chunking.

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "tests/support/vectors.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::test {
namespace {

using wire::request_event;
using wire::response_event;

std::string frame_type_hex(std::uint8_t t) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", t);
  return buf;
}

// --------------------------------------------------------------- helpers --

struct decoded_frame {
  std::uint64_t offset = 0;
  std::size_t len = 0;
  byte_buffer body;
};

// Splits `bytes` into frames, feeding the reader in pieces of random size.
std::vector<decoded_frame> split_all(bytes_view bytes, std::mt19937& rng, std::size_t max_piece,
                                     std::size_t* leftover = nullptr) {
  wire::frame_reader reader;
  std::vector<decoded_frame> frames;
  std::size_t pos = 0;
  std::uniform_int_distribution<std::size_t> piece(1, max_piece);
  while (pos < bytes.size()) {
    const std::size_t n = std::min(piece(rng), bytes.size() - pos);
    reader.feed(bytes.subspan(pos, n));
    pos += n;
    while (auto body = reader.next()) {
      frames.push_back({reader.last_frame_offset(), body->size(), byte_buffer(body->begin(), body->end())});
    }
  }
  if (leftover != nullptr) *leftover = reader.buffered();
  return frames;
}

std::vector<decoded_frame> split_whole(bytes_view bytes, std::size_t* leftover = nullptr) {
  std::mt19937 rng(1);
  return split_all(bytes, rng, bytes.size() + 1, leftover);
}

// Checks one decoded request frame against a `meaning.frames[i]` entry.
void expect_request_frame(const json& exp, const wire::request_frame& f, const decoded_frame& d,
                          const std::string& ctx) {
  SCOPED_TRACE(ctx + " frame " + exp.dump());
  if (exp.contains("offset")) {
    EXPECT_EQ(exp["offset"].get<std::uint64_t>(), d.offset);
  }
  EXPECT_EQ(exp["frame_len"].get<std::size_t>(), d.len);
  EXPECT_EQ(exp["type"].get<std::string>(), frame_type_hex(static_cast<std::uint8_t>(f.type)));
  EXPECT_EQ(exp["kind"].get<std::string>(), wire::request_type_name(f.type));
  if (exp.contains("session")) {
    EXPECT_EQ(exp["session"].get<std::uint32_t>(), f.session);
  }
  if (exp.contains("name")) {
    EXPECT_EQ(exp["name"].get<std::string>(), f.name);
    EXPECT_EQ(exp["name_len"].get<std::size_t>(), f.name.size());
  }
  if (exp.contains("address")) {
    EXPECT_EQ(exp["address"].get<std::uint32_t>(), f.address);
  }
  if (exp.contains("payload_len")) {
    EXPECT_EQ(exp["payload_len"].get<std::size_t>(), f.data.size());
  }
  if (exp.contains("total_len")) {
    EXPECT_EQ(exp["total_len"].get<std::uint32_t>(), f.total);
  }
  if (exp.contains("push")) {
    EXPECT_EQ(exp["push"].get<bool>(), f.push());
  }
  if (exp.contains("tag")) {
    EXPECT_EQ(exp["tag"].get<std::string>(), as_chars(f.data));
  }
}

void expect_response_frame(const json& exp, const wire::response_frame& f, const decoded_frame& d,
                           const std::string& ctx) {
  SCOPED_TRACE(ctx + " frame " + exp.dump());
  if (exp.contains("offset")) {
    EXPECT_EQ(exp["offset"].get<std::uint64_t>(), d.offset);
  }
  EXPECT_EQ(exp["frame_len"].get<std::size_t>(), d.len);
  EXPECT_EQ(exp["type"].get<int>(), static_cast<int>(f.type));
  EXPECT_EQ(exp["kind"].get<std::string>(), wire::response_type_name(f.type));
  EXPECT_EQ(exp["session"].get<std::uint32_t>(), f.session);
  if (exp.contains("payload_len")) {
    EXPECT_EQ(exp["payload_len"].get<std::size_t>(), f.data.size());
  }
  if (exp.contains("total_len")) {
    EXPECT_EQ(exp["total_len"].get<std::uint32_t>(), f.total);
  }
}

void expect_values(const json& expected, bytes_view payload, const std::string& ctx) {
  auto values = seri::unpack(payload);
  ASSERT_TRUE(values.has_value()) << ctx << ": " << values.error().message();
  const std::string diff = match_values(expected, tools::values_to_json(*values));
  EXPECT_TRUE(diff.empty()) << ctx << ": " << diff;
}

// ------------------------------------------------------------- seri.jsonl --

TEST(SeriVectors, DecodeGivesMeaning) {
  const auto vectors = load_vectors("seri.jsonl");
  ASSERT_EQ(vectors.size(), 62u);
  for (const auto& v : vectors) {
    ASSERT_TRUE(v.has_bytes || v.meaning.value("len", 0) == 0) << v.name;
    expect_values(v.meaning.at("values"), v.bytes, v.name);
  }
}

TEST(SeriVectors, EncodingMeaningGivesExactBytes) {
  for (const auto& v : load_vectors("seri.jsonl")) {
    auto values = tools::values_from_json(v.meaning.at("values"));
    ASSERT_TRUE(values.has_value()) << v.name << ": " << values.error();
    auto packed = seri::pack(*values);
    ASSERT_TRUE(packed.has_value()) << v.name << ": " << packed.error().message();
    EXPECT_EQ(to_hex(*packed), to_hex(v.bytes)) << v.name;
  }
}

TEST(SeriVectors, RejectsAndAcceptsAsSkynet) {
  const auto vectors = load_vectors("seri_reject.jsonl");
  ASSERT_EQ(vectors.size(), 36u);
  std::size_t checked = 0;
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    const auto op = v.meaning.at("op").get<std::string>();
    const bool accepted = v.meaning.at("accepted").get<bool>();
    if (op == "pack") {
      ASSERT_FALSE(accepted);
      if (v.name == "seri_pack_depth_34") {
        lua_value deep = lua_table{};
        for (int i = 1; i < 34; ++i) deep = lua_table({deep});
        auto r = seri::pack(std::vector<lua_value>{deep});
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().message(), v.meaning.at("error").get<std::string>());
        ++checked;
      } else {
        // Functions, coroutines and full userdata have no csk::lua_value form:
        // the C++ type system refuses them before pack can be called.
        EXPECT_TRUE(v.name == "seri_pack_function" || v.name == "seri_pack_coroutine" ||
                    v.name == "seri_pack_full_userdata");
      }
      continue;
    }
    ASSERT_EQ(op, "unpack");
    auto r = seri::unpack(v.bytes);
    ++checked;
    if (accepted) {
      ASSERT_TRUE(r.has_value()) << r.error().message();
      const std::string diff = match_values(v.meaning.at("values"), tools::values_to_json(*r));
      EXPECT_TRUE(diff.empty()) << diff;
    } else {
      ASSERT_FALSE(r.has_value());
      // skynet's text up to its C source line number, e.g. "Invalid serialize stream 3".
      std::string want = v.meaning.at("error").get<std::string>();
      want = want.substr(0, want.find(" (line:"));
      EXPECT_EQ(r.error().message().substr(0, want.size()), want) << r.error().message();
    }
  }
  EXPECT_EQ(checked, 33u);
}

TEST(SeriVectors, ThirtyThreeDeepPacksAndThirtyFourDoesNot) {
  lua_value deep = lua_table{};
  for (int i = 1; i < 33; ++i) deep = lua_table({deep});
  auto ok = seri::pack(std::vector<lua_value>{deep});
  ASSERT_TRUE(ok.has_value());
  const auto vectors = load_vectors("seri.jsonl");
  auto it = std::find_if(vectors.begin(), vectors.end(), [](const auto& v) { return v.name == "seri_table_depth_33"; });
  ASSERT_NE(it, vectors.end());
  EXPECT_EQ(to_hex(*ok), to_hex(it->bytes));
}

// -------------------------------------------------------- requests.jsonl --

TEST(RequestVectors, DecodeGivesMeaning) {
  const auto vectors = load_vectors("requests.jsonl");
  ASSERT_EQ(vectors.size(), 71u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    ASSERT_TRUE(v.has_bytes);
    std::size_t leftover = 1;
    const auto frames = split_whole(v.bytes, &leftover);
    EXPECT_EQ(leftover, 0u);
    const json& mframes = v.meaning.at("frames");
    ASSERT_EQ(frames.size(), mframes.size());
    wire::request_assembler assembler;
    std::vector<wire::request_message> messages;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      auto f = wire::decode_request_frame(frames[i].body);
      ASSERT_TRUE(f.has_value()) << f.error().message();
      expect_request_frame(mframes[i], *f, frames[i], v.name);
      auto ev = assembler.push(*f);
      if (ev.what == request_event::kind::request) {
        messages.push_back(std::move(ev.message));
      } else {
        EXPECT_EQ(ev.what, request_event::kind::none) << ev.reason;
      }
    }
    ASSERT_EQ(messages.size(), 1u);
    const auto& m = messages[0];
    EXPECT_EQ(m.session, v.meaning.at("session").get<std::uint32_t>());
    EXPECT_EQ(m.push, v.meaning.at("push").get<bool>());
    if (v.meaning.contains("name")) {
      EXPECT_TRUE(m.to.by_name);
      EXPECT_EQ(m.to.name, v.meaning["name"].get<std::string>());
    } else {
      EXPECT_FALSE(m.to.by_name);
      EXPECT_EQ(m.to.address, v.meaning.at("address").get<std::uint32_t>());
    }
    EXPECT_EQ(m.payload.size(), v.meaning.at("payload_len").get<std::size_t>());
    EXPECT_EQ(m.multipart, v.meaning.contains("multipart_total_len"));
    if (v.meaning.contains("payload_hex")) {
      EXPECT_EQ(to_hex(m.payload), v.meaning["payload_hex"].get<std::string>());
    }
    if (mframes[0].value("kind", "") == "trace") {
      EXPECT_TRUE(m.has_trace);
      EXPECT_EQ(m.trace_tag, mframes[0]["tag"].get<std::string>());
    }
    expect_values(v.meaning.at("values"), m.payload, v.name);
  }
}

TEST(RequestVectors, EncodingMeaningGivesExactBytes) {
  for (const auto& v : load_vectors("requests.jsonl")) {
    SCOPED_TRACE(v.name);
    auto values = tools::values_from_json(v.meaning.at("values"));
    ASSERT_TRUE(values.has_value()) << values.error();
    auto payload = seri::pack(*values);
    ASSERT_TRUE(payload.has_value());
    ASSERT_EQ(payload->size(), v.meaning.at("payload_len").get<std::size_t>());
    const auto to = v.meaning.contains("name") ? wire::target::named(v.meaning["name"].get<std::string>())
                                               : wire::target::handle(v.meaning.at("address").get<std::uint32_t>());
    byte_buffer out;
    const json& first = v.meaning.at("frames")[0];
    if (first.value("kind", "") == "trace") {
      ASSERT_TRUE(wire::encode_trace(first["tag"].get<std::string>(), out).has_value());
    }
    const bool push = v.meaning.at("push").get<bool>();
    ASSERT_TRUE(wire::encode_request(to, v.meaning.at("session").get<std::uint32_t>(), push, *payload, out).has_value());
    EXPECT_EQ(out.size(), v.bytes.size());
    EXPECT_TRUE(out == v.bytes) << "first difference at byte "
                                << (std::mismatch(out.begin(), out.end(), v.bytes.begin(), v.bytes.end()).first - out.begin());
  }
}

// ------------------------------------------------------- responses.jsonl --

TEST(ResponseVectors, DecodeGivesMeaning) {
  const auto vectors = load_vectors("responses.jsonl");
  ASSERT_EQ(vectors.size(), 67u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    ASSERT_TRUE(v.has_bytes);
    std::size_t leftover = 1;
    const auto frames = split_whole(v.bytes, &leftover);
    EXPECT_EQ(leftover, 0u);
    const json& mframes = v.meaning.at("frames");
    ASSERT_EQ(frames.size(), mframes.size());
    wire::response_assembler assembler;
    std::vector<wire::response_message> messages;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      auto f = wire::decode_response_frame(frames[i].body);
      ASSERT_TRUE(f.has_value()) << f.error().message();
      expect_response_frame(mframes[i], *f, frames[i], v.name);
      auto ev = assembler.push(*f);
      if (ev.what == response_event::kind::response) {
        messages.push_back(std::move(ev.message));
      } else {
        EXPECT_EQ(ev.what, response_event::kind::none) << ev.reason;
      }
    }
    ASSERT_EQ(messages.size(), 1u);
    const auto& m = messages[0];
    EXPECT_EQ(m.session, v.meaning.at("session").get<std::uint32_t>());
    EXPECT_EQ(m.ok, v.meaning.at("ok").get<bool>());
    EXPECT_EQ(m.payload.size(), v.meaning.at("payload_len").get<std::size_t>());
    if (m.ok) {
      if (v.meaning.contains("payload_hex")) {
        EXPECT_EQ(to_hex(m.payload), v.meaning["payload_hex"].get<std::string>());
      }
      expect_values(v.meaning.at("values"), m.payload, v.name);
    } else {
      EXPECT_EQ(std::string(m.payload.begin(), m.payload.end()), v.meaning.at("error_text").get<std::string>());
    }
  }
}

TEST(ResponseVectors, EncodingMeaningGivesExactBytes) {
  for (const auto& v : load_vectors("responses.jsonl")) {
    SCOPED_TRACE(v.name);
    const bool ok = v.meaning.at("ok").get<bool>();
    byte_buffer payload;
    if (ok) {
      auto values = tools::values_from_json(v.meaning.at("values"));
      ASSERT_TRUE(values.has_value()) << values.error();
      ASSERT_TRUE(seri::pack(*values, payload).has_value());
    } else {
      const auto text = v.meaning.at("error_text").get<std::string>();
      payload.assign(text.begin(), text.end());
    }
    byte_buffer out;
    ASSERT_TRUE(wire::encode_response(v.meaning.at("session").get<std::uint32_t>(), ok, payload, out).has_value());
    EXPECT_TRUE(out == v.bytes) << "sizes " << out.size() << " vs " << v.bytes.size();
  }
}

TEST(ResponseVectors, EveryResponseAnswersItsRequest) {
  const auto requests = load_vectors("requests.jsonl");
  for (const auto& r : load_vectors("responses.jsonl")) {
    const auto in_reply_to = r.meaning.at("in_reply_to").get<std::string>();
    auto it = std::find_if(requests.begin(), requests.end(), [&](const auto& q) { return q.name == in_reply_to; });
    ASSERT_NE(it, requests.end()) << r.name;
    EXPECT_EQ(it->meaning.at("session"), r.meaning.at("session")) << r.name;
  }
}

// ---------------------------------------------------------- streams.jsonl --

void check_stream(const vector_entry& v, std::mt19937& rng, std::size_t max_piece) {
  const bool requests = v.direction == "request";
  std::size_t leftover = 1;
  const auto frames = split_all(v.bytes, rng, max_piece, &leftover);
  EXPECT_EQ(leftover, 0u);
  const json& mframes = v.meaning.at("frames");
  ASSERT_EQ(frames.size(), mframes.size());
  if (v.meaning.contains("frame_count")) {
    EXPECT_EQ(frames.size(), v.meaning["frame_count"].get<std::size_t>());
  }
  wire::request_assembler req;
  wire::response_assembler resp;
  std::size_t messages = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (requests) {
      auto f = wire::decode_request_frame(frames[i].body);
      ASSERT_TRUE(f.has_value()) << f.error().message();
      expect_request_frame(mframes[i], *f, frames[i], v.name);
      auto ev = req.push(*f);
      if (ev.what == request_event::kind::request) {
        ++messages;
        // skynet's payloads are always seri data
        EXPECT_TRUE(seri::unpack(ev.message.payload).has_value()) << "session " << ev.message.session;
      } else {
        EXPECT_EQ(ev.what, request_event::kind::none) << ev.reason;
      }
    } else {
      auto f = wire::decode_response_frame(frames[i].body);
      ASSERT_TRUE(f.has_value()) << f.error().message();
      expect_response_frame(mframes[i], *f, frames[i], v.name);
      auto ev = resp.push(*f);
      if (ev.what == response_event::kind::response) {
        ++messages;
        if (ev.message.ok) {
          EXPECT_TRUE(seri::unpack(ev.message.payload).has_value()) << "session " << ev.message.session;
        }
      } else {
        EXPECT_EQ(ev.what, response_event::kind::none) << ev.reason;
      }
    }
  }
  EXPECT_GT(messages, 0u);
  EXPECT_EQ(req.pending() + resp.pending(), 0u);
}

TEST(StreamVectors, ParseWhole) {
  const auto vectors = load_vectors("streams.jsonl");
  ASSERT_EQ(vectors.size(), 5u);
  std::mt19937 rng(7);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    check_stream(v, rng, v.bytes.size() + 1);
  }
}

TEST(StreamVectors, ParseInRandomPieces) {
  std::mt19937 rng(20261125);
  for (const auto& v : load_vectors("streams.jsonl")) {
    for (std::size_t max_piece : {1u, 2u, 3u, 7u, 64u, 1500u, 65536u}) {
      if (max_piece == 1 && v.bytes.size() > 100000) continue;  // covered by 2 and 3
      SCOPED_TRACE(v.name + " pieces up to " + std::to_string(max_piece));
      check_stream(v, rng, max_piece);
    }
  }
}

TEST(StreamVectors, InterleavedMultipartKeepsBothMessages) {
  const auto vectors = load_vectors("streams.jsonl");
  auto it = std::find_if(vectors.begin(), vectors.end(),
                         [](const auto& v) { return v.name == "interleaved_multipart_request"; });
  ASSERT_NE(it, vectors.end());
  wire::request_assembler req;
  std::vector<request_event> events;
  for (const auto& fr : split_whole(it->bytes)) {
    auto f = wire::decode_request_frame(fr.body);
    ASSERT_TRUE(f.has_value());
    auto ev = req.push(*f);
    if (ev.what != request_event::kind::none) events.push_back(std::move(ev));
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message.session, 76u);  // the single request completes first
  EXPECT_FALSE(events[0].message.multipart);
  EXPECT_EQ(events[1].message.session, 75u);
  EXPECT_TRUE(events[1].message.push);
  EXPECT_EQ(events[1].message.to.name, "@nosuch");
  EXPECT_EQ(events[1].message.payload.size(), 40003u);
}

}  // namespace
}  // namespace csk::test
