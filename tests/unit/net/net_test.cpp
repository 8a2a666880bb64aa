// csk::net over real TCP on 127.0.0.1 (port 0 everywhere). Tests wait on condition
// variables and futures with deadlines, never on sleeps. Raw POSIX sockets play peers
// that misbehave (write one byte at a time, never read, send a bad length).

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "tests/support/raw_socket.hpp"

namespace csk::net {
namespace {

using namespace std::chrono_literals;
constexpr auto deadline = 20s;

// Raw peers: blocking sockets whose reads and writes time out (tests/support).
using test::frame;
using test::raw_socket;

// ------------------------------------------------------------------- handlers --

/// Records every hook; echoes each message back framed when `echo_` is set.
/// wait(pred) runs pred under the lock, after every recorded hook.
class recorder : public handler {
 public:
  explicit recorder(net* echo = nullptr) : echo_(echo) {}

  void on_accept(conn_id id, const std::string& peer) override {
    {
      std::lock_guard lock(mu_);
      accepted_.push_back(id);
      peers_[id] = peer;
    }
    cv_.notify_all();
  }
  void on_connect(conn_id id, const std::string& peer) override {
    {
      std::lock_guard lock(mu_);
      connected_.push_back(id);
      peers_[id] = peer;
    }
    cv_.notify_all();
  }
  void on_message(conn_id id, bytes_view message) override {
    {
      std::lock_guard lock(mu_);
      messages_[id].emplace_back(as_chars(message));
      ++total_messages_;
    }
    cv_.notify_all();
    if (echo_ != nullptr) echo_->send(id, frame(as_chars(message)));
  }
  void on_close(conn_id id, const std::string& reason) override {
    {
      std::lock_guard lock(mu_);
      closes_[id].push_back(reason);
    }
    cv_.notify_all();
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds d = deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [&] { return pred(); });
  }

  // Read under the lock, or after wait().
  std::vector<conn_id> accepted() {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  std::vector<conn_id> connected() {
    std::lock_guard lock(mu_);
    return connected_;
  }
  std::vector<std::string> messages(conn_id id) {
    std::lock_guard lock(mu_);
    return messages_[id];
  }
  std::map<conn_id, std::vector<std::string>> closes() {
    std::lock_guard lock(mu_);
    return closes_;
  }
  std::string peer(conn_id id) {
    std::lock_guard lock(mu_);
    return peers_[id];
  }

 protected:
  // Recursive: wait() predicates call the accessors below with the lock held.
  std::recursive_mutex mu_;
  std::condition_variable_any cv_;
  std::vector<conn_id> accepted_;
  std::vector<conn_id> connected_;
  std::map<conn_id, std::string> peers_;
  std::map<conn_id, std::vector<std::string>> messages_;
  std::size_t total_messages_ = 0;
  std::map<conn_id, std::vector<std::string>> closes_;
  net* echo_;
};

/// Newline-delimited text: each line (with its '\n') is a message; '!' is a protocol error.
class line_recorder : public recorder {
 public:
  unpack_result unpack(conn_id, bytes_view buffered) override {
    for (std::size_t i = 0; i < buffered.size(); ++i) {
      if (buffered[i] == '!') return unpack_result::failed("bang in line");
      if (buffered[i] == '\n') return unpack_result::message(0, i + 1);
    }
    return unpack_result::need_more();
  }
};

// -------------------------------------------------------------------- fixture --

/// CSK_NET_TEST_LOG=debug shows the net layer's debug lines.
class log_level : public ::testing::Environment {
 public:
  void SetUp() override {
    if (const char* level = std::getenv("CSK_NET_TEST_LOG")) init_logging(log_config{level, "", false}, "test");
  }
};
const auto* const log_env = ::testing::AddGlobalTestEnvironment(new log_level);

class NetFixture : public ::testing::Test {
 protected:
  void SetUp() override { net_.start(); }

  std::uint16_t listen(std::shared_ptr<handler> h, conn_options o = {}) {
    auto id = net_.listen("127.0.0.1", 0, std::move(h), o);
    if (!id) throw std::runtime_error(id.error());
    return net_.local_port(*id);
  }

  /// Connects and waits for `done`; the id, or 0 with the error.
  std::pair<conn_id, std::error_code> connect(std::uint16_t port, std::shared_ptr<handler> h,
                                              conn_options o = {}, const std::string& host = "127.0.0.1") {
    auto p = std::make_shared<std::promise<std::pair<conn_id, std::error_code>>>();
    auto f = p->get_future();
    net_.connect(host, port, std::move(h), o, [p](conn_id id, std::error_code ec) { p->set_value({id, ec}); });
    if (f.wait_for(deadline) != std::future_status::ready) throw std::runtime_error("connect: no answer");
    return f.get();
  }

  net net_{2};
};

using NetEcho = NetFixture;
using NetLimits = NetFixture;
using NetCustomUnpack = NetFixture;
using NetSend = NetFixture;
using NetTimeouts = NetFixture;
using NetConnect = NetFixture;
using NetListener = NetFixture;
using NetClose = NetFixture;
using NetPause = NetFixture;

// ----------------------------------------------------------------------- echo --

TEST_F(NetEcho, FramesRoundTrip) {
  auto server = std::make_shared<recorder>(&net_);
  auto client = std::make_shared<recorder>();
  const auto port = listen(server);
  const auto [id, ec] = connect(port, client);
  ASSERT_NE(id, 0u) << ec.message();
  EXPECT_EQ(client->peer(id), "127.0.0.1:" + std::to_string(port));

  const std::vector<std::string> sent{"hello", "", std::string(0xffff, 'x'), "world"};
  for (const auto& s : sent) ASSERT_TRUE(net_.send(id, frame(s)));
  ASSERT_TRUE(client->wait([&] { return client->messages(id).size() == sent.size(); }));
  EXPECT_EQ(client->messages(id), sent);

  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  EXPECT_TRUE(server->closes().empty());
  EXPECT_TRUE(client->closes().empty());
  const auto s = net_.get_stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.connected, 1u);
  EXPECT_EQ(s.messages, 2 * sent.size());
}

TEST_F(NetEcho, TenThousandPipelinedFramesArriveInOrder) {
  auto server = std::make_shared<recorder>(&net_);
  auto client = std::make_shared<recorder>();
  const auto [id, ec] = connect(listen(server), client);
  ASSERT_NE(id, 0u) << ec.message();

  constexpr int count = 10000;
  std::vector<std::string> sent;
  for (int i = 0; i < count; ++i) {
    sent.push_back("frame " + std::to_string(i));
    ASSERT_TRUE(net_.send(id, frame(sent.back())));
  }
  ASSERT_TRUE(client->wait([&] { return client->messages(id).size() == count; }));
  EXPECT_EQ(client->messages(id), sent);
  EXPECT_LT(net_.get_stats().reads, net_.get_stats().messages) << "several frames per read";
}

TEST_F(NetEcho, FramesSplitByteByByteAreReassembled) {
  auto server = std::make_shared<recorder>(&net_);
  const auto port = listen(server);
  const auto peer = raw_socket::connect_to(port);

  byte_buffer all;
  for (const auto* s : {"one", "", "three"}) {
    const auto f = frame(s);
    all.insert(all.end(), f.begin(), f.end());
  }
  for (std::size_t i = 0; i < all.size(); ++i) peer.write_all(bytes_view(all).subspan(i, 1));

  EXPECT_EQ(peer.read_frame(), "one");
  EXPECT_EQ(peer.read_frame(), "");
  EXPECT_EQ(peer.read_frame(), "three");
  ASSERT_EQ(server->accepted().size(), 1u);
  EXPECT_EQ(server->messages(server->accepted()[0]), (std::vector<std::string>{"one", "", "three"}));
}

TEST_F(NetEcho, ManyFramesInOneWriteAreAllDelivered) {
  auto server = std::make_shared<recorder>();
  const auto peer = raw_socket::connect_to(listen(server));

  constexpr std::size_t count = 500;
  byte_buffer all;
  for (std::size_t i = 0; i < count; ++i) {
    const auto f = frame("m" + std::to_string(i));
    all.insert(all.end(), f.begin(), f.end());
  }
  peer.write_all(all);
  ASSERT_TRUE(server->wait([&] {
    const auto ids = server->accepted();
    return ids.size() == 1 && server->messages(ids[0]).size() == count;
  }));
  const auto got = server->messages(server->accepted()[0]);
  for (std::size_t i = 0; i < count; ++i) EXPECT_EQ(got[i], "m" + std::to_string(i));
  const auto s = net_.get_stats();
  EXPECT_EQ(s.messages, count);
  EXPECT_LT(s.reads, count / 10) << "one read carries many frames";
}

// --------------------------------------------------------------------- limits --

TEST_F(NetLimits, OversizedLengthClosesOnlyThatConnectionBeforeItsBodyArrives) {
  capture_logs logs;
  auto server = std::make_shared<recorder>(&net_);
  conn_options o;
  o.max_message = 2 + 1000;
  const auto port = listen(server, o);

  const auto good = raw_socket::connect_to(port);
  good.write_all(frame("before"));
  ASSERT_EQ(good.read_frame(), "before");

  const auto bad = raw_socket::connect_to(port);
  const byte_buffer header_only{0x07, 0xd0};  // 2000 bytes announced, none sent
  bad.write_all(header_only);
  EXPECT_TRUE(bad.wait_closed());

  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  const auto closes = server->closes();
  const auto bad_id = closes.begin()->first;
  ASSERT_EQ(closes.begin()->second.size(), 1u);
  EXPECT_EQ(closes.begin()->second[0], "message too large: 2002 bytes (max 1002)");
  EXPECT_TRUE(logs.wait_for("conn " + std::to_string(bad_id) + " (" + server->peer(bad_id) +
                                "): closed: message too large",
                            deadline));

  good.write_all(frame("after"));
  EXPECT_EQ(good.read_frame(), "after");
  EXPECT_EQ(server->closes().size(), 1u);
}

TEST_F(NetLimits, LargestFrameFitsTheDefaultLimit) {
  auto server = std::make_shared<recorder>(&net_);
  const auto peer = raw_socket::connect_to(listen(server));
  const std::string big(0xffff, 'b');
  peer.write_all(frame(big));
  EXPECT_EQ(peer.read_frame(), big);
}

TEST_F(NetLimits, FramesLargerThanTheReadChunkAreReassembled) {
  auto server = std::make_shared<recorder>(&net_);
  conn_options o;
  o.read_chunk = 256;  // the buffer grows for a known length and compacts between frames
  const auto peer = raw_socket::connect_to(listen(server, o));
  byte_buffer all;
  std::vector<std::string> sent;
  for (std::size_t i = 0; i < 60; ++i) {
    sent.emplace_back((i * 997) % 6000, static_cast<char>('a' + i % 26));
    const auto f = frame(sent.back());
    all.insert(all.end(), f.begin(), f.end());
  }
  peer.write_all(all);
  for (const auto& s : sent) ASSERT_EQ(peer.read_frame(), s);
}

TEST_F(NetLimits, ExceptionInAHookClosesThatConnection) {
  class thrower : public recorder {
   public:
    void on_message(conn_id id, bytes_view m) override {
      if (as_chars(m) == "boom") throw std::runtime_error("boom");
      recorder::on_message(id, m);
    }
  };
  auto server = std::make_shared<thrower>();
  const auto peer = raw_socket::connect_to(listen(server));
  peer.write_all(frame("boom"));
  EXPECT_TRUE(peer.wait_closed());
  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  EXPECT_EQ(server->closes().begin()->second, std::vector<std::string>{"handler error in on_message: boom"});
}

// -------------------------------------------------------------- custom unpack --

TEST_F(NetCustomUnpack, NewlineDelimitedTextWorks) {
  auto server = std::make_shared<line_recorder>();
  const auto peer = raw_socket::connect_to(listen(server));
  peer.write_all(as_bytes("hello\nworld\npart"));
  peer.write_all(as_bytes("ial\n"));
  ASSERT_TRUE(server->wait([&] {
    const auto ids = server->accepted();
    return ids.size() == 1 && server->messages(ids[0]).size() == 3;
  }));
  EXPECT_EQ(server->messages(server->accepted()[0]),
            (std::vector<std::string>{"hello\n", "world\n", "partial\n"}));
}

TEST_F(NetCustomUnpack, UnpackErrorClosesWithItsReason) {
  auto server = std::make_shared<line_recorder>();
  const auto peer = raw_socket::connect_to(listen(server));
  peer.write_all(as_bytes("fine\nnot!fine\n"));
  EXPECT_TRUE(peer.wait_closed());
  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  const auto [id, reasons] = *server->closes().begin();
  EXPECT_EQ(reasons, std::vector<std::string>{"bang in line"});
  EXPECT_EQ(server->messages(id), std::vector<std::string>{"fine\n"});
}

TEST_F(NetCustomUnpack, UnknownLengthIsCappedByMaxMessage) {
  auto server = std::make_shared<line_recorder>();
  conn_options o;
  o.max_message = 64;
  o.read_chunk = 16;  // the buffer grows to the cap, not past it
  const auto peer = raw_socket::connect_to(listen(server, o));
  peer.write_all(as_bytes(std::string(100, 'a')));
  EXPECT_TRUE(peer.wait_closed());
  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  EXPECT_EQ(server->closes().begin()->second[0].rfind("message too large", 0), 0u);
}

// ----------------------------------------------------------------------- send --

TEST_F(NetSend, FramesSentWhileTheWriterIsBusyLeaveInOneWrite) {
  // The server greets; the client's on_message holds its net thread until released, so
  // everything the test thread sends meanwhile waits behind one posted write. (Frames
  // sent slower than the net thread writes are not held back, so a free-running loop
  // gives no deterministic count: this test makes the writer busy on purpose.)
  class greeter : public recorder {
   public:
    using recorder::recorder;
    void on_accept(conn_id id, const std::string& peer) override {
      recorder::on_accept(id, peer);
      echo_->send(id, frame("block"));
    }
  };
  class blocker : public recorder {
   public:
    std::promise<void> entered;
    std::shared_future<void> release;
    void on_message(conn_id id, bytes_view m) override {
      recorder::on_message(id, m);
      entered.set_value();
      release.wait_for(deadline);
    }
  };
  auto server = std::make_shared<greeter>(&net_);
  auto client = std::make_shared<blocker>();
  std::promise<void> release;
  client->release = release.get_future().share();
  auto entered = client->entered.get_future();

  const auto [id, ec] = connect(listen(server), client);
  ASSERT_NE(id, 0u) << ec.message();
  ASSERT_EQ(entered.wait_for(deadline), std::future_status::ready);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));

  const auto before = net_.get_stats().writes;
  constexpr std::size_t count = 1000;
  for (std::size_t i = 0; i < count; ++i) ASSERT_TRUE(net_.send(id, frame("f" + std::to_string(i))));
  release.set_value();

  const auto server_id = server->accepted()[0];
  ASSERT_TRUE(server->wait([&] { return server->messages(server_id).size() == count; }));
  const auto writes = net_.get_stats().writes - before;
  EXPECT_LE(writes, 3u) << "1000 frames queued behind one write went out in " << writes << " writes";
}

TEST_F(NetSend, PeerThatNeverReadsHitsTheSendCap) {
  const auto sink = raw_socket::bound(true);
  auto client = std::make_shared<recorder>();
  conn_options o;
  o.max_outbound_bytes = 1u << 20;
  const auto [id, ec] = connect(sink.port(), client, o);
  ASSERT_NE(id, 0u) << ec.message();
  const auto peer = sink.accept();  // never reads

  const byte_buffer chunk(64u << 10, 0x55);
  std::size_t sent = 0;
  bool refused = false;
  // Kernel buffers take a few MiB, the cap 1 MiB more; 64 MiB means the cap is not enforced.
  while (sent < (64u << 20)) {
    if (!net_.send(id, chunk)) {
      refused = true;
      break;
    }
    sent += chunk.size();
  }
  EXPECT_TRUE(refused) << "sent " << sent << " bytes to a peer that never reads";
  ASSERT_TRUE(client->wait([&] { return client->closes().size() == 1; }));
  EXPECT_EQ(client->closes().at(id), std::vector<std::string>{"send buffer full"});
  EXPECT_FALSE(net_.send(id, chunk));
  EXPECT_TRUE(peer.wait_closed());
}

TEST_F(NetSend, SendToUnknownIdFails) {
  EXPECT_FALSE(net_.send(12345, frame("x")));
  EXPECT_FALSE(net_.send(0, frame("x")));
}

// ------------------------------------------------------------------- timeouts --

TEST_F(NetTimeouts, IdleTimeoutClosesTheIdleConnectionOnly) {
  // B ping-pongs with the server without pause; A never sends anything.
  class ping_pong : public recorder {
   public:
    std::atomic<bool> running{true};
    explicit ping_pong(net* n) : recorder(n) {}
    void on_message(conn_id id, bytes_view m) override {
      if (running.load()) echo_->send(id, frame(as_chars(m)));
    }
  };
  auto server = std::make_shared<recorder>(&net_);
  conn_options o;
  o.idle_timeout = 300ms;
  const auto port = listen(server, o);

  const auto a = raw_socket::connect_to(port);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  const auto a_id = server->accepted()[0];

  auto b = std::make_shared<ping_pong>(&net_);
  const auto [b_id, ec] = connect(port, b);
  ASSERT_NE(b_id, 0u) << ec.message();
  ASSERT_TRUE(net_.send(b_id, frame("ping")));

  ASSERT_TRUE(server->wait([&] { return !server->closes().empty(); }));
  const auto closes = server->closes();
  ASSERT_EQ(closes.size(), 1u) << "only the idle connection";
  EXPECT_EQ(closes.begin()->first, a_id);
  EXPECT_EQ(closes.begin()->second, std::vector<std::string>{"idle timeout"});
  EXPECT_TRUE(a.wait_closed());
  b->running = false;
  EXPECT_TRUE(b->closes().empty());
}

// --------------------------------------------------------------- read pausing --

TEST(NetPauseOneThread, PausedConnectionDeliversNothingUntilResumed) {
  // One net thread: when connection B's echo comes back, that thread has run its loop
  // since A was paused, and A's buffered frames must still be waiting.
  class pauser : public recorder {
   public:
    explicit pauser(net* n) : recorder(n) {}
    std::atomic<bool> paused{false};
    std::atomic<int> while_paused{0};
    conn_id pause_on = 0;  // set before any message
    void on_message(conn_id id, bytes_view m) override {
      if (id == pause_on) {
        if (paused.load()) ++while_paused;
        if (as_chars(m) == "first") {
          paused = true;
          echo_->pause_reading(id);
        }
      }
      recorder::on_message(id, m);
    }
  };
  net n(1);
  n.start();
  auto server = std::make_shared<pauser>(&n);
  auto lid = n.listen("127.0.0.1", 0, server);
  ASSERT_TRUE(lid) << lid.error();
  const auto port = n.local_port(*lid);

  const auto a = raw_socket::connect_to(port);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  const auto a_id = server->accepted()[0];
  server->pause_on = a_id;
  byte_buffer three = frame("first");
  for (const auto* s : {"second", "third"}) {
    const auto f = frame(s);
    three.insert(three.end(), f.begin(), f.end());
  }
  a.write_all(three);
  ASSERT_TRUE(server->wait([&] { return server->messages(a_id).size() == 1; }));

  const auto b = raw_socket::connect_to(port);
  b.write_all(frame("through"));
  EXPECT_EQ(b.read_frame(), "through");
  EXPECT_EQ(server->messages(a_id), std::vector<std::string>{"first"});

  server->paused = false;
  n.resume_reading(a_id);
  ASSERT_TRUE(server->wait([&] { return server->messages(a_id).size() == 3; }));
  EXPECT_EQ(server->messages(a_id), (std::vector<std::string>{"first", "second", "third"}));
  EXPECT_EQ(server->while_paused.load(), 0);
  a.write_all(frame("fourth"));  // reading goes on after the resume
  EXPECT_EQ(a.read_frame(), "first");
  ASSERT_TRUE(server->wait([&] { return server->messages(a_id).size() == 4; }));
  EXPECT_TRUE(server->closes().empty());
  n.stop();
}

TEST_F(NetPause, PeerThatDoesNotReadIsThrottledInsteadOfCut) {
  // The server echoes every frame. The peer writes as fast as it can and reads nothing:
  // with pause_reading_above the server stops reading once its queue is full, the
  // peer's writes stall (EAGAIN), and nothing is cut; then the peer reads every echo.
  auto server = std::make_shared<recorder>(&net_);
  conn_options o;
  o.max_outbound_bytes = 8u << 20;
  o.pause_reading_above = 256u << 10;
  const auto port = listen(server, o);
  const auto peer = raw_socket::connect_to(port);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  const auto id = server->accepted()[0];
  ASSERT_EQ(::fcntl(peer.fd(), F_SETFL, ::fcntl(peer.fd(), F_GETFL) | O_NONBLOCK), 0);

  const auto f = frame(std::string(60000, 'p'));
  std::size_t frames = 0;
  std::size_t offset = 0;  // bytes of the current frame already written
  std::size_t stalls = 0;
  // The kernel buffers hold a few MiB; 256 MiB without a stall means nothing throttles.
  while (frames * f.size() < (256u << 20)) {
    const auto r = ::send(peer.fd(), f.data() + offset, f.size() - offset, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Stalled: wait (with a deadline) to see whether the server frees room again.
      pollfd p{peer.fd(), POLLOUT, 0};
      if (::poll(&p, 1, 500) == 0 && ++stalls >= 2) break;
      continue;
    }
    ASSERT_GT(r, 0) << "send: " << std::strerror(errno);
    offset += static_cast<std::size_t>(r);
    if (offset == f.size()) {
      ++frames;
      offset = 0;
    }
  }
  ASSERT_GE(stalls, 2u) << frames << " frames written and the server never stopped reading";
  EXPECT_LE(net_.queued_bytes(id), o.pause_reading_above + (64u << 10) + f.size())
      << "the queue stays near the pause threshold";
  EXPECT_TRUE(server->closes().empty()) << "throttled, not cut";

  // Finish the partial frame, then read every echo back.
  ASSERT_EQ(::fcntl(peer.fd(), F_SETFL, ::fcntl(peer.fd(), F_GETFL) & ~O_NONBLOCK), 0);
  std::thread finisher([&] {
    if (offset > 0) peer.write_all(bytes_view(f).subspan(offset));
  });
  const std::size_t expected = frames + (offset > 0 ? 1 : 0);
  std::size_t echoed = 0;
  while (echoed < expected) {
    auto m = peer.read_frame();
    if (!m) break;
    ++echoed;
  }
  finisher.join();
  EXPECT_EQ(echoed, expected);
  EXPECT_TRUE(server->closes().empty());
}

// -------------------------------------------------------------------- connect --

TEST_F(NetConnect, ClosedPortFailsFastThroughDone) {
  const auto unused = raw_socket::bound(false);  // holds the port; nobody listens on it
  auto client = std::make_shared<recorder>();
  const auto started = std::chrono::steady_clock::now();
  const auto [id, ec] = connect(unused.port(), client);
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(ec, std::errc::connection_refused) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_TRUE(client->connected().empty());
  EXPECT_TRUE(client->closes().empty()) << "no on_close for a connection that never was";
}

TEST_F(NetConnect, BytesSentBeforeConnectingAreQueued) {
  auto server = std::make_shared<recorder>(&net_);
  auto client = std::make_shared<recorder>();
  const auto port = listen(server);
  std::promise<std::error_code> done;
  auto f = done.get_future();
  const auto id = net_.connect("127.0.0.1", port, client, {}, [&](conn_id, std::error_code ec) { done.set_value(ec); });
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(net_.send(id, frame("early")));
  ASSERT_EQ(f.wait_for(deadline), std::future_status::ready);
  EXPECT_FALSE(f.get());
  ASSERT_TRUE(client->wait([&] { return client->messages(id).size() == 1; }));
  EXPECT_EQ(client->messages(id)[0], "early");
}

TEST_F(NetConnect, ResolvesHostNames) {
  auto server = std::make_shared<recorder>(&net_);
  auto client = std::make_shared<recorder>();
  const auto [id, ec] = connect(listen(server), client, {}, "localhost");
  ASSERT_NE(id, 0u) << ec.message();
  ASSERT_TRUE(net_.send(id, frame("by name")));
  ASSERT_TRUE(client->wait([&] { return client->messages(id).size() == 1; }));
}

// ------------------------------------------------------------------- listener --

TEST_F(NetListener, AdoptsASocketBoundByHand) {
  auto listening = raw_socket::bound(true);
  const auto port = listening.port();
  auto server = std::make_shared<recorder>(&net_);
  const auto lid = net_.adopt_listener(listening.fd(), server);
  ASSERT_TRUE(lid) << lid.error();
  const int fd = listening.release();  // the net owns it now
  EXPECT_EQ(net_.local_port(*lid), port);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

  const auto peer = raw_socket::connect_to(port);
  peer.write_all(frame("adopted"));
  EXPECT_EQ(peer.read_frame(), "adopted");
}

TEST_F(NetListener, RefusesASocketThatIsNotListening) {
  const auto not_listening = raw_socket::bound(false);
  const auto lid = net_.adopt_listener(not_listening.fd(), std::make_shared<recorder>());
  ASSERT_FALSE(lid);
  EXPECT_NE(lid.error().find("not listening"), std::string::npos) << lid.error();
  EXPECT_NE(::fcntl(not_listening.fd(), F_GETFD), -1) << "the fd stays open and the caller's";
}

TEST_F(NetListener, ClosedListenerRefusesNewConnectionsAndKeepsOldOnes) {
  auto server = std::make_shared<recorder>(&net_);
  auto lid = net_.listen("127.0.0.1", 0, server);
  ASSERT_TRUE(lid);
  const auto port = net_.local_port(*lid);
  const auto old = raw_socket::connect_to(port);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));

  net_.close_listener(*lid);
  EXPECT_EQ(net_.local_port(*lid), 0u);
  auto client = std::make_shared<recorder>();
  const auto [id, ec] = connect(port, client);
  EXPECT_EQ(id, 0u);
  EXPECT_TRUE(ec);

  old.write_all(frame("still here"));
  EXPECT_EQ(old.read_frame(), "still here");
}

TEST_F(NetListener, ListenReportsBindErrors) {
  const auto taken = raw_socket::bound(true);
  const auto lid = net_.listen("127.0.0.1", taken.port(), std::make_shared<recorder>());
  ASSERT_FALSE(lid);
  EXPECT_NE(lid.error().find("127.0.0.1:" + std::to_string(taken.port())), std::string::npos) << lid.error();
}

// ---------------------------------------------------------------------- close --

TEST_F(NetClose, GracefulCloseFlushesQueuedBytesFirst) {
  class talker : public recorder {
   public:
    using recorder::recorder;
    void on_accept(conn_id id, const std::string& peer) override {
      recorder::on_accept(id, peer);
      for (int i = 0; i < 200; ++i) echo_->send(id, frame(std::string(20000, static_cast<char>('a' + i % 26))));
      echo_->close(id, "bye");
      EXPECT_FALSE(echo_->send(id, frame("too late")));
    }
  };
  auto server = std::make_shared<talker>(&net_);
  const auto peer = raw_socket::connect_to(listen(server));
  for (int i = 0; i < 200; ++i) {
    const auto f = peer.read_frame();
    ASSERT_TRUE(f) << "frame " << i;
    ASSERT_EQ(*f, std::string(20000, static_cast<char>('a' + i % 26)));
  }
  EXPECT_TRUE(peer.wait_closed());
  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  EXPECT_EQ(server->closes().begin()->second, std::vector<std::string>{"bye"});
}

TEST_F(NetClose, PeerCloseIsReported) {
  auto server = std::make_shared<recorder>(&net_);
  {
    const auto peer = raw_socket::connect_to(listen(server));
    peer.write_all(frame("hi"));
    EXPECT_EQ(peer.read_frame(), "hi");
  }
  ASSERT_TRUE(server->wait([&] { return server->closes().size() == 1; }));
  EXPECT_EQ(server->closes().begin()->second, std::vector<std::string>{"peer closed"});
}

TEST(NetLifecycle, StopWithOpenConnectionsClosesEachExactlyOnce) {
  auto server = std::make_shared<recorder>();
  auto client = std::make_shared<recorder>();
  net n(2);
  n.start();
  const auto lid = n.listen("127.0.0.1", 0, server);
  ASSERT_TRUE(lid);
  constexpr std::size_t count = 6;
  std::vector<std::future<std::error_code>> done;
  std::vector<conn_id> ids;
  for (std::size_t i = 0; i < count; ++i) {
    auto p = std::make_shared<std::promise<std::error_code>>();
    done.push_back(p->get_future());
    ids.push_back(n.connect("127.0.0.1", n.local_port(*lid), client, {},
                            [p](conn_id, std::error_code ec) { p->set_value(ec); }));
  }
  for (auto& f : done) {
    ASSERT_EQ(f.wait_for(deadline), std::future_status::ready);
    ASSERT_FALSE(f.get());
  }
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == count; }));
  // One connection in the middle of a graceful close, one with bytes queued.
  n.close(ids[0], "leaving");
  n.send(ids[1], frame("queued"));

  n.stop();
  n.stop();  // idempotent
  const auto check = [](recorder& r, const std::vector<conn_id>& open) {
    const auto closes = r.closes();
    EXPECT_EQ(closes.size(), open.size());
    for (const auto id : open) {
      ASSERT_EQ(closes.count(id), 1u) << "conn " << id;
      EXPECT_EQ(closes.at(id).size(), 1u) << "conn " << id;
    }
  };
  check(*server, server->accepted());
  check(*client, client->connected());
  EXPECT_EQ(n.get_stats().closed, 2 * count);
  EXPECT_FALSE(n.send(ids[2], frame("after stop")));
  EXPECT_EQ(n.connect("127.0.0.1", 1, client, {}, nullptr), 0u);
}

// stop(flush): one accepted connection whose peer reads through a 4 KiB window, so that
// what the net is asked to send stays queued in it (at most 4 MiB fit in the kernel's
// send buffer) until the peer reads.
class NetStop : public ::testing::Test {
 protected:
  void open(conn_options o = {}) {
    n_.start();
    const auto lid = n_.listen("127.0.0.1", 0, server_, o);
    ASSERT_TRUE(lid);
    test::socket_options so;
    so.rcvbuf = 4096;
    peer_ = raw_socket::connect_to(n_.local_port(*lid), so);
    ASSERT_TRUE(server_->wait([&] { return server_->accepted().size() == 1; }));
    id_ = server_->accepted()[0];
  }
  std::shared_ptr<recorder> server_ = std::make_shared<recorder>();
  net n_{1};
  raw_socket peer_;
  conn_id id_ = 0;
};

// An orderly exit writes what the last moments queued before closing: the peer starts
// reading only once stop() has begun, and gets all 30 MB, then a clean end.
TEST_F(NetStop, AFlushBudgetWritesWhatIsQueuedFirst) {
  open();
  constexpr std::size_t frames = 500;
  const std::string body(60000, 'q');
  for (std::size_t i = 0; i < frames; ++i) ASSERT_TRUE(n_.send(id_, frame(body)));
  ASSERT_GT(n_.queued_bytes(id_), 0u) << "the premise: bytes are still queued in the net";

  std::size_t got = 0;
  bool clean_eof = false;
  std::thread reader([&] {
    while (auto f = peer_.read_frame()) {
      if (*f != body) break;
      ++got;
    }
    clean_eof = peer_.wait_closed();
  });
  n_.stop(30s);
  reader.join();
  EXPECT_EQ(got, frames);
  EXPECT_TRUE(clean_eof);
  EXPECT_EQ(server_->closes().at(id_), std::vector<std::string>{"shutdown"});
}

// A peer that never reads holds stop(flush) only up to the budget, then it is cut: the
// connection's own flush timeout (60 s here) is not what ends the wait.
TEST_F(NetStop, AFlushBudgetAbortsWhatDoesNotDrainInTime) {
  conn_options o;
  o.flush_timeout = 60s;
  open(o);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(n_.send(id_, frame(std::string(60000, 'z'))));
  ASSERT_GT(n_.queued_bytes(id_), 0u);
  const auto before = std::chrono::steady_clock::now();
  n_.stop(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s) << "bounded by the budget, not the peer";
  ASSERT_EQ(server_->closes().count(id_), 1u);
  EXPECT_EQ(server_->closes().at(id_).size(), 1u);
}

// barrier(): returns once every connection's net thread has finished what it had in
// hand, here a hook that blocks until the test lets it go.
TEST(NetBarrier, WaitsForTheHookInProgressOnEveryConnection) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> inside{0};
  class blocker : public recorder {
   public:
    blocker(std::mutex& m, std::condition_variable& c, bool& r, std::atomic<int>& in)
        : hold_mu_(m), hold_cv_(c), release_(r), inside_(in) {}
    void on_message(conn_id id, bytes_view message) override {
      recorder::on_message(id, message);
      inside_.fetch_add(1);
      std::unique_lock lock(hold_mu_);
      hold_cv_.wait_for(lock, deadline, [&] { return release_; });
    }

   private:
    std::mutex& hold_mu_;
    std::condition_variable& hold_cv_;
    bool& release_;
    std::atomic<int>& inside_;
  };
  auto server = std::make_shared<blocker>(mu, cv, release, inside);
  net n(2);
  n.start();
  const auto lid = n.listen("127.0.0.1", 0, server);
  ASSERT_TRUE(lid);
  const auto a = raw_socket::connect_to(n.local_port(*lid));
  const auto b = raw_socket::connect_to(n.local_port(*lid));
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 2; }));
  a.write_all(frame("hold"));
  ASSERT_TRUE(server->wait([&] { return server->messages(server->accepted()[0]).size() +
                                            server->messages(server->accepted()[1]).size() == 1; }));
  auto ids = server->accepted();
  ids.push_back(999999);  // unknown: counts as passed
  EXPECT_TRUE(n.barrier({999999}, 0ms));
  EXPECT_FALSE(n.barrier(ids, 100ms)) << "a hook is still running on one connection";
  std::future<bool> passed = std::async(std::launch::async, [&] { return n.barrier(ids, deadline); });
  EXPECT_EQ(passed.wait_for(50ms), std::future_status::timeout);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_EQ(passed.wait_for(deadline), std::future_status::ready);
  EXPECT_TRUE(passed.get());
  EXPECT_EQ(inside.load(), 1);
  n.stop();
}

TEST(NetLifecycle, StopWithoutStartIsSafe) {
  net n(1);
  auto lid = n.listen("127.0.0.1", 0, std::make_shared<recorder>());
  ASSERT_TRUE(lid);
  n.stop();
  EXPECT_EQ(n.local_port(*lid), 0u);
}

// -- issue 14: pause reasons, borrowed read buffers, the memory budget -------------------

/// Polls `done` (a gauge updated on a net thread) until it holds or the deadline passes.
template <class F>
bool soon(F&& done) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(NetPauseReasons, EachReasonIsResumedOnlyByItsOwnResume) {
  // One net thread: B's echo coming back proves the thread ran past A's frame.
  net n(1);
  n.start();
  auto server = std::make_shared<recorder>(&n);
  auto lid = n.listen("127.0.0.1", 0, server);
  ASSERT_TRUE(lid) << lid.error();
  const auto port = n.local_port(*lid);
  const auto a = raw_socket::connect_to(port);
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  const auto a_id = server->accepted()[0];
  n.pause_reading(a_id, pause_reason::user);
  n.pause_reading(a_id, pause_reason::mailbox);
  n.pause_reading(a_id, pause_reason::memory);
  const auto b = raw_socket::connect_to(port);
  const auto still_paused = [&](const char* when) {
    b.write_all(frame(when));
    EXPECT_EQ(b.read_frame(), when);
    EXPECT_TRUE(server->messages(a_id).empty()) << when;
  };
  n.run_after(a_id, [] {});  // the pauses are in place before A writes
  a.write_all(frame("held"));
  still_paused("all three");
  n.resume_reading(a_id, pause_reason::mailbox);
  still_paused("user and memory left");
  n.resume_reading(a_id, pause_reason::mailbox);  // twice: nothing more
  n.resume_reading(a_id, pause_reason::user);
  still_paused("memory left");
  n.resume_reading(a_id, pause_reason::memory);
  ASSERT_TRUE(server->wait([&] { return server->messages(a_id).size() == 1; }));
  EXPECT_EQ(a.read_frame(), "held");
  n.stop();
}

TEST_F(NetEcho, IdleConnectionsGiveTheirReadBuffersBack) {
  auto server = std::make_shared<recorder>(&net_);
  conn_options o;
  o.read_chunk = 16u << 10;
  const auto port = listen(server, o);
  std::vector<raw_socket> peers;
  for (int i = 0; i < 40; ++i) {
    peers.push_back(raw_socket::connect_to(port));
    peers.back().write_all(frame("ping " + std::to_string(i)));
    EXPECT_EQ(peers.back().read_frame(), "ping " + std::to_string(i));
  }
  EXPECT_TRUE(soon([&] { return net_.get_stats().read_buffers == 0; }))
      << net_.get_stats().read_buffers << " of 40 idle connections still hold a read buffer";
  EXPECT_EQ(net_.get_stats().read_buffer_bytes, 0u);
  EXPECT_LE(net_.get_stats().pooled_bytes, 2u * 16u * o.read_chunk) << "each of the 2 threads keeps at most 16";

  // Half a frame must be kept: that connection holds a buffer until the rest comes.
  const auto whole = frame(std::string(1000, 'h'));
  peers[0].write_all(bytes_view(whole).first(500));
  EXPECT_TRUE(soon([&] { return net_.get_stats().read_buffers == 1; }));
  peers[0].write_all(bytes_view(whole).subspan(500));
  EXPECT_EQ(peers[0].read_frame(), std::string(1000, 'h'));
  EXPECT_TRUE(soon([&] { return net_.get_stats().read_buffers == 0; }));
}

TEST_F(NetSend, QueuedBytesAreChargedToTheBudgetUntilWrittenOrDropped) {
  memory_budget budget(0, 0);
  auto server = std::make_shared<recorder>();
  conn_options o;
  o.budget = &budget;
  o.max_outbound_bytes = 64u << 20;
  const auto port = listen(server, o);
  test::socket_options small;
  small.rcvbuf = 4096;
  const auto peer = raw_socket::connect_to(port, small);  // never reads
  ASSERT_TRUE(server->wait([&] { return server->accepted().size() == 1; }));
  const auto id = server->accepted()[0];
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(net_.send(id, frame(std::string(60000, 'q'))));
  EXPECT_TRUE(soon([&] { return net_.queued_bytes(id) > 0 && budget.held() == net_.queued_bytes(id); }))
      << "held " << budget.held() << ", queued " << net_.queued_bytes(id);
  EXPECT_GT(budget.held(), 1u << 20) << "most of 12 MB waits: the peer does not read";
  net_.close(id, "test", false);
  ASSERT_TRUE(server->wait([&] { return server->closes().count(id) == 1; }));
  EXPECT_EQ(budget.held(), 0u) << "an abort gives what was queued back";
}

}  // namespace
}  // namespace csk::net
