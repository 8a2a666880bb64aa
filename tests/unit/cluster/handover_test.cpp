// Hand-over of an inbound cluster connection between two in-process nodes (stand-ins for
// worker generations N and N+1): a raw skynet-protocol client is connected to A, A is
// frozen with a multi-part request half received, the connection moves to B with its
// unread bytes and its agent state, the client sends the rest on the SAME TCP connection
// and B answers exactly what skynet answered (tests/data/interop/behaviour.jsonl,
// rx_py_multipart_call_100000). Also the agent/assembler state encoding on its own.
// No sleeps: waits are poll() on the socket or futures, each with a deadline.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cerrno>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/agent.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"
#include "tests/support/cluster_node.hpp"
#include "tests/support/skynet_client.hpp"
#include "tests/support/vectors.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using actor::values;
using wire::target;

constexpr auto io_wait = 10s;

// ------------------------------------------------------------------ helpers --

/// The raw frames (2-byte big-endian length + body) of a byte string, and a tail that
/// is not a whole frame.
std::vector<byte_buffer> raw_frames(bytes_view bytes) {
  std::vector<byte_buffer> out;
  std::size_t pos = 0;
  while (bytes.size() - pos >= 2) {
    const std::size_t len = (std::size_t{bytes[pos]} << 8) | bytes[pos + 1];
    if (bytes.size() - pos - 2 < len) break;
    out.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                     bytes.begin() + static_cast<std::ptrdiff_t>(pos + 2 + len));
    pos += 2 + len;
  }
  return out;
}

byte_buffer request_bytes(const target& to, std::uint32_t session, const values& args) {
  auto out = test::encode_call(to, session, args);
  EXPECT_TRUE(out.has_value());
  return out ? std::move(*out) : byte_buffer{};
}

void append(byte_buffer& to, bytes_view b) { to.insert(to.end(), b.begin(), b.end()); }

/// A raw skynet-protocol client (tests/support): blocking writes, whole responses read
/// with poll().
class client : public test::skynet_client {
 public:
  explicit client(std::uint16_t port) : skynet_client(port) {}

  /// The next whole response; nullopt with `why` on EOF (the peer must never see one
  /// here), timeout or bad bytes.
  std::optional<reply> next(std::string& why) { return next_response(steady::now() + io_wait, why); }

  /// The next response must be an OK for `session` whose single value is `text`.
  void expect_echo(std::uint32_t session, const std::string& text) {
    std::string why;
    auto r = next(why);
    ASSERT_TRUE(r.has_value()) << "session " << session << ": " << why;
    EXPECT_EQ(r->msg.session, session);
    ASSERT_TRUE(r->msg.ok) << as_chars(r->msg.payload);
    auto v = seri::unpack(r->msg.payload);
    ASSERT_TRUE(v.has_value());
    ASSERT_EQ(v->size(), 1u);
    EXPECT_EQ((*v)[0].as_string(), text);
  }
};

/// One worker generation: a cluster node "server" with the lab services.
struct worker : test::cluster_test_node {
  explicit worker(bool listen) : cluster_test_node("server", true) {
    if (listen) {
      auto p = cluster->open();
      if (!p) throw std::runtime_error(p.error());
      port = *p;
    }
  }

  /// Waits (deadline) until no inbound call is in flight: the freeze's drain.
  bool drained() const {
    const auto deadline = steady::now() + io_wait;
    while (cluster->inbound_in_flight() != 0) {
      if (steady::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }

  std::uint16_t port = 0;
};

const test::vector_entry& multipart_row() {
  static const auto rows = test::load_vectors("behaviour.jsonl");
  for (const auto& v : rows) {
    if (v.name == "rx_py_multipart_call_100000") return v;
  }
  throw std::runtime_error("no row rx_py_multipart_call_100000");
}

/// The agent state's assembler part: how many multi-part requests it carries.
std::size_t pending_in(const byte_buffer& agent_state) {
  if (agent_state.size() < 9) return 0;
  wire::request_assembler a;
  auto ok = a.import_state(bytes_view(agent_state).subspan(9));
  return ok ? a.pending() : 0;
}

// ------------------------------------------------------------ the hand-over --

TEST(ClusterHandover, HalfReceivedMultipartCompletesAfterTheMove) {
  const auto& row = multipart_row();
  ASSERT_TRUE(row.has_bytes);
  const auto frames = raw_frames(row.bytes);
  ASSERT_GE(frames.size(), 4u);  // header + chunks
  const auto& want = row.meaning.at("skynet_responses").at(0);
  const auto session = want.at("session").get<std::uint32_t>();

  worker a(true);
  worker b(false);
  client c(a.port);
  ASSERT_TRUE(c.connected());
  const target echo = target::named("@echo");

  // Before the move: a call, answered by A.
  ASSERT_TRUE(c.write(request_bytes(echo, 1, {"before"})));
  c.expect_echo(1, "before");

  // The header and the first chunk, a single call in between (skynet accepts it), then
  // a piece of the second chunk: A's agent holds a half-received request, A's connection
  // a partial frame.
  byte_buffer first;
  append(first, frames[0]);
  append(first, frames[1]);
  append(first, request_bytes(echo, 2, {"between"}));
  const std::size_t cut = 1000;
  append(first, bytes_view(frames[2]).first(cut));
  ASSERT_TRUE(c.write(first));
  c.expect_echo(2, "between");  // A has processed everything up to here

  // The freeze, the drain, the detach (generation N).
  a.cluster->pause_inbound();
  ASSERT_TRUE(a.drained());
  const auto ids = a.cluster->inbound_ids();
  ASSERT_EQ(ids.size(), 1u);
  auto handed = a.cluster->detach_inbound(ids[0], 5s);
  ASSERT_EQ(handed.wait_for(io_wait), std::future_status::ready);
  auto h = handed.get();
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(pending_in(h->agent_state), 1u) << "the half-received request travels in the agent state";
  EXPECT_LE(h->connection.unread.size(), cut);  // at most the partial frame, from its start
  EXPECT_EQ(h->connection.unread, byte_buffer(frames[2].begin(), frames[2].begin() +
                                                                     static_cast<std::ptrdiff_t>(
                                                                         h->connection.unread.size())));
  EXPECT_EQ(a.cluster->inbound_connections(), 0u);

  // The adoption (generation N+1), then the rest of the request on the same connection.
  auto adopted = b.cluster->adopt_inbound(h->connection, h->agent_state);
  ASSERT_TRUE(adopted) << adopted.error();
  EXPECT_EQ(b.cluster->inbound_connections(), 1u);
  byte_buffer rest(frames[2].begin() + static_cast<std::ptrdiff_t>(cut), frames[2].end());
  for (std::size_t i = 3; i < frames.size(); ++i) append(rest, frames[i]);
  ASSERT_TRUE(c.write(rest));

  // What skynet answered: session 8, multi-part (5 frames), the payload echoed as sent.
  std::string why;
  auto r = c.next(why);
  ASSERT_TRUE(r.has_value()) << why;
  EXPECT_EQ(r->msg.session, session);
  ASSERT_TRUE(r->msg.ok) << as_chars(r->msg.payload);
  EXPECT_EQ(r->msg.payload.size(), want.at("payload_len").get<std::size_t>());
  EXPECT_EQ(r->frames, want.at("frames").get<int>());
  wire::request_assembler sent;
  byte_buffer sent_payload;
  for (const auto& f : frames) {
    auto decoded = wire::decode_request_frame(bytes_view(f).subspan(2));
    ASSERT_TRUE(decoded.has_value());
    auto ev = sent.push(*decoded);
    if (ev.what == wire::request_event::kind::request) sent_payload = ev.message.payload;
  }
  EXPECT_EQ(r->msg.payload, sent_payload);  // echo_identical

  // After the move: calls answered by B, each exactly once and in order (a duplicate or
  // a stray answer would come before them).
  ASSERT_TRUE(c.write(request_bytes(echo, 3, {"after"})));
  c.expect_echo(3, "after");
  ASSERT_TRUE(c.write(request_bytes(echo, 4, {"last"})));
  c.expect_echo(4, "last");
  EXPECT_EQ(c.buffered(), 0u);
  EXPECT_EQ(a.net->get_stats().detached, 1u);
  EXPECT_EQ(b.net->get_stats().adopted, 1u);
}

// A call in flight at the detach: refused (its answer would be lost), the connection
// stays with A and the answer arrives; after the drain the detach succeeds.
TEST(ClusterHandover, DetachRefusedWhileACallIsInFlight) {
  worker a(true);
  worker b(false);
  client c(a.port);
  ASSERT_TRUE(c.connected());
  const auto nap = std::int64_t{300};  // @slow sleeps this long before answering
  ASSERT_TRUE(c.write(request_bytes(target::named("@slow"), 7, {nap})));
  // The call is dispatched once it is counted (no sleep: wait for the counter).
  const auto deadline = steady::now() + io_wait;
  while (a.cluster->inbound_in_flight() == 0 && steady::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(a.cluster->inbound_in_flight(), 1u);

  a.cluster->pause_inbound();
  const auto id = a.cluster->inbound_ids().at(0);
  auto refused = a.cluster->detach_inbound(id, 5s).get();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("in flight"), std::string::npos) << refused.error();
  EXPECT_EQ(a.cluster->inbound_connections(), 1u);

  std::string why;
  auto r = c.next(why);  // answered by A, though frozen (answers still go out)
  ASSERT_TRUE(r.has_value()) << why;
  EXPECT_EQ(r->msg.session, 7u);
  EXPECT_TRUE(r->msg.ok);

  ASSERT_TRUE(a.drained());
  auto h = a.cluster->detach_inbound(id, 5s).get();
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(pending_in(h->agent_state), 0u);
  auto adopted = b.cluster->adopt_inbound(h->connection, h->agent_state);
  ASSERT_TRUE(adopted) << adopted.error();
  ASSERT_TRUE(c.write(request_bytes(target::named("@echo"), 8, {"moved"})));
  c.expect_echo(8, "moved");
}

// Rollback: the upgrade is abandoned after the freeze; resume_inbound and A serves on.
TEST(ClusterHandover, ResumeAfterFreezeServesAgain) {
  worker a(true);
  client c(a.port);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.write(request_bytes(target::named("@echo"), 1, {"one"})));
  c.expect_echo(1, "one");
  a.cluster->pause_inbound();
  ASSERT_TRUE(c.write(request_bytes(target::named("@echo"), 2, {"held"})));
  a.cluster->resume_inbound();
  c.expect_echo(2, "held");
}

TEST(ClusterHandover, DetachOfAnUnknownIdFails) {
  worker a(true);
  auto r = a.cluster->detach_inbound(999, 1s).get();
  ASSERT_FALSE(r);
}

// ------------------------------------------------------------ state encodings --

TEST(AgentState, RoundTripsAndRejectsDamage) {
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(o);
  std::vector<byte_buffer> written;
  agent a(rt, "peer", [&](byte_buffer b) { written.push_back(std::move(b)); }, [](const std::string&) {});

  // A trace tag waiting, and a multi-part request with part of its payload.
  const auto frames = raw_frames(multipart_row().bytes);
  byte_buffer trace;
  const std::string tag = "tag-1";
  trace.push_back(0);
  trace.push_back(static_cast<std::uint8_t>(1 + tag.size()));
  trace.push_back(4);  // trace frame
  append(trace, as_bytes(tag));
  a.on_frame(bytes_view(trace).subspan(2));
  a.on_frame(bytes_view(frames[0]).subspan(2));
  a.on_frame(bytes_view(frames[1]).subspan(2));
  EXPECT_TRUE(written.empty());
  EXPECT_EQ(a.in_flight(), 0u);

  auto state = a.export_state();
  ASSERT_TRUE(state) << state.error();
  EXPECT_EQ(pending_in(*state), 1u);

  agent fresh(rt, "peer", [](byte_buffer) {}, [](const std::string&) {});
  ASSERT_TRUE(fresh.import_state(*state));
  auto again = fresh.export_state();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *state);  // deterministic, nothing lost

  // Every truncation, and a flipped version, are refused.
  for (std::size_t n = 0; n < state->size(); ++n) {
    agent other(rt, "peer", [](byte_buffer) {}, [](const std::string&) {});
    EXPECT_FALSE(other.import_state(bytes_view(*state).first(n))) << "truncated to " << n;
  }
  byte_buffer bad = *state;
  bad[4] = 99;
  agent other(rt, "peer", [](byte_buffer) {}, [](const std::string&) {});
  auto r = other.import_state(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("version"), std::string::npos) << r.error();
  byte_buffer longer = *state;
  longer.push_back(0);
  EXPECT_FALSE(other.import_state(longer));
}

TEST(AssemblerState, ImportAppliesTheLimitsAndRefusesDuplicates) {
  const auto frames = raw_frames(multipart_row().bytes);
  wire::request_assembler a;
  for (std::size_t i = 0; i < 2; ++i) {
    auto f = wire::decode_request_frame(bytes_view(frames[i]).subspan(2));
    ASSERT_TRUE(f);
    (void)a.push(*f);
  }
  byte_buffer state;
  a.export_state(state);

  wire::assembler_limits none_pending;
  none_pending.max_pending_messages = 0;
  wire::request_assembler strict(none_pending);
  EXPECT_FALSE(strict.import_state(state));

  // Same request twice: count 2, both session 8.
  wire::request_assembler empty;
  byte_buffer empty_state;
  empty.export_state(empty_state);
  const std::size_t header = empty_state.size();  // magic..count
  byte_buffer twice(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(header));
  twice[header - 4] = 2;
  append(twice, bytes_view(state).subspan(header));
  append(twice, bytes_view(state).subspan(header));
  wire::request_assembler dup;
  auto r = dup.import_state(twice);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("duplicate"), std::string::npos) << r.error();

  // A smaller max_message_size: the request is kept, but discarded (refused at its end).
  wire::assembler_limits small;
  small.max_message_size = 1000;
  wire::request_assembler tight(small);
  ASSERT_TRUE(tight.import_state(state));
  EXPECT_EQ(tight.pending(), 1u);
  for (std::size_t i = 2; i < frames.size(); ++i) {
    auto f = wire::decode_request_frame(bytes_view(frames[i]).subspan(2));
    ASSERT_TRUE(f);
    auto ev = tight.push(*f);
    if (i + 1 == frames.size()) {
      EXPECT_EQ(ev.what, wire::request_event::kind::reply_error);
      EXPECT_EQ(ev.error_text, wire::error_invalid_large_req);
    }
  }
}

}  // namespace
}  // namespace csk::cluster
