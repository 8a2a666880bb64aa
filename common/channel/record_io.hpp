#pragma once
// One record of an AF_UNIX SOCK_SEQPACKET socket with SCM_RIGHTS fds attached: the
// sendmsg/recvmsg plumbing that fd_channel (the channel's messages) and transfer (the
// upgrade's transfer socket) share. Internal to csk::channel; each caller keeps its own
// waiting, deadlines and error texts.
//
// Ownership: every fd a record brings is wrapped in a unique_fd before anything about the
// record is judged, so a caller that rejects the record closes them by returning.

#include <cstddef>
#include <span>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"

namespace csk::channel::detail {

/// The most fds a record may carry (the kernel's SCM_MAX_FD).
inline constexpr std::size_t record_max_fds = 253;

/// sendmsg of one record with `fds` (at most record_max_fds) in one SCM_RIGHTS block,
/// MSG_NOSIGNAL | `flags`; EINTR is retried. 0 when sent, else the errno (EAGAIN or
/// EWOULDBLOCK: a non-blocking socket is full).
int send_record(int sock, bytes_view rec, std::span<const int> fds, int flags) noexcept;

/// What one recvmsg brought besides the bytes and the fds.
struct record_read {
  std::size_t size = 0;            ///< bytes in `buf`; 0: the peer closed
  bool truncated = false;          ///< MSG_TRUNC: the record was larger than `buf`
  bool control_truncated = false;  ///< MSG_CTRUNC: fds were lost (more than `max_fds`)
  int scm_blocks = 0;              ///< SCM_RIGHTS blocks seen
  bool foreign = false;            ///< a control message other than SCM_RIGHTS
};

/// One non-blocking recvmsg (MSG_DONTWAIT | MSG_CMSG_CLOEXEC) into `buf`, with room for
/// `max_fds` (<= record_max_fds) fds; the fds that came are appended to `fds`. EINTR is
/// retried. The errno on failure (EAGAIN / EWOULDBLOCK: nothing to read yet).
result<record_read, int> read_record(int sock, std::span<std::uint8_t> buf, std::size_t max_fds,
                                     std::vector<unique_fd>& fds) noexcept;

}  // namespace csk::channel::detail
