#include "services/redis/redis.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "services/io_pool/options.hpp"
#include "services/io_pool/service.hpp"
#include "services/redis/pool.hpp"

namespace csk::redis {
namespace {

using actor::context;
using actor::message;
using actor::msg_type;
using actor::task;
using actor::values;

constexpr std::array<std::string_view, 8> known_options = {
    "host", "port", "unix", "pool", "db", "password", "connect_timeout_ms", "command_timeout_ms"};

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

/// The "redis" service. Its handlers only check the command and queue it; the pool's
/// threads run it and the answers come back through the inbox (io_pool/service.hpp).
class redis_service final : public io_pool::pooled_service<command> {
 public:
  void init(context& ctx, const values& args) override {
    const options o = parse_options(io_pool::spawn_options("redis", args));
    start_pool(ctx, pool_settings(o), [o] { return make_connection(o); });
  }

  command make_job(const values& args) override { return command_words(args); }
};

}  // namespace

std::string options::where() const { return io_pool::where(host, port, unix_path); }

options parse_options(const lua_value& v) {
  options o;
  const io_pool::option_reader in("redis", v, known_options);
  in.read("host", o.host);
  in.read("unix", o.unix_path);
  in.read("password", o.password);
  in.read("port", o.port, 1, 65535);
  in.read("pool", o.pool, 1, 64);
  in.read("db", o.db, 0, std::numeric_limits<int>::max());
  in.read("connect_timeout_ms", o.connect_timeout, 1, 3600000);
  in.read("command_timeout_ms", o.command_timeout, 1, 3600000);
  in.need_address(o.host, o.unix_path);
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
