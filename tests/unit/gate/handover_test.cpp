// Gate connection hand-over ("__handover" messages, gate.hpp) over real TCP on
// 127.0.0.1 (port 0): two runtimes + two nets in one process play the old and the new
// worker, each with a gate named ".gate.kv" serving the same listening socket (the old
// one adopted a dup of it, the new one another dup, in standby). The fds travel through
// an AF_UNIX socket pair with SCM_RIGHTS, as between two processes. Waits are on events
// with deadlines; raw POSIX sockets play the clients.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

std::string string_of(const byte_buffer& b) { return std::string(b.begin(), b.end()); }

/// Sends `fd` over an AF_UNIX socket pair with SCM_RIGHTS and returns the copy received
/// (another number for the same socket), as the channel between two workers would.
int pass_fd(int fd) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
  char byte = 'f';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (::sendmsg(sv[0], &m, MSG_NOSIGNAL) != 1) throw std::runtime_error("sendmsg");
  msghdr r{};
  alignas(cmsghdr) char rcontrol[CMSG_SPACE(sizeof(int))] = {};
  r.msg_iov = &iov;
  r.msg_iovlen = 1;
  r.msg_control = rcontrol;
  r.msg_controllen = sizeof(rcontrol);
  if (::recvmsg(sv[1], &r, MSG_CMSG_CLOEXEC) != 1) throw std::runtime_error("recvmsg");
  int got = -1;
  std::memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&r)), sizeof(int));
  ::close(sv[0]);
  ::close(sv[1]);
  return got;
}

/// Polls `pred` until it holds or 20 s have passed.
template <class P>
bool eventually(P pred) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// What a gate saw; shared with the test thread.
struct journal {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> events;  // "accept", "adopt", "connect", "close:<reason>"

  void add(std::string e) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(e));
    }
    cv.notify_all();
  }
  std::size_t count_held(const std::string& prefix) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.rfind(prefix, 0) == 0 ? 1u : 0u;
    return n;
  }
  std::size_t count(const std::string& prefix) {
    std::lock_guard lock(mu);
    return count_held(prefix);
  }
  bool wait_for(const std::string& prefix, std::size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, [&] { return count_held(prefix) >= n; });
  }
};

/// "echo:<x>" -> "<worker>:<x>"; "hold:<x>" answers once .latch opens; "flood:<n>" pushes
/// n frames of 60000 bytes, then answers "flooded".
class worker_gate final : public gate_service {
 public:
  worker_gate(net::net& n, gate_options o, std::string name, journal& j)
      : gate_service(n, std::move(o)), name_(std::move(name)), j_(j) {}
  void on_accept(context&, conn_id, const std::string&) override { j_.add("accept"); }
  void on_adopt(context&, conn_id, const std::string& peer) override { j_.add("adopt:" + peer); }
  void on_connect(context&, conn_id, const std::string&) override { j_.add("connect"); }
  void on_close(context&, conn_id, const std::string& reason) override { j_.add("close:" + reason); }
  task<std::optional<byte_buffer>> on_message(context& ctx, conn_id id, byte_buffer msg) override {
    const std::string m = string_of(msg);
    const auto colon = m.find(':');
    const std::string verb = m.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : m.substr(colon + 1);
    if (verb == "hold") {
      auto w = ctx.call(".latch", values{"wait"});
      co_await w;
    } else if (verb == "flood") {
      const byte_buffer chunk(60000, 'f');
      for (int i = 0; i < std::stoi(arg); ++i) send(id, chunk);
      const std::string done = "flooded";
      co_return byte_buffer(done.begin(), done.end());
    }
    const std::string answer = name_ + ":" + arg;
    co_return byte_buffer(answer.begin(), answer.end());
  }

 private:
  std::string name_;
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
    on_sync("open", [this](context& ctx, values&) {
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

/// One worker process's part: a runtime, a net, a latch and a gate ".gate.kv".
struct worker {
  explicit worker(std::string n) : name(std::move(n)) {}
  void spawn(gate_options o) {
    if (!rt.spawn(std::make_unique<latch>(), {}, {".latch"})) throw std::runtime_error("latch");
    auto g = std::make_unique<worker_gate>(net, std::move(o), name, j);
    gate = g.get();
    auto h = rt.spawn(std::move(g), {}, {".gate.kv"});
    if (!h) throw std::runtime_error(h.error());
    net.start();
    rt.start();
  }
  /// As the orchestrator: a call from a thread that is not a service, with this process's
  /// key in place of a leading "__handover".
  actor::call_result call(values v) {
    if (!v.empty() && v[0].is_string() && v[0].as_string() == "__handover") v[0] = lua_value(handover_key());
    return rt.call(".gate.kv", std::move(v)).get();
  }
  /// Exactly as given (what a remote cluster peer could send).
  actor::call_result call_as_is(values v) { return rt.call(".gate.kv", std::move(v)).get(); }
  values ok(values v) {
    auto r = call(std::move(v));
    if (!r) throw std::runtime_error("call failed: " + r.error().text);
    return std::move(*r);
  }
  std::int64_t in_flight() {
    auto r = ok({"__handover", "in_flight"});
    return r.size() == 1 && r[0].is_integer() ? r[0].as_integer() : -1;
  }
  void stop() {
    net.stop();
    rt.shutdown();
  }

  std::string name;
  journal j;  // before the runtime: the gate uses it until shutdown
  actor::runtime rt{actor::runtime_options{.threads = 2}};
  net::net net{1};
  worker_gate* gate = nullptr;  // owned by rt
};

/// A bound, listening socket on 127.0.0.1 (the supervisor's), and dups of it for the gates.
class HandoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(lfd_, 64), 0);
    socklen_t len = sizeof(a);
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  void TearDown() override {
    if (new_) new_->stop();
    if (old_) old_->stop();
    ::close(lfd_);
  }
  gate_options options(bool standby = false) const {
    gate_options o;
    o.adopt_fd = ::fcntl(lfd_, F_DUPFD_CLOEXEC, 0);
    o.standby = standby;
    return o;
  }
  void start_old(gate_options o) {
    old_ = std::make_unique<worker>("old");
    old_->spawn(std::move(o));
  }
  void start_new() {
    new_ = std::make_unique<worker>("new");
    new_->spawn(options(true));
  }
  /// freeze, wait for in_flight == 0, detach: the entries of the reply.
  std::vector<lua_value> freeze_and_detach(worker& w) {
    w.ok({"__handover", "freeze"});
    EXPECT_TRUE(eventually([&] { return w.in_flight() == 0; }));
    auto r = w.ok({"__handover", "detach", 2000});
    if (r.size() != 1 || !r[0].is_table()) throw std::runtime_error("detach: not one table");
    return r[0].as_table().array;
  }
  /// The entry's fd through SCM_RIGHTS into the new worker's gate: the new conn id.
  std::int64_t adopt(worker& w, const lua_value& entry) {
    const auto& t = entry.as_table();
    const int fd = static_cast<int>(t.find("fd")->as_integer());
    const int passed = pass_fd(fd);
    ::close(fd);  // the old worker's copy
    values args{"__handover", "adopt", passed, *t.find("unread"), *t.find("peer")};
    if (const auto* out = t.find("outgoing")) args.push_back(*out);
    auto r = w.ok(std::move(args));
    return r.at(0).as_integer();
  }

  int lfd_ = -1;
  std::uint16_t port_ = 0;
  std::unique_ptr<worker> old_;
  std::unique_ptr<worker> new_;
};

TEST_F(HandoverTest, TheSameClientIsServedByTheNewWorkerWithoutReconnecting) {
  start_old(options());
  start_new();
  EXPECT_EQ(old_->gate->port(), port_);
  EXPECT_EQ(new_->gate->port(), port_) << "standby: the socket is known, not accepted on";
  const auto c = raw_socket::connect_to(port_);
  c.write_all(frame("echo:one"));
  EXPECT_EQ(c.read_frame(), "old:one");
  ASSERT_TRUE(old_->j.wait_for("accept", 1));

  // The first 3 bytes of a frame before the freeze, read by the old worker.
  const auto half = frame("echo:half");
  const auto bytes_before = old_->net.get_stats().bytes_in;
  c.write_all(bytes_view(half).first(3));
  ASSERT_TRUE(eventually([&] { return old_->net.get_stats().bytes_in >= bytes_before + 3; }));

  const auto entries = freeze_and_detach(*old_);
  ASSERT_EQ(entries.size(), 1u);
  const auto& e = entries[0].as_table();
  ASSERT_TRUE(e.find("fd") && e.find("fd")->is_integer());
  ASSERT_TRUE(e.find("unread") && e.find("unread")->is_string());
  EXPECT_EQ(e.find("unread")->as_string(), std::string(half.begin(), half.begin() + 3));
  ASSERT_TRUE(e.find("peer") && e.find("peer")->is_string());
  EXPECT_EQ(e.find("peer")->as_string().rfind("127.0.0.1:", 0), 0u) << e.find("peer")->as_string();
  EXPECT_EQ(e.find("outgoing"), nullptr);
  EXPECT_EQ(old_->gate->stats().open, 0u);
  EXPECT_EQ(old_->gate->stats().detached, 1u);

  const auto id = adopt(*new_, entries[0]);
  EXPECT_GT(id, 0);
  ASSERT_TRUE(new_->j.wait_for("adopt:", 1));
  new_->ok({"__handover", "start"});

  // The rest of the half frame, then another one: answered once each, by the new worker.
  c.write_all(bytes_view(half).subspan(3));
  EXPECT_EQ(c.read_frame(), "new:half");
  c.write_all(frame("echo:two"));
  EXPECT_EQ(c.read_frame(), "new:two");
  EXPECT_EQ(new_->j.count("accept"), 0u) << "on_adopt, not on_accept";
  EXPECT_EQ(new_->gate->stats().adopted, 1u);

  // A new client after "start": the new worker accepts it (the old one is frozen).
  const auto d = raw_socket::connect_to(port_);
  d.write_all(frame("echo:fresh"));
  EXPECT_EQ(d.read_frame(), "new:fresh");
  EXPECT_EQ(new_->j.count("accept"), 1u);

  // The old worker saw no close for the connection that left.
  EXPECT_EQ(old_->j.count("close:"), 0u);
  EXPECT_EQ(old_->j.count("accept"), 1u);
}

TEST_F(HandoverTest, ResumeAfterAFreezeServesAgainOnTheOldWorker) {
  start_old(options());
  const auto c = raw_socket::connect_to(port_);
  c.write_all(frame("echo:a"));
  EXPECT_EQ(c.read_frame(), "old:a");
  old_->ok({"__handover", "freeze"});
  old_->ok({"__handover", "freeze"});  // idempotent
  EXPECT_EQ(old_->in_flight(), 0);
  c.write_all(frame("echo:b"));  // waits: nothing is read while frozen
  const auto late = raw_socket::connect_to(port_);  // waits in the backlog: nothing accepts while frozen
  late.write_all(frame("echo:late"));
  old_->ok({"__handover", "resume"});
  EXPECT_EQ(c.read_frame(), "old:b");
  EXPECT_EQ(late.read_frame(), "old:late") << "through the reopened listener";
  const auto after = raw_socket::connect_to(port_);
  after.write_all(frame("echo:after"));
  EXPECT_EQ(after.read_frame(), "old:after");
  EXPECT_EQ(old_->j.count("accept"), 3u);
  EXPECT_EQ(old_->gate->stats().detached, 0u);
  old_->ok({"__handover", "resume"});  // not frozen: nothing to do
  old_->ok({"__handover", "start"});   // not in standby: a no-op
}

TEST_F(HandoverTest, DetachWaitsForAnswersInFlight) {
  start_old(options());
  start_new();
  const auto c = raw_socket::connect_to(port_);
  c.write_all(frame("hold:x"));
  ASSERT_TRUE(eventually([&] { return old_->in_flight() == 1; }));
  old_->ok({"__handover", "freeze"});
  auto refused = old_->call({"__handover", "detach", 1000});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().text.find("1 message(s) in flight"), std::string::npos) << refused.error().text;
  EXPECT_EQ(old_->gate->stats().open, 1u) << "nothing detached";

  ASSERT_TRUE(old_->rt.call(".latch", {"open"}).get());
  EXPECT_EQ(c.read_frame(), "old:x") << "a frozen gate still writes its answers";
  ASSERT_TRUE(eventually([&] { return old_->in_flight() == 0; }));
  auto r = old_->ok({"__handover", "detach", 1000});
  ASSERT_EQ(r.at(0).as_table().array.size(), 1u);
  adopt(*new_, r[0].as_table().array[0]);
  new_->ok({"__handover", "start"});
  c.write_all(frame("echo:y"));
  EXPECT_EQ(c.read_frame(), "new:y");
}

TEST_F(HandoverTest, AFailedDetachTakesBackTheConnectionsAlreadyDetached) {
  gate_options o = options();
  o.max_outbound_bytes = 32u << 20;
  start_old(std::move(o));
  const auto idle = raw_socket::connect_to(port_);
  idle.write_all(frame("echo:i"));
  EXPECT_EQ(idle.read_frame(), "old:i");
  test::socket_options small_window;
  small_window.rcvbuf = 4096;
  // Reads nothing for now: the pushes stay queued in the gate.
  const auto slow = raw_socket::connect_to(port_, small_window);
  slow.write_all(frame("flood:300"));
  ASSERT_TRUE(eventually([&] { return old_->gate->stats().answers == 2; })) << "the flood is queued";
  old_->ok({"__handover", "freeze"});
  auto r = old_->call({"__handover", "detach", 100});
  ASSERT_FALSE(r) << "18 MB cannot be written to a client that does not read";
  EXPECT_NE(r.error().text.find("not written in time"), std::string::npos) << r.error().text;
  EXPECT_NE(r.error().text.find("1 already detached were taken back"), std::string::npos) << r.error().text;
  ASSERT_TRUE(old_->j.wait_for("close:hand-over rolled back: now connection", 1));
  ASSERT_TRUE(old_->j.wait_for("adopt:", 1));
  EXPECT_EQ(old_->gate->stats().open, 2u);
  EXPECT_EQ(old_->gate->stats().detached, 0u);

  old_->ok({"__handover", "resume"});
  idle.write_all(frame("echo:j"));
  EXPECT_EQ(idle.read_frame(), "old:j") << "the connection taken back is served again";
  for (int i = 0; i < 300; ++i) ASSERT_EQ(slow.read_frame()->size(), 60000u) << i;
  EXPECT_EQ(slow.read_frame(), "flooded");
  slow.write_all(frame("echo:k"));
  EXPECT_EQ(slow.read_frame(), "old:k");
}

TEST_F(HandoverTest, OutgoingConnectionsAreHandedOverToo) {
  start_old(options());
  start_new();
  // A server the gate connects to (played by the test).
  const int sfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(sfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(sfd, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(sfd, reinterpret_cast<sockaddr*>(&a), &len);
  ASSERT_NE(old_->gate->connect("127.0.0.1", ntohs(a.sin_port)), 0u);
  const int accepted = ::accept4(sfd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(sfd);
  ASSERT_GE(accepted, 0);
  ASSERT_TRUE(old_->j.wait_for("connect", 1));
  const int server = accepted;
  timeval tv{10, 0};
  ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto ask = [&](std::string_view body) -> std::optional<std::string> {
    const auto f = frame(body);
    if (::send(server, f.data(), f.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(f.size())) return std::nullopt;
    byte_buffer h(2), b;
    if (::recv(server, h.data(), 2, MSG_WAITALL) != 2) return std::nullopt;
    b.resize((std::size_t{h[0]} << 8) | h[1]);
    if (!b.empty() && ::recv(server, b.data(), b.size(), MSG_WAITALL) != static_cast<ssize_t>(b.size())) {
      return std::nullopt;
    }
    return string_of(b);
  };
  EXPECT_EQ(ask("echo:p"), "old:p");
  const auto entries = freeze_and_detach(*old_);
  ASSERT_EQ(entries.size(), 1u);
  ASSERT_NE(entries[0].as_table().find("outgoing"), nullptr);
  EXPECT_TRUE(entries[0].as_table().find("outgoing")->as_boolean());
  adopt(*new_, entries[0]);
  new_->ok({"__handover", "start"});
  EXPECT_EQ(ask("echo:q"), "new:q");
  EXPECT_EQ(new_->gate->stats().open, 1u);
  ::close(server);
}

TEST_F(HandoverTest, AFrozenGateStillClosesItsConnectionsWhenItStops) {
  start_old(options());
  const auto c = raw_socket::connect_to(port_);
  c.write_all(frame("echo:a"));
  EXPECT_EQ(c.read_frame(), "old:a");
  old_->ok({"__handover", "freeze"});
  old_->rt.shutdown();  // the gate's stop(): frozen connections are closed too
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HandoverTest, BadHandoverMessagesAreErrors) {
  start_old(options());
  auto error_of = [&](values v) {
    auto r = old_->call(std::move(v));
    return r ? std::string("(no error)") : r.error().text;
  };
  auto has = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  };
  EXPECT_PRED2(has, error_of({"__handover"}), "expected a verb (freeze, in_flight, detach, resume, adopt, start)");
  EXPECT_PRED2(has, error_of({"__handover", "frob"}), "not frob");
  EXPECT_PRED2(has, error_of({"__handover", 7}), "expected a verb");
  EXPECT_PRED2(has, error_of({"__handover", "freeze", 1}), "takes no arguments");
  EXPECT_PRED2(has, error_of({"__handover", "detach"}), "expected a timeout in ms");
  EXPECT_PRED2(has, error_of({"__handover", "detach", "soon"}), "expected a timeout in ms");
  EXPECT_PRED2(has, error_of({"__handover", "detach", 0}), "expected a timeout in ms");
  EXPECT_PRED2(has, error_of({"__handover", "detach", 100}), "freeze first");
  EXPECT_PRED2(has, error_of({"__handover", "adopt"}), "expected fd");
  EXPECT_PRED2(has, error_of({"__handover", "adopt", "3"}), "expected fd");
  EXPECT_PRED2(has, error_of({"__handover", "adopt", -1, "", "p"}), "expected fd");
  EXPECT_PRED2(has, error_of({"__handover", "adopt", 1 << 20, "", "p"}), "fd 1048576: Bad file descriptor");

  // A good fd with bad arguments, or that is not a connected TCP socket: closed.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  EXPECT_PRED2(has, error_of({"__handover", "adopt", p[0], 5, "peer"}), "closed");
  EXPECT_EQ(::fcntl(p[0], F_GETFD), -1) << "the gate owned the fd: it closed it";
  const std::string not_socket = error_of({"__handover", "adopt", p[1], "", "peer"});
  EXPECT_PRED2(has, not_socket, "fd " + std::to_string(p[1]));
  EXPECT_EQ(::fcntl(p[1], F_GETFD), -1);
  const int listening = ::fcntl(lfd_, F_DUPFD_CLOEXEC, 0);  // a socket, but not connected
  EXPECT_PRED2(has, error_of({"__handover", "adopt", listening, "", "peer", "yes"}), "outgoing (boolean)");
  EXPECT_EQ(::fcntl(listening, F_GETFD), -1);

  // Still serving: the errors changed nothing.
  const auto c = raw_socket::connect_to(port_);
  c.write_all(frame("echo:fine"));
  EXPECT_EQ(c.read_frame(), "old:fine");
  EXPECT_EQ(old_->in_flight(), 0);
  // Other commands still reach on_request.
  EXPECT_PRED2(has, error_of({"__handoverx"}), "unknown command __handoverx");
  // Without the key (a remote peer can address .gate.kv): refused, nothing happens.
  for (values forged : {values{"__handover", "freeze"}, values{"__handover:0123456789abcdef", "freeze"}}) {
    auto r = old_->call_as_is(std::move(forged));
    ASSERT_FALSE(r);
    EXPECT_PRED2(has, r.error().text, "hand-over messages need this process's key");
  }
  c.write_all(frame("echo:still"));
  EXPECT_EQ(c.read_frame(), "old:still");
}

TEST(GateOptions, Standby) {
  lua_table t;
  t.set("standby", true);
  auto o = gate_options_from(lua_value(std::move(t)));
  ASSERT_TRUE(o) << o.error();
  EXPECT_TRUE(o->standby);
  EXPECT_FALSE(gate_options_from(lua_value{})->standby);
  lua_table bad;
  bad.set("standby", 1);
  auto b = gate_options_from(lua_value(std::move(bad)));
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().find("standby must be true or false"), std::string::npos);
}

TEST(GateStandby, BindsButAcceptsNothingUntilStart) {
  journal j;
  actor::runtime rt(actor::runtime_options{.threads = 1});
  net::net n(1);
  gate_options o;
  o.standby = true;  // no fd: the gate binds 127.0.0.1:0 itself
  auto g = std::make_unique<worker_gate>(n, o, "standby", j);
  auto* gate = g.get();
  ASSERT_TRUE(rt.spawn(std::move(g), {}, {".gate.kv"}));
  n.start();
  rt.start();
  ASSERT_NE(gate->port(), 0);
  const auto c = raw_socket::connect_to(gate->port());  // the connect completes in the backlog
  c.write_all(frame("echo:s"));
  const auto r = rt.call(".gate.kv", {handover_key(), "in_flight"}).get();  // a round trip through the gate
  ASSERT_TRUE(r);
  EXPECT_EQ(n.get_stats().accepted, 0u);
  EXPECT_EQ(j.count("accept"), 0u);
  ASSERT_TRUE(rt.call(".gate.kv", {handover_key(), "start"}).get());
  EXPECT_EQ(c.read_frame(), "standby:s");
  EXPECT_EQ(j.count("accept"), 1u);
  n.stop();
  rt.shutdown();
}

}  // namespace
}  // namespace csk::gate
