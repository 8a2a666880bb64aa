#pragma once
// Small socket helpers shared by listener and connection (private to common/net).

#include <cstdint>
#include <string>
#include <system_error>

#include "common/base/result.hpp"
#include "common/net/asio.hpp"
#include "common/net/unique_fd.hpp"

namespace csk::net {

using tcp = asio::ip::tcp;

/// "127.0.0.1:80", "[::1]:80".
std::string format_endpoint(const tcp::endpoint& ep);

/// An endpoint to bind: an IP literal, or a name resolved synchronously (first result);
/// "" = 0.0.0.0.
result<tcp::endpoint, std::string> resolve_for_listen(const std::string& host, std::uint16_t port);

/// A new non-blocking TCP socket with SOCK_CLOEXEC for `protocol`.
result<unique_fd, std::error_code> open_tcp_socket(const tcp& protocol);

/// asio's own "asio.system" category does not compare equal to std::errc here; errors
/// handed to users are moved to std::system_category (same errno value).
std::error_code to_std_error(std::error_code ec) noexcept;

/// The last OS error as an error_code.
std::error_code last_error() noexcept;

}  // namespace csk::net
