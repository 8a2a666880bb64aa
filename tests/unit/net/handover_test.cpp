// Hand-over of established connections between two csk::net instances (stand-ins for two
// workers): net::detach on the old one, net::adopt_connection on the new one, the raw TCP
// client in the middle never notices. Also through a real AF_UNIX socket pair with
// SCM_RIGHTS (the supervisor channel's fd passing), as between two processes.
// Tests wait on condition variables and futures with deadlines, never on sleeps.

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
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

#include "common/channel/fd_channel.hpp"
#include "common/net/net.hpp"
#include "tests/support/raw_socket.hpp"

namespace csk::net {
namespace {

using namespace std::chrono_literals;
constexpr auto deadline = 20s;

using test::frame;
using test::raw_socket;  // the client: blocking, reads and writes time out after 10 s

byte_buffer concat(std::initializer_list<byte_buffer> parts) {
  byte_buffer out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

/// Echoes "re:" + body. "hold": first sends `bulk_frames` frames of 60000 bytes (queued
/// outbound bytes the detach must flush), answers, then pauses reading, so that what the
/// client sent after it stays buffered (undelivered) in the connection.
class echo : public handler {
 public:
  echo(net& n, std::size_t bulk_frames = 0) : net_(n), bulk_frames_(bulk_frames) {}

  void on_accept(conn_id id, const std::string&) override { note([&] { accepted.push_back(id); }); }
  void on_adopt(conn_id id, const std::string& peer) override {
    note([&] {
      adopted.push_back(id);
      adopted_peer = peer;
    });
  }
  void on_message(conn_id id, bytes_view body) override {
    const std::string text(as_chars(body));
    note([&] { messages.push_back(text); });
    if (text == "hold") {
      const std::string bulk(60000, 'x');
      for (std::size_t i = 0; i < bulk_frames_; ++i) net_.send(id, frame(bulk));
      net_.send(id, frame("re:hold"));
      net_.pause_reading(id);
      note([&] { ++holds; });
      return;
    }
    net_.send(id, frame("re:" + text));
  }
  void on_close(conn_id id, const std::string& reason) override { note([&] { closes[id] = reason; }); }
  void on_detach(conn_id id) override { note([&] { detached.push_back(id); }); }

  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mu);
    return cv_.wait_for(lock, deadline, [&] { return pred(); });
  }

  std::mutex mu;
  std::vector<conn_id> accepted, adopted, detached;
  std::string adopted_peer;
  std::vector<std::string> messages;
  int holds = 0;  ///< "hold" handled, reading paused
  std::map<conn_id, std::string> closes;

 private:
  template <class F>
  void note(F&& f) {
    {
      std::lock_guard lock(mu);
      f();
    }
    cv_.notify_all();
  }

  net& net_;
  const std::size_t bulk_frames_;
  std::condition_variable cv_;
};

struct two_nets {
  net a{1};
  net b{1};
  std::shared_ptr<echo> ha;
  std::shared_ptr<echo> hb;
  std::uint16_t port = 0;

  explicit two_nets(std::size_t bulk_frames = 0)
      : ha(std::make_shared<echo>(a, bulk_frames)), hb(std::make_shared<echo>(b)) {
    a.start();
    b.start();
    auto l = a.listen("127.0.0.1", 0, ha);
    if (!l) throw std::runtime_error(l.error());
    port = a.local_port(*l);
  }

  conn_id accepted_id() {
    if (!ha->wait([&] { return !ha->accepted.empty(); })) throw std::runtime_error("no accept");
    std::lock_guard lock(ha->mu);
    return ha->accepted.front();
  }
};

std::size_t count_of(echo& h, const std::string& m) {
  std::lock_guard lock(h.mu);
  std::size_t n = 0;
  for (const auto& x : h.messages) n += x == m ? 1u : 0u;
  return n;
}

// The main case: queued outbound bytes flushed first, a partial frame and a whole
// undelivered frame carried over, the same TCP connection served by B afterwards.
TEST(NetHandover, DetachMidStreamFlushesThenAdoptKeepsTheStream) {
  constexpr std::size_t bulk = 256;  // ~15 MB: more than loopback socket buffers hold
  two_nets t(bulk);
  const auto c = raw_socket::connect_to(t.port);
  c.write_all(frame("m1"));
  ASSERT_EQ(c.read_frame(), "re:m1");
  const conn_id id = t.accepted_id();

  // One segment: "hold" is delivered (and pauses), m3 and half of m4 stay buffered.
  const byte_buffer m4 = frame("m4-the-fourth-message");
  const byte_buffer m4_head(m4.begin(), m4.begin() + 7);
  const byte_buffer m4_tail(m4.begin() + 7, m4.end());
  c.write_all(concat({frame("hold"), frame("m3"), m4_head}));
  ASSERT_TRUE(t.ha->wait([&] { return t.ha->holds == 1; }));

  auto detached = t.a.detach(id, 10s);
  // The client has read nothing of the ~15 MB: the detach must still be flushing.
  EXPECT_EQ(detached.wait_for(0s), std::future_status::timeout);
  for (std::size_t i = 0; i < bulk; ++i) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value()) << "bulk frame " << i;
    ASSERT_EQ(f->size(), 60000u);
  }
  ASSERT_EQ(c.read_frame(), "re:hold");
  ASSERT_EQ(detached.wait_for(deadline), std::future_status::ready);
  auto d = detached.get();
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->unread, concat({frame("m3"), m4_head}));  // from a frame boundary on
  EXPECT_TRUE(d->fd);
  EXPECT_FALSE(d->peer.empty());
  EXPECT_EQ(t.a.queued_bytes(id), 0u);
  EXPECT_FALSE(t.a.send(id, frame("late")));  // the id is gone from A
  {
    std::lock_guard lock(t.ha->mu);
    EXPECT_EQ(t.ha->detached, std::vector<conn_id>{id});
    EXPECT_TRUE(t.ha->closes.empty());  // no on_close for a detached connection
  }
  EXPECT_EQ(t.a.get_stats().detached, 1u);

  auto adopted = t.b.adopt_connection(std::move(d->fd), d->unread, t.hb);
  ASSERT_TRUE(adopted) << adopted.error();
  ASSERT_EQ(c.read_frame(), "re:m3");  // delivered from `unread`
  c.write_all(m4_tail);
  ASSERT_EQ(c.read_frame(), "re:m4-the-fourth-message");
  c.write_all(frame("m5"));
  ASSERT_EQ(c.read_frame(), "re:m5");

  {
    std::lock_guard lock(t.hb->mu);
    EXPECT_EQ(t.hb->adopted, std::vector<conn_id>{*adopted});
    EXPECT_EQ(t.hb->adopted_peer, d->peer);
    EXPECT_TRUE(t.hb->accepted.empty());
    EXPECT_EQ(t.hb->messages, (std::vector<std::string>{"m3", "m4-the-fourth-message", "m5"}));
  }
  {
    std::lock_guard lock(t.ha->mu);
    EXPECT_EQ(t.ha->messages, (std::vector<std::string>{"m1", "hold"}));  // nothing twice
  }
  EXPECT_EQ(t.b.get_stats().adopted, 1u);
}

// No partial frame and no queued bytes: unread is empty, and the move round-trips back.
TEST(NetHandover, DetachIdleConnectionAndMoveItBack) {
  two_nets t;
  const auto c = raw_socket::connect_to(t.port);
  c.write_all(frame("one"));
  ASSERT_EQ(c.read_frame(), "re:one");
  const conn_id id = t.accepted_id();

  auto d = t.a.detach(id, 5s).get();
  ASSERT_TRUE(d) << d.error();
  EXPECT_TRUE(d->unread.empty());
  auto in_b = t.b.adopt_connection(std::move(d->fd), d->unread, t.hb);
  ASSERT_TRUE(in_b) << in_b.error();
  c.write_all(frame("two"));
  ASSERT_EQ(c.read_frame(), "re:two");

  auto back = t.b.detach(*in_b, 5s).get();  // generation N+2 is N's net again
  ASSERT_TRUE(back) << back.error();
  auto in_a = t.a.adopt_connection(std::move(back->fd), back->unread, t.ha);
  ASSERT_TRUE(in_a) << in_a.error();
  EXPECT_NE(*in_a, id);  // ids are never reused
  c.write_all(frame("three"));
  ASSERT_EQ(c.read_frame(), "re:three");
  EXPECT_EQ(count_of(*t.ha, "three"), 1u);
  EXPECT_EQ(count_of(*t.hb, "three"), 0u);
}

// The fd crosses a real AF_UNIX socket pair with SCM_RIGHTS, as between two workers; the
// unread bytes travel as data. A closes its copy: the peer must still see no EOF.
TEST(NetHandover, FdPassedWithScmRightsAcrossASocketPair) {
  two_nets t;
  const auto c = raw_socket::connect_to(t.port);
  const conn_id id = t.accepted_id();
  const byte_buffer tail = frame("after-the-move");
  c.write_all(concat({frame("hold"), byte_buffer(tail.begin(), tail.begin() + 5)}));
  ASSERT_TRUE(t.ha->wait([&] { return t.ha->holds == 1; }));
  ASSERT_EQ(c.read_frame(), "re:hold");

  auto d = t.a.detach(id, 5s).get();
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->unread, byte_buffer(tail.begin(), tail.begin() + 5));

  auto pair = channel::make_socket_pair();
  ASSERT_TRUE(pair) << pair.error();
  const std::vector<std::string> names{"conn:" + std::to_string(id)};
  const std::vector<int> fds{d->fd.get()};
  auto sent = channel::send_listeners(pair->first.get(), names, fds);
  ASSERT_TRUE(sent) << sent.error();
  d->fd.reset();  // the old worker's copy closes: the open file description lives on
  auto got = channel::recv_listeners(pair->second.get(), 5s);
  ASSERT_TRUE(got) << got.error().text;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].name, names[0]);

  auto adopted = t.b.adopt_connection(std::move((*got)[0].fd), d->unread, t.hb);
  ASSERT_TRUE(adopted) << adopted.error();
  c.write_all(byte_buffer(tail.begin() + 5, tail.end()));
  ASSERT_EQ(c.read_frame(), "re:after-the-move");
  c.write_all(frame("again"));
  ASSERT_EQ(c.read_frame(), "re:again");
}

TEST(NetHandover, DetachUnknownIdFails) {
  net a(1);
  a.start();
  auto r = a.detach(12345, 1s).get();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("unknown connection"), std::string::npos) << r.error();
}

// A peer that never reads: the queue cannot be written, the detach times out and the
// connection goes on as before, on A, with nothing lost.
TEST(NetHandover, DetachTimeoutResumesTheConnection) {
  constexpr std::size_t bulk = 256;
  two_nets t(bulk);
  const auto c = raw_socket::connect_to(t.port);
  const conn_id id = t.accepted_id();
  c.write_all(frame("hold"));
  ASSERT_TRUE(t.ha->wait([&] { return t.ha->holds == 1; }));
  t.a.resume_reading(id);  // undo the handler's own pause: the detach must restore "not paused"

  auto r = t.a.detach(id, 100ms).get();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("not written in time"), std::string::npos) << r.error();
  for (std::size_t i = 0; i < bulk; ++i) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value()) << "bulk frame " << i;
  }
  ASSERT_EQ(c.read_frame(), "re:hold");
  c.write_all(frame("still-here"));
  ASSERT_EQ(c.read_frame(), "re:still-here");
  std::lock_guard lock(t.ha->mu);
  EXPECT_TRUE(t.ha->detached.empty());
  EXPECT_TRUE(t.ha->closes.empty());
}

// before_detach refuses: the connection resumes (even though its read was cancelled).
TEST(NetHandover, RefusedDetachResumesReading) {
  class refusing : public echo {
   public:
    using echo::echo;
    std::string before_detach(conn_id) override { return "calls in flight"; }
  };
  net a(1);
  a.start();
  auto h = std::make_shared<refusing>(a);
  auto l = a.listen("127.0.0.1", 0, h);
  ASSERT_TRUE(l);
  const auto c = raw_socket::connect_to(a.local_port(*l));
  c.write_all(frame("x"));
  ASSERT_EQ(c.read_frame(), "re:x");
  conn_id id = 0;
  {
    std::lock_guard lock(h->mu);
    id = h->accepted.at(0);
  }
  auto r = a.detach(id, 5s).get();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("calls in flight"), std::string::npos) << r.error();
  c.write_all(frame("y"));
  ASSERT_EQ(c.read_frame(), "re:y");
}

// The peer goes away while the detach waits for its queue: the detach fails, on_close runs.
TEST(NetHandover, PeerClosingDuringDetachFailsIt) {
  constexpr std::size_t bulk = 256;
  two_nets t(bulk);
  conn_id id = 0;
  std::future<result<detached_connection, std::string>> f;
  {
    const auto c = raw_socket::connect_to(t.port);
    id = t.accepted_id();
    c.write_all(frame("hold"));
    ASSERT_TRUE(t.ha->wait([&] { return t.ha->holds == 1; }));
    f = t.a.detach(id, 20s);
  }  // closed with unread data: the kernel resets the connection
  ASSERT_EQ(f.wait_for(deadline), std::future_status::ready);
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("closed"), std::string::npos) << r.error();
  EXPECT_TRUE(t.ha->wait([&] { return t.ha->closes.count(id) == 1; }));
}

TEST(NetHandover, AdoptRejectsWhatIsNotAConnectedTcpSocket) {
  net b(1);
  b.start();
  auto h = std::make_shared<echo>(b);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  unique_fd unix_end(sv[0]);
  unique_fd other(sv[1]);
  auto r = b.adopt_connection(std::move(unix_end), {}, h);
  ASSERT_FALSE(r);
  EXPECT_TRUE(unix_end);  // still the caller's
  unique_fd unconnected(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto r2 = b.adopt_connection(std::move(unconnected), {}, h);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().find("not connected"), std::string::npos) << r2.error();
  EXPECT_TRUE(unconnected);
}

}  // namespace
}  // namespace csk::net
