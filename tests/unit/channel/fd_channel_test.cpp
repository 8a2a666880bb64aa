// The channel over a real socketpair: messages and fds arrive together, more than
// SCM_MAX_FD fds go in batches, and every bad record is an error that leaks no fd.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "common/channel/fd_channel.hpp"

namespace csk::channel {
namespace {

using namespace std::chrono_literals;

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// An fd whose identity we can check at the far end: a pipe's read end (inode).
struct pipe_fds {
  pipe_fds() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
  ~pipe_fds() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

class ChannelSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = make_socket_pair();
    ASSERT_TRUE(p.has_value()) << p.error();
    a_ = std::move(p->first);
    b_ = std::move(p->second);
  }
  // Sends raw bytes with `fds` attached, bypassing send_message's checks.
  void send_raw(const byte_buffer& bytes, const std::vector<int>& fds) {
    iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ASSERT_GE(::sendmsg(a_.get(), &msg, MSG_NOSIGNAL), 0) << std::strerror(errno);
  }
  unique_fd a_;
  unique_fd b_;
};

TEST_F(ChannelSocket, MessageWithoutFds) {
  ASSERT_TRUE(send_message(a_.get(), heartbeat{1, 2, 3, 4, 5}).has_value());
  auto r = recv_message(b_.get(), 1s);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(std::get<heartbeat>(r->msg), (heartbeat{1, 2, 3, 4, 5}));
  EXPECT_TRUE(r->fds.empty());
}

TEST_F(ChannelSocket, FdsArriveCloseOnExecAndAreTheSameFiles) {
  pipe_fds p1, p2;
  const int fds[] = {p1.fds[0], p2.fds[0]};
  ASSERT_TRUE(send_message(a_.get(), listeners{{"cluster", "gate:kv"}, 0, 1}, fds).has_value());
  auto r = recv_message(b_.get(), 1s);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  ASSERT_EQ(r->fds.size(), 2u);
  EXPECT_EQ(inode_of(r->fds[0].get()), inode_of(p1.fds[0]));
  EXPECT_EQ(inode_of(r->fds[1].get()), inode_of(p2.fds[0]));
  EXPECT_NE(::fcntl(r->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST_F(ChannelSocket, MoreThanScmMaxFdGoInBatches) {
  constexpr std::size_t count = 600;  // 253 + 253 + 94; one fd may be sent many times
  std::vector<pipe_fds> pipes(7);     // (stays under a soft RLIMIT_NOFILE of 1024)
  std::vector<std::string> names;
  std::vector<int> fds;
  for (std::size_t i = 0; i < count; ++i) {
    names.push_back("gate:" + std::to_string(i));
    fds.push_back(pipes[i % pipes.size()].fds[0]);
  }
  // The socket buffer holds all three records, so sending first is fine.
  ASSERT_TRUE(send_listeners(a_.get(), names, fds).has_value());
  auto got = recv_listeners(b_.get(), 5s);
  ASSERT_TRUE(got.has_value()) << got.error().text;
  ASSERT_EQ(got->size(), count);
  for (std::size_t i = 0; i < count; i += 97) {
    EXPECT_EQ((*got)[i].name, names[i]);
    EXPECT_EQ(inode_of((*got)[i].fd.get()), inode_of(fds[i]));
  }
}

TEST_F(ChannelSocket, AnEmptyListenerSetIsOneRecord) {
  ASSERT_TRUE(send_listeners(a_.get(), {}, {}).has_value());
  auto got = recv_listeners(b_.get(), 1s);
  ASSERT_TRUE(got.has_value()) << got.error().text;
  EXPECT_TRUE(got->empty());
}

TEST_F(ChannelSocket, WrongFdCountIsAnErrorAndClosesWhatCame) {
  pipe_fds p;
  const std::size_t before = open_fds();
  send_raw(encode(listeners{{"cluster", "gate:kv"}, 0, 1}), {p.fds[0]});
  auto r = recv_message(b_.get(), 1s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().why, recv_error::kind::failed);
  EXPECT_EQ(r.error().text, "listeners announces 2 fds, 1 came");
  EXPECT_EQ(open_fds(), before);

  send_raw(encode(ready{}), {p.fds[0], p.fds[1]});
  auto r2 = recv_message(b_.get(), 1s);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().text, "ready announces 0 fds, 2 came");
  EXPECT_EQ(open_fds(), before);
}

TEST_F(ChannelSocket, GarbageWithFdsClosesThem) {
  pipe_fds p;
  const std::size_t before = open_fds();
  send_raw(byte_buffer{1, 2, 3}, {p.fds[0]});
  auto r = recv_message(b_.get(), 1s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().text, "truncated header: 3 of 12 bytes");
  EXPECT_EQ(open_fds(), before);
}

TEST_F(ChannelSocket, SendRefusesAMismatch) {
  pipe_fds p;
  const int fds[] = {p.fds[0]};
  auto r = send_message(a_.get(), ready{}, fds);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "not sending ready: it announces 0 fds, 1 given");
  auto l = send_message(a_.get(), listeners{{"a"}, 0, 1});
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error(), "not sending listeners: it announces 1 fds, 0 given");
}

TEST_F(ChannelSocket, ListenersOutOfOrderAreAnError) {
  pipe_fds p;
  const int fds[] = {p.fds[0]};
  ASSERT_TRUE(send_message(a_.get(), listeners{{"b"}, 1, 2}, fds).has_value());
  auto got = recv_listeners(b_.get(), 1s);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().text, "listeners batch 1 of 2 out of order (expected batch 0)");
}

TEST_F(ChannelSocket, OtherMessageInsteadOfListeners) {
  ASSERT_TRUE(send_message(a_.get(), stop{100}).has_value());
  auto got = recv_listeners(b_.get(), 1s);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().text, "expected listeners, got stop");
}

TEST_F(ChannelSocket, TimeoutAndPeerGone) {
  auto t = recv_message(b_.get(), 20ms);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().why, recv_error::kind::timeout);
  auto z = recv_message(b_.get(), 0ms);
  ASSERT_FALSE(z.has_value());
  EXPECT_EQ(z.error().why, recv_error::kind::timeout);

  std::thread closer([&] { a_.reset(); });
  auto c = recv_message(b_.get(), -1ms);  // no limit: woken by the close
  closer.join();
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().why, recv_error::kind::closed);
  auto s = send_message(b_.get(), ready{});
  ASSERT_FALSE(s.has_value());  // EPIPE, and no SIGPIPE
}

TEST_F(ChannelSocket, FullNonBlockingSocketIsAnErrorNotAWait) {
  ASSERT_EQ(::fcntl(a_.get(), F_SETFL, O_NONBLOCK), 0);
  result<void, std::string> r;
  for (int i = 0; i < 100000 && r.has_value(); ++i) r = send_message(a_.get(), heartbeat{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "sending heartbeat: channel full");
}

}  // namespace
}  // namespace csk::channel
