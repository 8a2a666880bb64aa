#include "common/channel/record_io.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace csk::channel::detail {
namespace {
constexpr std::size_t control_space = CMSG_SPACE(sizeof(int) * record_max_fds);
}  // namespace

int send_record(int sock, bytes_view rec, std::span<const int> fds, int flags) noexcept {
  if (fds.size() > record_max_fds) return EINVAL;
  iovec iov{const_cast<std::uint8_t*>(rec.data()), rec.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[control_space];
  if (!fds.empty()) {
    const std::size_t data = sizeof(int) * fds.size();
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(data);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(data);
    std::memcpy(CMSG_DATA(c), fds.data(), data);
  }
  for (;;) {
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL | flags) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

result<record_read, int> read_record(int sock, std::span<std::uint8_t> buf, std::size_t max_fds,
                                     std::vector<unique_fd>& fds) noexcept {
  alignas(cmsghdr) char control[control_space];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * std::min(max_fds, record_max_fds));
  ssize_t n = -1;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return unexpected(errno);
  record_read r;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      r.foreign = true;
      continue;
    }
    ++r.scm_blocks;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  r.size = static_cast<std::size_t>(n);
  r.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  r.control_truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  return r;
}

}  // namespace csk::channel::detail
