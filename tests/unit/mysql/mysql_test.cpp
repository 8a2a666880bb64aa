// csk::mysql against a real mariadbd that the suite starts itself: mariadb-install-db
// into a temp dir, then mariadbd on a unix socket in that dir and a free 127.0.0.1
// port; waits (polling a connection, with a deadline) until it answers, creates a test
// database and user, and kills it and removes the dir at the end. One server for the
// whole suite (SetUpTestSuite); the restart test kills and restarts it on the same
// datadir. Missing binaries fail the suite with a hint to run tools/install-deps.sh.
// Covers: value mapping both ways (text and binary protocol), binary-safe strings,
// server errors, bad messages and options, concurrency over a pool of 4, query
// timeouts, the server killed and restarted, TCP, wrong passwords, no server.

#include <mysql.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/actor/runtime.hpp"
#include "services/mysql/mysql.hpp"
#include "tests/support/server_process.hpp"

namespace csk::mysql {
namespace {

using namespace std::chrono_literals;
using actor::call_result;
using actor::context;
using actor::message;
using actor::task;
using actor::values;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

const std::string test_db = "csktest";
const std::string test_user = "csk";
const std::string test_password = "pa'ss\"word";

/// mariadbd and its tools: on PATH, or where the Debian package puts them.
std::string find_program(const std::string& name) { return test::find_program(name, {"/usr/sbin", "/usr/bin"}); }

/// One mariadbd child process with its datadir in a temp dir.
class mariadb_server {
 public:
  mariadb_server() { fs::create_directories(dir() / "tmp"); }

  /// The server's tmpdir: its own, so parallel test processes never share temp tables.
  std::string tmp_dir() const { return (dir() / "tmp").string(); }
  std::string socket_path() const { return (dir() / "mysql.sock").string(); }
  std::uint16_t port() const { return port_; }
  const fs::path& dir() const { return proc_.dir(); }

  /// A new datadir (mariadb-install-db), the server started, the test database and
  /// user created. Returns an error text, empty on success.
  std::string create() {
    const std::string install = find_program("mariadb-install-db");
    if (install.empty() || find_program("mariadbd").empty()) {
      return "mariadb-install-db / mariadbd not found (PATH, /usr/sbin, /usr/bin): run tools/install-deps.sh as root "
             "to install the Debian package mariadb-server";
    }
    std::vector<std::string> args = {install,
                                     "--no-defaults",
                                     "--datadir=" + (dir() / "data").string(),
                                     "--auth-root-authentication-method=normal",
                                     "--skip-test-db",
                                     "--skip-name-resolve",
                                     "--tmpdir=" + tmp_dir()};
    if (::geteuid() == 0) args.emplace_back("--user=root");
    const fs::path log = dir() / "install.log";
    const pid_t pid = test::spawn_process(args, log);
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return "mariadb-install-db failed; its output:\n" + test::read_file(log);
    }
    port_ = test::free_port();
    if (std::string e = start(); !e.empty()) return e;
    return admin({"CREATE DATABASE " + test_db,
                  "CREATE USER '" + test_user + "'@'localhost' IDENTIFIED BY 'pa''ss\"word'",
                  "CREATE USER '" + test_user + "'@'127.0.0.1' IDENTIFIED BY 'pa''ss\"word'",
                  "GRANT ALL ON " + test_db + ".* TO '" + test_user + "'@'localhost'",
                  "GRANT ALL ON " + test_db + ".* TO '" + test_user + "'@'127.0.0.1'"});
  }

  /// Starts mariadbd on the existing datadir; waits until root can connect.
  std::string start() {
    std::vector<std::string> args = {find_program("mariadbd"),
                                     "--no-defaults",
                                     "--datadir=" + (dir() / "data").string(),
                                     "--socket=" + socket_path(),
                                     "--pid-file=" + (dir() / "mariadbd.pid").string(),
                                     "--log-error=" + (dir() / "error.log").string(),
                                     "--bind-address=127.0.0.1",
                                     "--port=" + std::to_string(port_),
                                     "--skip-name-resolve",
                                     "--innodb-buffer-pool-size=32M",
                                     "--innodb-flush-log-at-trx-commit=2",
                                     "--tmpdir=" + tmp_dir()};
    if (::geteuid() == 0) args.emplace_back("--user=root");
    return proc_.start(std::move(args), dir() / "mariadbd.out", [this] { return admin({}).empty(); }, 60s, 20ms,
                       dir() / "error.log");
  }

  /// Runs statements as root over the socket; an error text, empty on success.
  std::string admin(const std::vector<std::string>& sql) const {
    MYSQL* m = mysql_init(nullptr);
    const unsigned int timeout = 2;
    (void)mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    std::string error;
    if (mysql_real_connect(m, "localhost", "root", "", nullptr, 0, socket_path().c_str(), 0) == nullptr) {
      error = std::string("connect: ") + mysql_error(m);
    } else {
      for (const auto& s : sql) {
        if (mysql_real_query(m, s.data(), s.size()) != 0) {
          error = s + ": " + mysql_error(m);
          break;
        }
      }
    }
    mysql_close(m);
    return error;
  }

  void signal(int sig) const { proc_.signal(sig); }

  /// After SIGSTOP: true once every thread of the server is stopped (the signal is
  /// asynchronous: a thread may still answer a query just after kill() returned).
  bool wait_stopped() const {
    const auto deadline = clock_type::now() + 5s;
    while (clock_type::now() < deadline) {
      bool all = true;
      std::error_code ec;
      for (const auto& task : fs::directory_iterator(fs::path("/proc") / std::to_string(proc_.pid()) / "task", ec)) {
        const std::string stat = test::read_file(task.path() / "stat");
        const std::size_t close = stat.rfind(')');
        if (close == std::string::npos || close + 2 >= stat.size() ||
            (stat[close + 2] != 'T' && stat[close + 2] != 't')) {
          all = false;
          break;
        }
      }
      if (all && !ec) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  void kill9() { proc_.kill9(); }

 private:
  test::server_process proc_{"csk_mysql"};
  std::uint16_t port_ = 0;
};

/// Executes an INSERT with parameters N times; answers the number that succeeded.
class insert_caller final : public actor::service {
 public:
  task<values> handle(context& ctx, message& m) override {
    const std::int64_t who = m.args.at(0).as_integer();
    const std::int64_t n = m.args.at(1).as_integer();
    std::int64_t ok = 0;
    const std::string sql = "INSERT INTO hits (who, seq) VALUES (?, ?)";
    for (std::int64_t i = 0; i < n; ++i) {
      values msg{lua_value("execute"), lua_value(sql), lua_value(who), lua_value(i)};
      auto op = ctx.call(".db", std::move(msg));
      call_result r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      ++ok;
    }
    co_return values{ok};
  }
};

class mysql_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mysql_library_init(0, nullptr, nullptr);
    server_ = new mariadb_server();
    setup_error_ = server_->create();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    actor::runtime_options o;
    o.threads = 2;
    rt_ = std::make_unique<actor::runtime>(o);
    register_types(*rt_);
    rt_->start();
  }
  void TearDown() override {
    if (rt_) rt_->shutdown();
    rt_.reset();
  }

  static options unix_options() {
    options o;
    o.unix_path = server_->socket_path();
    o.user = test_user;
    o.password = test_password;
    o.database = test_db;
    return o;
  }

  result<actor::handle_t, std::string> spawn(const options& o, const std::string& name = ".db") {
    return rt_->spawn(type_name, values{to_lua(o)}, {name});
  }

  call_result call(values msg, const std::string& to = ".db") {
    auto f = rt_->call(to, std::move(msg), 30s);
    if (f.wait_for(40s) != std::future_status::ready) throw std::runtime_error("call never completed");
    return f.get();
  }
  /// The reply's single value; fails the test on an error.
  lua_value ok(values msg, const std::string& to = ".db") {
    const std::string shown = lua_value(lua_table(msg)).debug_string();
    call_result r = call(std::move(msg), to);
    EXPECT_TRUE(r) << shown << ": " << (r ? std::string() : r.error().text);
    if (!r) return lua_value("<error>");
    EXPECT_EQ(r->size(), 1u) << shown;
    return r->empty() ? lua_value() : r->front();
  }
  std::string err(values msg, const std::string& to = ".db") {
    call_result r = call(std::move(msg), to);
    EXPECT_FALSE(r);
    return r ? std::string("<no error>") : r.error().text;
  }
  /// rows of a result table.
  static std::vector<lua_value> rows(const lua_value& v) {
    const lua_value* r = v.is_table() ? v.as_table().find(lua_value("rows")) : nullptr;
    EXPECT_TRUE(r != nullptr && r->is_table()) << v.debug_string();
    return r != nullptr && r->is_table() ? r->as_table().array : std::vector<lua_value>{};
  }
  static lua_value field(const lua_value& row, const char* key) {
    const lua_value* f = row.is_table() ? row.as_table().find(lua_value(key)) : nullptr;
    return f != nullptr ? *f : lua_value();
  }
  static lua_value status(std::int64_t affected, std::int64_t insert_id) {
    return lua_value(lua_table().set("affected_rows", affected).set("insert_id", insert_id));
  }

  static mariadb_server* server_;
  static std::string setup_error_;
  std::unique_ptr<actor::runtime> rt_;
};

mariadb_server* mysql_test::server_ = nullptr;
std::string mysql_test::setup_error_;

TEST_F(mysql_test, ValuesBothWaysInBothProtocols) {
  ASSERT_TRUE(spawn(unix_options()));
  ASSERT_TRUE(ok({"query", "CREATE TABLE kinds (id BIGINT PRIMARY KEY AUTO_INCREMENT, s VARCHAR(100), "
                           "b BLOB, d DOUBLE, n DECIMAL(20,3), u BIGINT UNSIGNED, f TINYINT, big BIGINT, "
                           "t DATETIME)"})
                  .is_table());
  const std::string quoted("it's \"quoted\"\\ ; DROP TABLE kinds; --\0end", 41);
  const std::string binary("\0\xff\x01'\"\n", 6);
  const std::int64_t big = std::int64_t{1} << 62;
  const std::string insert = "INSERT INTO kinds (s, b, d, n, u, f, big, t) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
  EXPECT_EQ(ok({"execute", insert, quoted, binary, 2.5, "12345.678", "18446744073709551615", true, big,
                "2026-11-25 18:30:00"}),
            status(1, 1));
  EXPECT_EQ(ok({"execute", insert, nullptr, nullptr, nullptr, nullptr, nullptr, false, -big, nullptr}), status(1, 2));

  const std::string select = "SELECT id, s, b, d, n, u, f, big, t FROM kinds ORDER BY id";
  for (const char* how : {"query", "execute"}) {
    SCOPED_TRACE(how);
    const lua_value r = ok({how, select});
    const lua_value* cols = r.as_table().find(lua_value("columns"));
    ASSERT_NE(cols, nullptr);
    EXPECT_EQ(*cols, lua_value(lua_table({"id", "s", "b", "d", "n", "u", "f", "big", "t"})));
    const auto rs = rows(r);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(field(rs[0], "id"), lua_value(1));
    EXPECT_EQ(field(rs[0], "s"), lua_value(quoted));
    EXPECT_EQ(field(rs[0], "b"), lua_value(binary));
    EXPECT_EQ(field(rs[0], "d"), lua_value(2.5));
    EXPECT_TRUE(field(rs[0], "d").is_real());
    EXPECT_EQ(field(rs[0], "n"), lua_value("12345.678"));
    EXPECT_EQ(field(rs[0], "u"), lua_value("18446744073709551615"));  // above 2^63-1: text
    EXPECT_EQ(field(rs[0], "f"), lua_value(1));
    EXPECT_EQ(field(rs[0], "big"), lua_value(big));
    EXPECT_TRUE(field(rs[0], "big").is_integer());
    EXPECT_EQ(field(rs[0], "t"), lua_value("2026-11-25 18:30:00"));
    // NULL: the key is absent (nil in Lua).
    EXPECT_EQ(rs[1], lua_value(lua_table().set("id", 2).set("f", 0).set("big", -big)));
  }
  // Parameters in a WHERE, including a NULL comparison and a string with a quote.
  const lua_value one = ok({"execute", "SELECT id FROM kinds WHERE s = ? AND big = ?", quoted, big});
  EXPECT_EQ(rows(one), std::vector<lua_value>{lua_value(lua_table().set("id", 1))});
  EXPECT_TRUE(rows(ok({"execute", "SELECT id FROM kinds WHERE s = ?", "it's"})).empty());
  EXPECT_EQ(rows(ok({"execute", "SELECT ? AS a, ? AS b", nullptr, 7})),
            std::vector<lua_value>{lua_value(lua_table().set("b", 7))});
  // Statements without a result; the cached statement runs again with new parameters.
  EXPECT_EQ(ok({"execute", "UPDATE kinds SET f = ? WHERE id > ?", 5, 0}), status(2, 0));
  EXPECT_EQ(ok({"execute", "UPDATE kinds SET f = ? WHERE id > ?", 5, 0}), status(0, 0));
  EXPECT_EQ(ok({"execute", "DELETE FROM kinds WHERE id = ?", 2}), status(1, 0));
  EXPECT_EQ(ok({"query", "DROP TABLE kinds"}), status(0, 0));
}

TEST_F(mysql_test, QueryAndExecuteGiveTheSameValuesForEveryType) {
  ASSERT_TRUE(spawn(unix_options()));
  ok({"query", "CREATE TABLE every (i TINYINT, iu TINYINT UNSIGNED, sm SMALLINT, me MEDIUMINT, y YEAR, "
               "f FLOAT, d DOUBLE, de DECIMAL(30,10), bt BIT(12), e ENUM('a','b'), st SET('x','y'), j JSON, "
               "da DATE, ti TIME(3), ts TIMESTAMP(6) NULL, ch CHAR(3), vb VARBINARY(8), tx TEXT)"});
  ok({"query", "INSERT INTO every VALUES (-128, 255, -32768, 8388607, 2024, 0.5, -1.25e300, "
               "'-12345678901234567890.0123456789', b'101000000101', 'b', 'x,y', '{\"k\": [1, 2]}', "
               "'2026-02-28', '-838:59:59.000', '2026-11-25 18:30:00.123456', 'abc', x'00ff', 'text')"});
  const lua_value q = ok({"query", "SELECT * FROM every"});
  const lua_value x = ok({"execute", "SELECT * FROM every"});
  EXPECT_EQ(q, x) << q.debug_string() << "\n" << x.debug_string();
  const auto rs = rows(q);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(field(rs[0], "i"), lua_value(-128));
  EXPECT_EQ(field(rs[0], "iu"), lua_value(255));
  EXPECT_EQ(field(rs[0], "y"), lua_value(2024));
  EXPECT_EQ(field(rs[0], "f"), lua_value(0.5));
  EXPECT_EQ(field(rs[0], "d"), lua_value(-1.25e300));
  EXPECT_EQ(field(rs[0], "de"), lua_value("-12345678901234567890.0123456789"));
  EXPECT_EQ(field(rs[0], "bt"), lua_value(std::string("\x0a\x05", 2)));
  EXPECT_EQ(field(rs[0], "e"), lua_value("b"));
  EXPECT_EQ(field(rs[0], "st"), lua_value("x,y"));
  EXPECT_EQ(field(rs[0], "da"), lua_value("2026-02-28"));
  EXPECT_EQ(field(rs[0], "ti"), lua_value("-838:59:59.000"));
  EXPECT_EQ(field(rs[0], "ts"), lua_value("2026-11-25 18:30:00.123456"));
  EXPECT_EQ(field(rs[0], "ch"), lua_value("abc"));
  EXPECT_EQ(field(rs[0], "vb"), lua_value(std::string("\0\xff", 2)));
  EXPECT_EQ(field(rs[0], "tx"), lua_value("text"));
  ok({"query", "DROP TABLE every"});
}

TEST_F(mysql_test, LongValuesAndEmptyResults) {
  ASSERT_TRUE(spawn(unix_options()));
  ok({"query", "CREATE TABLE blobs (id INT PRIMARY KEY, v LONGBLOB, s TEXT)"});
  std::string blob(300000, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7);
  const std::string text(1000, 'x');
  EXPECT_EQ(ok({"execute", "INSERT INTO blobs VALUES (?, ?, ?)", 1, blob, text}), status(1, 0));
  EXPECT_EQ(ok({"execute", "INSERT INTO blobs VALUES (?, ?, ?)", 2, "", "short"}), status(1, 0));
  for (const char* how : {"query", "execute"}) {
    SCOPED_TRACE(how);
    const auto rs = rows(ok({how, "SELECT id, v, s FROM blobs ORDER BY id"}));
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(field(rs[0], "v").as_string().size(), blob.size());
    EXPECT_EQ(field(rs[0], "v"), lua_value(blob));
    EXPECT_EQ(field(rs[0], "s"), lua_value(text));
    EXPECT_EQ(field(rs[1], "v"), lua_value(""));
    EXPECT_EQ(field(rs[1], "s"), lua_value("short"));
    const lua_value none = ok({how, "SELECT id FROM blobs WHERE id < 0"});
    EXPECT_EQ(none, lua_value(lua_table()
                                  .set("rows", lua_value(lua_table()))
                                  .set("columns", lua_value(lua_table({"id"})))));
  }
  ok({"query", "DROP TABLE blobs"});
}

TEST_F(mysql_test, ServerErrorsAndBadMessages) {
  ASSERT_TRUE(spawn(unix_options()));
  ok({"query", "CREATE TABLE uniq (id INT PRIMARY KEY, v INT)"});
  std::string e = err({"query", "SELEC 1"});
  EXPECT_TRUE(e.starts_with("mysql: 1064 42000: You have an error in your SQL syntax")) << e;
  e = err({"execute", "SELEC ?", 1});
  EXPECT_TRUE(e.starts_with("mysql: 1064 42000: You have an error in your SQL syntax")) << e;
  EXPECT_EQ(ok({"execute", "INSERT INTO uniq VALUES (?, ?)", 1, 1}), status(1, 0));
  EXPECT_EQ(err({"execute", "INSERT INTO uniq VALUES (?, ?)", 1, 2}),
            "mysql: 1062 23000: Duplicate entry '1' for key 'PRIMARY'");
  EXPECT_EQ(err({"query", "INSERT INTO uniq VALUES (1, 3)"}), "mysql: 1062 23000: Duplicate entry '1' for key 'PRIMARY'");
  EXPECT_EQ(err({"query", "SELECT * FROM nosuchtable"}), "mysql: 1146 42S02: Table 'csktest.nosuchtable' doesn't exist");
  EXPECT_EQ(err({"execute", "INSERT INTO uniq VALUES (?, ?)", 1}),
            "mysql: the statement has 2 placeholders, got 1 parameters");
  // Refused before reaching the server.
  EXPECT_EQ(err({"execute", "SELECT ?", lua_value(lua_table({1, 2}))}),
            "mysql: parameter 1 is a table; only nil, booleans, numbers and strings can be bound");
  EXPECT_EQ(err({"query", "SELECT ?", 1}), "mysql: query takes no parameters (got 1); use execute with ? placeholders");
  EXPECT_EQ(err({"query"}), "mysql: query needs the SQL text as its first argument");
  EXPECT_TRUE(err({"select", "SELECT 1"}).starts_with("mysql: the message must be {\"query\", sql}, {\"execute\""));
  EXPECT_TRUE(err({}).starts_with("mysql: the message must be"));
  // Multiple statements in one query are refused by the server (no multi-statement flag).
  e = err({"query", "SELECT 1; DROP TABLE uniq"});
  EXPECT_TRUE(e.starts_with("mysql: 1064 42000")) << e;
  // Statements that would change one pooled connection's state are refused.
  EXPECT_EQ(err({"query", "BEGIN"}),
            "mysql: BEGIN is not supported: it changes the state of one pooled connection (every statement "
            "autocommits; set the database in the service options)");
  EXPECT_TRUE(err({"query", " /* x */ start transaction"}).starts_with("mysql: START is not supported")) ;
  EXPECT_TRUE(err({"execute", "set @a = ?", 1}).starts_with("mysql: SET is not supported"));
  EXPECT_TRUE(err({"query", "USE mysql"}).starts_with("mysql: USE is not supported"));
  // The connections are fine afterwards.
  EXPECT_EQ(rows(ok({"execute", "SELECT v FROM uniq WHERE id = ?", 1})),
            std::vector<lua_value>{lua_value(lua_table().set("v", 1))});
  ok({"query", "DROP TABLE uniq"});
}

TEST_F(mysql_test, StoredProcedureResultsLeaveTheConnectionUsable) {
  options o = unix_options();
  o.pool = 1;  // every statement on the same connection
  ASSERT_TRUE(spawn(o));
  ok({"query", "CREATE PROCEDURE twice(IN x INT) SELECT x * 2 AS y"});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rows(ok({"execute", "CALL twice(?)", i})),
              std::vector<lua_value>{lua_value(lua_table().set("y", i * 2))});
    EXPECT_EQ(rows(ok({"query", "CALL twice(5)"})), std::vector<lua_value>{lua_value(lua_table().set("y", 10))});
    EXPECT_EQ(rows(ok({"execute", "SELECT ? AS z", i})), std::vector<lua_value>{lua_value(lua_table().set("z", i))});
  }
  ok({"query", "DROP PROCEDURE twice"});
}

TEST_F(mysql_test, TransactionsCommitAllOrNothing) {
  options o = unix_options();
  o.pool = 1;  // the failed transaction and the next statements share the connection
  ASSERT_TRUE(spawn(o));
  ok({"query", "CREATE TABLE tx (id INT PRIMARY KEY, v INT)"});
  const std::string insert = "INSERT INTO tx VALUES (?, ?)";
  const lua_value r = ok({"transaction", lua_value(lua_table({insert, 1, 10})),
                          lua_value(lua_table({"UPDATE tx SET v = v + ? WHERE id = ?", 5, 1})),
                          lua_value(lua_table({"SELECT v FROM tx WHERE id = ?", 1}))});
  ASSERT_TRUE(r.is_table()) << r.debug_string();
  ASSERT_EQ(r.as_table().array.size(), 3u) << r.debug_string();
  EXPECT_EQ(r.as_table().array[0], status(1, 0));
  EXPECT_EQ(r.as_table().array[1], status(1, 0));
  EXPECT_EQ(rows(r.as_table().array[2]), std::vector<lua_value>{lua_value(lua_table().set("v", 15))});

  // The second statement fails: the first is rolled back.
  EXPECT_EQ(err({"transaction", lua_value(lua_table({insert, 2, 20})), lua_value(lua_table({insert, 1, 0}))}),
            "mysql: transaction statement 2: 1062 23000: Duplicate entry '1' for key 'PRIMARY'");
  EXPECT_EQ(rows(ok({"query", "SELECT COUNT(*) AS n FROM tx"})),
            std::vector<lua_value>{lua_value(lua_table().set("n", 1))});
  // The connection is back in autocommit: a row written now is seen by another pool.
  EXPECT_EQ(ok({"execute", insert, 3, 30}), status(1, 0));
  ASSERT_TRUE(spawn(unix_options(), ".db2"));
  EXPECT_EQ(rows(ok({"query", "SELECT COUNT(*) AS n FROM tx"}, ".db2")),
            std::vector<lua_value>{lua_value(lua_table().set("n", 2))});

  // Refused before reaching the server.
  EXPECT_EQ(err({"transaction"}), "mysql: transaction needs at least one statement {sql, params...}");
  EXPECT_EQ(err({"transaction", "SELECT 1"}),
            "mysql: transaction statement 1: must be a list {sql, params...}, got \"SELECT 1\"");
  EXPECT_TRUE(err({"transaction", lua_value(lua_table({insert, 4, 4})), lua_value(lua_table({"COMMIT"}))})
                  .starts_with("mysql: transaction statement 2: COMMIT is not supported"));
  EXPECT_EQ(err({"transaction", lua_value(lua_table({insert, lua_value(lua_table())}))}),
            "mysql: transaction statement 1: parameter 1 is a table; only nil, booleans, numbers and strings can be "
            "bound");
  EXPECT_EQ(rows(ok({"query", "SELECT COUNT(*) AS n FROM tx"})),
            std::vector<lua_value>{lua_value(lua_table().set("n", 2))});
  ok({"query", "DROP TABLE tx"});
}

TEST_F(mysql_test, ManyCallersOverAPoolOfFour) {
  options o = unix_options();
  o.pool = 4;
  ASSERT_TRUE(spawn(o));
  ok({"query", "CREATE TABLE hits (id INT PRIMARY KEY AUTO_INCREMENT, who INT, seq INT, conn BIGINT DEFAULT "
               "(CONNECTION_ID()))"});
  constexpr int callers = 8;
  constexpr int each = 60;
  std::vector<std::future<call_result>> runs;
  for (int i = 0; i < callers; ++i) {
    auto h = rt_->spawn(std::make_unique<insert_caller>());
    ASSERT_TRUE(h);
    runs.push_back(rt_->call(*h, values{i, each}, 60s));
  }
  for (auto& f : runs) {
    ASSERT_EQ(f.wait_for(90s), std::future_status::ready);
    call_result r = f.get();
    ASSERT_TRUE(r) << r.error().text;
    EXPECT_EQ(r->at(0), lua_value(each));
  }
  EXPECT_EQ(rows(ok({"query", "SELECT COUNT(*) AS n, COUNT(DISTINCT who, seq) AS d FROM hits"})),
            std::vector<lua_value>{lua_value(lua_table().set("n", callers * each).set("d", callers * each))});
  // The work was spread over the pool's four connections (and no more).
  const auto conns = rows(ok({"query", "SELECT COUNT(DISTINCT conn) AS c FROM hits"}));
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_GE(field(conns[0], "c").as_integer(), 2);
  EXPECT_LE(field(conns[0], "c").as_integer(), 4);
  const auto mine = rows(ok({"execute", "SELECT COUNT(*) AS c FROM information_schema.processlist WHERE user = ?",
                             test_user}));
  EXPECT_EQ(mine, std::vector<lua_value>{lua_value(lua_table().set("c", 4))});
  ok({"query", "DROP TABLE hits"});
}

TEST_F(mysql_test, OneWaySendsAreExecuted) {
  ASSERT_TRUE(spawn(unix_options()));
  ok({"query", "CREATE TABLE sent (v INT)"});
  ASSERT_TRUE(rt_->send(".db", values{"execute", "INSERT INTO sent VALUES (?)", 42}));
  const auto deadline = clock_type::now() + 10s;
  std::vector<lua_value> rs;
  while (clock_type::now() < deadline && rs.empty()) {
    rs = rows(ok({"query", "SELECT v FROM sent"}));
    if (rs.empty()) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(rs, std::vector<lua_value>{lua_value(lua_table().set("v", 42))});
  ok({"query", "DROP TABLE sent"});
}

TEST_F(mysql_test, QueryTimeoutResetsTheConnection) {
  options o = unix_options();
  o.pool = 1;
  o.query_timeout = 300ms;
  ASSERT_TRUE(spawn(o));
  const auto t0 = clock_type::now();
  const std::string e = err({"query", "SELECT SLEEP(5)"});
  EXPECT_LT(clock_type::now() - t0, 2s);
  EXPECT_TRUE(e.starts_with("mysql: query timed out after 300 ms (unix:" + server_->socket_path() + ")")) << e;
  EXPECT_EQ(rows(ok({"execute", "SELECT ? + 1 AS x", 1})), std::vector<lua_value>{lua_value(lua_table().set("x", 2))});
}

TEST_F(mysql_test, FrozenServerTimesOutAndRecovers) {
  options o = unix_options();
  o.pool = 1;
  o.query_timeout = 500ms;
  o.connect_timeout = 1000ms;
  ASSERT_TRUE(spawn(o));
  EXPECT_EQ(rows(ok({"query", "SELECT 1 AS x"})), std::vector<lua_value>{lua_value(lua_table().set("x", 1))});
  struct thaw {
    ~thaw() { server_->signal(SIGCONT); }
  } thaw_at_exit;
  server_->signal(SIGSTOP);
  ASSERT_TRUE(server_->wait_stopped());
  // On the open connection: the watchdog ends the statement.
  auto t0 = clock_type::now();
  std::string e = err({"query", "SELECT 2"});
  EXPECT_LT(clock_type::now() - t0, 1500ms);
  EXPECT_TRUE(e.starts_with("mysql: query timed out after 500 ms")) << e;
  // A new connection to a frozen server: the connect gives up by itself
  // (connect_timeout_ms, in whole seconds).
  t0 = clock_type::now();
  e = err({"query", "SELECT 3"});
  EXPECT_LT(clock_type::now() - t0, 3s);
  EXPECT_TRUE(e.starts_with("mysql: cannot connect to unix:" + server_->socket_path() + ": ")) << e;
  server_->signal(SIGCONT);
  const auto deadline = clock_type::now() + 10s;
  bool back = false;
  while (!back && clock_type::now() < deadline) {
    back = static_cast<bool>(call({"query", "SELECT 4"}));
    if (!back) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(back);
}

TEST_F(mysql_test, ShutdownInterruptsAStatementInFlight) {
  ASSERT_TRUE(spawn(unix_options()));
  auto blocked = rt_->call(".db", values{"query", "SELECT SLEEP(30)"}, 40s);
  const auto seen_deadline = clock_type::now() + 5s;
  bool seen = false;
  while (!seen && clock_type::now() < seen_deadline) {
    seen = !rows(ok({"query", "SELECT id FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)'"})).empty();
    if (!seen) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(seen);
  const auto t0 = clock_type::now();
  rt_->shutdown();
  EXPECT_LT(clock_type::now() - t0, 5s);
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(blocked.get());
  rt_.reset();
}

TEST_F(mysql_test, TcpAndCredentials) {
  options o;
  o.host = "127.0.0.1";
  o.port = server_->port();
  o.user = test_user;
  o.password = test_password;
  o.database = test_db;
  o.pool = 2;
  ASSERT_TRUE(spawn(o));
  EXPECT_EQ(rows(ok({"execute", "SELECT DATABASE() AS db, ? AS s", "tcp"})),
            std::vector<lua_value>{lua_value(lua_table().set("db", test_db).set("s", "tcp"))});

  o.password = "wrong";
  ASSERT_TRUE(spawn(o, ".wrong"));
  const std::string e = err({"query", "SELECT 1"}, ".wrong");
  EXPECT_TRUE(e.starts_with("mysql: cannot connect to 127.0.0.1:" + std::to_string(o.port) +
                            ": 1045 28000: Access denied for user 'csk'@'127.0.0.1'"))
      << e;
}

TEST_F(mysql_test, NoServerFailsFastWithTheAddress) {
  options o = unix_options();
  o.unix_path = (server_->dir() / "nobody.sock").string();
  o.pool = 2;
  ASSERT_TRUE(spawn(o));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = clock_type::now();
    const std::string e = err({"query", "SELECT 1"});
    EXPECT_LT(clock_type::now() - t0, 1s);
    EXPECT_TRUE(e.starts_with("mysql: cannot connect to unix:" + o.unix_path + ": 2002 HY000: ")) << e;
  }
}

TEST_F(mysql_test, BadOptionsFailTheSpawnNamingTheKey) {
  auto bad = [&](lua_table t) {
    auto h = rt_->spawn(type_name, values{lua_value(std::move(t))}, {});
    EXPECT_FALSE(h);
    return h ? std::string() : h.error();
  };
  EXPECT_NE(bad(lua_table().set("prot", 3306)).find("unknown option 'prot'"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("port", "x")).find("option 'port' must be an integer from 1 to 65535"),
            std::string::npos);
  EXPECT_NE(bad(lua_table().set("pool", 0)).find("option 'pool'"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("unix", 5)).find("option 'unix' must be a string"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("user", true)).find("option 'user' must be a string"), std::string::npos);
  EXPECT_NE(bad(lua_table().set("query_timeout_ms", -1)).find("option 'query_timeout_ms'"), std::string::npos);
  EXPECT_NE(bad(lua_table({"a"})).find("named keys only"), std::string::npos);
  auto h = rt_->spawn(type_name, values{lua_value("x")}, {});
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().find("the options must be a table"), std::string::npos) << h.error();
}

// Last: kills the suite's server and starts it again on the same datadir and socket.
TEST_F(mysql_test, ServerKilledThenRestarted) {
  options o = unix_options();
  o.pool = 3;
  o.query_timeout = 3000ms;
  ASSERT_TRUE(spawn(o));
  ok({"query", "CREATE TABLE kept (v INT)"});
  EXPECT_EQ(ok({"execute", "INSERT INTO kept VALUES (?)", 1}), status(1, 0));

  // A statement in flight when the server dies.
  auto blocked = rt_->call(".db", values{"query", "SELECT SLEEP(20)"}, 20s);
  const auto seen_deadline = clock_type::now() + 5s;
  bool seen = false;
  while (!seen && clock_type::now() < seen_deadline) {
    seen = !rows(ok({"query", "SELECT id FROM information_schema.processlist WHERE info = 'SELECT SLEEP(20)'"})).empty();
    if (!seen) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(seen);

  server_->kill9();
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
  call_result lost = blocked.get();
  ASSERT_FALSE(lost);
  EXPECT_TRUE(lost.error().text.starts_with("mysql: connection lost: ")) << lost.error().text;

  // Calls in the gap fail fast with a clear error, on every connection.
  for (int i = 0; i < 10; ++i) {
    const auto t0 = clock_type::now();
    const std::string e = err({"execute", "SELECT ?", i});
    EXPECT_LT(clock_type::now() - t0, 2000ms);
    EXPECT_TRUE(e.starts_with("mysql: cannot connect to unix:" + server_->socket_path() + ": ") ||
                e.starts_with("mysql: connection lost: "))
        << e;
  }

  // Back on the same datadir and socket: later calls work, the data is there.
  const std::string error = server_->start();
  ASSERT_TRUE(error.empty()) << error;
  const auto deadline = clock_type::now() + 10s;
  bool back = false;
  while (!back && clock_type::now() < deadline) {
    back = static_cast<bool>(call({"query", "SELECT 1"}));
    if (!back) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(back);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(ok({"execute", "INSERT INTO kept VALUES (?)", i + 2}), status(1, 0));
  }
  EXPECT_EQ(rows(ok({"execute", "SELECT COUNT(*) AS n, SUM(v) AS s FROM kept WHERE v > ?", 0})),
            std::vector<lua_value>{lua_value(lua_table().set("n", 21).set("s", "231"))});
  ok({"query", "DROP TABLE kept"});
}

TEST(mysql_options, ParseAndRoundTrip) {
  options o = parse_options(lua_value());
  EXPECT_EQ(o.where(), "127.0.0.1:3306");
  EXPECT_EQ(o.pool, 4);
  EXPECT_EQ(o.connect_timeout, 2000ms);
  EXPECT_EQ(o.query_timeout, 10000ms);
  o.unix_path = "/tmp/x.sock";
  o.pool = 7;
  o.user = "u";
  o.password = "p";
  o.database = "d";
  o.query_timeout = 250ms;
  const options back = parse_options(to_lua(o));
  EXPECT_EQ(back.where(), "unix:/tmp/x.sock");
  EXPECT_EQ(back.pool, 7);
  EXPECT_EQ(back.user, "u");
  EXPECT_EQ(back.password, "p");
  EXPECT_EQ(back.database, "d");
  EXPECT_EQ(back.query_timeout, 250ms);
  EXPECT_EQ(parse_options(lua_value(lua_table().set("port", 3307.0))).port, 3307);
}

TEST(mysql_request, Parse) {
  request r = parse_request(values{"execute", "SELECT ?, ?", nullptr, true});
  EXPECT_TRUE(r.prepared);
  EXPECT_EQ(r.sql, "SELECT ?, ?");
  ASSERT_EQ(r.params.size(), 2u);
  EXPECT_TRUE(r.params[0].is_nil());
  r = parse_request(values{"query", "SELECT 1"});
  EXPECT_FALSE(r.prepared);
  EXPECT_TRUE(r.params.empty());
  r = parse_request(values{"transaction", lua_value(lua_table({"SELECT ?", nullptr})), lua_value(lua_table({"SELECT 2"}))});
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_TRUE(r.steps[0].prepared);
  EXPECT_EQ(r.steps[0].params.size(), 1u);
  EXPECT_EQ(r.steps[1].sql, "SELECT 2");
}

}  // namespace
}  // namespace csk::mysql
