#pragma once
// The worker's end of the supervisor channel (common/channel): how a worker started by
// `cppskynet run` finds its supervisor, says hello, receives its listening sockets, and
// then reports ready and heartbeats while it takes orders (reload, stop, ...).
//
// The supervisor starts the worker with the channel socket on a fixed fd and two
// environment variables:
//   CSK_CHANNEL_FD=3      the worker's end of the SOCK_SEQPACKET pair
//   CSK_GENERATION=N      this worker's generation (1, 2, ...: one per process started)
//   CSK_TAKEOVER=1        (upgrades only) this worker takes over from a running one: the
//                         handshake also waits for the takeover message and its transfer
//                         socket, and the node must not serve until the hand-over is done
// Without CSK_CHANNEL_FD the worker runs standalone (cppskynet-node) and binds its own
// listeners. CSK_TEST_PROTOCOL_VERSION (tests only) replaces the protocol version in hello.
//
// Threads: one thread (run_node's) uses a link; send() may also be called from others.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "common/channel/fd_channel.hpp"

namespace csk {

class supervisor_link {
 public:
  /// From CSK_CHANNEL_FD / CSK_GENERATION: nullptr when CSK_CHANNEL_FD is unset
  /// (standalone), an error when the variables are malformed or the fd is not a socket.
  /// Takes the fd (makes it close-on-exec) and removes both variables from the
  /// environment. Call before any thread starts (it calls unsetenv).
  static result<std::unique_ptr<supervisor_link>, std::string> from_environment();

  supervisor_link(unique_fd sock, std::uint32_t generation);

  /// hello -> welcome (a refuse becomes the error, with the supervisor's reason) ->
  /// the listener set (-> takeover and its transfer socket, when CSK_TAKEOVER was set).
  /// Within `timeout`.
  result<void, std::string> handshake(std::chrono::milliseconds timeout);

  std::uint32_t generation() const noexcept { return generation_; }
  /// How often to heartbeat (from welcome).
  std::chrono::milliseconds heartbeat_interval() const noexcept { return heartbeat_; }
  /// The fds received in the handshake, by name: the listening sockets ("cluster",
  /// "gate:kv", "admin") and the entity state the supervisor holds ("state:..."). Whoever
  /// adopts one moves it out of the map.
  std::map<std::string, unique_fd>& listeners() noexcept { return listeners_; }
  /// The socket, for poll().
  int fd() const noexcept { return sock_.get(); }
  /// CSK_TAKEOVER was set: this worker is the new generation of an upgrade.
  bool takeover() const noexcept { return takeover_; }
  /// After the handshake of a takeover worker: the order and the transfer socket.
  const channel::takeover& takeover_order() const noexcept { return takeover_order_; }
  unique_fd& transfer_socket() noexcept { return transfer_; }

  /// Sends one message (with the fds it announces, e.g. keep's). Threads: any.
  result<void, std::string> send(const channel::message& m, std::span<const int> fds = {});
  /// The next order, waiting at most `timeout` (fds that came with it are closed).
  result<channel::message, channel::recv_error> receive(std::chrono::milliseconds timeout);
  /// The same, with the fds (handover carries one).
  result<channel::received, channel::recv_error> receive_with_fds(std::chrono::milliseconds timeout);

 private:
  unique_fd sock_;
  std::uint32_t generation_ = 0;
  std::chrono::milliseconds heartbeat_{1000};
  std::map<std::string, unique_fd> listeners_;
  bool takeover_ = false;
  channel::takeover takeover_order_;
  unique_fd transfer_;
  std::mutex send_mu_;
};

}  // namespace csk
