// csk::redis against a real redis-server that each test starts itself (loopback only:
// a unix socket in a temp dir, or a free 127.0.0.1 port), waits for (PING, with a
// deadline) and stops in TearDown. A missing redis-server fails the test with a hint.
// Covers: reply mapping, binary safety, server errors, bad arguments and options,
// concurrency over the pool, the server killed and restarted, command timeouts, TCP
// with AUTH and db.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/actor/runtime.hpp"
#include "services/redis/redis.hpp"
#include "tests/support/server_process.hpp"

namespace csk::redis {
namespace {

using namespace std::chrono_literals;
using actor::call_result;
using actor::context;
using actor::message;
using actor::task;
using actor::values;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

/// One redis-server child process in its own temp dir.
class redis_server {
 public:
  ~redis_server() { stop(); }

  std::string socket_path() const { return (proc_.dir() / "redis.sock").string(); }
  const fs::path& dir() const { return proc_.dir(); }

  /// Starts on the unix socket (port 0: no TCP), or on 127.0.0.1:tcp_port; waits until
  /// it answers PING. Returns an error text, empty on success.
  std::string start(std::uint16_t tcp_port = 0, const std::string& password = {}) {
    const std::string bin = test::find_program("redis-server", {"/usr/bin"});
    if (bin.empty()) {
      return "redis-server not found (PATH, /usr/bin): run tools/install-deps.sh as root to install the Debian "
             "package redis-server";
    }
    tcp_port_ = tcp_port;
    std::vector<std::string> args = {bin,          "--port",       std::to_string(tcp_port), "--bind",
                                     "127.0.0.1",  "--unixsocket", socket_path(),            "--unixsocketperm",
                                     "700",        "--save",       "",                       "--appendonly",
                                     "no",         "--daemonize",  "no",                     "--dir",
                                     dir().string()};
    if (!password.empty()) {
      args.emplace_back("--requirepass");
      args.push_back(password);
    }
    return proc_.start(std::move(args), dir() / "redis.log", [this] { return answers_ping(); }, 10s, 10ms);
  }

  void kill9() { proc_.kill9(); }
  void stop() { proc_.stop(5s); }

 private:
  /// Connects (unix socket, or TCP when started on a port), sends PING, true on +PONG
  /// (or -NOAUTH: a password-protected server that answers).
  bool answers_ping() const {
    int fd = -1;
    if (tcp_port_ != 0) {
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(tcp_port_);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(fd);
        return false;
      }
    } else {
      fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      const std::string path = socket_path();
      std::copy(path.begin(), path.end(), a.sun_path);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(fd);
        return false;
      }
    }
    const std::string ping = "*1\r\n$4\r\nPING\r\n";
    bool ok = ::send(fd, ping.data(), ping.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(ping.size());
    if (ok) {
      pollfd p{fd, POLLIN, 0};
      char buf[64] = {};
      ok = ::poll(&p, 1, 500) == 1 && ::recv(fd, buf, sizeof(buf) - 1, 0) > 0 &&
           (std::string_view(buf).starts_with("+PONG") || std::string_view(buf).starts_with("-NOAUTH"));
    }
    ::close(fd);
    return ok;
  }

  test::server_process proc_{"csk_redis"};
  std::uint16_t tcp_port_ = 0;
};

/// Calls ".redis" N times; answers the number of successful INCRs.
class incr_caller final : public actor::service {
 public:
  task<values> handle(context& ctx, message& m) override {
    const std::int64_t n = m.args.at(0).as_integer();
    std::int64_t ok = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      values cmd{lua_value("INCR"), lua_value("hits")};
      auto op = redis::call(ctx, ".redis", std::move(cmd));
      call_result r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      ++ok;
    }
    co_return values{ok};
  }
};

class redis_test : public ::testing::Test {
 protected:
  void SetUp() override {
    actor::runtime_options o;
    o.threads = 2;
    rt_ = std::make_unique<actor::runtime>(o);
    register_types(*rt_);
    rt_->start();
  }
  void TearDown() override {
    rt_->shutdown();
    rt_.reset();
    server_.stop();
  }

  void start_server() {
    const std::string error = server_.start();
    ASSERT_TRUE(error.empty()) << error;
  }

  options unix_options() const {
    options o;
    o.unix_path = server_.socket_path();
    return o;
  }

  result<actor::handle_t, std::string> spawn(const options& o, const std::string& name = ".redis") {
    return rt_->spawn(type_name, values{to_lua(o)}, {name});
  }

  call_result call(values cmd, const std::string& to = ".redis") {
    auto f = rt_->call(to, std::move(cmd), 20s);
    if (f.wait_for(30s) != std::future_status::ready) throw std::runtime_error("call never completed");
    return f.get();
  }
  /// The reply's single value; fails the test on an error.
  lua_value ok(values cmd) {
    const std::string shown = lua_value(lua_table(cmd)).debug_string();
    call_result r = call(std::move(cmd));
    EXPECT_TRUE(r) << shown << ": " << (r ? std::string() : r.error().text);
    if (!r) return lua_value("<error>");
    EXPECT_EQ(r->size(), 1u) << shown;
    return r->empty() ? lua_value() : r->front();
  }
  std::string err(values cmd) {
    call_result r = call(std::move(cmd));
    EXPECT_FALSE(r);
    return r ? std::string("<no error>") : r.error().text;
  }

  redis_server server_;
  std::unique_ptr<actor::runtime> rt_;
};

TEST_F(redis_test, CommandsAndReplyMapping) {
  start_server();
  ASSERT_TRUE(spawn(unix_options()));
  EXPECT_EQ(ok({"PING"}), lua_value("PONG"));
  EXPECT_EQ(ok({"SET", "k", "v"}), lua_value("OK"));
  EXPECT_EQ(ok({"GET", "k"}), lua_value("v"));
  EXPECT_EQ(ok({"GET", "missing"}), lua_value());
  EXPECT_EQ(ok({"INCRBY", "n", 5}), lua_value(5));
  EXPECT_EQ(ok({"INCRBY", "n", 2.0}), lua_value(7));
  EXPECT_EQ(ok({"INCRBYFLOAT", "f", 0.5}), lua_value("0.5"));
  EXPECT_EQ(ok({"DEL", "k", "n", "nothing"}), lua_value(2));
  EXPECT_EQ(ok({"RPUSH", "l", "a", "b", "c"}), lua_value(3));
  EXPECT_EQ(ok({"LRANGE", "l", 0, -1}), lua_value(lua_table({"a", "b", "c"})));
  EXPECT_EQ(ok({"LRANGE", "empty", 0, -1}), lua_value(lua_table()));
  EXPECT_EQ(ok({"SET", "x", "1"}), lua_value("OK"));
  EXPECT_EQ(ok({"MGET", "x", "missing", "x"}), lua_value(lua_table({"1", nullptr, "1"})));
  EXPECT_EQ(ok({"get", "x"}), lua_value("1"));  // command names in any case
}

TEST_F(redis_test, BinarySafeKeysAndValues) {
  start_server();
  ASSERT_TRUE(spawn(unix_options()));
  const std::string key("k\0\r\nkey", 7);
  std::string value("\0a\0\xff\r\n$3\r\n", 11);
  value += std::string(70000, '\0');
  EXPECT_EQ(ok({"SET", key, value}), lua_value("OK"));
  EXPECT_EQ(ok({"GET", key}), lua_value(value));
  EXPECT_EQ(ok({"STRLEN", key}), lua_value(static_cast<std::int64_t>(value.size())));
  EXPECT_EQ(ok({"GET", std::string("k")}), lua_value());
}

TEST_F(redis_test, ServerErrorsAndBadArguments) {
  start_server();
  ASSERT_TRUE(spawn(unix_options()));
  EXPECT_TRUE(err({"FROB", "x"}).starts_with("redis: ERR unknown command 'FROB'")) << err({"FROB", "x"});
  EXPECT_EQ(ok({"SET", "s", "text"}), lua_value("OK"));
  EXPECT_EQ(err({"LPUSH", "s", "x"}), "redis: WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_TRUE(err({"INCR", "s"}).starts_with("redis: ERR value is not an integer")) << err({"INCR", "s"});
  EXPECT_TRUE(err({"GET"}).starts_with("redis: ERR wrong number of arguments")) << err({"GET"});
  // Refused before reaching the server.
  EXPECT_EQ(err({"SET", "k", true}), "redis: argument 3 of SET is a boolean; only strings and numbers can be sent");
  EXPECT_EQ(err({}), "redis: the message must start with the command name, e.g. {\"GET\", \"key\"}");
  EXPECT_TRUE(err({"select", 1}).starts_with("redis: SELECT is not supported")) << err({"select", 1});
  EXPECT_TRUE(err({"MULTI"}).starts_with("redis: MULTI is not supported"));
  // The connections are fine afterwards.
  EXPECT_EQ(ok({"GET", "s"}), lua_value("text"));
}

TEST_F(redis_test, ManyCallersOverAPoolOfFour) {
  start_server();
  options o = unix_options();
  o.pool = 4;
  ASSERT_TRUE(spawn(o));
  std::vector<std::future<call_result>> runs;
  for (int i = 0; i < 10; ++i) {
    auto h = rt_->spawn(std::make_unique<incr_caller>());
    ASSERT_TRUE(h);
    runs.push_back(rt_->call(*h, values{100}, 60s));
  }
  for (auto& f : runs) {
    ASSERT_EQ(f.wait_for(90s), std::future_status::ready);
    call_result r = f.get();
    ASSERT_TRUE(r) << r.error().text;
    EXPECT_EQ(r->at(0), lua_value(100));
  }
  EXPECT_EQ(ok({"GET", "hits"}), lua_value("1000"));
  // Four connections (the pool connects eagerly; the fixture's probes have gone).
  const auto deadline = clock_type::now() + 5s;
  std::string info;
  while (clock_type::now() < deadline) {
    info = ok({"INFO", "clients"}).as_string();
    if (info.find("connected_clients:4\r") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(info.find("connected_clients:4\r"), std::string::npos) << info;
}

TEST_F(redis_test, OneWaySendsAreExecuted) {
  start_server();
  ASSERT_TRUE(spawn(unix_options()));
  ASSERT_TRUE(rt_->send(".redis", values{"SET", "sent", "yes"}));
  const auto deadline = clock_type::now() + 5s;
  lua_value v;
  while (clock_type::now() < deadline && v.is_nil()) {
    v = ok({"GET", "sent"});
    if (v.is_nil()) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(v, lua_value("yes"));
}

TEST_F(redis_test, ServerKilledThenRestarted) {
  start_server();
  options o = unix_options();
  o.pool = 3;
  o.command_timeout = 2000ms;
  ASSERT_TRUE(spawn(o));
  EXPECT_EQ(ok({"SET", "k", "v"}), lua_value("OK"));

  // A command in flight when the server dies: BLPOP, seen blocked by the server first.
  auto blocked = rt_->call(".redis", values{"BLPOP", "queue", 30}, 20s);
  const auto seen_deadline = clock_type::now() + 5s;
  bool seen = false;
  while (!seen && clock_type::now() < seen_deadline) {
    seen = ok({"CLIENT", "LIST"}).as_string().find("cmd=blpop") != std::string::npos;
    if (!seen) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(seen);

  server_.kill9();
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
  call_result lost = blocked.get();
  ASSERT_FALSE(lost);
  EXPECT_TRUE(lost.error().text.starts_with("redis: connection lost: ")) << lost.error().text;

  // Calls in the gap fail fast with a clear error, on every connection.
  for (int i = 0; i < 10; ++i) {
    const auto t0 = clock_type::now();
    const std::string e = err({"GET", "k"});
    EXPECT_LT(clock_type::now() - t0, 2000ms);
    EXPECT_TRUE(e.starts_with("redis: cannot connect to unix:" + server_.socket_path() + ": ") ||
                e.starts_with("redis: connection lost: "))
        << e;
  }

  // Back on the same socket: calls work again (the data is gone: no persistence).
  const std::string error = server_.start();
  ASSERT_TRUE(error.empty()) << error;
  const auto deadline = clock_type::now() + 10s;
  bool back = false;
  while (!back && clock_type::now() < deadline) {
    back = static_cast<bool>(call({"PING"}));
    if (!back) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(back);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(ok({"INCR", "after"}), lua_value(i + 1));
  }
  EXPECT_EQ(ok({"GET", "k"}), lua_value());
}

TEST_F(redis_test, IdleConnectionsSurviveARestartWithoutFailedCalls) {
  start_server();
  options o = unix_options();
  o.pool = 4;
  ASSERT_TRUE(spawn(o));
  EXPECT_EQ(ok({"PING"}), lua_value("PONG"));
  server_.stop();  // while idle: every connection is closed by the server
  const std::string error = server_.start();
  ASSERT_TRUE(error.empty()) << error;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ok({"INCR", "n"}), lua_value(i + 1));
}

TEST_F(redis_test, CommandTimeoutResetsTheConnection) {
  start_server();
  options o = unix_options();
  o.pool = 1;
  o.command_timeout = 300ms;
  ASSERT_TRUE(spawn(o));
  const auto t0 = clock_type::now();
  const std::string e = err({"BLPOP", "nothing", 10});
  EXPECT_LT(clock_type::now() - t0, 3s);
  EXPECT_TRUE(e.starts_with("redis: command timed out after 300 ms")) << e;
  EXPECT_EQ(ok({"PING"}), lua_value("PONG"));  // the one connection was reset and works
}

TEST_F(redis_test, NoServerFailsFastWithTheAddress) {
  options o;
  o.unix_path = (server_.dir() / "nobody.sock").string();
  o.pool = 2;
  ASSERT_TRUE(spawn(o));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = clock_type::now();
    const std::string e = err({"GET", "k"});
    EXPECT_LT(clock_type::now() - t0, 1s);
    EXPECT_EQ(e, "redis: cannot connect to unix:" + o.unix_path + ": No such file or directory");
  }
}

TEST_F(redis_test, BadOptionsFailTheSpawnNamingTheKey) {
  auto bad = [&](lua_table t) {
    auto h = rt_->spawn(type_name, values{lua_value(std::move(t))}, {});
    EXPECT_FALSE(h);
    return h ? std::string() : h.error();
  };
  EXPECT_NE(bad(lua_table().set("prot", 6379)).find("unknown option 'prot'"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("port", "x")).find("option 'port' must be an integer from 1 to 65535"),
            std::string::npos);
  EXPECT_NE(bad(lua_table().set("pool", 0)).find("option 'pool'"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("unix", 5)).find("option 'unix' must be a string"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("command_timeout_ms", -1)).find("option 'command_timeout_ms'"), std::string::npos);
  EXPECT_NE(bad(lua_table({"a"})).find("named keys only"), std::string::npos);
  auto h = rt_->spawn(type_name, values{lua_value("x")}, {});
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().find("the options must be a table"), std::string::npos) << h.error();
}

TEST(redis_options, ParseAndRoundTrip) {
  options o = parse_options(lua_value());
  EXPECT_EQ(o.where(), "127.0.0.1:6379");
  EXPECT_EQ(o.pool, 4);
  o.unix_path = "/tmp/x.sock";
  o.pool = 7;
  o.db = 3;
  o.command_timeout = 250ms;
  const options back = parse_options(to_lua(o));
  EXPECT_EQ(back.where(), "unix:/tmp/x.sock");
  EXPECT_EQ(back.pool, 7);
  EXPECT_EQ(back.db, 3);
  EXPECT_EQ(back.command_timeout, 250ms);
  EXPECT_EQ(parse_options(lua_value(lua_table().set("port", 7000.0))).port, 7000);
}

TEST_F(redis_test, TcpWithPasswordAndDb) {
  const std::uint16_t port = test::free_port();
  const std::string error = server_.start(port, "sekret");
  ASSERT_TRUE(error.empty()) << error;
  options o;
  o.port = port;
  o.password = "sekret";
  o.db = 2;
  ASSERT_TRUE(spawn(o));
  EXPECT_EQ(ok({"SET", "k", "in db 2"}), lua_value("OK"));
  EXPECT_EQ(ok({"GET", "k"}), lua_value("in db 2"));

  o.db = 0;
  ASSERT_TRUE(spawn(o, ".redis0"));
  call_result r = call({"GET", "k"}, ".redis0");
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->at(0), lua_value());

  o.password = "wrong";
  ASSERT_TRUE(spawn(o, ".wrongpass"));
  r = call({"GET", "k"}, ".wrongpass");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().text.starts_with("redis: cannot connect to 127.0.0.1:" + std::to_string(port) +
                                         ": AUTH failed: WRONGPASS"))
      << r.error().text;

  o.password.clear();
  ASSERT_TRUE(spawn(o, ".nopass"));
  r = call({"GET", "k"}, ".nopass");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().text.starts_with("redis: NOAUTH")) << r.error().text;
}

}  // namespace
}  // namespace csk::redis
