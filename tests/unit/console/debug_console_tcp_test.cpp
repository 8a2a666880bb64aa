// The debug console's listener on real TCP (loopback, port 0) in front of a running
// runtime: skynet's telnet form (greeting, lines answered in order, the empty line, "\r\n",
// an unknown verb), the HTTP forms (GET and POST: the raw text, then the connection
// closes), and the bounds (an overlong line closes only its connection, the connection
// cap, stop's farewell).

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "common/actor/runtime.hpp"
#include "common/net/net.hpp"
#include "tests/support/raw_socket.hpp"
#include "worker/debug_console.hpp"

namespace csk::console {
namespace {

using namespace std::chrono_literals;
using actor::values;
using test::raw_socket;

class echo_service : public actor::dispatch_service {
 public:
  echo_service() {
    on_sync("echo", [](actor::context&, values& a) { return a; });
  }
};

bytes_view bytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

/// The lines of one answer: up to and including "<CMD OK>" or "<CMD Error>"; nullopt on
/// EOF or the socket's timeout.
std::optional<std::string> read_answer(const raw_socket& s) {
  std::string out;
  for (;;) {
    auto line = s.read_line();
    if (!line) return std::nullopt;
    out += *line + "\n";
    if (*line == "<CMD OK>" || *line == "<CMD Error>") return out;
  }
}

/// Everything until the server closes (at most the socket's timeout).
std::string read_to_end(const raw_socket& s) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t r = ::recv(s.fd(), buf, sizeof buf, 0);
    if (r <= 0) return out;
    out.append(buf, static_cast<std::size_t>(r));
  }
}

class DebugConsoleTcp : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_.register_type("echo", [] { return std::make_unique<echo_service>(); });
    echo_ = *rt_.spawn("echo", {}, {".echo"});
    rt_.start();
    net_.start();
    parts p;
    p.rt = &rt_;
    p.call_timeout = 2000ms;
    listener_limits limits;
    limits.max_line = 100;
    limits.max_connections = 2;
    console_ = std::make_unique<debug_console>(net_, p, limits);
    auto port = console_->listen("127.0.0.1", 0);
    ASSERT_TRUE(port.has_value()) << port.error();
    port_ = *port;
  }
  void TearDown() override {
    console_->stop("");
    net_.stop();
    rt_.shutdown();
  }

  raw_socket connect_and_greet() {
    auto s = raw_socket::connect_to(port_);
    EXPECT_EQ(s.read_line(), std::optional<std::string>("Welcome to skynet console"));
    return s;
  }
  std::string echo_line() const { return actor::handle_string(echo_) + "\techo .echo\n"; }

  actor::runtime rt_{[] {
    actor::runtime_options o;
    o.threads = 2;
    return o;
  }()};
  net::net net_{1};
  std::unique_ptr<debug_console> console_;
  std::uint16_t port_ = 0;
  actor::handle_t echo_ = 0;
};

TEST_F(DebugConsoleTcp, TelnetFormAnswersEachLineInOrder) {
  auto s = connect_and_greet();
  s.write_all(bytes("list\n"));
  EXPECT_EQ(read_answer(s), echo_line() + "<CMD OK>\n");
  // Two lines in one segment, the first with telnet's "\r\n": answered one after the other.
  s.write_all(bytes("call .echo echo hi\r\nnosuch\n"));
  EXPECT_EQ(read_answer(s), "1\thi\nn\t1\n<CMD OK>\n");
  EXPECT_EQ(read_answer(s), "Invalid command, type help for command list\n\n<CMD Error>\n");
  // An empty line gets nothing: the next answer is the next line's.
  s.write_all(bytes("\nping .echo\n"));
  const auto ping = read_answer(s);
  ASSERT_TRUE(ping.has_value());
  EXPECT_TRUE(*ping == "0\n<CMD OK>\n" || *ping == "1\n<CMD OK>\n") << *ping;
}

TEST_F(DebugConsoleTcp, HttpGetIsAnsweredWithTheRawTextAndClosed) {
  auto s = raw_socket::connect_to(port_);
  s.write_all(bytes("GET /list HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(read_to_end(s), "Welcome to skynet console\n" + echo_line() + "<CMD OK>\n");
  auto t = raw_socket::connect_to(port_);
  t.write_all(bytes("GET /nosuch HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(read_to_end(t), "Welcome to skynet console\nInvalid command, type help for command list\n\n<CMD Error>\n");
}

TEST_F(DebugConsoleTcp, HttpPostRunsItsBody) {
  auto s = raw_socket::connect_to(port_);
  s.write_all(bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\ncall .echo echo 42"));
  EXPECT_EQ(read_to_end(s), "Welcome to skynet console\n1\t42\nn\t1\n<CMD OK>\n");
}

TEST_F(DebugConsoleTcp, AnOverlongLineClosesOnlyItsConnection) {
  auto other = connect_and_greet();
  auto s = connect_and_greet();
  s.write_all(bytes(std::string(150, 'x')));
  EXPECT_EQ(read_to_end(s), "line too long (more than 100 bytes)\n<CMD Error>\n");
  other.write_all(bytes("list\n"));
  EXPECT_EQ(read_answer(other), echo_line() + "<CMD OK>\n");
}

TEST_F(DebugConsoleTcp, OneConnectionPastTheCapIsToldAndClosed) {
  auto a = connect_and_greet();
  {
    auto b = connect_and_greet();
    auto c = raw_socket::connect_to(port_);
    EXPECT_EQ(read_to_end(c), "too many console connections (at most 2): closed\n");
    b.write_all(bytes("list\n"));
    EXPECT_EQ(read_answer(b), echo_line() + "<CMD OK>\n");
  }
  // b has gone: once the console has seen it close, there is room again.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<std::string> greeting;
  while (std::chrono::steady_clock::now() < deadline) {
    auto d = raw_socket::connect_to(port_);
    greeting = d.read_line();
    if (greeting == "Welcome to skynet console") break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(greeting, std::optional<std::string>("Welcome to skynet console"));
}

TEST_F(DebugConsoleTcp, StopSaysFarewellAndCloses) {
  auto s = connect_and_greet();
  console_->stop("the node is stopping");
  EXPECT_EQ(read_to_end(s), "the node is stopping\n");
  auto refused = raw_socket::try_connect(port_);
  EXPECT_FALSE(refused.valid() && refused.read_line().has_value()) << "the listener is closed";
}

}  // namespace
}  // namespace csk::console
