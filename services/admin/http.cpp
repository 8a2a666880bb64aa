#include "services/admin/http.hpp"

#include <algorithm>
#include <cctype>

namespace csk::admin {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

const char* reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    default: return "Status";
  }
}

}  // namespace

net::unpack_result unpack_http(bytes_view buffered) {
  const std::string_view text(reinterpret_cast<const char*>(buffered.data()), std::min(buffered.size(), max_request));
  // The head ends at the first blank line, CRLF or bare LF (a client like nc): the earliest
  // of the two, so that where it ends does not depend on how the bytes were cut into reads.
  const auto crlf = text.find("\r\n\r\n");
  const auto lf = text.find("\n\n");
  const auto end = std::min(crlf == std::string_view::npos ? crlf : crlf + 4,
                            lf == std::string_view::npos ? lf : lf + 2);
  if (end != std::string_view::npos) return net::unpack_result::message(0, end);
  if (buffered.size() >= max_request) {
    return net::unpack_result::failed("HTTP request head longer than " + std::to_string(max_request) + " bytes");
  }
  return net::unpack_result::need_more();
}

result<http_request, std::string> parse_request(bytes_view head) {
  std::string_view text(reinterpret_cast<const char*>(head.data()), head.size());
  const auto eol = text.find('\n');
  if (eol == std::string_view::npos) return unexpected(std::string("no request line"));
  const std::string_view line = trim(text.substr(0, eol));
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return unexpected(std::string("bad request line"));
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return unexpected("unsupported version " + std::string(version));
  http_request r;
  r.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target[0] != '/') return unexpected(std::string("bad request target"));
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    r.query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  r.path = std::string(target);
  std::string_view rest = text.substr(eol + 1);
  while (!rest.empty()) {
    const auto n = rest.find('\n');
    const std::string_view h = trim(rest.substr(0, n));
    rest = n == std::string_view::npos ? std::string_view() : rest.substr(n + 1);
    if (h.empty()) break;
    const auto colon = h.find(':');
    if (colon == std::string_view::npos) return unexpected("bad header line: " + std::string(h.substr(0, 64)));
    const std::string name = lower(trim(h.substr(0, colon)));
    const std::string_view value = trim(h.substr(colon + 1));
    if ((name == "content-length" && value != "0") || name == "transfer-encoding") {
      return unexpected(std::string("requests with a body are not served"));
    }
  }
  return r;
}

std::string response(int status, std::string_view content_type, std::string_view body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) + "\r\n";
  out += "Content-Type: " + std::string(content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += body;
  return out;
}

}  // namespace csk::admin
