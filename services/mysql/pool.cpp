#include "services/mysql/pool.hpp"

#include <errmsg.h>
#include <mysql.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log/log.hpp"

namespace csk::mysql {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t max_cached_statements = 128;
constexpr unsigned long first_text_buffer = 256;  // bytes per text column; longer values are fetched again

// Server errors that end the session (the server sends them, then closes).
constexpr unsigned int er_server_shutdown = 1053;
constexpr unsigned int er_connection_killed = 1927;

std::shared_ptr<spdlog::logger> log() { return csk::logger("service"); }

/// Whole seconds for the connector's own timeouts, rounded up, at least 1.
unsigned int seconds_up(milliseconds d) {
  return static_cast<unsigned int>(std::max<std::int64_t>(1, (d.count() + 999) / 1000));
}

bool connection_error(unsigned int err) {
  return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_SERVER_LOST_EXTENDED ||
         err == CR_COMMANDS_OUT_OF_SYNC || err == er_server_shutdown || err == er_connection_killed;
}

/// How a column's values become Lua values: integers (exact, except unsigned BIGINT
/// values above 2^63-1, which stay text), reals (FLOAT, DOUBLE), or strings (DECIMAL,
/// text, binary, dates and times, BIT, ...).
enum class column_kind { integer, real, text };

column_kind kind_of(const MYSQL_FIELD& f) {
  switch (f.type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
      return column_kind::integer;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return column_kind::real;
    default:
      return column_kind::text;
  }
}

/// A text-protocol value as a Lua value (see column_kind).
lua_value text_value(column_kind k, const char* p, unsigned long len) {
  const char* end = p + len;
  if (k == column_kind::integer) {
    std::int64_t n = 0;
    const auto r = std::from_chars(p, end, n);
    if (r.ec == std::errc() && r.ptr == end) return lua_value(n);
  } else if (k == column_kind::real) {
    double d = 0;
    const auto r = std::from_chars(p, end, d);
    if (r.ec == std::errc() && r.ptr == end) return lua_value(d);
  }
  return lua_value(std::string(p, len));
}

lua_value status_table(my_ulonglong affected, my_ulonglong insert_id) {
  lua_table t;
  t.set("affected_rows", static_cast<std::int64_t>(affected)).set("insert_id", static_cast<std::int64_t>(insert_id));
  return lua_value(std::move(t));
}

lua_value result_table(lua_table columns, lua_table rows) {
  lua_table t;
  t.set("rows", lua_value(std::move(rows))).set("columns", lua_value(std::move(columns)));
  return lua_value(std::move(t));
}

std::once_flag library_once;

class mariadb_connection final : public io_pool::driver<request> {
 public:
  explicit mariadb_connection(const options& o) : opts_(o) {}

  reply run(const request& req) override {
    return !req.steps.empty() ? run_transaction(req) : req.prepared ? run_prepared(req) : run_query(req);
  }

 private:
  void thread_begin() override { (void)mysql_thread_init(); }
  void thread_end() override { mysql_thread_end(); }

  std::string open(int& fd) override {
    MYSQL* m = mysql_init(nullptr);
    if (m == nullptr) return "out of memory";
    const unsigned int connect_s = seconds_up(opts_.connect_timeout);
    // A backstop only: the watchdog ends a statement at query_timeout_ms exactly.
    const unsigned int io_s = seconds_up(opts_.query_timeout) + 1;
    const unsigned int protocol = opts_.unix_path.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
    const unsigned int no_local_infile = 0;
    (void)mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    (void)mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_s);
    (void)mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    (void)mysql_options(m, MYSQL_OPT_PROTOCOL, &protocol);
    (void)mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no_local_infile);
    (void)mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
    const bool unix = !opts_.unix_path.empty();
    if (mysql_real_connect(m, unix ? "localhost" : opts_.host.c_str(), opt(opts_.user), opt(opts_.password),
                           opt(opts_.database), unix ? 0u : static_cast<unsigned int>(opts_.port),
                           unix ? opts_.unix_path.c_str() : nullptr, 0) == nullptr) {
      std::string error = std::to_string(mysql_errno(m)) + " " + mysql_sqlstate(m) + ": " + mysql_error(m);
      mysql_close(m);
      return error;
    }
    db_ = m;
    fd = static_cast<int>(mysql_get_socket(m));
    return {};
  }

  void close() override {
    for (auto& [sql, st] : statements_) (void)mysql_stmt_close(st);
    statements_.clear();
    mysql_close(db_);
    db_ = nullptr;
  }

  reply run_query(const request& req);
  reply run_prepared(const request& req);
  reply run_transaction(const request& req);

  /// The error reply for the connection's last error; drops the connection when the
  /// error means it is unusable (lost, timed out, killed).
  reply fail(unsigned int err, const char* sqlstate, const char* text) {
    if (connection_error(err)) {
      std::string out = lost_error(text);
      // Not for a timeout (the pool logs it) or stop().
      if (!timed_out() && !stopping()) log()->warn("{} (connection {})", out, index());
      lost();
      return unexpected(std::move(out));
    }
    return unexpected("mysql: " + std::to_string(err) + " " + sqlstate + ": " + text);
  }

  const options opts_;
  // The I/O thread's: the connection while open, its prepared statements by SQL text.
  MYSQL* db_ = nullptr;
  std::unordered_map<std::string, MYSQL_STMT*> statements_;
};

reply mariadb_connection::run_query(const request& req) {
  MYSQL* db = db_;
  if (mysql_real_query(db, req.sql.data(), req.sql.size()) != 0) {
    return fail(mysql_errno(db), mysql_sqlstate(db), mysql_error(db));
  }
  reply out = lua_value();
  if (MYSQL_RES* res = mysql_store_result(db); res != nullptr) {
    const unsigned int n = mysql_num_fields(res);
    const MYSQL_FIELD* fields = mysql_fetch_fields(res);
    lua_table columns;
    std::vector<column_kind> kinds;
    for (unsigned int i = 0; i < n; ++i) {
      columns.array.emplace_back(std::string(fields[i].name, fields[i].name_length));
      kinds.push_back(kind_of(fields[i]));
    }
    lua_table rows;
    rows.array.reserve(static_cast<std::size_t>(mysql_num_rows(res)));
    while (MYSQL_ROW row = mysql_fetch_row(res)) {
      const unsigned long* lens = mysql_fetch_lengths(res);
      lua_table r;
      for (unsigned int i = 0; i < n; ++i) {
        if (row[i] == nullptr) continue;  // NULL: the key is absent, as in Lua
        r.set(columns.array[i], text_value(kinds[i], row[i], lens[i]));
      }
      rows.array.emplace_back(std::move(r));
    }
    mysql_free_result(res);
    out = result_table(std::move(columns), std::move(rows));
  } else if (mysql_field_count(db) != 0) {
    return fail(mysql_errno(db), mysql_sqlstate(db), mysql_error(db));
  } else {
    out = status_table(mysql_affected_rows(db), mysql_insert_id(db));
  }
  // Further results (a CALL): read and dropped, so the connection stays usable.
  int more = 0;
  while ((more = mysql_next_result(db)) == 0) {
    if (MYSQL_RES* extra = mysql_store_result(db)) mysql_free_result(extra);
  }
  if (more > 0) return fail(mysql_errno(db), mysql_sqlstate(db), mysql_error(db));
  return out;
}

reply mariadb_connection::run_transaction(const request& req) {
  const std::string_view begin = "START TRANSACTION";
  if (mysql_real_query(db_, begin.data(), begin.size()) != 0) {
    return fail(mysql_errno(db_), mysql_sqlstate(db_), mysql_error(db_));
  }
  // On any failure the transaction is rolled back; if that fails too, the connection
  // goes (the server rolls back what a closed connection left open).
  auto roll_back = [&] {
    if (db_ != nullptr && mysql_rollback(db_) != 0) drop();
  };
  lua_table results;
  for (std::size_t i = 0; i < req.steps.size(); ++i) {
    reply r = run_prepared(req.steps[i]);
    if (!r) {
      roll_back();
      return unexpected("mysql: transaction statement " + std::to_string(i + 1) + ": " +
                        r.error().substr(std::string_view("mysql: ").size()));
    }
    results.array.push_back(std::move(*r));
  }
  if (mysql_commit(db_) != 0) {
    reply r = fail(mysql_errno(db_), mysql_sqlstate(db_), mysql_error(db_));
    roll_back();
    return unexpected("mysql: transaction commit: " + r.error().substr(std::string_view("mysql: ").size()));
  }
  return lua_value(std::move(results));
}

reply mariadb_connection::run_prepared(const request& req) {
  MYSQL_STMT* st = nullptr;
  if (auto it = statements_.find(req.sql); it != statements_.end()) {
    st = it->second;
  } else {
    st = mysql_stmt_init(db_);
    if (st == nullptr) return fail(mysql_errno(db_), mysql_sqlstate(db_), mysql_error(db_));
    if (mysql_stmt_prepare(st, req.sql.data(), static_cast<unsigned long>(req.sql.size())) != 0) {
      const unsigned int err = mysql_stmt_errno(st);
      const std::string state = mysql_stmt_sqlstate(st);
      const std::string text = mysql_stmt_error(st);
      (void)mysql_stmt_close(st);
      return fail(err, state.c_str(), text.c_str());
    }
    if (statements_.size() >= max_cached_statements) {
      for (auto& [sql, old] : statements_) (void)mysql_stmt_close(old);
      statements_.clear();
    }
    statements_.emplace(req.sql, st);
  }
  // Any error below: the statement leaves the cache (a fresh one is prepared next time).
  MYSQL_RES* meta = nullptr;
  auto stmt_fail = [&]() -> reply {
    if (meta != nullptr) mysql_free_result(meta);
    meta = nullptr;
    const unsigned int err = mysql_stmt_errno(st);
    const std::string state = mysql_stmt_sqlstate(st);
    const std::string text = mysql_stmt_error(st);
    statements_.erase(req.sql);
    (void)mysql_stmt_close(st);
    return fail(err, state.c_str(), text.c_str());
  };

  const unsigned long want = mysql_stmt_param_count(st);
  if (want != req.params.size()) {
    return unexpected("mysql: the statement has " + std::to_string(want) + " placeholders, got " +
                      std::to_string(req.params.size()) + " parameters");
  }
  const std::size_t np = req.params.size();
  std::vector<MYSQL_BIND> in(np);
  std::vector<long long> ints(np);
  std::vector<double> reals(np);
  std::vector<unsigned long> lens(np);
  for (std::size_t i = 0; i < np; ++i) {
    const lua_value& p = req.params[i];
    MYSQL_BIND& b = in[i];
    if (p.is_nil()) {
      b.buffer_type = MYSQL_TYPE_NULL;
    } else if (p.is_boolean() || p.is_integer()) {
      ints[i] = p.is_boolean() ? (p.as_boolean() ? 1 : 0) : p.as_integer();
      b.buffer_type = MYSQL_TYPE_LONGLONG;
      b.buffer = &ints[i];
    } else if (p.is_real()) {
      reals[i] = p.as_real();
      b.buffer_type = MYSQL_TYPE_DOUBLE;
      b.buffer = &reals[i];
    } else {  // a string (parse_request lets nothing else through)
      const std::string& s = p.as_string();
      lens[i] = static_cast<unsigned long>(s.size());
      b.buffer_type = MYSQL_TYPE_STRING;
      b.buffer = const_cast<char*>(s.data());  // NOLINT: the connector only reads it
      b.buffer_length = lens[i];
      b.length = &lens[i];
    }
  }
  if (np > 0 && mysql_stmt_bind_param(st, in.data()) != 0) return stmt_fail();
  if (mysql_stmt_execute(st) != 0) return stmt_fail();

  // Further results (a CALL): read and dropped, so the statement and the connection
  // stay usable. Returns false on an error.
  auto drain = [&]() -> bool {
    while (mysql_stmt_more_results(st)) {
      const int more = mysql_stmt_next_result(st);
      if (more > 0) return false;
      if (more < 0) break;
      (void)mysql_stmt_free_result(st);
    }
    return true;
  };
  meta = mysql_stmt_result_metadata(st);
  if (meta == nullptr) {
    if (mysql_stmt_errno(st) != 0) return stmt_fail();
    lua_value out = status_table(mysql_stmt_affected_rows(st), mysql_stmt_insert_id(st));
    if (!drain()) return stmt_fail();
    return out;
  }
  if (mysql_stmt_store_result(st) != 0) return stmt_fail();

  const unsigned int n = mysql_num_fields(meta);
  const MYSQL_FIELD* fields = mysql_fetch_fields(meta);
  lua_table columns;
  std::vector<column_kind> kinds(n);
  std::vector<MYSQL_BIND> out(n);
  std::vector<long long> oints(n);
  std::vector<double> oreals(n);
  std::vector<std::string> texts(n);
  std::vector<unsigned long> olens(n);
  std::vector<my_bool> nulls(n);
  std::vector<my_bool> errors(n);
  for (unsigned int i = 0; i < n; ++i) {
    columns.array.emplace_back(std::string(fields[i].name, fields[i].name_length));
    kinds[i] = kind_of(fields[i]);
    MYSQL_BIND& b = out[i];
    b.is_null = &nulls[i];
    b.error = &errors[i];
    b.length = &olens[i];
    switch (kinds[i]) {
      case column_kind::integer:
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &oints[i];
        b.is_unsigned = (fields[i].flags & UNSIGNED_FLAG) != 0;
        break;
      case column_kind::real:
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &oreals[i];
        break;
      case column_kind::text:
        texts[i].resize(first_text_buffer);
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = texts[i].data();
        b.buffer_length = first_text_buffer;
        break;
    }
  }
  if (mysql_stmt_bind_result(st, out.data()) != 0) return stmt_fail();

  lua_table rows;
  rows.array.reserve(static_cast<std::size_t>(mysql_stmt_num_rows(st)));
  for (;;) {
    const int rc = mysql_stmt_fetch(st);
    if (rc == MYSQL_NO_DATA) break;
    if (rc == 1) return stmt_fail();
    lua_table r;
    for (unsigned int i = 0; i < n; ++i) {
      if (nulls[i]) continue;  // NULL: the key is absent, as in Lua
      lua_value v;
      switch (kinds[i]) {
        case column_kind::integer: {
          if (out[i].is_unsigned && static_cast<unsigned long long>(oints[i]) >
                                        static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max())) {
            v = lua_value(std::to_string(static_cast<unsigned long long>(oints[i])));
          } else {
            v = lua_value(static_cast<std::int64_t>(oints[i]));
          }
          break;
        }
        case column_kind::real:
          v = lua_value(oreals[i]);
          break;
        case column_kind::text:
          if (olens[i] <= first_text_buffer) {
            v = lua_value(std::string(texts[i].data(), olens[i]));
          } else {  // longer than the buffer: fetch the whole value into its own string
            std::string whole(olens[i], '\0');
            unsigned long got = 0;
            MYSQL_BIND b{};
            b.buffer_type = MYSQL_TYPE_STRING;
            b.buffer = whole.data();
            b.buffer_length = olens[i];
            b.length = &got;
            if (mysql_stmt_fetch_column(st, &b, i, 0) != 0) return stmt_fail();
            whole.resize(std::min<unsigned long>(got, olens[i]));
            v = lua_value(std::move(whole));
          }
          break;
      }
      r.set(columns.array[i], std::move(v));
    }
    rows.array.emplace_back(std::move(r));
  }
  mysql_free_result(meta);
  meta = nullptr;
  (void)mysql_stmt_free_result(st);
  if (!drain()) return stmt_fail();
  return result_table(std::move(columns), std::move(rows));
}

}  // namespace

io_pool::settings pool_settings(const options& o) {
  return io_pool::settings{
      .service = "mysql", .where = o.where(), .job = "query", .connections = o.pool, .deadline = o.query_timeout};
}

std::unique_ptr<io_pool::driver<request>> make_connection(const options& o) {
  std::call_once(library_once, [] { (void)mysql_library_init(0, nullptr, nullptr); });
  return std::make_unique<mariadb_connection>(o);
}

}  // namespace csk::mysql
