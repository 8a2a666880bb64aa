#pragma once
// The admin endpoint's HTTP, as pure functions on bytes (the I/O is the gate's): just
// enough HTTP/1.x for `curl` and Prometheus: GET requests without a body, one per
// connection, answered with Connection: close.
//
//   request  = request-line CRLF *(header CRLF) CRLF      at most max_request bytes
//   request-line = METHOD SP PATH SP HTTP/1.x
//
// A request that is longer, carries a body (Content-Length other than 0, or
// Transfer-Encoding), or is not HTTP/1.0 or 1.1 is refused by unpack/parse with a reason.

#include <cstddef>
#include <string>
#include <string_view>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/net/framing.hpp"

namespace csk::admin {

inline constexpr std::size_t max_request = 8192;

struct http_request {
  std::string method;
  std::string path;   ///< without the query string
  std::string query;  ///< after '?', or ""
};

/// Framing: one whole request head (through the blank line), or need_more, or an error
/// (longer than max_request).
net::unpack_result unpack_http(bytes_view buffered);

/// The request line and headers of one head from unpack_http.
result<http_request, std::string> parse_request(bytes_view head);

/// A whole response with Content-Length and Connection: close.
std::string response(int status, std::string_view content_type, std::string_view body);

}  // namespace csk::admin
