#include "services/redis/redis.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log/log.hpp"
#include "services/redis/pool.hpp"

namespace csk::redis {
namespace {

using actor::context;
using actor::handle_t;
using actor::message;
using actor::msg_type;
using actor::reply_token;
using actor::task;
using actor::values;

constexpr std::array<std::string_view, 8> known_options = {
    "host", "port", "unix", "pool", "db", "password", "connect_timeout_ms", "command_timeout_ms"};

[[noreturn]] void bad_option(std::string_view key, std::string_view want, const lua_value& got) {
  throw std::invalid_argument("redis: option '" + std::string(key) + "' must be " + std::string(want) + ", got " +
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

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch;
  });
  return out;
}

/// Commands that change the state of the one connection they run on: through a pool
/// they would leak into other callers' commands, or hang the connection.
constexpr std::array<std::string_view, 17> refused_commands = {
    "AUTH",       "SELECT",      "MULTI",       "EXEC",        "DISCARD",     "WATCH",
    "UNWATCH",    "SUBSCRIBE",   "PSUBSCRIBE",  "SSUBSCRIBE",  "UNSUBSCRIBE", "PUNSUBSCRIBE",
    "SUNSUBSCRIBE", "MONITOR",   "QUIT",        "RESET",       "HELLO"};

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

/// The "redis" service. Its handlers only check the command and queue it (answering
/// later through a deferred reply); the pool's threads run it and push the answer to
/// the inbox; the wake-up message makes this service give the answers, in its own
/// turn. Owns the pool; stop() ends the pool's threads before the service goes.
class redis_service final : public actor::service {
 public:
  ~redis_service() override {
    if (pool_) pool_->stop();
  }

  void init(context& ctx, const values& args) override {
    if (args.size() > 1) {
      throw std::invalid_argument("redis: spawn takes one options table, got " + std::to_string(args.size()) +
                                  " arguments");
    }
    opts_ = parse_options(args.empty() ? lua_value() : args[0]);
    inbox_ = std::make_shared<inbox>();
    inbox_->rt = &ctx.rt();
    inbox_->self = ctx.self();
    pool_ = std::make_unique<pool>(opts_, [in = inbox_](std::uint64_t id, reply r) { in->push(id, std::move(r)); });
    csk::logger("service")->info("{} redis pool of {} to {}", csk::format_handle(ctx.self()), opts_.pool, opts_.where());
  }

  void stop(context& ctx) override {
    pool_->stop();
    answer(ctx);  // what finished before the threads ended; the runtime fails the rest
  }

  task<values> handle(context& ctx, message& m) override {
    if (m.type == msg_type::send && m.args.empty()) {  // the inbox's wake-up
      answer(ctx);
      co_return values{};
    }
    std::vector<std::string> words = command_words(m.args);  // throws: an error reply
    std::uint64_t id = 0;
    if (m.type == msg_type::call) id = token_id(ctx.defer_reply());
    pool_->submit(id, std::move(words));
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
  if (!v.is_table()) throw std::invalid_argument("redis: the options must be a table, got " + v.debug_string());
  const lua_table& t = v.as_table();
  if (!t.array.empty()) throw std::invalid_argument("redis: the options table takes named keys only, got a list");
  for (const auto& [key, value] : t.hash) {
    const bool known = key.is_string() && std::find(known_options.begin(), known_options.end(),
                                                    std::string_view(key.as_string())) != known_options.end();
    if (!known) {
      throw std::invalid_argument("redis: unknown option " +
                                  (key.is_string() ? "'" + key.as_string() + "'" : key.debug_string()) +
                                  " (known: host, port, unix, pool, db, password, connect_timeout_ms, "
                                  "command_timeout_ms)");
    }
  }
  read_string(t, "host", o.host);
  read_string(t, "unix", o.unix_path);
  read_string(t, "password", o.password);
  o.port = static_cast<int>(read_int(t, "port", 1, 65535, o.port));
  o.pool = static_cast<int>(read_int(t, "pool", 1, 64, o.pool));
  o.db = static_cast<int>(read_int(t, "db", 0, std::numeric_limits<int>::max(), o.db));
  o.connect_timeout = std::chrono::milliseconds(read_int(t, "connect_timeout_ms", 1, 3600000, o.connect_timeout.count()));
  o.command_timeout = std::chrono::milliseconds(read_int(t, "command_timeout_ms", 1, 3600000, o.command_timeout.count()));
  if (o.unix_path.empty() && o.host.empty()) throw std::invalid_argument("redis: option 'host' is empty and no 'unix' path is set");
  return o;
}

lua_value to_lua(const options& o) {
  lua_table t;
  t.set("host", o.host)
      .set("port", o.port)
      .set("unix", o.unix_path)
      .set("pool", o.pool)
      .set("db", o.db)
      .set("password", o.password)
      .set("connect_timeout_ms", static_cast<std::int64_t>(o.connect_timeout.count()))
      .set("command_timeout_ms", static_cast<std::int64_t>(o.command_timeout.count()));
  return lua_value(std::move(t));
}

std::vector<std::string> command_words(const values& args) {
  if (args.empty() || !args[0].is_string() || args[0].as_string().empty()) {
    throw std::invalid_argument("redis: the message must start with the command name, e.g. {\"GET\", \"key\"}");
  }
  const std::string name = upper(args[0].as_string());
  if (std::find(refused_commands.begin(), refused_commands.end(), std::string_view(name)) != refused_commands.end()) {
    throw std::invalid_argument("redis: " + name +
                                " is not supported: it changes the state of one pooled connection (set db and "
                                "password in the service options)");
  }
  std::vector<std::string> words;
  words.reserve(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    const lua_value& a = args[i];
    if (a.is_string()) {
      words.push_back(a.as_string());
    } else if (a.is_integer()) {
      words.push_back(std::to_string(a.as_integer()));
    } else if (a.is_real()) {
      std::array<char, 64> buf{};
      const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), a.as_real());
      words.emplace_back(buf.data(), r.ptr);
    } else {
      throw std::invalid_argument("redis: argument " + std::to_string(i + 1) + " of " + name + " is a " +
                                  lua_type_name(a.type()) + "; only strings and numbers can be sent");
    }
  }
  return words;
}

void register_types(actor::runtime& rt) {
  rt.register_type(type_name, [] { return std::make_unique<redis_service>(); });
}

}  // namespace csk::redis
