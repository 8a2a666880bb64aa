// skynet's debug console protocol as the listener frames and reads it
// (worker/debug_console.hpp), pure: lines, GET and POST requests (the transcripts'
// bytes), an empty line, overlong input and malformed HTTP.

#include <gtest/gtest.h>

#include <string>

#include "worker/debug_console.hpp"

namespace csk::console {
namespace {

constexpr std::size_t max_line = 64;

bytes_view bytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

using status = net::unpack_result::status;

// The first message unpack_request cuts from `buffered`, read by parse_request.
request first(const std::string& buffered) {
  const auto u = unpack_request(bytes(buffered), max_line);
  EXPECT_EQ(u.what, status::message) << buffered;
  if (u.what != status::message) return request{request::kind::bad, {}, "no message"};
  EXPECT_LE(u.header + u.length, buffered.size());
  return parse_request(bytes(buffered.substr(u.header, u.length)), max_line);
}

TEST(DebugConsoleProtocol, ALineEndsAtNewlineAndKeepsItsCarriageReturn) {
  const auto u = unpack_request(bytes("list\nstat\n"), max_line);
  ASSERT_EQ(u.what, status::message);
  EXPECT_EQ(u.header + u.length, 5u) << "one line at a time";
  auto r = first("list\n");
  EXPECT_EQ(r.what, request::kind::line);
  EXPECT_EQ(r.line, "list");
  EXPECT_EQ(first("ping :0000000b\r\n").line, "ping :0000000b\r") << "a blank for the verb's words, as Lua's %s";
}

TEST(DebugConsoleProtocol, AnEmptyLineIsALineWithNothingInIt) {
  auto r = first("\n");
  EXPECT_EQ(r.what, request::kind::line);
  EXPECT_TRUE(r.line.empty());
}

TEST(DebugConsoleProtocol, APartialLineWaits) {
  EXPECT_EQ(unpack_request(bytes("lis"), max_line).what, status::need_more);
  EXPECT_EQ(unpack_request(bytes("GE"), max_line).what, status::need_more) << "may become GET";
  EXPECT_EQ(unpack_request(bytes("GET /list HTTP/1.1\r\nHost: x\r\n"), max_line).what, status::need_more);
}

TEST(DebugConsoleProtocol, AnOverlongLineIsCutAndRefused) {
  const std::string longest(max_line, 'x');
  EXPECT_EQ(first(longest + "\n").line, longest) << "max_line bytes fit";
  const std::string over(max_line + 10, 'x');
  const auto u = unpack_request(bytes(over), max_line);
  ASSERT_EQ(u.what, status::message) << "delivered, so the connection can say why";
  EXPECT_EQ(u.length, max_line + 1);
  auto r = parse_request(bytes(over.substr(0, u.length)), max_line);
  EXPECT_EQ(r.what, request::kind::bad);
  EXPECT_EQ(r.error, "line too long (more than 64 bytes)");
}

TEST(DebugConsoleProtocol, GetIsThePathWithSlashesAsBlanks) {
  // The transcript's request bytes.
  auto r = first("GET /ping/:0000000d HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.what, request::kind::http);
  EXPECT_EQ(r.line, "ping :0000000d");
  EXPECT_EQ(first("GET /list HTTP/1.1\r\nHost: x\r\n\r\n").line, "list");
  EXPECT_EQ(first("GET /call/.echo/a%20b HTTP/1.0\r\n\r\n").line, "call .echo a%20b") << "nothing decoded, as skynet";
}

TEST(DebugConsoleProtocol, PostIsItsBody) {
  const std::string req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nstat";
  auto r = first(req);
  EXPECT_EQ(r.what, request::kind::http);
  EXPECT_EQ(r.line, "stat");
  const auto partial = unpack_request(bytes(req.substr(0, req.size() - 2)), max_line);
  EXPECT_EQ(partial.what, status::need_more);
  EXPECT_EQ(partial.header + partial.length, req.size()) << "the size is known from Content-Length";
  EXPECT_EQ(first("POST / HTTP/1.1\r\ncontent-length:  9 \r\n\r\nping .abc").line, "ping .abc");
}

TEST(DebugConsoleProtocol, MalformedHttpIsRefusedWithAReason) {
  EXPECT_EQ(first("GET /list\r\n\r\n").what, request::kind::bad) << "no HTTP version";
  EXPECT_EQ(first("GET /list HTTP/2.0\r\n\r\n").what, request::kind::bad);
  auto chunked = first("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nstat\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.what, request::kind::bad);
  EXPECT_EQ(chunked.error, "a chunked HTTP body is not read: send Content-Length");
  auto big = first("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
  EXPECT_EQ(big.what, request::kind::bad);
  EXPECT_EQ(big.error, "HTTP body too large (more than 64 bytes)");
  EXPECT_EQ(first("POST / HTTP/1.1\r\nContent-Length: x1\r\n\r\n").error, "bad Content-Length");
  const std::string long_head = "GET /list HTTP/1.1\r\nX: " + std::string(max_line, 'y');
  EXPECT_EQ(first(long_head).error, "HTTP request head too long (more than 64 bytes)");
}

TEST(DebugConsoleProtocol, GetStartsAtAnyLine) {
  const std::string two = "list\nGET /stat HTTP/1.1\r\n\r\n";
  const auto u = unpack_request(bytes(two), max_line);
  ASSERT_EQ(u.what, status::message);
  EXPECT_EQ(first(two.substr(u.length)).line, "stat");
  EXPECT_EQ(first(two.substr(u.length)).what, request::kind::http);
}

}  // namespace
}  // namespace csk::console
