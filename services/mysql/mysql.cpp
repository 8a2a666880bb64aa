#include "services/mysql/mysql.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log/log.hpp"
#include "services/mysql/pool.hpp"

namespace csk::mysql {
namespace {

using actor::context;
using actor::handle_t;
using actor::message;
using actor::msg_type;
using actor::reply_token;
using actor::task;
using actor::values;

constexpr std::array<std::string_view, 9> known_options = {
    "host", "port", "unix", "user", "password", "database", "pool", "connect_timeout_ms", "query_timeout_ms"};

[[noreturn]] void bad_option(std::string_view key, std::string_view want, const lua_value& got) {
  throw std::invalid_argument("mysql: option '" + std::string(key) + "' must be " + std::string(want) + ", got " +
                              got.debug_string());
}

void read_string(const lua_table& t, std::string_view key, std::string& out) {
  const lua_value* v = t.find(lua_value(key));
  if (v == nullptr) return;
  if (!v->is_string()) bad_option(key, "a string", *v);
  out = v->as_string();
}

std::int64_t read_int(const lua_table& t, std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t dflt) {
  const lua_value* v = t.find(lua_value(key));
  if (v == nullptr) return dflt;
  const std::string want = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  std::int64_t n = 0;
  if (v->is_integer()) {
    n = v->as_integer();
  } else if (v->is_real() && std::trunc(v->as_real()) == v->as_real() && std::abs(v->as_real()) < 1e15) {
    n = static_cast<std::int64_t>(v->as_real());
  } else {
    bad_option(key, want, *v);
  }
  if (n < lo || n > hi) bad_option(key, want, *v);
  return n;
}

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

/// Finished replies, pushed by the pool's I/O threads and taken by the service. The
/// first push after a take wakes the service with an empty send to itself.
struct inbox {
  actor::runtime* rt = nullptr;
  handle_t self = 0;
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, reply>> done;  // mu
  bool woken = false;                                   // mu: a wake-up is on its way

  void push(std::uint64_t id, reply r) {
    bool wake = false;
    {
      std::lock_guard lock(mu);
      done.emplace_back(id, std::move(r));
      wake = !std::exchange(woken, true);
    }
    if (wake) (void)rt->send(self, values{}, self);
  }
  std::vector<std::pair<std::uint64_t, reply>> take() {
    std::lock_guard lock(mu);
    woken = false;
    return std::exchange(done, {});
  }
};

std::uint64_t token_id(const reply_token& t) { return (std::uint64_t{t.to} << 32) | t.session; }
reply_token token_of(std::uint64_t id) {
  return reply_token{static_cast<handle_t>(id >> 32), static_cast<actor::session_t>(id & 0xffffffffu)};
}

/// The "mysql" service. Its handlers only check the message and queue the statement
/// (answering later through a deferred reply); the pool's threads run it and push the
/// answer to the inbox; the wake-up message makes this service give the answers, in
/// its own turn. Owns the pool; stop() ends the pool's threads before the service goes.
class mysql_service final : public actor::service {
 public:
  ~mysql_service() override {
    if (pool_) pool_->stop();
  }

  void init(context& ctx, const values& args) override {
    if (args.size() > 1) {
      throw std::invalid_argument("mysql: spawn takes one options table, got " + std::to_string(args.size()) +
                                  " arguments");
    }
    opts_ = parse_options(args.empty() ? lua_value() : args[0]);
    inbox_ = std::make_shared<inbox>();
    inbox_->rt = &ctx.rt();
    inbox_->self = ctx.self();
    pool_ = std::make_unique<pool>(opts_, [in = inbox_](std::uint64_t id, reply r) { in->push(id, std::move(r)); });
    csk::logger("service")->info("{} mysql pool of {} to {}", csk::format_handle(ctx.self()), opts_.pool, opts_.where());
  }

  void stop(context& ctx) override {
    pool_->stop();
    answer(ctx);  // what finished before the threads ended; the runtime fails the rest
  }

  task<values> handle(context& ctx, message& m) override {
    if (m.type == msg_type::send && m.args.empty() && m.source == ctx.self()) {  // the inbox's wake-up
      answer(ctx);
      co_return values{};
    }
    request req = parse_request(m.args);  // throws: an error reply
    std::uint64_t id = 0;
    if (m.type == msg_type::call) id = token_id(ctx.defer_reply());
    pool_->submit(id, std::move(req));
    co_return values{};
  }

 private:
  void answer(context& ctx) {
    for (auto& [id, r] : inbox_->take()) {
      const reply_token t = token_of(id);
      if (!t.valid()) {  // a send: nobody waits for the answer
        if (!r) csk::logger("service")->warn("{} {}", csk::format_handle(ctx.self()), r.error());
        continue;
      }
      if (r) {
        ctx.reply(t, values{std::move(*r)});
      } else {
        ctx.reply_error(t, r.error());
      }
    }
  }

  options opts_;
  std::shared_ptr<inbox> inbox_;
  std::unique_ptr<pool> pool_;
};

}  // namespace

std::string options::where() const {
  return unix_path.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_path;
}

options parse_options(const lua_value& v) {
  options o;
  if (v.is_nil()) return o;
  if (!v.is_table()) throw std::invalid_argument("mysql: the options must be a table, got " + v.debug_string());
  const lua_table& t = v.as_table();
  if (!t.array.empty()) throw std::invalid_argument("mysql: the options table takes named keys only, got a list");
  for (const auto& [key, value] : t.hash) {
    const bool known = key.is_string() &&
                       std::find(known_options.begin(), known_options.end(), std::string_view(key.as_string())) !=
                           known_options.end();
    if (!known) {
      throw std::invalid_argument("mysql: unknown option " +
                                  (key.is_string() ? "'" + key.as_string() + "'" : key.debug_string()) +
                                  " (known: host, port, unix, user, password, database, pool, connect_timeout_ms, "
                                  "query_timeout_ms)");
    }
  }
  read_string(t, "host", o.host);
  read_string(t, "unix", o.unix_path);
  read_string(t, "user", o.user);
  read_string(t, "password", o.password);
  read_string(t, "database", o.database);
  o.port = static_cast<int>(read_int(t, "port", 1, 65535, o.port));
  o.pool = static_cast<int>(read_int(t, "pool", 1, 64, o.pool));
  o.connect_timeout = std::chrono::milliseconds(read_int(t, "connect_timeout_ms", 1, 3600000, o.connect_timeout.count()));
  o.query_timeout = std::chrono::milliseconds(read_int(t, "query_timeout_ms", 1, 86400000, o.query_timeout.count()));
  if (o.unix_path.empty() && o.host.empty()) throw std::invalid_argument("mysql: option 'host' is empty and no 'unix' path is set");
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
