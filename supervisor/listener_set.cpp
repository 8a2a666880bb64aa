#include "supervisor/listener_set.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

namespace csk::supervisor {
namespace {

std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

result<bound_listener, std::string> bind_one(const listener_spec& spec) {
  const std::string where = spec.name + " (" + spec.host + ":" + std::to_string(spec.port) + ")";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(spec.port);
  if (const int rc = ::getaddrinfo(spec.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return unexpected("listener " + where + ": cannot resolve: " + ::gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    unique_fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_error = "socket: " + std::generic_category().message(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = "bind: " + std::generic_category().message(errno);
      continue;
    }
    if (::listen(fd.get(), listen_backlog) != 0) {
      last_error = "listen: " + std::generic_category().message(errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    ::freeaddrinfo(found);
    return bound_listener{spec, format_address(ss), std::move(fd)};
  }
  ::freeaddrinfo(found);
  return unexpected("listener " + where + ": " + last_error);
}

}  // namespace

result<std::vector<bound_listener>, std::string> bind_listeners(const std::vector<listener_spec>& specs) {
  std::vector<bound_listener> out;
  for (const auto& spec : specs) {
    auto l = bind_one(spec);
    if (!l) return unexpected(l.error());
    out.push_back(std::move(*l));
  }
  return out;
}

}  // namespace csk::supervisor
