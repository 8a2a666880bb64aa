// csk::gate over real TCP on 127.0.0.1 (port 0): hooks, answer order, the in-flight
// limit, connection limit, idle timeout, failures, pushes, outgoing connections, bad
// framing, and the line-protocol example (examples/gate). Waits are on events with
// deadlines; raw POSIX sockets play the clients.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <typeindex>
#include <string>
#include <utility>
#include <vector>

#include "examples/gate/kv_gate.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/registry.hpp"
#include "services/gate/gate.hpp"
#include "tests/support/raw_socket.hpp"

namespace csk::gate {
namespace {

using namespace std::chrono_literals;
using actor::context;
using actor::task;
using actor::values;

using test::frame;
using test::raw_socket;  // the clients: blocking, reads and writes time out after 10 s

byte_buffer bytes_of(std::string_view s) { return byte_buffer(s.begin(), s.end()); }
std::string string_of(const byte_buffer& b) { return std::string(b.begin(), b.end()); }

/// What the test service saw; shared with the test thread.
struct journal {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> events;  // "accept", "close:<reason>", "connect"
  std::vector<std::string> messages;
  conn_id last_conn = 0;
  std::atomic<bool> held{true};  // "hold:" spins while set

  void add(std::string e, conn_id id) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(e));
      last_conn = id;
    }
    cv.notify_all();
  }
  template <class P>
  bool wait(P pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, pred);
  }
  /// Events starting with `prefix`. Locks: not for wait() predicates (use count_held).
  std::size_t count(const std::string& prefix) {
    std::lock_guard lock(mu);
    return count_held(prefix);
  }
  std::size_t count_held(const std::string& prefix) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.rfind(prefix, 0) == 0 ? 1u : 0u;
    return n;
  }
};

/// Answers "echo:<x>" with x; "slow:<x>" after 50 ms; "wait:<x>" once .latch releases;
/// "throw" throws; "none" answers nothing; "push:<x>" pushes x, then answers "pushed";
/// "hold:<x>" keeps the gate's thread busy (no co_await: nothing else of the gate runs)
/// until journal::held is cleared, then answers x.
class test_gate final : public gate_service {
 public:
  test_gate(net::net& n, gate_options o, journal& j) : gate_service(n, std::move(o)), j_(j) {}
  void on_accept(context&, conn_id id, const std::string&) override { j_.add("accept", id); }
  void on_connect(context&, conn_id id, const std::string&) override { j_.add("connect", id); }
  void on_close(context&, conn_id id, const std::string& reason) override { j_.add("close:" + reason, id); }
  task<std::optional<byte_buffer>> on_message(context& ctx, conn_id id, byte_buffer msg) override {
    const std::string m = string_of(msg);
    {
      std::lock_guard lock(j_.mu);
      j_.messages.push_back(m);
    }
    j_.cv.notify_all();
    if (m == "throw") throw std::runtime_error("asked to throw");
    if (m == "none") co_return std::nullopt;
    const auto colon = m.find(':');
    const std::string verb = m.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : m.substr(colon + 1);
    if (verb == "slow") {
      auto s = ctx.sleep(50ms);
      co_await s;
    } else if (verb == "wait") {
      auto w = ctx.call(".latch", values{"wait"});
      co_await w;
    } else if (verb == "hold") {
      while (j_.held.load()) std::this_thread::yield();
    } else if (verb == "push") {
      send(id, bytes_of(arg));
      co_return bytes_of("pushed");
    }
    co_return bytes_of(arg);
  }

 private:
  journal& j_;
};

/// "wait" is answered once "open" has come.
class latch final : public actor::dispatch_service {
 public:
  latch() {
    on_sync("wait", [this](context& ctx, values&) {
      if (!open_) waiting_.push_back(ctx.defer_reply());
      return values{};
    });
    on_sync("open", [this](context& ctx, values&) {  // answers the waiting and every later wait
      open_ = true;
      for (auto& t : waiting_) ctx.reply(t, {});
      waiting_.clear();
      return values{};
    });
  }

 private:
  std::vector<actor::reply_token> waiting_;
  bool open_ = false;
};

class GateTest : public ::testing::Test {
 protected:
  void start(gate_options o = {}) {
    ASSERT_TRUE(rt_.spawn(std::make_unique<latch>(), {}, {".latch"}));
    auto g = std::make_unique<test_gate>(net_, o, j_);
    gate_ = g.get();
    auto h = rt_.spawn(std::move(g));
    ASSERT_TRUE(h) << h.error();
    handle_ = *h;
    net_.start();
    rt_.start();
  }
  void TearDown() override {
    net_.stop();
    rt_.shutdown();
  }
  std::uint16_t port() const { return gate_->port(); }

  journal j_;  // before the runtime: services use it until shutdown
  actor::runtime rt_{actor::runtime_options{.threads = 2}};
  net::net net_{1};
  test_gate* gate_ = nullptr;  // owned by rt_
  actor::handle_t handle_ = 0;
};

TEST_F(GateTest, HooksAndAnswers) {
  start();
  {
    const auto c = raw_socket::connect_to(port());
    c.write_all(frame("echo:hello"));
    EXPECT_EQ(c.read_frame(), "hello");
    c.write_all(frame("echo:"));
    EXPECT_EQ(c.read_frame(), "");
    EXPECT_EQ(j_.count("accept"), 1u);
  }
  ASSERT_TRUE(j_.wait([&] { return !j_.events.empty() && j_.events.back() == "close:peer closed"; }));
  const auto s = gate_->stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.answers, 2u);
  EXPECT_EQ(s.open, 0u);
}

TEST_F(GateTest, AnswersLeaveInRequestOrderWhenHandlersOverlap) {
  start();
  const auto c = raw_socket::connect_to(port());
  byte_buffer both = frame("slow:first");
  const auto second = frame("echo:second");
  both.insert(both.end(), second.begin(), second.end());
  c.write_all(both);
  EXPECT_EQ(c.read_frame(), "first");
  EXPECT_EQ(c.read_frame(), "second");
}

TEST_F(GateTest, InFlightLimitStopsReadingUntilAHandlerFinishes) {
  gate_options o;
  o.max_in_flight = 2;
  start(o);
  const auto c = raw_socket::connect_to(port());
  ASSERT_TRUE(j_.wait([&] { return j_.events.size() == 1; }));
  conn_id id = 0;
  {
    std::lock_guard lock(j_.mu);
    id = j_.last_conn;
  }
  byte_buffer five;
  for (int i = 0; i < 5; ++i) {
    const auto f = frame("wait:" + std::to_string(i));
    five.insert(five.end(), f.begin(), f.end());
  }
  c.write_all(five);
  ASSERT_TRUE(j_.wait([&] { return j_.messages.size() == 2; }));
  // Another connection is served meanwhile: the net thread has cycled since the pause.
  const auto other = raw_socket::connect_to(port());
  other.write_all(frame("echo:other"));
  EXPECT_EQ(other.read_frame(), "other");
  {
    std::lock_guard lock(j_.mu);
    EXPECT_EQ(j_.messages.size(), 3u) << "2 held at the limit + the other connection's";
  }
  EXPECT_EQ(gate_->in_flight(id), 2u);
  EXPECT_EQ(gate_->stats().pauses, 1u);

  rt_.send(".latch", {"open"});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.read_frame(), std::to_string(i));
  EXPECT_EQ(gate_->stats().messages, 6u);
  EXPECT_EQ(gate_->in_flight(id), 0u);
}

TEST_F(GateTest, ConnectionsOverTheLimitAreClosedAtOnce) {
  gate_options o;
  o.max_connections = 1;
  start(o);
  const auto first = raw_socket::connect_to(port());
  first.write_all(frame("echo:1"));
  EXPECT_EQ(first.read_frame(), "1");
  const auto second = raw_socket::connect_to(port());
  EXPECT_TRUE(second.wait_closed());
  first.write_all(frame("echo:still"));
  EXPECT_EQ(first.read_frame(), "still");
  EXPECT_EQ(gate_->stats().refused, 1u);
  EXPECT_EQ(j_.count("accept"), 1u);
}

TEST_F(GateTest, IdleConnectionIsClosed) {
  gate_options o;
  o.idle_timeout = 200ms;
  start(o);
  const auto c = raw_socket::connect_to(port());
  EXPECT_TRUE(c.wait_closed());
  ASSERT_TRUE(j_.wait([&] { return !j_.events.empty() && j_.events.back() == "close:idle timeout"; }));
}

TEST_F(GateTest, FailedHandlerSkipsItsAnswerAndTheConnectionGoesOn) {
  start();
  const auto c = raw_socket::connect_to(port());
  byte_buffer all = frame("throw");
  for (const auto* m : {"none", "echo:after"}) {
    const auto f = frame(m);
    all.insert(all.end(), f.begin(), f.end());
  }
  c.write_all(all);
  EXPECT_EQ(c.read_frame(), "after");
  EXPECT_EQ(gate_->stats().failures, 1u);
  EXPECT_EQ(gate_->stats().answers, 1u);
}

TEST_F(GateTest, PushGoesOutBeforeTheAnswer) {
  start();
  const auto c = raw_socket::connect_to(port());
  c.write_all(frame("push:news"));
  EXPECT_EQ(c.read_frame(), "news");
  EXPECT_EQ(c.read_frame(), "pushed");
  EXPECT_FALSE(gate_->send(987654, bytes_of("nobody")));
  conn_id id = 0;
  {
    std::lock_guard lock(j_.mu);
    id = j_.last_conn;
  }
  EXPECT_FALSE(gate_->send(id, byte_buffer(70000, 'x'))) << "cannot be framed in 2 bytes";
}

TEST_F(GateTest, OversizedFrameClosesOnlyThatConnection) {
  gate_options o;
  o.max_message = 1026;  // bodies up to 1024
  start(o);
  const auto good = raw_socket::connect_to(port());
  const auto bad = raw_socket::connect_to(port());
  bad.write_all(frame(std::string(2000, 'x')));
  EXPECT_TRUE(bad.wait_closed());
  ASSERT_TRUE(j_.wait([&] { return j_.count_held("close:message too large") == 1; }));
  good.write_all(frame("echo:fine"));
  EXPECT_EQ(good.read_frame(), "fine");
}

TEST_F(GateTest, OutgoingConnectionUsesTheSameHooks) {
  gate_options o;
  o.listen = false;
  start(o);
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  const conn_id id = gate_->connect("127.0.0.1", ntohs(a.sin_port));
  ASSERT_NE(id, 0u);
  const raw_socket server(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
  ::close(lfd);
  ASSERT_TRUE(j_.wait([&] { return j_.count_held("connect") == 1; }));
  server.write_all(frame("echo:from the server"));
  EXPECT_EQ(server.read_frame(), "from the server");
  EXPECT_EQ(gate_->stats().connected, 1u);
}

TEST_F(GateTest, CallsToTheGateItselfGoToOnRequest) {
  start();
  auto r = rt_.call(handle_, {"anything"}).get();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().text.find("unknown command anything"), std::string::npos) << r.error().text;
  // A forged event (wrong marker) is not an event either.
  auto forged = rt_.call(handle_, {lua_value::light_userdata(1), 1}).get();
  EXPECT_FALSE(forged.has_value());
}

TEST(GateOptions, FromATable) {
  lua_table t;
  t.set("listen", "127.0.0.1:0").set("max_in_flight", 4).set("max_outbound_kb", 64).set("idle_timeout_ms", 500);
  auto o = gate_options_from(lua_value(std::move(t)));
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->max_in_flight, 4u);
  EXPECT_EQ(o->max_outbound_bytes, 64u << 10);
  EXPECT_EQ(o->idle_timeout, 500ms);
  lua_table bad;
  bad.set("max_in_flight", 0);
  EXPECT_FALSE(gate_options_from(lua_value(std::move(bad))));
  lua_table unknown;
  unknown.set("colour", "red");
  auto u = gate_options_from(lua_value(std::move(unknown)));
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().find("unknown key colour"), std::string::npos);
}

TEST(GateSpawnedByType, TakesItsOptionsFromArgsAndTheNetFromTheRuntime) {
  actor::runtime rt(actor::runtime_options{.threads = 1});
  net::net n(1);
  examples::register_kv_types(rt);
  ASSERT_TRUE(rt.spawn("kvstore", {}, {".store2"}));
  lua_table opts;
  opts.set("listen", "127.0.0.1:0").set("max_in_flight", 2);
  auto no_net = rt.spawn("kv_gate", {lua_value(opts), ".store2"});
  ASSERT_FALSE(no_net);
  EXPECT_NE(no_net.error().find("no net"), std::string::npos) << no_net.error();

  rt.set_extension(std::type_index(typeid(net::net)), &n);
  lua_table bad;
  bad.set("listen", "nowhere");
  auto refused = rt.spawn("kv_gate", {lua_value(std::move(bad))});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("bad listen address"), std::string::npos) << refused.error();

  // Adopt a socket bound by hand, as the worker does with the supervisor's.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  opts.set("fd", lfd);
  auto h = rt.spawn("kv_gate", {lua_value(std::move(opts)), ".store2"});
  ASSERT_TRUE(h) << h.error();
  n.start();
  rt.start();
  {
    const auto c = raw_socket::connect_to(ntohs(a.sin_port));
    c.write_all(bytes_of("SET k v\nGET k\n"));
    EXPECT_EQ(c.read_line(), "OK");
    EXPECT_EQ(c.read_line(), "VALUE v");
  }
  n.stop();
  rt.shutdown();
  rt.set_extension(std::type_index(typeid(net::net)), nullptr);
}

// ------------------------------------------------------- the line-protocol example --

class KvGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    examples::register_kv_types(rt_);
    ASSERT_TRUE(rt_.spawn("kvstore", {}, {".kvstore"}));
    auto g = examples::make_kv_gate(net_, {});
    gate_ = g.get();
    ASSERT_TRUE(rt_.spawn(std::move(g)));
    net_.start();
    rt_.start();
  }
  void TearDown() override {
    net_.stop();
    rt_.shutdown();
  }
  actor::runtime rt_{actor::runtime_options{.threads = 2}};
  net::net net_{1};
  gate_service* gate_ = nullptr;
};

TEST_F(KvGateTest, SpeaksTheLineProtocol) {
  const auto c = raw_socket::connect_to(gate_->port());
  c.write_all(bytes_of("PING\nSET a hello\r\nGET a\nGET missing\nINCR n\nINCR n\nINCR a\nDEL a\nDEL a\nFROB\n"));
  for (const auto* want : {"PONG", "OK", "VALUE hello", "NIL", "INTEGER 1", "INTEGER 2",
                           "ERR value is not an integer", "DELETED 1", "DELETED 0",
                           "ERR unknown command or wrong arguments: FROB"}) {
    auto got = c.read_line();
    ASSERT_TRUE(got) << "waiting for " << want;
    EXPECT_NE(got->find(want), std::string::npos) << *got << " vs " << want;
  }
  c.write_all(bytes_of("SET s 41\nINCR s\nGET n\nQUIT\nPING\n"));
  EXPECT_EQ(c.read_line(), "OK");
  EXPECT_EQ(c.read_line(), "INTEGER 42") << "a decimal string counts";
  EXPECT_EQ(c.read_line(), "VALUE 2") << "an integer value is written as text";
  EXPECT_EQ(c.read_line(), "BYE");
  EXPECT_TRUE(c.wait_closed()) << "PING after QUIT is not answered";
}

TEST_F(KvGateTest, QuitAnswersThenCloses) {
  const auto c = raw_socket::connect_to(gate_->port());
  c.write_all(bytes_of("INCR q\nQUIT\n"));
  EXPECT_EQ(c.read_line(), "INTEGER 1");
  EXPECT_EQ(c.read_line(), "BYE");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(KvGateTest, OverlongLineClosesOnlyThatClient) {
  const auto good = raw_socket::connect_to(gate_->port());
  const auto bad = raw_socket::connect_to(gate_->port());
  bad.write_all(byte_buffer(5000, 'x'));
  EXPECT_TRUE(bad.wait_closed());
  good.write_all(bytes_of("PING\n"));
  EXPECT_EQ(good.read_line(), "PONG");
}

/// A call from the test thread to a running runtime; the reply's values.
values kv_call(actor::runtime& rt, const std::string& to, values args) {
  auto f = rt.call(to, std::move(args));
  if (f.wait_for(10s) != std::future_status::ready) throw std::runtime_error("no reply from " + to);
  auto r = f.get();
  if (!r) throw std::runtime_error(to + ": " + r.error().text);
  return std::move(*r);
}

TEST_F(KvGateTest, TheStoreIsAnEntityServiceWhoseDataMovesBySnapshot) {
  {
    const auto c = raw_socket::connect_to(gate_->port());
    c.write_all(bytes_of("SET a hello\nINCR n\nINCR n\nSET s 41\n"));
    for (const auto* want : {"OK", "INTEGER 1", "INTEGER 2", "OK"}) EXPECT_EQ(c.read_line(), want);
  }
  const values info = kv_call(rt_, ".kvstore", {lua_value("info")});
  ASSERT_EQ(info.size(), 1u);
  ASSERT_TRUE(info[0].is_table());
  auto field = [&](const char* k) {
    const lua_value* v = info[0].as_table().find(lua_value(k));
    return v != nullptr ? v->debug_string() : std::string("(absent)");
  };
  EXPECT_EQ(field("type"), lua_value("example.kv").debug_string());
  EXPECT_EQ(field("id"), lua_value("example.kv").debug_string()) << "no args: the id is the type name";
  EXPECT_EQ(field("version"), lua_value(std::int64_t{1}).debug_string());
  EXPECT_EQ(field("count"), lua_value(std::int64_t{3}).debug_string());
  // What the store holds, by its entity messages: INCR wrote the number as text.
  EXPECT_EQ(kv_call(rt_, ".kvstore", {lua_value("get"), lua_value("n")}).at(0).debug_string(),
            lua_value(lua_table{}.set("value", "2")).debug_string());
  auto refused = rt_.call(".kvstore", {lua_value("set"), lua_value("e"), lua_value(lua_table{}.set("value", ""))});
  ASSERT_EQ(refused.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(refused.get()) << "an empty value is refused";

  // The upgrade's data path by hand: a snapshot restored into another runtime's store.
  const std::string snap = kv_call(rt_, ".kvstore", {lua_value("snapshot")}).at(0).as_string();
  // The worker attaches a directory: that is how the upgrade finds the store, by its id.
  entity::directory dir;
  actor::runtime rt2(actor::runtime_options{.threads = 1});
  entity::attach_directory(rt2, &dir);
  net::net net2(1);
  examples::register_kv_types(rt2);
  auto store2 = rt2.spawn("kvstore", {}, {".kvstore"});
  ASSERT_TRUE(store2) << store2.error();
  const auto listed = dir.find("example.kv");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->type, "example.kv");
  EXPECT_EQ(listed->handle, *store2);
  EXPECT_FALSE(rt2.spawn("kvstore", {}, {".kvstore_twin"})) << "ids are unique per worker";
  ASSERT_TRUE(rt2.spawn("kvstore", {lua_value(lua_table{}.set("id", "kv2"))}, {".kvstore_twin"}))
      << "unless a second store is given its own id";
  auto g2 = examples::make_kv_gate(net2, {});
  gate_service* gate2 = g2.get();
  ASSERT_TRUE(rt2.spawn(std::move(g2)));
  net2.start();
  rt2.start();
  EXPECT_EQ(kv_call(rt2, ".kvstore", {lua_value(entity::upgrade_key()), lua_value("restore"), lua_value(snap)}).at(0).as_integer(), 3);
  {
    const auto c = raw_socket::connect_to(gate2->port());
    c.write_all(bytes_of("GET a\nINCR n\nINCR s\nGET nothing\n"));
    for (const auto* want : {"VALUE hello", "INTEGER 3", "INTEGER 42", "NIL"}) EXPECT_EQ(c.read_line(), want);
  }
  net2.stop();
  rt2.shutdown();
  entity::attach_directory(rt2, nullptr);
}

// Issue 14: the gate's own mailbox pushes back. The gate's thread is held by one message;
// what the connection sends meanwhile piles up in the gate's mailbox until it passes
// mailbox_high, then the connection stops reading; once the gate runs again every message
// is answered, in order, and nothing was dropped.
TEST(GateBackPressure, AFullGateMailboxPausesItsConnections) {
  journal j;
  actor::runtime_options ro;
  ro.threads = 2;
  ro.mailbox_high = 4;
  ro.mailbox_low = 1;
  ro.batch_limit = 1;  // a turn takes one message: the mailbox holds all the others
  actor::runtime rt(ro);
  net::net n(1);
  gate_options o;
  o.max_in_flight = 1000;  // only the mailbox holds this connection back
  auto g = std::make_unique<test_gate>(n, o, j);
  test_gate* gate = g.get();
  ASSERT_TRUE(rt.spawn(std::move(g)).has_value());
  n.start();
  rt.start();
  const auto c = raw_socket::connect_to(gate->port());
  ASSERT_TRUE(j.wait([&] { return j.events.size() == 1; }));  // accepted: before any message
  conn_id id = 0;
  {
    std::lock_guard lock(j.mu);
    id = j.last_conn;
  }
  byte_buffer all = frame("hold:0");
  for (int i = 1; i <= 40; ++i) {
    const auto f = frame("echo:" + std::to_string(i));
    all.insert(all.end(), f.begin(), f.end());
  }
  c.write_all(all);
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (gate->stats().mailbox_pauses == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  ASSERT_EQ(gate->stats().mailbox_pauses, 1u) << "the connection never paused for the gate's mailbox";
  ASSERT_TRUE(n.barrier({id}, 10s));  // whatever its thread had in hand is delivered
  EXPECT_LE(gate->stats().messages, 1u + 5u) << "the held one, and mailbox_high + 1 queued";
  j.held = false;
  EXPECT_EQ(c.read_frame(), "0");
  for (int i = 1; i <= 40; ++i) EXPECT_EQ(c.read_frame(), std::to_string(i));
  EXPECT_EQ(gate->stats().answers, 41u);
  n.stop();
  rt.shutdown();
}

}  // namespace
}  // namespace csk::gate
