// Cluster frames and reassembly, case by case: thresholds, limits, and the
// error paths the golden vectors do not reach.

#include <gtest/gtest.h>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"

namespace csk::wire {
namespace {

struct frame {
  byte_buffer body;
};

std::vector<frame> frames_of(const byte_buffer& stream) {
  frame_reader r;
  r.feed(stream);
  std::vector<frame> out;
  while (auto b = r.next()) out.push_back({byte_buffer(b->begin(), b->end())});
  EXPECT_EQ(r.buffered(), 0u);
  return out;
}

byte_buffer payload_of(std::size_t n) {
  byte_buffer p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 7);
  return p;
}

request_message assemble_one(const byte_buffer& stream, request_assembler& a) {
  request_message out;
  int got = 0;
  for (const auto& f : frames_of(stream)) {
    auto d = decode_request_frame(f.body);
    EXPECT_TRUE(d.has_value());
    auto ev = a.push(*d);
    if (ev.what == request_event::kind::request) {
      out = std::move(ev.message);
      ++got;
    }
  }
  EXPECT_EQ(got, 1);
  return out;
}

TEST(ClusterCodec, RequestSplitsAtThirtyTwoKiB) {
  for (std::size_t n : {0u, 1u, 32767u, 32768u, 32769u, 65536u, 100000u}) {
    SCOPED_TRACE(n);
    byte_buffer out;
    ASSERT_TRUE(encode_request(target::named("@echo"), 9, false, payload_of(n), out).has_value());
    const auto fs = frames_of(out);
    const std::size_t expect_frames = n < 32768 ? 1 : 1 + (n + 32767) / 32768;
    ASSERT_EQ(fs.size(), expect_frames);
    if (n >= 32768) {
      EXPECT_EQ(fs[0].body[0], 0x81);
      for (std::size_t i = 1; i + 1 < fs.size(); ++i) {
        EXPECT_EQ(fs[i].body[0], 0x02);
        EXPECT_EQ(fs[i].body.size(), 5u + 32768u);
      }
      EXPECT_EQ(fs.back().body[0], 0x03);  // last chunk may be a full 32768
    }
    request_assembler a;
    auto m = assemble_one(out, a);
    EXPECT_EQ(m.session, 9u);
    EXPECT_TRUE(m.payload == payload_of(n));
    EXPECT_EQ(m.multipart, n >= 32768);
  }
}

TEST(ClusterCodec, ResponseSplitsAboveThirtyTwoKiB) {
  for (std::size_t n : {0u, 32768u, 32769u, 65536u}) {
    SCOPED_TRACE(n);
    byte_buffer out;
    ASSERT_TRUE(encode_response(77, true, payload_of(n), out).has_value());
    const auto fs = frames_of(out);
    ASSERT_EQ(fs.size(), n <= 32768 ? 1u : 1u + (n + 32767) / 32768);
    response_assembler a;
    int got = 0;
    for (const auto& f : fs) {
      auto d = decode_response_frame(f.body);
      ASSERT_TRUE(d.has_value());
      auto ev = a.push(*d);
      if (ev.what == response_event::kind::response) {
        ++got;
        EXPECT_TRUE(ev.message.ok);
        EXPECT_TRUE(ev.message.payload == payload_of(n));
      }
    }
    EXPECT_EQ(got, 1);
  }
}

TEST(ClusterCodec, SinglePushCarriesSessionZeroMultiPushARealOne) {
  byte_buffer small;
  ASSERT_TRUE(encode_request(target::handle(10), 55, true, payload_of(3), small).has_value());
  auto f = decode_request_frame(frames_of(small)[0].body);
  EXPECT_EQ(f->session, 0u);
  EXPECT_TRUE(f->push());
  EXPECT_FALSE(request_uses_session(true, 3));
  EXPECT_TRUE(request_uses_session(true, 40000));
  EXPECT_TRUE(request_uses_session(false, 0));

  byte_buffer big;
  ASSERT_TRUE(encode_request(target::handle(10), 55, true, payload_of(40000), big).has_value());
  auto h = decode_request_frame(frames_of(big)[0].body);
  EXPECT_EQ(h->type, request_type::mpush_addr);
  EXPECT_EQ(h->session, 55u);
}

TEST(ClusterCodec, NamesMustBeOneTo255Bytes) {
  byte_buffer out;
  EXPECT_EQ(encode_request(target::named(""), 1, false, {}, out).error().code, frame_errc::bad_name);
  EXPECT_EQ(encode_request(target::named(std::string(256, 'n')), 1, false, {}, out).error().code, frame_errc::bad_name);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(encode_request(target::named(std::string(255, 'n')), 1, false, {}, out).has_value());
}

TEST(ClusterCodec, ErrorTextIsTruncatedTo32KiB) {
  byte_buffer out;
  const std::string text(40000, 'e');
  ASSERT_TRUE(encode_response(3, false, as_bytes(text), out).has_value());
  const auto fs = frames_of(out);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].body.size(), 5u + 32768u);
}

TEST(ClusterCodec, MalformedRequestFramesSayWhatAndWhere) {
  const std::vector<std::pair<std::string, frame_errc>> cases = {
      {"", frame_errc::empty_frame},          {"05", frame_errc::bad_type},
      {"000a0000", frame_errc::truncated},    {"80", frame_errc::truncated},
      {"8005406563", frame_errc::truncated},  {"010a00000016000000", frame_errc::bad_size},
      {"8105406563686f01000000", frame_errc::truncated}, {"03000000", frame_errc::truncated},
  };
  for (const auto& [hex, code] : cases) {
    byte_buffer body;
    ASSERT_TRUE(from_hex(hex, body));
    auto r = decode_request_frame(body);
    ASSERT_FALSE(r.has_value()) << hex;
    EXPECT_EQ(r.error().code, code) << hex;
    EXPECT_NE(r.error().message().find("at byte"), std::string::npos);
  }
}

TEST(ClusterCodec, MalformedResponseFramesBreakTheConnection) {
  for (const char* hex : {"01000000", "0100000005", "01000000020100", "0100000009"}) {
    byte_buffer body;
    ASSERT_TRUE(from_hex(hex, body));
    EXPECT_FALSE(decode_response_frame(body).has_value()) << hex;
  }
}

TEST(ClusterCodec, CountFramesCountsWholeFramesOnly) {
  EXPECT_EQ(count_frames({}), 0u);
  const byte_buffer two = {0x00, 0x01, 0xaa, 0x00, 0x00};  // a 1-byte body, then an empty one
  EXPECT_EQ(count_frames(two), 2u);
  const byte_buffer partial = {0x00, 0x04, 0xaa, 0xbb, 0x00};  // claims 4 bytes, has 3
  EXPECT_EQ(count_frames(partial), 0u);
  const byte_buffer one_and_header = {0x00, 0x01, 0xaa, 0x01};  // a frame and half a header
  EXPECT_EQ(count_frames(one_and_header), 1u);
  // The encoders' output: 1 frame under the split, header + chunks past it.
  byte_buffer out;
  ASSERT_TRUE(encode_request(target::named("@x"), 1, false, payload_of(100), out));
  EXPECT_EQ(count_frames(out), 1u);
  out.clear();
  ASSERT_TRUE(encode_request(target::named("@x"), 1, false, payload_of(3 * multipart_chunk_size + 1), out));
  EXPECT_EQ(count_frames(out), 1u + 4u);
  EXPECT_EQ(count_frames(out), frames_of(out).size());
  const std::size_t one_response = out.size();
  ASSERT_TRUE(encode_response(7, true, payload_of(multipart_chunk_size + 1), out));
  EXPECT_EQ(count_frames(out), 5u + 3u);  // MULTI_BEGIN + 2 chunks after the request
  EXPECT_EQ(count_frames(bytes_view(out).subspan(one_response)), 3u);
}

TEST(ClusterCodec, FrameReaderHandlesAnyChunking) {
  byte_buffer stream;
  for (std::uint32_t s = 1; s <= 50; ++s) {
    ASSERT_TRUE(encode_request(target::handle(s), s, false, payload_of(s * 997 % 40000), stream).has_value());
  }
  for (std::size_t piece : {1u, 2u, 5u, 4096u}) {
    frame_reader r;
    request_assembler a;
    std::uint32_t next = 1;
    for (std::size_t pos = 0; pos < stream.size(); pos += piece) {
      r.feed(bytes_view(stream).subspan(pos, std::min(piece, stream.size() - pos)));
      while (auto b = r.next()) {
        auto ev = a.push(*decode_request_frame(*b));
        if (ev.what == request_event::kind::request) {
          EXPECT_EQ(ev.message.session, next);
          EXPECT_TRUE(ev.message.payload == payload_of(next * 997 % 40000));
          ++next;
        }
      }
    }
    EXPECT_EQ(next, 51u) << piece;
    EXPECT_LT(r.buffered(), 2u * 65537u);  // compaction keeps the buffer bounded
  }
}

TEST(ClusterAssembler, TraceTagGoesToTheNextRequestOnly) {
  byte_buffer s;
  ASSERT_TRUE(encode_trace("tag-1", s).has_value());
  ASSERT_TRUE(encode_request(target::named("@a"), 1, false, payload_of(2), s).has_value());
  ASSERT_TRUE(encode_request(target::named("@a"), 2, false, payload_of(2), s).has_value());
  ASSERT_TRUE(encode_trace("tag-2", s).has_value());
  ASSERT_TRUE(encode_request(target::named("@a"), 3, false, payload_of(40000), s).has_value());
  request_assembler a;
  std::vector<request_message> got;
  for (const auto& f : frames_of(s)) {
    auto ev = a.push(*decode_request_frame(f.body));
    if (ev.what == request_event::kind::request) got.push_back(std::move(ev.message));
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].has_trace);
  EXPECT_EQ(got[0].trace_tag, "tag-1");
  EXPECT_FALSE(got[1].has_trace);
  EXPECT_TRUE(got[2].has_trace);
  EXPECT_EQ(got[2].trace_tag, "tag-2");
}

request_event push_hex(request_assembler& a, std::string_view hex) {
  byte_buffer body;
  EXPECT_TRUE(from_hex(hex, body));
  auto f = decode_request_frame(body);
  EXPECT_TRUE(f.has_value());
  return a.push(*f);
}

TEST(ClusterAssembler, OversizedRequestIsRefusedWithoutBuffering) {
  request_assembler a(assembler_limits{.max_message_size = 10, .max_pending_messages = 8});
  // header: @x, session 7, total 12
  auto h = push_hex(a, "8102407807000000" "0c000000");
  EXPECT_EQ(h.what, request_event::kind::dropped);
  EXPECT_NE(h.reason.find("over the limit"), std::string::npos);
  EXPECT_EQ(push_hex(a, "0207000000" "616263646566").what, request_event::kind::none);
  auto end = push_hex(a, "0307000000" "616263646566");
  EXPECT_EQ(end.what, request_event::kind::reply_error);
  EXPECT_EQ(end.session, 7u);
  EXPECT_EQ(end.error_text, error_invalid_large_req);
  EXPECT_EQ(a.pending(), 0u);
}

TEST(ClusterAssembler, TotalMismatchAndOrphansGetSkynetsErrors) {
  request_assembler a;
  push_hex(a, "01" "0a000000" "05000000" "04000000");  // total 4
  auto more = push_hex(a, "0305000000" "6162636465");  // 5 bytes
  EXPECT_EQ(more.what, request_event::kind::reply_error);
  EXPECT_EQ(more.error_text, error_invalid_large_req);

  auto orphan_end = push_hex(a, "0314000000" "6f");
  EXPECT_EQ(orphan_end.what, request_event::kind::reply_error);
  EXPECT_EQ(orphan_end.error_text, error_invalid_name);
  EXPECT_EQ(orphan_end.session, 0x14u);

  // Chunks that started without a header can never add up (skynet: "Invalid large req").
  EXPECT_EQ(push_hex(a, "0215000000" "6f").what, request_event::kind::none);
  auto orphan_chain = push_hex(a, "0315000000" "6f");
  EXPECT_EQ(orphan_chain.error_text, error_invalid_large_req);
  EXPECT_EQ(a.pending(), 0u);
}

TEST(ClusterAssembler, TooManyIncompleteMessagesIsFatal) {
  request_assembler a(assembler_limits{.max_message_size = 1 << 20, .max_pending_messages = 2});
  EXPECT_EQ(push_hex(a, "01" "0a000000" "01000000" "04000000").what, request_event::kind::none);
  EXPECT_EQ(push_hex(a, "01" "0a000000" "02000000" "04000000").what, request_event::kind::none);
  EXPECT_EQ(push_hex(a, "01" "0a000000" "03000000" "04000000").what, request_event::kind::fatal);
}

// The bytes all of a connection's incomplete multi-part requests hold are capped: a chunk
// that would pass the budget is fatal; a finished or refused message gives its bytes back.
TEST(ClusterAssembler, IncompleteRequestsAreBoundedByTheConnectionsBudget) {
  request_assembler a(assembler_limits{.max_message_size = 16, .max_pending_messages = 100, .max_pending_bytes = 10});
  EXPECT_EQ(push_hex(a, "01" "0a000000" "01000000" "04000000").what, request_event::kind::none);
  EXPECT_EQ(push_hex(a, "0201000000" "6162").what, request_event::kind::none);
  EXPECT_EQ(push_hex(a, "01" "0a000000" "02000000" "08000000").what, request_event::kind::none);
  EXPECT_EQ(push_hex(a, "0202000000" "616263646566").what, request_event::kind::none);
  EXPECT_EQ(a.held_bytes(), 8u);
  EXPECT_EQ(push_hex(a, "0301000000" "6364").what, request_event::kind::request) << "exactly at the budget";
  EXPECT_EQ(a.held_bytes(), 6u) << "the finished message gave its 4 bytes back";
  // Over max_message_size: counted, never stored, so it costs no budget.
  EXPECT_EQ(push_hex(a, "01" "0a000000" "04000000" "20000000").what, request_event::kind::dropped);
  EXPECT_EQ(push_hex(a, "0204000000" "6162636465666768").what, request_event::kind::none);
  EXPECT_EQ(a.held_bytes(), 6u);
  EXPECT_EQ(push_hex(a, "01" "0a000000" "03000000" "08000000").what, request_event::kind::none);
  const auto ev = push_hex(a, "0203000000" "6162636465");
  EXPECT_EQ(ev.what, request_event::kind::fatal) << "6 + 5 > 10";
  EXPECT_NE(ev.reason.find("budget of 10"), std::string::npos) << ev.reason;
  EXPECT_EQ(a.held_bytes(), 6u) << "a refused chunk is not stored";
}

TEST(ClusterAssembler, RepeatedHeaderSpoilsTheMessage) {
  // skynet appends a second header to the first message, which then cannot add up.
  request_assembler a;
  push_hex(a, "01" "0a000000" "01000000" "04000000");
  push_hex(a, "0201000000" "6162");
  auto again = push_hex(a, "01" "0a000000" "01000000" "02000000");
  EXPECT_EQ(again.what, request_event::kind::dropped);
  EXPECT_NE(again.reason.find("repeats session 1"), std::string::npos);
  auto done = push_hex(a, "0301000000" "6364");
  ASSERT_EQ(done.what, request_event::kind::reply_error);
  EXPECT_EQ(done.error_text, error_invalid_large_req);
  EXPECT_EQ(a.pending(), 0u);
}

TEST(ClusterAssembler, TraceTagWaitsForACallPastSinglePushes) {
  byte_buffer s;
  ASSERT_TRUE(encode_trace("t", s).has_value());
  ASSERT_TRUE(encode_request(target::named("@a"), 0, true, payload_of(2), s).has_value());
  ASSERT_TRUE(encode_request(target::named("@a"), 5, false, payload_of(2), s).has_value());
  request_assembler a;
  std::vector<request_message> got;
  for (const auto& f : frames_of(s)) {
    auto ev = a.push(*decode_request_frame(f.body));
    if (ev.what == request_event::kind::request) got.push_back(std::move(ev.message));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].push);
  EXPECT_FALSE(got[0].has_trace);
  EXPECT_TRUE(got[1].has_trace);
  EXPECT_EQ(got[1].trace_tag, "t");
}

response_event push_resp(response_assembler& a, std::string_view hex) {
  byte_buffer body;
  EXPECT_TRUE(from_hex(hex, body));
  auto f = decode_response_frame(body);
  EXPECT_TRUE(f.has_value()) << hex;
  return a.push(*f);
}

TEST(ClusterAssembler, IncompleteResponsesAreBoundedByTheConnectionsBudget) {
  response_assembler a(assembler_limits{.max_message_size = 16, .max_pending_messages = 4, .max_pending_bytes = 4});
  push_resp(a, "0700000002" "06000000");
  EXPECT_EQ(push_resp(a, "0700000003" "61626364").what, response_event::kind::none);
  EXPECT_EQ(a.held_bytes(), 4u);
  const auto over = push_resp(a, "0700000003" "65");
  EXPECT_EQ(over.what, response_event::kind::fatal);
  EXPECT_NE(over.reason.find("budget of 4"), std::string::npos) << over.reason;
  EXPECT_EQ(push_resp(a, "0700000000" "626f6f6d").what, response_event::kind::response) << "an ERROR replaces it";
  EXPECT_EQ(a.held_bytes(), 0u);
}

TEST(ClusterAssembler, ResponseErrorReplacesAPartialMultipart) {
  response_assembler a;
  push_resp(a, "0500000002" "08000000");
  push_resp(a, "0500000003" "61626364");
  auto e = push_resp(a, "0500000000" "626f6f6d");
  ASSERT_EQ(e.what, response_event::kind::response);
  EXPECT_FALSE(e.message.ok);
  EXPECT_EQ(std::string(e.message.payload.begin(), e.message.payload.end()), "boom");
  EXPECT_EQ(a.pending(), 0u);
}

TEST(ClusterAssembler, OkAfterBeginFinishesTheMultipart) {
  response_assembler a;
  push_resp(a, "0600000002" "04000000");
  push_resp(a, "0600000003" "6162");
  auto ok = push_resp(a, "0600000001" "6364");
  ASSERT_EQ(ok.what, response_event::kind::response);
  EXPECT_TRUE(ok.message.ok);
  EXPECT_EQ(std::string(ok.message.payload.begin(), ok.message.payload.end()), "abcd");
}

TEST(ClusterAssembler, ResponseSizeMismatchAndOversizeFailTheCall) {
  response_assembler a(assembler_limits{.max_message_size = 16, .max_pending_messages = 4});
  push_resp(a, "0700000002" "05000000");
  auto m = push_resp(a, "0700000004" "6162");
  ASSERT_EQ(m.what, response_event::kind::response);
  EXPECT_FALSE(m.message.ok);
  EXPECT_NE(m.reason.find("mismatch"), std::string::npos);

  push_resp(a, "0800000002" "00010000");  // 256 > 16
  push_resp(a, "0800000003" "6162");
  auto big = push_resp(a, "0800000004" "6162");
  EXPECT_FALSE(big.message.ok);
  EXPECT_NE(big.reason.find("size limit"), std::string::npos);

  auto stray = push_resp(a, "0900000003" "6162");
  EXPECT_EQ(stray.what, response_event::kind::dropped);
  auto stray_end = push_resp(a, "0900000004" "6162");
  EXPECT_EQ(stray_end.what, response_event::kind::response);
  EXPECT_FALSE(stray_end.message.ok);
}

}  // namespace
}  // namespace csk::wire
