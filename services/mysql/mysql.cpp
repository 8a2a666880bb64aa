#include "services/mysql/mysql.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "services/io_pool/options.hpp"
#include "services/io_pool/service.hpp"
#include "services/mysql/pool.hpp"

namespace csk::mysql {
namespace {

using actor::context;
using actor::message;
using actor::msg_type;
using actor::task;
using actor::values;

constexpr std::array<std::string_view, 9> known_options = {
    "host", "port", "unix", "user", "password", "database", "pool", "connect_timeout_ms", "query_timeout_ms"};

/// Statements that change the state of the one connection they run on: through a pool
/// they would leak into other callers' statements (each statement autocommits).
constexpr std::array<std::string_view, 11> refused_statements = {
    "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", "USE", "LOCK", "UNLOCK", "SET"};

/// The first word of a statement, upper-cased, after blanks and comments.
std::string first_word(std::string_view sql) {
  std::size_t i = 0;
  for (;;) {
    while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r' || sql[i] == '(')) ++i;
    if (sql.substr(i, 2) == "/*") {
      const std::size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else if (sql.substr(i, 1) == "#" || sql.substr(i, 3) == "-- ") {
      const std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? sql.size() : end + 1;
    } else {
      break;
    }
  }
  std::string word;
  while (i < sql.size() && ((sql[i] >= 'a' && sql[i] <= 'z') || (sql[i] >= 'A' && sql[i] <= 'Z'))) {
    word += static_cast<char>(sql[i] >= 'a' ? sql[i] - 'a' + 'A' : sql[i]);
    ++i;
  }
  return word;
}

/// The "mysql" service. Its handlers only check the message and queue the statement;
/// the pool's threads run it and the answers come back through the inbox
/// (io_pool/service.hpp).
class mysql_service final : public io_pool::pooled_service<request> {
 public:
  void init(context& ctx, const values& args) override {
    const options o = parse_options(io_pool::spawn_options("mysql", args));
    start_pool(ctx, pool_settings(o), [o] { return make_connection(o); });
  }

  request make_job(const values& args) override { return parse_request(args); }
};

}  // namespace

std::string options::where() const { return io_pool::where(host, port, unix_path); }

options parse_options(const lua_value& v) {
  options o;
  const io_pool::option_reader in("mysql", v, known_options);
  in.read("host", o.host);
  in.read("unix", o.unix_path);
  in.read("user", o.user);
  in.read("password", o.password);
  in.read("database", o.database);
  in.read("port", o.port, 1, 65535);
  in.read("pool", o.pool, 1, 64);
  in.read("connect_timeout_ms", o.connect_timeout, 1, 3600000);
  in.read("query_timeout_ms", o.query_timeout, 1, 86400000);
  in.need_address(o.host, o.unix_path);
  return o;
}

lua_value to_lua(const options& o) {
  lua_table t;
  t.set("host", o.host)
      .set("port", o.port)
      .set("unix", o.unix_path)
      .set("user", o.user)
      .set("password", o.password)
      .set("database", o.database)
      .set("pool", o.pool)
      .set("connect_timeout_ms", static_cast<std::int64_t>(o.connect_timeout.count()))
      .set("query_timeout_ms", static_cast<std::int64_t>(o.query_timeout.count()));
  return lua_value(std::move(t));
}

request parse_request(const values& args) {
  const bool known = !args.empty() && args[0].is_string() &&
                     (args[0].as_string() == "query" || args[0].as_string() == "execute" ||
                      args[0].as_string() == "transaction");
  if (!known) {
    throw std::invalid_argument(
        "mysql: the message must be {\"query\", sql}, {\"execute\", sql, params...} or {\"transaction\", {sql, "
        "params...}, ...}, got " +
        (args.empty() ? std::string("nothing") : args[0].debug_string()));
  }
  request req;
  if (args[0].as_string() == "transaction") {
    if (args.size() < 2) throw std::invalid_argument("mysql: transaction needs at least one statement {sql, params...}");
    for (std::size_t i = 1; i < args.size(); ++i) {
      const std::string where = "mysql: transaction statement " + std::to_string(i) + ": ";
      if (!args[i].is_table() || args[i].as_table().array.empty() || !args[i].as_table().hash.empty()) {
        throw std::invalid_argument(where + "must be a list {sql, params...}, got " + args[i].debug_string());
      }
      values step{lua_value("execute")};
      for (const auto& v : args[i].as_table().array) step.push_back(v);
      try {
        req.steps.push_back(parse_request(step));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(where + std::string(e.what()).substr(std::string_view("mysql: ").size()));
      }
    }
    return req;
  }
  req.prepared = args[0].as_string() == "execute";
  if (args.size() < 2 || !args[1].is_string() || args[1].as_string().empty()) {
    throw std::invalid_argument("mysql: " + args[0].as_string() + " needs the SQL text as its first argument");
  }
  req.sql = args[1].as_string();
  if (const std::string word = first_word(req.sql);
      std::find(refused_statements.begin(), refused_statements.end(), std::string_view(word)) !=
      refused_statements.end()) {
    throw std::invalid_argument("mysql: " + word +
                                " is not supported: it changes the state of one pooled connection (every "
                                "statement autocommits; set the database in the service options)");
  }
  if (!req.prepared && args.size() > 2) {
    throw std::invalid_argument("mysql: query takes no parameters (got " + std::to_string(args.size() - 2) +
                                "); use execute with ? placeholders");
  }
  for (std::size_t i = 2; i < args.size(); ++i) {
    const lua_value& a = args[i];
    if (!(a.is_nil() || a.is_boolean() || a.is_integer() || a.is_real() || a.is_string())) {
      throw std::invalid_argument("mysql: parameter " + std::to_string(i - 1) + " is a " + lua_type_name(a.type()) +
                                  "; only nil, booleans, numbers and strings can be bound");
    }
    req.params.push_back(a);
  }
  return req;
}

void register_types(actor::runtime& rt) {
  rt.register_type(type_name, [] { return std::make_unique<mysql_service>(); });
}

}  // namespace csk::mysql
