// Input: the bytes an admin endpoint client sent (services/admin/http.hpp), as the gate
// buffers them. Checks unpack_http and parse_request against independent reference rules:
//
// unpack_http(b), with w = the first min(|b|, max_request) bytes of b:
//   - message(0, n) where n is the END of the EARLIEST "\r\n\r\n" or "\n\n" in w: the head
//     is the shortest prefix that ends in a blank line, so the answer does not depend on
//     how the bytes were cut into reads (the same n for every longer buffer);
//   - else failed(reason) iff |b| >= max_request;
//   - else need_more with no size (header 0, length 0).
// parse_request(x), for the head found and for the whole input:
//   - the request line is x up to its first '\n', trimmed (SP/HT in front; SP/HT/CR behind);
//     it must be exactly  METHOD SP TARGET SP VERSION  with METHOD and TARGET free of SP,
//     TARGET starting with '/', VERSION "HTTP/1.0" or "HTTP/1.1";
//   - every following line up to the first blank one (trimmed empty) is a header with a
//     ':'; none is Content-Length other than "0" or Transfer-Encoding (names in any case);
//   - accepted iff all that holds; then method SP path [? query] SP version is the line;
//     refused with a non-empty reason otherwise. No exception may escape.

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "services/admin/http.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace admin = csk::admin;
using csk::bytes_view;
using status = csk::net::unpack_result::status;

std::string_view chars(bytes_view b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// The reference head rule: the end of the earliest blank line in the first max_request bytes.
std::size_t reference_head_end(std::string_view w) {
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] != '\n') continue;
    if (i >= 1 && w[i - 1] == '\n') return i + 1;
    if (i >= 3 && w[i - 1] == '\r' && w[i - 2] == '\n' && w[i - 3] == '\r') return i + 1;
  }
  return std::string_view::npos;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view reference_trim(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && (is_blank(s[e - 1]) || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Whether parse_request must accept `text`.
bool reference_accepts(std::string_view text) {
  const std::size_t eol = text.find('\n');
  if (eol == std::string_view::npos) return false;
  const std::string_view line = reference_trim(text.substr(0, eol));
  // Exactly two spaces split it into three parts (the version has no space either).
  if (std::count(line.begin(), line.end(), ' ') != 2) return false;
  const std::size_t a = line.find(' ');
  const std::size_t b = line.find(' ', a + 1);
  const std::string_view target = line.substr(a + 1, b - a - 1);
  const std::string_view version = line.substr(b + 1);
  if (target.empty() || target.front() != '/') return false;
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return false;
  // Headers: line by line after the request line, until a blank one or the end.
  std::size_t at = eol + 1;
  while (at <= text.size()) {
    const std::size_t nl = text.find('\n', at);
    const std::string_view raw = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    const std::string_view h = reference_trim(raw);
    if (h.empty()) break;
    const std::size_t colon = h.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view name = reference_trim(h.substr(0, colon));
    const std::string_view value = reference_trim(h.substr(colon + 1));
    if (iequals(name, "transfer-encoding")) return false;
    if (iequals(name, "content-length") && value != "0") return false;
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  return true;
}

void check_parse(bytes_view in) {
  const std::string_view text = chars(in);
  auto r = admin::parse_request(in);
  CSK_FUZZ_CHECK(r.has_value() == reference_accepts(text));
  if (!r) {
    CSK_FUZZ_CHECK(!r.error().empty());
    return;
  }
  // The fields put back together are the trimmed request line.
  const std::string_view line = reference_trim(text.substr(0, text.find('\n')));
  CSK_FUZZ_CHECK(!r->method.empty() && r->method.find(' ') == std::string::npos);
  CSK_FUZZ_CHECK(!r->path.empty() && r->path.front() == '/');
  CSK_FUZZ_CHECK(r->path.find_first_of(" ?") == std::string::npos);
  CSK_FUZZ_CHECK(r->query.find(' ') == std::string::npos);
  std::string back = r->method + " " + r->path;
  if (line.size() > back.size() && line[back.size()] == '?') back += "?" + r->query;
  CSK_FUZZ_CHECK(r->query.empty() || back.size() > r->method.size() + 1 + r->path.size());
  const std::string_view version = line.substr(std::min(line.size(), back.size() + 1));
  CSK_FUZZ_CHECK(version == "HTTP/1.0" || version == "HTTP/1.1");
  back += " ";
  back += version;
  CSK_FUZZ_CHECK(back == line);
}

}  // namespace

int csk_fuzz_http(const std::uint8_t* data, std::size_t size) {
  const bytes_view in(data, size);
  const std::string_view window = chars(in.first(std::min(size, admin::max_request)));
  const std::size_t end = reference_head_end(window);
  const auto u = admin::unpack_http(in);
  if (end != std::string_view::npos) {
    CSK_FUZZ_CHECK(u.what == status::message);
    CSK_FUZZ_CHECK(u.header == 0 && u.length == end);
    CSK_FUZZ_CHECK(u.length <= size && u.length <= admin::max_request);
    // The same head whatever came after it: the head alone frames to itself, one byte less
    // is not a head yet.
    const auto alone = admin::unpack_http(in.first(end));
    CSK_FUZZ_CHECK(alone.what == status::message && alone.length == end);
    CSK_FUZZ_CHECK(admin::unpack_http(in.first(end - 1)).what == status::need_more);
    check_parse(in.first(end));
  } else if (size >= admin::max_request) {
    CSK_FUZZ_CHECK(u.what == status::error && !u.error.empty());
  } else {
    CSK_FUZZ_CHECK(u.what == status::need_more && u.header == 0 && u.length == 0);
  }
  // parse_request on arbitrary bytes (the admin service only ever passes a head).
  check_parse(in);
  return 0;
}
