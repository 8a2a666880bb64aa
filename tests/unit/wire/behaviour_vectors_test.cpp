// behaviour.jsonl: how real skynet reacts to traffic from other implementations.
// At the codec level we check that our parsers classify every captured byte
// sequence the way skynet did: what decodes to a request or response, what is
// answered with which error text, what is dropped, and what breaks a connection.
// (Dispatch-level answers such as "name not found" belong to the cluster node.)

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "tests/support/vectors.hpp"
#include "tools/wire/value_json.hpp"

namespace csk::test {
namespace {

using wire::request_event;
using wire::response_event;

const vector_entry& find(const std::vector<vector_entry>& all, const std::string& name) {
  auto it = std::find_if(all.begin(), all.end(), [&](const auto& v) { return v.name == name; });
  if (it == all.end()) throw std::runtime_error("no vector " + name);
  return *it;
}

// What the accepting side's codec made of a request stream.
struct rx_outcome {
  std::vector<wire::request_message> requests;
  std::vector<request_event> replies;    ///< reply_error events
  std::vector<wire::frame_error> dropped;  ///< frames skynet logs and drops
  std::size_t leftover = 0;
};

rx_outcome run_rx(bytes_view bytes, std::size_t piece = 0) {
  rx_outcome out;
  wire::frame_reader reader;
  wire::request_assembler assembler;
  auto drain = [&] {
    while (auto body = reader.next()) {
      auto f = wire::decode_request_frame(*body);
      if (!f) {
        out.dropped.push_back(f.error());
        continue;
      }
      auto ev = assembler.push(*f);
      if (ev.what == request_event::kind::request) {
        out.requests.push_back(std::move(ev.message));
      } else if (ev.what == request_event::kind::reply_error) {
        out.replies.push_back(std::move(ev));
      } else if (ev.what != request_event::kind::none) {
        ADD_FAILURE() << "unexpected event: " << ev.reason;
      }
    }
  };
  if (piece == 0) piece = bytes.size() + 1;
  for (std::size_t pos = 0; pos < bytes.size(); pos += piece) {
    reader.feed(bytes.subspan(pos, std::min(piece, bytes.size() - pos)));
    drain();
  }
  out.leftover = reader.buffered();
  return out;
}

// The request that skynet's echo service answered must carry what it echoed.
void expect_echoed(const rx_outcome& rx, const json& response, const std::string& ctx) {
  const auto session = response.at("session").get<std::uint32_t>();
  std::vector<const wire::request_message*> candidates;
  bool any = false;
  for (const auto& r : rx.requests) {
    if (r.session != session) continue;
    any = true;
    const bool echo = r.to.by_name ? (r.to.name == "@echo" || r.to.name == ".echo" || r.to.name == ":0000000a")
                                   : r.to.address == 10;
    if (echo) candidates.push_back(&r);
  }
  ASSERT_TRUE(any) << ctx << ": no request with session " << session;
  if (candidates.empty()) return;  // not the echo service (e.g. a name query)
  if (!response.at("values").is_array()) return;  // "1 values": large echo, checked by size
  bool matched = false;
  std::string last_diff;
  for (const auto* r : candidates) {
    auto values = seri::unpack(r->payload);
    ASSERT_TRUE(values.has_value()) << ctx;
    last_diff = match_values(response["values"], tools::values_to_json(*values));
    matched = matched || last_diff.empty();
  }
  EXPECT_TRUE(matched) << ctx << ": " << last_diff;
}

TEST(BehaviourVectors, ServerSideRowsClassifyAsSkynet) {
  const auto all = load_vectors("behaviour.jsonl");
  ASSERT_EQ(all.size(), 42u);
  std::size_t rows = 0;
  for (const auto& v : all) {
    if (v.name.rfind("rx_", 0) != 0) continue;
    SCOPED_TRACE(v.name);
    ASSERT_TRUE(v.has_bytes);
    ++rows;
    const rx_outcome rx = run_rx(v.bytes);
    EXPECT_EQ(rx.leftover, 0u);
    // Every answer skynet gave: either an error our codec produces itself with the
    // same text, or a decoded request with that session that a service answers.
    for (const auto& resp : v.meaning.at("skynet_responses")) {
      const auto session = resp.at("session").get<std::uint32_t>();
      const auto kind = resp.at("kind").get<std::string>();
      auto reply = std::find_if(rx.replies.begin(), rx.replies.end(),
                                [&](const auto& e) { return e.session == session; });
      if (reply != rx.replies.end()) {
        ASSERT_EQ(kind, "error");
        EXPECT_EQ(reply->error_text, resp.at("error_text").get<std::string>());
        continue;
      }
      if (kind == "error") {
        // e.g. "name not found": a request decoded and dispatch answers it.
        EXPECT_TRUE(std::any_of(rx.requests.begin(), rx.requests.end(),
                                [&](const auto& r) { return r.session == session; }));
        continue;
      }
      expect_echoed(rx, resp, v.name);
      if (kind == "multi_end") {
        // skynet echoed a multi-part payload of payload_len bytes; ours arrived whole.
        auto it = std::find_if(rx.requests.begin(), rx.requests.end(),
                               [&](const auto& r) { return r.session == session; });
        ASSERT_NE(it, rx.requests.end());
        EXPECT_EQ(it->payload.size(), resp.at("payload_len").get<std::size_t>());
        EXPECT_TRUE(it->multipart);
      }
    }
    // Nothing we answer that skynet did not.
    EXPECT_LE(rx.replies.size(), v.meaning.at("skynet_responses").size());
  }
  EXPECT_EQ(rows, 23u);
}

TEST(BehaviourVectors, MalformedRequestFramesAreDroppedWithAReason) {
  const auto all = load_vectors("behaviour.jsonl");
  const std::map<std::string, wire::frame_errc> expected = {
      {"rx_bad_request_type_0x05", wire::frame_errc::bad_type},
      {"rx_zero_length_frame", wire::frame_errc::empty_frame},
      {"rx_truncated_numeric_request", wire::frame_errc::truncated},
      {"rx_truncated_name_request", wire::frame_errc::truncated},
      {"rx_multipart_numeric_header_wrong_size", wire::frame_errc::bad_size},
  };
  for (const auto& [name, errc] : expected) {
    SCOPED_TRACE(name);
    const auto& v = find(all, name);
    EXPECT_TRUE(v.meaning.at("skynet_responses").empty());
    EXPECT_FALSE(v.meaning.at("connection_closed_by_skynet").get<bool>());
    const rx_outcome rx = run_rx(v.bytes);
    ASSERT_EQ(rx.dropped.size(), 1u);
    EXPECT_EQ(rx.dropped[0].code, errc) << rx.dropped[0].message();
    EXPECT_FALSE(rx.dropped[0].message().empty());
    EXPECT_TRUE(rx.requests.empty());
    EXPECT_TRUE(rx.replies.empty());
  }
}

TEST(BehaviourVectors, ConnectionKeepsWorkingAfterADroppedFrame) {
  // skynet's follow-up call on the same connection succeeded after each bad frame:
  // feed the bad bytes, then a good call, through one reader and assembler.
  const auto all = load_vectors("behaviour.jsonl");
  byte_buffer followup;
  ASSERT_TRUE(wire::encode_request(wire::target::named("@echo"), 999, false,
                                   *seri::pack(std::vector<lua_value>{"still alive?"}), followup)
                  .has_value());
  for (const auto& v : all) {
    if (!v.meaning.contains("followup_call_on_same_connection")) continue;
    SCOPED_TRACE(v.name);
    byte_buffer stream = v.bytes;
    stream.insert(stream.end(), followup.begin(), followup.end());
    const rx_outcome rx = run_rx(stream);
    ASSERT_FALSE(rx.requests.empty());
    EXPECT_EQ(rx.requests.back().session, 999u);
    expect_echoed(rx, v.meaning["followup_call_on_same_connection"][0], v.name);
  }
}

TEST(BehaviourVectors, ByteByByteDeliveryGivesTheSameRequests) {
  const auto all = load_vectors("behaviour.jsonl");
  for (const auto& v : all) {
    if (v.name.rfind("rx_", 0) != 0) continue;
    SCOPED_TRACE(v.name);
    const rx_outcome whole = run_rx(v.bytes);
    const rx_outcome bytewise = run_rx(v.bytes, 1);
    ASSERT_EQ(whole.requests.size(), bytewise.requests.size());
    for (std::size_t i = 0; i < whole.requests.size(); ++i) {
      EXPECT_EQ(whole.requests[i].session, bytewise.requests[i].session);
      EXPECT_TRUE(whole.requests[i].payload == bytewise.requests[i].payload);
    }
    EXPECT_EQ(whole.replies.size(), bytewise.replies.size());
    EXPECT_EQ(whole.dropped.size(), bytewise.dropped.size());
  }
}

TEST(BehaviourVectors, NameLengthZeroDecodesAsAnEmptyName) {
  const auto all = load_vectors("behaviour.jsonl");
  const auto& v = find(all, "rx_name_length_zero");
  const rx_outcome rx = run_rx(v.bytes);
  ASSERT_EQ(rx.requests.size(), 1u);
  EXPECT_TRUE(rx.requests[0].to.by_name);
  EXPECT_EQ(rx.requests[0].to.name, "");  // a bare (global) name: skynet never answers it
}

TEST(BehaviourVectors, InvalidSeriPayloadIsACompleteRequestThatDoesNotUnpack) {
  const auto all = load_vectors("behaviour.jsonl");
  const auto& v = find(all, "rx_call_with_invalid_seri_payload");
  const rx_outcome rx = run_rx(v.bytes);
  ASSERT_EQ(rx.requests.size(), 1u);
  EXPECT_FALSE(seri::unpack(rx.requests[0].payload).has_value());
}

// ------------------------------------------------------- client side (tx_) --

struct tx_outcome {
  std::vector<wire::response_message> responses;
  std::optional<wire::frame_error> broken;  ///< the connection must close
};

tx_outcome run_tx(bytes_view bytes) {
  tx_outcome out;
  wire::frame_reader reader;
  wire::response_assembler assembler;
  reader.feed(bytes);
  while (auto body = reader.next()) {
    auto f = wire::decode_response_frame(*body);
    if (!f) {
      out.broken = f.error();
      return out;
    }
    auto ev = assembler.push(*f);
    if (ev.what == response_event::kind::response) out.responses.push_back(std::move(ev.message));
  }
  return out;
}

TEST(BehaviourVectors, ClientSideRowsClassifyAsSkynet) {
  const auto all = load_vectors("behaviour.jsonl");
  std::size_t rows = 0;
  for (const auto& v : all) {
    // Rows without bytes (connection drops) need a live peer: cluster-node tests.
    if (v.name.rfind("tx_", 0) != 0 || v.bytes.empty()) continue;
    SCOPED_TRACE(v.name);
    ++rows;
    const tx_outcome tx = run_tx(v.bytes);
    const bool caller_ok = v.meaning.at("skynet_caller_ok").get<bool>();
    if (v.name == "tx_short_frame" || v.name == "tx_unknown_type") {
      // skynet closes the connection and fails the call.
      ASSERT_TRUE(tx.broken.has_value());
      EXPECT_FALSE(caller_ok);
      continue;
    }
    ASSERT_FALSE(tx.broken.has_value()) << tx.broken->message();
    ASSERT_FALSE(tx.responses.empty());
    // The call's own response is the last one (earlier ones have unknown sessions or 0).
    const auto& last = tx.responses.back();
    if (v.name == "tx_multi_size_mismatch") {
      // Our deliberate deviation: skynet returns zero values, we fail the call.
      EXPECT_TRUE(caller_ok);
      EXPECT_FALSE(last.ok);
      continue;
    }
    if (v.name == "tx_bad_seri_response") {
      ASSERT_TRUE(last.ok);
      auto values = seri::unpack(last.payload);
      ASSERT_FALSE(values.has_value());
      const auto err = v.meaning.at("skynet_caller_error").get<std::string>();
      EXPECT_NE(err.find(values.error().message().substr(0, 26)), std::string::npos) << values.error().message();
      continue;
    }
    EXPECT_EQ(last.ok, caller_ok);
    if (caller_ok) {
      auto values = seri::unpack(last.payload);
      ASSERT_TRUE(values.has_value());
      const std::string diff = match_values(v.meaning.at("skynet_caller_results"), tools::values_to_json(*values));
      EXPECT_TRUE(diff.empty()) << diff;
    }
  }
  EXPECT_EQ(rows, 16u);
}

TEST(BehaviourVectors, UnknownAndZeroSessionsAreDeliveredNotFatal) {
  const auto all = load_vectors("behaviour.jsonl");
  const tx_outcome unknown = run_tx(find(all, "tx_unknown_session_first").bytes);
  ASSERT_EQ(unknown.responses.size(), 2u);
  EXPECT_EQ(unknown.responses[0].session, unknown.responses[1].session + 1000);
  const tx_outcome zero = run_tx(find(all, "tx_session_zero_first").bytes);
  ASSERT_EQ(zero.responses.size(), 2u);
  EXPECT_EQ(zero.responses[0].session, 0u);
  EXPECT_FALSE(zero.responses[0].ok);
}

}  // namespace
}  // namespace csk::test
