#include "worker/supervisor_link.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>

namespace csk {
namespace {

// A decimal u32 from the environment; nullopt (with `error` set) if malformed.
std::optional<std::uint32_t> env_number(const char* name, std::string& error) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): before threads
  if (v == nullptr || *v == '\0') {
    error = std::string(name) + " is not set";
    return std::nullopt;
  }
  std::uint32_t n = 0;
  const std::string_view s(v);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || ptr != s.data() + s.size()) {
    error = std::string(name) + "=" + v + ": not a number";
    return std::nullopt;
  }
  return n;
}

}  // namespace

result<std::unique_ptr<supervisor_link>, std::string> supervisor_link::from_environment() {
  if (std::getenv("CSK_CHANNEL_FD") == nullptr) return std::unique_ptr<supervisor_link>();  // NOLINT
  std::string error;
  const auto fd = env_number("CSK_CHANNEL_FD", error);
  const auto generation = fd ? env_number("CSK_GENERATION", error) : std::nullopt;
  const char* takeover = std::getenv("CSK_TAKEOVER");  // NOLINT(concurrency-mt-unsafe): before threads
  const bool is_takeover = takeover != nullptr && std::string_view(takeover) == "1";
  ::unsetenv("CSK_CHANNEL_FD");
  ::unsetenv("CSK_GENERATION");
  ::unsetenv("CSK_TAKEOVER");
  if (!fd || !generation) return unexpected(error);
  int type = 0;
  socklen_t len = sizeof type;
  const int sock = static_cast<int>(*fd);
  if (::getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    return unexpected("CSK_CHANNEL_FD=" + std::to_string(*fd) + " is not a SOCK_SEQPACKET socket");
  }
  ::fcntl(sock, F_SETFD, FD_CLOEXEC);  // the supervisor cleared it for us; our children get nothing
  auto link = std::make_unique<supervisor_link>(unique_fd(sock), *generation);
  link->takeover_ = is_takeover;
  return link;
}

supervisor_link::supervisor_link(unique_fd sock, std::uint32_t generation)
    : sock_(std::move(sock)), generation_(generation) {}

result<void, std::string> supervisor_link::handshake(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  channel::hello h;
  h.generation = generation_;
  h.pid = static_cast<std::int32_t>(::getpid());
  if (const char* fake = std::getenv("CSK_TEST_PROTOCOL_VERSION")) {  // NOLINT: tests only
    h.protocol_version = static_cast<std::uint32_t>(std::strtoul(fake, nullptr, 10));
  }
  if (auto r = send(h); !r) return r;
  auto answer = receive(timeout);
  if (!answer) return unexpected("waiting for welcome: " + answer.error().text);
  if (auto* no = std::get_if<channel::refuse>(&*answer)) return unexpected("refused by the supervisor: " + no->reason);
  auto* w = std::get_if<channel::welcome>(&*answer);
  if (w == nullptr) {
    return unexpected("expected welcome, got " + std::string(channel::name_of(channel::kind_of(*answer))));
  }
  heartbeat_ = std::chrono::milliseconds(std::max<std::uint32_t>(1, w->heartbeat_ms));
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  auto set = channel::recv_listeners(sock_.get(), std::max(left, std::chrono::milliseconds(0)));
  if (!set) return unexpected("receiving listeners: " + set.error().text);
  for (auto& l : *set) listeners_.emplace(std::move(l.name), std::move(l.fd));
  if (!takeover_) return {};
  const auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  auto order = receive_with_fds(std::max(rest, std::chrono::milliseconds(0)));
  if (!order) return unexpected("waiting for takeover: " + order.error().text);
  auto* t = std::get_if<channel::takeover>(&order->msg);
  if (t == nullptr) {
    return unexpected("expected takeover, got " + std::string(channel::name_of(channel::kind_of(order->msg))));
  }
  takeover_order_ = *t;
  transfer_ = std::move(order->fds.at(0));
  return {};
}

result<void, std::string> supervisor_link::send(const channel::message& m, std::span<const int> fds) {
  std::lock_guard lock(send_mu_);
  return channel::send_message(sock_.get(), m, fds);
}

result<channel::message, channel::recv_error> supervisor_link::receive(std::chrono::milliseconds timeout) {
  auto r = channel::recv_message(sock_.get(), timeout);
  if (!r) return unexpected(r.error());
  return std::move(r->msg);
}

result<channel::received, channel::recv_error> supervisor_link::receive_with_fds(std::chrono::milliseconds timeout) {
  return channel::recv_message(sock_.get(), timeout);
}

}  // namespace csk
