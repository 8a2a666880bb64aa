#pragma once
// The channel's socket side: one message (messages.hpp) per record of an
// AF_UNIX SOCK_SEQPACKET socket pair, file descriptors attached with SCM_RIGHTS.
//
// Receiving is strict (Envoy's getPassedFdIfPresent is the model): a record whose data or
// control part was truncated (MSG_TRUNC / MSG_CTRUNC), that carries anything but one
// SCM_RIGHTS block, or whose fd count differs from what the message announces
// (fds_announced) is an error, and every fd that did arrive is closed before returning.
// Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned by unique_fd at once.
//
// More fds than one record may carry (max_fds_per_record, the kernel's SCM_MAX_FD) go as
// several `listeners` records: send_listeners splits, recv_listeners joins.
//
// Threads: the functions keep no state. Two threads may send on one socket at once (each
// record is one sendmsg); only one thread should receive from it.

#include <chrono>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "common/channel/messages.hpp"

namespace csk::channel {

/// A message and the fds that came with it.
struct received {
  message msg;
  std::vector<unique_fd> fds;
};

/// Why recv_message returned no message.
struct recv_error {
  enum class kind {
    timeout,  ///< nothing arrived in time
    closed,   ///< the peer closed its end (or died)
    failed,   ///< a bad record or a socket error; `text` says which
  };
  kind why = kind::failed;
  std::string text;
};

/// One fd with the name it was sent under ("cluster", "gate:kv", ...).
struct named_fd {
  std::string name;
  unique_fd fd;
};

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): {supervisor end, worker end}.
result<std::pair<unique_fd, unique_fd>, std::string> make_socket_pair();

/// Sends one record with `fds` attached: fds.size() must equal fds_announced(m) and be at
/// most max_fds_per_record, and m must pass check(). Never raises SIGPIPE. On a
/// non-blocking socket a full send buffer is an error ("channel full"), not a wait.
result<void, std::string> send_message(int sock, const message& m, std::span<const int> fds = {});

/// Waits up to `timeout` (negative: no limit; zero: only what is already there) for one
/// record and decodes it.
result<received, recv_error> recv_message(int sock, std::chrono::milliseconds timeout);

/// Sends names[i] -> fds[i] as ceil(n / max_fds_per_record) listeners records (one empty
/// record when there are none). names and fds must have the same size.
result<void, std::string> send_listeners(int sock, std::span<const std::string> names, std::span<const int> fds);

/// Receives one whole listener set: records batch 0, 1, ... of the same `batches`, within
/// `timeout` in all. Any other message, a batch out of order, or a duplicate name is an
/// error (the fds received so far are closed).
result<std::vector<named_fd>, recv_error> recv_listeners(int sock, std::chrono::milliseconds timeout);

}  // namespace csk::channel
