// The control socket: real AF_UNIX sockets in a temp dir, a poll loop on a helper thread
// (or inline, where the test forks), no sleeps: every wait is on an event with a deadline.

#include "supervisor/control.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <optional>

#include "tests/support/temp_dir.hpp"
#include "tests/unit/control/control_loop.hpp"

namespace {

using csk::supervisor::control_call;
using csk::supervisor::control_call_ex;
using csk::supervisor::control_error;
using csk::supervisor::control_options;
using csk::supervisor::control_reply;
using csk::supervisor::control_request;
using csk::supervisor::control_server;
using csk::test::server_loop;
using nlohmann::json;
using namespace std::chrono_literals;

class control_test : public csk::test::temp_dir_test {
 protected:
  std::string sock() const { return (dir_ / "ctl.sock").string(); }

  // A server whose handler echoes {"cmd":..., "args":..., "uid":...}.
  std::unique_ptr<control_server> echo_server(const control_options& opt = {}) {
    auto s = control_server::open(
        sock(),
        [](const control_request& r, control_reply reply) {
          reply(json{{"cmd", r.cmd}, {"args", r.args}, {"uid", r.uid}});
        },
        opt);
    if (!s) ADD_FAILURE() << s.error();
    return s ? std::move(*s) : nullptr;
  }

  // Sends raw bytes, returns everything the server wrote before closing.
  std::string raw(const std::string& bytes, bool& closed) {
    const int fd = csk::test::raw_connect(sock());
    EXPECT_GE(fd, 0);
    csk::test::raw_send(fd, bytes);
    std::string out = csk::test::raw_read_all(fd, 10s, closed);
    ::close(fd);
    return out;
  }
};

TEST_F(control_test, request_and_reply) {
  server_loop loop(echo_server());
  auto r = control_call(sock(), json{{"cmd", "status"}, {"args", {{"verbose", true}}}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)["cmd"], "status");
  EXPECT_EQ((*r)["args"], (json{{"verbose", true}}));
  EXPECT_EQ((*r)["uid"].get<uid_t>(), ::geteuid());

  // "args" may be absent: the handler gets an empty object. One connection, one request:
  // a second call works on a new connection.
  auto r2 = control_call(sock(), json{{"cmd", "reload"}}, 5s);
  ASSERT_TRUE(r2) << r2.error();
  EXPECT_EQ((*r2)["cmd"], "reload");
  EXPECT_EQ((*r2)["args"], json::object());

  // The wire: exactly one line, then the server closes.
  bool closed = false;
  const std::string text = raw("{\"cmd\":\"x\"}\n", closed);
  EXPECT_TRUE(closed);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  EXPECT_EQ(json::parse(text)["cmd"], "x");
}

TEST_F(control_test, deferred_reply) {
  std::optional<control_reply> pending;  // loop thread only
  std::promise<std::string> got;
  auto s = control_server::open(sock(), [&](const control_request& r, control_reply reply) {
    pending = std::move(reply);
    got.set_value(r.cmd);
  });
  ASSERT_TRUE(s) << s.error();
  server_loop loop(std::move(*s));

  auto call = std::async(std::launch::async, [&] { return control_call(sock(), json{{"cmd", "upgrade"}}, 10s); });
  auto got_f = got.get_future();
  ASSERT_EQ(got_f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(got_f.get(), "upgrade");
  // The handler has returned without replying: the client is still waiting, the
  // connection open.
  EXPECT_EQ(call.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(loop.run([&] { return loop.server()->client_count(); }), 1u);
  EXPECT_EQ(loop.run([&] { return loop.server()->client_fds().size(); }), 1u);  // no timer while waiting

  loop.post([&] {
    (*pending)(json{{"upgraded", true}});
    (*pending)(json{{"second", "reply is ignored"}});
  });
  ASSERT_EQ(call.wait_for(10s), std::future_status::ready);
  auto r = call.get();
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, (json{{"upgraded", true}}));
  EXPECT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 0; }));
}

TEST_F(control_test, deferred_reply_to_a_client_that_left_is_dropped) {
  std::optional<control_reply> pending;
  int requests = 0;  // loop thread only
  auto s = control_server::open(sock(), [&](const control_request& r, control_reply reply) {
    ++requests;
    if (r.cmd == "slow") {
      pending = std::move(reply);
    } else {
      reply(json{{"ok", true}});
    }
  });
  ASSERT_TRUE(s) << s.error();
  server_loop loop(std::move(*s));

  const int fd = csk::test::raw_connect(sock());
  ASSERT_GE(fd, 0);
  csk::test::raw_send(fd, "{\"cmd\":\"slow\"}\n");
  ASSERT_TRUE(loop.wait_until([&](control_server*) { return requests == 1; }));
  ::close(fd);
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 0; }));

  // The late reply goes nowhere, and a new connection (maybe on the same fd number) is
  // not confused with the old one.
  const int fd2 = csk::test::raw_connect(sock());
  ASSERT_GE(fd2, 0);
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 1; }));
  loop.run([&] { (*pending)(json{{"late", true}}); });
  csk::test::raw_send(fd2, "{\"cmd\":\"fast\"}\n");
  bool closed = false;
  const std::string text = csk::test::raw_read_all(fd2, 10s, closed);
  ::close(fd2);
  EXPECT_TRUE(closed);
  EXPECT_EQ(text, "{\"ok\":true}\n");
}

TEST_F(control_test, destroying_the_server_closes_waiting_clients) {
  std::optional<control_reply> pending;
  std::promise<void> got;
  auto s = control_server::open(sock(), [&](const control_request&, control_reply reply) {
    pending = std::move(reply);
    got.set_value();
  });
  ASSERT_TRUE(s) << s.error();
  server_loop loop(std::move(*s));
  auto call = std::async(std::launch::async, [&] { return control_call_ex(sock(), json{{"cmd", "stop"}}, 10s); });
  ASSERT_EQ(got.get_future().wait_for(10s), std::future_status::ready);
  loop.run([&] { loop.destroy_server_later(); });
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv == nullptr; }));

  ASSERT_EQ(call.wait_for(10s), std::future_status::ready);
  auto r = call.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().why, control_error::kind::closed);
  EXPECT_EQ(r.error().text, "the supervisor at " + sock() + " closed the connection without a reply");
  loop.run([&] { (*pending)(json{{"too", "late"}}); });  // the server is gone: nothing happens
  EXPECT_FALSE(std::filesystem::exists(sock()));          // the path is unlinked

  auto again = control_call_ex(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().why, control_error::kind::unreachable);
  EXPECT_EQ(again.error().text, "no supervisor at " + sock() + ": No such file or directory");
}

TEST_F(control_test, handler_exception_becomes_an_error_reply) {
  auto s = control_server::open(sock(), [](const control_request&, control_reply) {
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(s) << s.error();
  server_loop loop(std::move(*s));
  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, (json{{"error", "boom"}}));
}

TEST_F(control_test, garbage_gets_an_error_and_the_server_keeps_serving) {
  server_loop loop(echo_server());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json\n", "not JSON"},
      {"[1,2]\n", "expected a JSON object"},
      {"{\"args\":{}}\n", "\"cmd\" must be a non-empty string"},
      {"{\"cmd\":42}\n", "\"cmd\" must be a non-empty string"},
      {"{\"cmd\":\"\"}\n", "\"cmd\" must be a non-empty string"},
      {"{\"cmd\":\"x\",\"args\":[1]}\n", "\"args\" must be an object"},
      {"\n", "not JSON"},
  };
  for (const auto& [bytes, why] : cases) {
    bool closed = false;
    const std::string text = raw(bytes, closed);
    EXPECT_TRUE(closed) << bytes;
    auto j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << bytes << " -> " << text;
    EXPECT_NE(j.value("error", "").find(why), std::string::npos) << bytes << " -> " << text;
  }
  // A client that closes before a whole line gets nothing and is forgotten.
  {
    const int fd = csk::test::raw_connect(sock());
    ASSERT_GE(fd, 0);
    csk::test::raw_send(fd, "{\"cmd\":");
    ::close(fd);
  }
  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)["cmd"], "status");
  EXPECT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 0; }));
}

TEST_F(control_test, oversized_request_gets_an_error) {
  server_loop loop(echo_server());
  // 64 KiB of line is accepted...
  const std::string head = "{\"cmd\":\"big\",\"args\":{\"s\":\"";
  const std::string tail = "\"}}";
  const std::string fill(64 * 1024 - head.size() - tail.size(), 'a');
  auto ok = control_call(sock(), json::parse(head + fill + tail), 5s);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ((*ok)["args"]["s"].get<std::string>().size(), fill.size());

  // ... one byte more is not, with or without a newline in sight.
  for (const std::string& bytes : {head + fill + "a" + tail + "\n", std::string(200 * 1024, 'x')}) {
    bool closed = false;
    const std::string text = raw(bytes, closed);
    EXPECT_TRUE(closed);
    auto j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << text;
    EXPECT_EQ(j.value("error", ""), "request too long: the limit is 65536 bytes");
  }
  // control_call sees the error reply too, even though the server closed while it wrote.
  auto r = control_call(sock(), json{{"cmd", "big"}, {"args", {{"s", std::string(100 * 1024, 'b')}}}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->value("error", ""), "request too long: the limit is 65536 bytes");

  auto after = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(after) << after.error();
  EXPECT_EQ((*after)["cmd"], "status");
}

TEST_F(control_test, idle_client_is_dropped_and_others_are_served_meanwhile) {
  EXPECT_EQ(control_options{}.idle_timeout, 5s);  // the protocol's value; shortened below
  control_options opt;
  opt.idle_timeout = 200ms;
  server_loop loop(echo_server(opt));
  const int idle = csk::test::raw_connect(sock());
  ASSERT_GE(idle, 0);
  const int partial = csk::test::raw_connect(sock());
  ASSERT_GE(partial, 0);
  csk::test::raw_send(partial, "{\"cmd\":\"sta");
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 2; }));

  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);  // not stuck behind them
  ASSERT_TRUE(r) << r.error();

  for (int fd : {idle, partial}) {
    bool closed = false;
    const std::string text = csk::test::raw_read_all(fd, 10s, closed);
    ::close(fd);
    EXPECT_TRUE(closed);
    EXPECT_EQ(text, "{\"error\":\"timeout: no request within 200 ms\"}\n");
  }
  EXPECT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 0; }));
  EXPECT_TRUE(loop.run([&] { return loop.server()->client_fds().empty(); }));  // the idle timer is off
}

TEST_F(control_test, too_many_clients_are_turned_away) {
  control_options opt;
  opt.max_clients = 2;
  server_loop loop(echo_server(opt));
  const int a = csk::test::raw_connect(sock());
  const int b = csk::test::raw_connect(sock());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 2; }));
  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->value("error", ""), "busy: 2 control clients already");
  ::close(a);
  ::close(b);
  ASSERT_TRUE(loop.wait_until([](control_server* srv) { return srv->client_count() == 0; }));
  auto r2 = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r2) << r2.error();
  EXPECT_EQ((*r2)["cmd"], "status");
}

TEST_F(control_test, socket_is_mode_0600_whatever_the_umask) {
  const mode_t old = ::umask(0);
  auto srv = echo_server();
  ::umask(old);
  ASSERT_TRUE(srv);
  struct stat st {};
  ASSERT_EQ(::lstat(sock().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
}

TEST_F(control_test, stale_socket_file_is_replaced) {
  {  // a socket file nobody listens on: what a crashed supervisor leaves
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock().c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(sock()));
  auto stale = control_call_ex(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().why, control_error::kind::unreachable);
  EXPECT_EQ(stale.error().text, "no supervisor at " + sock() + ": Connection refused");

  server_loop loop(echo_server());
  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r) << r.error();
}

TEST_F(control_test, refuses_a_path_that_is_not_a_socket_or_too_long) {
  { std::ofstream(sock()) << "precious"; }
  auto s = control_server::open(sock(), [](const control_request&, control_reply) {});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("exists and is not a socket"), std::string::npos) << s.error();
  EXPECT_TRUE(std::filesystem::is_regular_file(sock()));  // left alone

  auto longer = control_server::open((dir_ / std::string(120, 'x')).string(), [](const control_request&, control_reply) {});
  ASSERT_FALSE(longer);
  EXPECT_NE(longer.error().find("the path must be 1 to 107 bytes"), std::string::npos) << longer.error();
}

TEST_F(control_test, second_server_on_a_live_path_is_refused) {
  server_loop loop(echo_server());
  auto second = control_server::open(sock(), [](const control_request&, control_reply) {});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find("another supervisor is already listening there"), std::string::npos)
      << second.error();
  // The first one still owns the path and serves.
  auto r = control_call(sock(), json{{"cmd", "status"}}, 5s);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)["cmd"], "status");
}

TEST_F(control_test, destroyed_server_leaves_a_newer_socket_alone) {
  auto first = echo_server();
  ASSERT_TRUE(first);
  // Someone removed our file and a newer server took the path: our destructor must not
  // unlink theirs.
  ASSERT_EQ(::unlink(sock().c_str()), 0);
  auto second = echo_server();
  ASSERT_TRUE(second);
  first.reset();
  EXPECT_TRUE(std::filesystem::exists(sock()));
  second.reset();
  EXPECT_FALSE(std::filesystem::exists(sock()));
}

// Another uid: a forked child drops to nobody (65534) and calls. No helper threads here:
// the test thread runs the poll loop, so fork() is safe.
TEST_F(control_test, another_uid_is_refused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to fork a child with another uid (setuid 65534)";
  int handled = 0;
  auto s = control_server::open(sock(), [&](const control_request&, control_reply reply) {
    ++handled;
    reply(json{{"ok", true}});
  });
  ASSERT_TRUE(s) << s.error();
  auto srv = std::move(*s);
  // The dir must be searchable by nobody.
  std::filesystem::permissions(dir_, std::filesystem::perms::owner_all | std::filesystem::perms::others_exec |
                                         std::filesystem::perms::group_exec);

  // Runs control_call as uid 65534 in a child; returns what it printed.
  auto call_as_nobody = [&]() -> std::string {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return "pipe failed";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipefd[0]);
      std::string out;
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
        out = "setuid failed";
      } else {
        auto r = control_call_ex(sock(), json{{"cmd", "stop"}}, 5s);
        out = r ? "reply " + r->dump() : std::string(r.error().why == control_error::kind::unreachable ? "unreachable " : "failed ") + r.error().text;
      }
      [[maybe_unused]] const ssize_t n = ::write(pipefd[1], out.data(), out.size());
      ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string out;
    const auto end = std::chrono::steady_clock::now() + 10s;
    bool eof = false;
    while (!eof && std::chrono::steady_clock::now() < end) {
      auto rev = csk::test::pump_once(srv.get(), {pipefd[0]}, 100);
      if (rev[0] != 0) {
        char buf[512];
        const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
          out.append(buf, static_cast<std::size_t>(n));
        } else {
          eof = true;
        }
      }
    }
    ::close(pipefd[0]);
    if (!eof) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
  };

  // The file mode alone keeps nobody out: connect() needs write permission on the socket.
  EXPECT_EQ(call_as_nobody(), "unreachable no supervisor at " + sock() + ": Permission denied");
  // With the mode loosened, SO_PEERCRED still refuses the uid.
  ASSERT_EQ(::chmod(sock().c_str(), 0666), 0);
  EXPECT_EQ(call_as_nobody(), "reply {\"error\":\"permission denied: uid 65534\"}");
  EXPECT_EQ(handled, 0);

  // Our own uid (root) still gets in.
  const int fd = csk::test::raw_connect(sock());
  ASSERT_GE(fd, 0);
  csk::test::raw_send(fd, "{\"cmd\":\"status\"}\n");
  std::string text;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (text.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
    auto rev = csk::test::pump_once(srv.get(), {fd}, 100);
    if (rev[0] != 0) {
      char buf[256];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  EXPECT_EQ(text, "{\"ok\":true}\n");
  EXPECT_EQ(handled, 1);
}

}  // namespace
