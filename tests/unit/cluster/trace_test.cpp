// skynet's traces across cluster connections: the sender's trace frame before a traced
// call (renamed "(self-node-session)tag" as skynet's clustersender does, multi-part too),
// the agent's tracecall around a call that came after a trace frame, the bytes on a real
// loopback socket, and a tag that crosses two cppskynet nodes and comes back.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "common/log/log.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/agent.hpp"
#include "services/cluster/cluster.hpp"
#include "services/cluster/sender.hpp"
#include "tests/support/cluster_node.hpp"
#include "tests/support/raw_socket.hpp"
#include "tests/unit/trace_lines.hpp"

namespace csk::cluster {
namespace {

using namespace std::chrono_literals;
using actor::values;
using test::trace_hops;
using test::whats;
using strings = std::vector<std::string>;

std::string tag_of(actor::handle_t h, int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ":%08x-%d", h, n);
  return buf;
}

actor::runtime_options manual() {
  actor::runtime_options o;
  o.run_mode = actor::runtime_options::mode::manual;
  o.call_timeout = 1000ms;
  return o;
}

/// The request frames in `bytes`, decoded (bodies kept in `keep`).
std::vector<wire::request_frame> request_frames(bytes_view bytes, std::vector<byte_buffer>& keep) {
  wire::frame_reader r;
  r.feed(bytes);
  std::vector<wire::request_frame> out;
  while (auto b = r.next()) {
    keep.emplace_back(b->begin(), b->end());
    out.push_back(*wire::decode_request_frame(keep.back()));
  }
  return out;
}

struct recording_transport : transport {
  byte_buffer written;
  void connect(const endpoint&) override {}
  void write(byte_buffer b) override { written.insert(written.end(), b.begin(), b.end()); }
  void close(const std::string&) override {}
};

/// Answers every call with the tag its handler runs under; records the tags of sends.
class tag_reporter : public actor::service {
 public:
  explicit tag_reporter(strings* sends = nullptr) : sends_(sends) {}
  actor::task<values> handle(actor::context& ctx, actor::message& m) override {
    if (m.type == actor::msg_type::send && sends_ != nullptr) sends_->push_back(ctx.trace_tag());
    co_return values{ctx.trace_tag()};
  }

 private:
  strings* sends_;
};

// -------------------------------------------------------------------- sender --

/// Traces its handler (ctx.trace), then calls through the sender with its tag.
class traced_client : public actor::dispatch_service {
 public:
  explicit traced_client(sender* s) {
    on("call", [s](actor::context& ctx, values& a) -> actor::task<values> {
      ctx.trace("client");
      const std::string payload = a.at(0).as_string();
      auto op = ctx.call_via([s, &ctx, payload](actor::reply_route route) {
        s->call(wire::target::named("@echo"), values{payload}, route, ctx.current_trace());
      });
      auto r = co_await op;
      co_return r ? *r : values{};
    });
  }
};

class SenderTraceTest : public ::testing::Test {
 protected:
  explicit SenderTraceTest(std::string self = "me") : rt_(manual()), sender_("db", rt_, t_, {}, std::move(self)) {
    sender_.set_endpoint(endpoint{"127.0.0.1", 2528});
    sender_.on_connected();
    client_ = *rt_.spawn(std::make_unique<traced_client>(&sender_));
    rt_.start();
  }
  void call(std::string payload) {
    rt_.send(client_, values{"call", std::move(payload)});
    rt_.run_until_idle();
  }

  capture_logs logs_;
  recording_transport t_;
  actor::runtime rt_;
  sender sender_;
  actor::handle_t client_ = 0;
};

TEST_F(SenderTraceTest, ATracedCallGoesAfterATraceFrameWithSkynetsNewTag) {
  call("a");
  call("b");
  const std::string first = tag_of(client_, 1), second = tag_of(client_, 2);
  // skynet's send_request: the session in the new tag is its counter after the call.
  const std::string first_sent = "(me-db-2)" + first, second_sent = "(me-db-3)" + second;
  std::vector<byte_buffer> keep;
  auto fs = request_frames(t_.written, keep);
  ASSERT_EQ(fs.size(), 4u);
  EXPECT_EQ(fs[0].type, wire::request_type::trace);
  EXPECT_EQ(as_chars(fs[0].data), first_sent);
  EXPECT_EQ(fs[1].type, wire::request_type::req_name);
  EXPECT_EQ(fs[1].session, 1u);
  EXPECT_EQ(fs[1].name, "@echo");
  EXPECT_EQ(as_chars(fs[2].data), second_sent);
  EXPECT_EQ(fs[3].session, 2u);

  auto old_lines = trace_hops(logs_.text(), first);
  EXPECT_EQ(whats(old_lines), (strings{"trace client", "call", "session " + first_sent}));
  auto new_lines = trace_hops(logs_.text(), first_sent);
  EXPECT_EQ(whats(new_lines), (strings{"cluster db"}));
  for (const auto& h : old_lines) EXPECT_EQ(h.handle, actor::handle_string(client_));
  for (const auto& h : new_lines) EXPECT_EQ(h.handle, actor::handle_string(client_));
}

TEST_F(SenderTraceTest, AMultipartCallHasItsTraceFrameBeforeTheHeader) {
  call(std::string(40000, 'x'));
  std::vector<byte_buffer> keep;
  auto fs = request_frames(t_.written, keep);
  ASSERT_EQ(fs.size(), 4u);
  EXPECT_EQ(fs[0].type, wire::request_type::trace);
  EXPECT_EQ(as_chars(fs[0].data), "(me-db-2)" + tag_of(client_, 1));
  EXPECT_EQ(fs[1].type, wire::request_type::mreq_name);
  EXPECT_EQ(fs[2].type, wire::request_type::mpart);
  EXPECT_EQ(fs[3].type, wire::request_type::mpart_end);
}

TEST_F(SenderTraceTest, ATagFromAnotherNodeIsSentAsItIs) {
  // A handler that got its tag from a peer ("(...)...") passes it on unchanged.
  auto tag = std::make_shared<const std::string>("(lua-me-7):0000000a-3");
  const auto route = rt_.external_route(1000ms, [](actor::call_result) {});
  sender_.call(wire::target::named("@echo"), values{1}, route, tag);
  auto untraced = rt_.external_route(1000ms, [](actor::call_result) {});
  sender_.call(wire::target::named("@echo"), values{2}, untraced);
  std::vector<byte_buffer> keep;
  auto fs = request_frames(t_.written, keep);
  ASSERT_EQ(fs.size(), 3u);  // trace, call, call: the untraced call has no trace frame
  EXPECT_EQ(as_chars(fs[0].data), *tag);
  EXPECT_EQ(fs[1].session, 1u);
  EXPECT_EQ(fs[2].type, wire::request_type::req_name);
  auto lines = trace_hops(logs_.text(), *tag);
  EXPECT_EQ(whats(lines), (strings{"cluster db"}));  // no "session" line: not renamed
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].handle, ":00000000");  // an external route: nobody's handle
}

class SenderTraceWithoutANameTest : public SenderTraceTest {
 protected:
  SenderTraceWithoutANameTest() : SenderTraceTest("") {}
};

TEST_F(SenderTraceWithoutANameTest, TheTagNamesHostAndPidAsSkynetsNodename) {
  call("a");
  std::vector<byte_buffer> keep;
  auto fs = request_frames(t_.written, keep);
  ASSERT_EQ(fs.size(), 2u);
  const std::string sent(as_chars(fs[0].data));
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(sent.rfind("(" + std::string(host).substr(0, 1), 0), 0u) << sent;
  EXPECT_NE(sent.find(std::to_string(::getpid()) + "-db-2)" + tag_of(client_, 1)), std::string::npos) << sent;
}

// --------------------------------------------------------------------- agent --

class AgentTraceTest : public ::testing::Test {
 protected:
  AgentTraceTest() : rt_(manual()) {
    reporter_ = *rt_.spawn(std::make_unique<tag_reporter>(&sends_), {}, {"@tag"});
    rt_.start();
    agent_ = std::make_unique<agent>(
        rt_, "test-peer",
        [this](byte_buffer b) {
          std::lock_guard lock(mu_);
          out_.insert(out_.end(), b.begin(), b.end());
        },
        [](const std::string&) {});
  }
  ~AgentTraceTest() override { rt_.shutdown(); }

  void feed(const byte_buffer& stream) {
    wire::frame_reader reader;
    reader.feed(stream);
    while (auto body = reader.next()) agent_->on_frame(*body);
    rt_.run_until_idle();
  }
  static byte_buffer request(std::uint32_t session, bool push, const values& args, const std::string& trace = {}) {
    byte_buffer out;
    if (!trace.empty()) {
      EXPECT_TRUE(wire::encode_trace(trace, out).has_value());
    }
    EXPECT_TRUE(wire::encode_request(wire::target::named("@tag"), session, push, *seri::pack(args), out).has_value());
    return out;
  }
  /// The values answered to `session` (a test failure if there is no OK answer).
  values answer(std::uint32_t session) {
    std::lock_guard lock(mu_);
    wire::frame_reader reader;
    reader.feed(out_);
    while (auto body = reader.next()) {
      auto f = wire::decode_response_frame(*body);
      if (f && f->session == session && f->type == wire::response_type::ok) return *seri::unpack(f->data);
    }
    ADD_FAILURE() << "no answer to session " << session;
    return {};
  }

  capture_logs logs_;
  actor::runtime rt_;
  strings sends_;
  actor::handle_t reporter_ = 0;
  std::mutex mu_;
  byte_buffer out_;
  std::unique_ptr<agent> agent_;
};

TEST_F(AgentTraceTest, ACallAfterATraceFrameRunsTracedAsSkynetsTracecall) {
  const std::string tag = "(lua1234-cpp-2):0000000a-1";
  feed(request(7, false, values{"x"}, tag));
  EXPECT_EQ(answer(7), values{tag});
  auto hops = trace_hops(logs_.text(), tag);
  ASSERT_EQ(whats(hops), (strings{"tracecall begin", "request", "response", "end", "tracecall end"}));
  const std::string agent_handle = ":00000000", callee = actor::handle_string(reporter_);
  const strings by{agent_handle, callee, callee, callee, agent_handle};
  for (std::size_t i = 0; i < hops.size(); ++i) {
    EXPECT_EQ(hops[i].handle, by[i]) << i;
  }

  feed(request(8, false, values{"y"}));  // the tag went with the call it preceded
  EXPECT_EQ(answer(8), values{""});
}

TEST_F(AgentTraceTest, APushDropsItsTag) {
  // A multi-part push takes the tag at its header (skynet's agent): its handler and the
  // call after it are not traced.
  feed(request(3, true, values{std::string(40000, 'p')}, "(lua-cpp-9):0000000b-1"));
  feed(request(4, false, values{"after"}));
  ASSERT_EQ(sends_.size(), 1u);
  EXPECT_EQ(sends_[0], "");
  EXPECT_EQ(answer(4), values{""});
  EXPECT_TRUE(trace_hops(logs_.text()).empty()) << logs_.text();
}

// ------------------------------------------------------- real TCP: the wire --

/// On a node: traces its handler and calls `node` @x with one argument.
class wire_client : public actor::dispatch_service {
 public:
  explicit wire_client(std::string node) {
    on("go", [node](actor::context& ctx, values& a) -> actor::task<values> {
      ctx.trace("wire");
      values args{a.at(0)};
      auto op = cluster::call(ctx, node, "@x", std::move(args));
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      co_return values{ctx.trace_tag()};
    });
  }
};

TEST(ClusterTraceWire, ATracedCallSendsItsTraceFrameFirstOnTheSocket) {
  capture_logs logs;
  test::raw_socket listener = test::raw_socket::bound(true);
  test::cluster_test_node alpha("alpha");
  cluster_names table;
  table.nodes["fake"] = cluster_node_address{"127.0.0.1", listener.port()};
  alpha.cluster->reload(table);
  const actor::handle_t client = *alpha.rt->spawn(std::make_unique<wire_client>("fake"));
  const std::string tag = tag_of(client, 1);

  auto done = alpha.rt->call(client, values{"go", "small"});
  test::raw_socket peer = listener.accept();
  ASSERT_TRUE(peer.valid());
  auto trace = peer.read_frame();
  auto req = peer.read_frame();
  ASSERT_TRUE(trace && req);
  EXPECT_EQ(*trace, "\x04(alpha-fake-2)" + tag);
  auto f = wire::decode_request_frame(as_bytes(*req));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, wire::request_type::req_name);
  EXPECT_EQ(f->session, 1u);
  byte_buffer answer;
  ASSERT_TRUE(wire::encode_response(1, true, *seri::pack(values{"ok"}), answer).has_value());
  peer.write_all(answer);
  ASSERT_EQ(done.wait_for(20s), std::future_status::ready);
  auto r = done.get();
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->at(0).as_string(), tag);  // its own tag, back after the cluster call
  EXPECT_EQ(whats(trace_hops(logs.text(), tag)),
            (strings{"trace wire", "call", "session (alpha-fake-2)" + tag, "resume", "response", "end"}));
}

// ------------------------------------------------- real TCP: two cpp nodes --

/// alpha's @start: traces itself and calls beta's @hop, which calls alpha's @leaf back.
class starter : public actor::dispatch_service {
 public:
  starter() {
    on("go", [](actor::context& ctx, values&) -> actor::task<values> {
      ctx.trace("two nodes");
      values args{"hop"};
      auto op = cluster::call(ctx, "beta", "@hop", std::move(args));
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      values out{ctx.trace_tag()};
      out.insert(out.end(), r->begin(), r->end());
      co_return out;
    });
  }
};

class hopper : public actor::dispatch_service {
 public:
  hopper() {
    on("hop", [](actor::context& ctx, values&) -> actor::task<values> {
      const std::string mine = ctx.trace_tag();
      values args{"leaf"};
      auto op = cluster::call(ctx, "alpha", "@leaf", std::move(args));
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      co_return values{mine, r->at(0)};
    });
  }
};

TEST(ClusterTraceTwoNodes, TheTagCrossesBothWaysAndBothNodesLogIt) {
  capture_logs logs;  // both nodes run in this process: one capture holds both logs
  test::cluster_test_node alpha("alpha"), beta("beta");
  cluster_names table;
  table.nodes["alpha"] = cluster_node_address{"127.0.0.1", alpha.open()};
  table.nodes["beta"] = cluster_node_address{"127.0.0.1", beta.open()};
  alpha.cluster->reload(table);
  beta.cluster->reload(table);
  const actor::handle_t start = *alpha.rt->spawn(std::make_unique<starter>(), {}, {"@start"});
  const actor::handle_t leaf = *alpha.rt->spawn(std::make_unique<tag_reporter>(), {}, {"@leaf"});
  for (int i = 0; i < 2; ++i) {  // fillers: hop's handle differs from alpha's, so the lines tell the nodes apart
    ASSERT_TRUE(beta.rt->spawn(std::make_unique<tag_reporter>()).has_value());
  }
  const actor::handle_t hop = *beta.rt->spawn(std::make_unique<hopper>(), {}, {"@hop"});

  auto f = alpha.rt->call(start, values{"go"});
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r) << r.error().text;
  const std::string tag = tag_of(start, 1), sent = "(alpha-beta-2)" + tag;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ(r->at(0).as_string(), tag);   // alpha's handler, after its call
  EXPECT_EQ(r->at(1).as_string(), sent);  // beta's handler
  EXPECT_EQ(r->at(2).as_string(), sent);  // back on alpha: a "(...)" tag is not renamed

  // Every hop of the renamed tag, in both nodes' lines (their order across the nodes'
  // threads is not fixed; each node's own is checked by the tests above).
  ASSERT_TRUE(logs.wait_for("<TRACE " + sent + "> ", 1s));
  auto hops = trace_hops(logs.text(), sent);
  const auto count = [&](const std::string& handle, const std::string& what) {
    return std::count_if(hops.begin(), hops.end(), [&](const test::trace_hop& h) { return h.handle == handle && h.what == what; });
  };
  const std::string a = actor::handle_string(start), b = actor::handle_string(hop), l = actor::handle_string(leaf);
  EXPECT_EQ(count(a, "cluster beta"), 1);
  EXPECT_EQ(count(":00000000", "tracecall begin"), 2);  // beta's agent, then alpha's
  EXPECT_EQ(count(":00000000", "tracecall end"), 2);
  EXPECT_EQ(count(b, "request"), 1);
  EXPECT_EQ(count(b, "cluster alpha"), 1);
  EXPECT_EQ(count(l, "request"), 1);
  EXPECT_EQ(count(l, "response"), 1);
  EXPECT_EQ(count(b, "response"), 1);
  EXPECT_EQ(whats(trace_hops(logs.text(), tag)).at(2), "session " + sent);
}

}  // namespace
}  // namespace csk::cluster
