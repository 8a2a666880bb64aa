// The cluster agent answers the whole captured client stream (session_c2s.bin) the way
// the lab's skynet node did (session_s2c.bin), with the lab's services running here.

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/agent.hpp"
#include "services/lab/lab_services.hpp"
#include "tests/support/vectors.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;

struct written {
  std::mutex mu;
  byte_buffer bytes;
  std::vector<std::string> closed;
};

std::multimap<std::uint32_t, wire::response_message> responses_of(bytes_view stream) {
  std::multimap<std::uint32_t, wire::response_message> out;
  wire::frame_reader reader;
  wire::response_assembler assembler;
  reader.feed(stream);
  while (auto body = reader.next()) {
    auto f = wire::decode_response_frame(*body);
    EXPECT_TRUE(f.has_value());
    if (!f) break;
    auto ev = assembler.push(*f);
    if (ev.what == wire::response_event::kind::response) out.emplace(ev.message.session, std::move(ev.message));
  }
  EXPECT_EQ(reader.buffered(), 0u);
  return out;
}

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    actor::runtime_options o;
    o.run_mode = actor::runtime_options::mode::manual;
    o.call_timeout = 1000ms;
    rt_ = std::make_unique<actor::runtime>(o);
    lab::spawn_lab_services(*rt_);
    rt_->start();
    agent_ = std::make_unique<agent>(
        *rt_, "test-peer",
        [w = &out_](byte_buffer b) {
          std::lock_guard lock(w->mu);
          w->bytes.insert(w->bytes.end(), b.begin(), b.end());
        },
        [w = &out_](const std::string& reason) {
          std::lock_guard lock(w->mu);
          w->closed.push_back(reason);
        });
  }
  ~AgentTest() override { rt_->shutdown(); }

  void feed(bytes_view stream) {
    wire::frame_reader reader;
    reader.feed(stream);
    while (auto body = reader.next()) agent_->on_frame(*body);
  }
  void run_for(std::chrono::milliseconds d) {
    rt_->run_until_idle();
    for (auto t = 0ms; t < d; t += 10ms) {
      rt_->advance_time(10ms);
      rt_->run_until_idle();
    }
  }

  written out_;
  std::unique_ptr<actor::runtime> rt_;
  std::unique_ptr<agent> agent_;
};

TEST_F(AgentTest, AnswersTheCapturedSessionLikeSkynet) {
  const auto streams = test::load_vectors("streams.jsonl");
  const auto& c2s = *std::find_if(streams.begin(), streams.end(), [](const auto& v) { return v.name == "session_c2s"; });
  const auto& s2c = *std::find_if(streams.begin(), streams.end(), [](const auto& v) { return v.name == "session_s2c"; });
  feed(c2s.bytes);
  run_for(100ms);  // @slow sleeps 30 ms
  const auto ours = responses_of(out_.bytes);
  const auto theirs = responses_of(s2c.bytes);
  EXPECT_EQ(ours.size(), theirs.size());
  std::size_t compared = 0;
  for (auto it = theirs.begin(); it != theirs.end(); ++it) {
    SCOPED_TRACE("session " + std::to_string(it->first));
    auto mine = ours.equal_range(it->first);
    ASSERT_NE(mine.first, mine.second) << "no answer";
    const auto& a = mine.first->second;
    const auto& b = it->second;
    ASSERT_EQ(a.ok, b.ok);
    if (b.ok) {
      auto va = seri::unpack(a.payload);
      auto vb = seri::unpack(b.payload);
      ASSERT_TRUE(va && vb);
      // Lua may re-order hash parts when it echoes: compare as Lua sees the values.
      const std::string diff = test::match_values(tools::values_to_json(*vb), tools::values_to_json(*va));
      EXPECT_TRUE(diff.empty()) << diff;
    } else {
      const std::string want(b.payload.begin(), b.payload.end());
      const std::string got(a.payload.begin(), a.payload.end());
      // skynet's own failure texts carry its install path; the protocol texts must match.
      if (want == "Invalid name" || want == "name not found" || want == "Invalid large req") {
        EXPECT_EQ(got, want);
      }
    }
    ++compared;
  }
  EXPECT_EQ(compared, theirs.size());
  EXPECT_TRUE(out_.closed.empty());
  EXPECT_GT(agent_->stats().pushes, 0u);
}

TEST_F(AgentTest, EchoResponsesAreByteIdenticalToSkynets) {
  // For payloads without multi-key tables our echo re-encodes exactly as skynet's.
  std::size_t exact = 0;
  const auto reqs = test::load_vectors("requests.jsonl");
  const auto resps = test::load_vectors("responses.jsonl");
  for (const char* name : {"call_name_small", "call_numeric_small", "call_dotname", "call_hexname", "val_int_2p31",
                           "val_float_nan", "val_str_binary", "val_table_mixed", "val_multi_trailing_nils",
                           "large_req_payload_65536", "val_str_65536", "large_req_numeric_40000", "query_name",
                           "resp_empty_noret", "err_query_unknown", "name_len_255_unknown", "large_resp_gen_100000"}) {
    SCOPED_TRACE(name);
    auto q = std::find_if(reqs.begin(), reqs.end(), [&](const auto& v) { return v.name == name; });
    auto r = std::find_if(resps.begin(), resps.end(), [&](const auto& v) { return v.name == name; });
    ASSERT_TRUE(q != reqs.end() && r != resps.end());
    out_.bytes.clear();
    feed(q->bytes);
    run_for(0ms);
    EXPECT_EQ(to_hex(out_.bytes), to_hex(r->bytes));
    ++exact;
  }
  EXPECT_EQ(exact, 17u);
}

TEST_F(AgentTest, PushToUnknownNameGetsTheSessionZeroError) {
  const auto reqs = test::load_vectors("requests.jsonl");
  const auto resps = test::load_vectors("responses.jsonl");
  for (const char* name : {"push_unknown_name", "large_push_unknown_name"}) {
    auto q = std::find_if(reqs.begin(), reqs.end(), [&](const auto& v) { return v.name == name; });
    auto r = std::find_if(resps.begin(), resps.end(), [&](const auto& v) { return v.name == name; });
    out_.bytes.clear();
    feed(q->bytes);
    run_for(0ms);
    EXPECT_EQ(to_hex(out_.bytes), to_hex(r->bytes)) << name;
  }
  // A push to a known service is delivered and not answered.
  auto p = std::find_if(reqs.begin(), reqs.end(), [](const auto& v) { return v.name == "push_name"; });
  out_.bytes.clear();
  feed(p->bytes);
  run_for(0ms);
  EXPECT_TRUE(out_.bytes.empty());
}

TEST_F(AgentTest, BadInputIsAnsweredOrDroppedNeverFatal) {
  byte_buffer s;
  // a call with a payload that is not seri data, a bare name, an unknown type byte
  ASSERT_TRUE(wire::encode_request(wire::target::named("@echo"), 5, false, byte_buffer{0x07}, s).has_value());
  ASSERT_TRUE(wire::encode_request(wire::target::named("echo"), 6, false, byte_buffer{}, s).has_value());
  s.insert(s.end(), {0x00, 0x02, 0x05, 0x01});
  ASSERT_TRUE(wire::encode_request(wire::target::named("@echo"), 7, false, *seri::pack(std::vector<lua_value>{"ok"}), s)
                  .has_value());
  feed(s);
  run_for(0ms);
  const auto rs = responses_of(out_.bytes);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_FALSE(rs.find(5)->second.ok);
  EXPECT_NE(std::string(rs.find(5)->second.payload.begin(), rs.find(5)->second.payload.end()).find("Invalid serialize stream"),
            std::string::npos);
  EXPECT_FALSE(rs.find(6)->second.ok);
  EXPECT_TRUE(rs.find(7)->second.ok);
  EXPECT_EQ(agent_->stats().dropped, 1u);
  EXPECT_TRUE(out_.closed.empty());
}

TEST_F(AgentTest, TooManyIncompleteMessagesClosesTheConnection) {
  agent small(*rt_, "p2", [](byte_buffer) {}, [w = &out_](const std::string& r) { w->closed.push_back(r); },
              wire::assembler_limits{.max_message_size = 1 << 20, .max_pending_messages = 2});
  for (std::uint32_t s = 1; s <= 3; ++s) {
    byte_buffer hdr = {0x01, 0x0a, 0, 0, 0, static_cast<std::uint8_t>(s), 0, 0, 0, 0x10, 0, 0, 0};
    small.on_frame(hdr);
  }
  ASSERT_EQ(out_.closed.size(), 1u);
  EXPECT_NE(out_.closed[0].find("too many incomplete"), std::string::npos);
}

// The flood of the issue, scaled down: headers announcing large messages and chunks that
// never finish; the connection closes at its budget, not at pending x size.
TEST_F(AgentTest, IncompleteMessagesPastTheByteBudgetCloseTheConnection) {
  agent small(*rt_, "p2", [](byte_buffer) {}, [w = &out_](const std::string& r) { w->closed.push_back(r); },
              wire::assembler_limits{.max_message_size = 1 << 20, .max_pending_messages = 4096, .max_pending_bytes = 4096});
  for (std::uint32_t s = 1; s <= 10 && out_.closed.empty(); ++s) {
    small.on_frame(byte_buffer{0x01, 0x0a, 0, 0, 0, static_cast<std::uint8_t>(s), 0, 0, 0, 0, 0, 0x10, 0});  // 1 MiB
    byte_buffer part(5 + 1000, 0x61);  // type 2 (a middle chunk), session s, 1000 bytes
    part[0] = 0x02;
    part[1] = static_cast<std::uint8_t>(s);
    part[2] = part[3] = part[4] = 0;
    small.on_frame(part);
  }
  ASSERT_EQ(out_.closed.size(), 1u);
  EXPECT_NE(out_.closed[0].find("budget of 4096"), std::string::npos) << out_.closed[0];
}

TEST_F(AgentTest, SlowCallsAnswerOutOfOrder) {
  byte_buffer s;
  ASSERT_TRUE(wire::encode_request(wire::target::named("@slow"), 1, false, *seri::pack(std::vector<lua_value>{30, "slow"}), s).has_value());
  ASSERT_TRUE(wire::encode_request(wire::target::named("@echo"), 2, false, *seri::pack(std::vector<lua_value>{"fast"}), s).has_value());
  feed(s);
  run_for(50ms);
  wire::frame_reader reader;
  reader.feed(out_.bytes);
  std::vector<std::uint32_t> order;
  while (auto b = reader.next()) order.push_back(wire::decode_response_frame(*b)->session);
  EXPECT_EQ(order, (std::vector<std::uint32_t>{2, 1}));
}

// -- back-pressure (issue 14) ----------------------------------------------------------

/// What an agent asked of its connection: "pause mailbox", "resume memory", ...
struct flow_log {
  std::mutex mu;
  std::vector<std::string> events;
  std::vector<std::string> take() {
    std::lock_guard lock(mu);
    return std::exchange(events, {});
  }
};

const char* reason_name(net::pause_reason r) {
  switch (r) {
    case net::pause_reason::user: return "user";
    case net::pause_reason::mailbox: return "mailbox";
    case net::pause_reason::memory: return "memory";
  }
  return "?";
}

flow_control recording_flow(flow_log& log, memory_budget* budget) {
  flow_control f;
  f.pause = [&log](net::pause_reason r) {
    std::lock_guard lock(log.mu);
    log.events.push_back(std::string("pause ") + reason_name(r));
  };
  f.resume = [&log](net::pause_reason r) {
    std::lock_guard lock(log.mu);
    log.events.push_back(std::string("resume ") + reason_name(r));
  };
  f.budget = budget;
  return f;
}

byte_buffer push_to_echo(std::uint32_t session) {
  byte_buffer out;
  EXPECT_TRUE(wire::encode_request(wire::target::named("@echo"), session, true,
                                   *seri::pack(std::vector<lua_value>{lua_value("x")}), out)
                  .has_value());
  return out;
}

TEST(AgentBackPressure, PushesPastTheMailboxHighMarkPauseUntilItDrains) {
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  o.mailbox_high = 4;
  o.mailbox_low = 1;
  actor::runtime rt(o);
  lab::spawn_lab_services(rt);
  rt.start();
  flow_log log;
  agent a(rt, "p", [](byte_buffer) {}, [](const std::string&) {}, {}, {}, recording_flow(log, nullptr));
  wire::frame_reader reader;
  for (std::uint32_t s = 1; s <= 4; ++s) {
    reader.feed(push_to_echo(s));
    while (auto body = reader.next()) a.on_frame(*body);
  }
  EXPECT_TRUE(log.take().empty()) << "4 waiting is the high mark, not past it";
  reader.feed(push_to_echo(5));
  while (auto body = reader.next()) a.on_frame(*body);
  EXPECT_EQ(log.take(), std::vector<std::string>{"pause mailbox"});
  EXPECT_EQ(rt.run_until_idle(), 5u) << "every push is delivered";
  EXPECT_EQ(log.take(), std::vector<std::string>{"resume mailbox"});
  EXPECT_EQ(a.stats().mailbox_pauses, 1u);
  rt.shutdown();
}

TEST(AgentBackPressure, HeldChunksAreChargedAndPastTheHighMarkPauseUntilReleased) {
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  actor::runtime rt(o);
  lab::spawn_lab_services(rt);
  rt.start();
  memory_budget budget(3000, 1000);
  flow_log log;  // read without its lock: the agent calls it on this thread only
  {
    agent a(rt, "p", [](byte_buffer) {}, [](const std::string&) {}, {}, {}, recording_flow(log, &budget));
    // A multi-part request to echo announcing 1 MiB; chunks of 1000 bytes held.
    a.on_frame(byte_buffer{0x01, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x10, 0});
    byte_buffer part(5 + 1000, 0x61);
    part[0] = 0x02;
    part[1] = 1;
    part[2] = part[3] = part[4] = 0;
    // Each chunk is charged (by buffer capacity) as it is held; the first that takes the
    // total past the high mark pauses the connection.
    std::size_t chunks = 0;
    while (log.events.empty() && chunks < 100) {
      a.on_frame(part);
      ++chunks;
      EXPECT_EQ(budget.held(), a.stats().pending_bytes) << "after chunk " << chunks;
      EXPECT_GE(budget.held(), chunks * 1000) << "after chunk " << chunks;
      EXPECT_EQ(log.events.empty(), budget.held() <= 3000) << "after chunk " << chunks;
    }
    EXPECT_EQ(log.take(), std::vector<std::string>{"pause memory"});
    EXPECT_EQ(a.stats().memory_pauses, 1u);
  }
  EXPECT_EQ(budget.held(), 0u) << "a closed connection's agent gives its chunks back";
  EXPECT_EQ(log.take(), std::vector<std::string>{"resume memory"});
  rt.shutdown();
}

}  // namespace
}  // namespace csk::cluster
