#include "common/net/endpoint.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

namespace csk::net {

std::string format_endpoint(const tcp::endpoint& ep) {
  const auto port = std::to_string(ep.port());
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + port;
  return ep.address().to_string() + ":" + port;
}

result<tcp::endpoint, std::string> resolve_for_listen(const std::string& host, std::uint16_t port) {
  if (host.empty()) return tcp::endpoint(asio::ip::address_v4::any(), port);
  std::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(addr, port);

  asio::io_context ctx;
  tcp::resolver resolver(ctx);
  const auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec) return unexpected{"cannot resolve " + host + ": " + ec.message()};
  if (found.empty()) return unexpected{"cannot resolve " + host + ": no address"};
  return found.begin()->endpoint();
}

result<unique_fd, std::error_code> open_tcp_socket(const tcp& protocol) {
  unique_fd fd(::socket(protocol.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP));
  if (!fd) return unexpected{last_error()};
  return fd;
}

std::error_code to_std_error(std::error_code ec) noexcept {
  if (ec.category() == asio::error::get_system_category()) return {ec.value(), std::system_category()};
  return ec;
}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace csk::net
