#include "services/redis/pool.hpp"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include "common/log/log.hpp"

namespace csk::redis {
namespace {

using std::chrono::milliseconds;

timeval to_timeval(milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

/// A hiredis reply as a Lua value. An error reply (also one nested in an array) fails
/// the whole reply with the server's text.
reply convert(const redisReply& r) {
  switch (r.type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      return lua_value(std::string(r.str, r.len));
    case REDIS_REPLY_INTEGER:
      return lua_value(static_cast<std::int64_t>(r.integer));
    case REDIS_REPLY_NIL:
      return lua_value();
    case REDIS_REPLY_ERROR:
      return unexpected(std::string("redis: ") + std::string(r.str, r.len));
    case REDIS_REPLY_ARRAY: {
      lua_table t;
      t.array.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        reply e = convert(*r.element[i]);
        if (!e) return e;
        t.array.push_back(std::move(*e));
      }
      return lua_value(std::move(t));
    }
    default:
      return unexpected("redis: unsupported reply type " + std::to_string(r.type));
  }
}

/// Sends one command and waits for its reply (binary-safe words); nullptr on an I/O
/// error or a timeout (ctx->err says which).
redisReply* send_command(redisContext* ctx, const command& words) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(words.size());
  lens.reserve(words.size());
  for (const auto& w : words) {
    argv.push_back(w.data());
    lens.push_back(w.size());
  }
  return static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
}

class hiredis_connection final : public io_pool::driver<command> {
 public:
  explicit hiredis_connection(const options& o) : opts_(o) {}

  reply run(const command& words) override {
    errno = 0;
    redisReply* rep = send_command(ctx_, words);
    const int saved_errno = errno;
    if (rep == nullptr) {
      const bool timed_out = ctx_->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
      std::string text = timed_out ? timeout_error(opts_.command_timeout) : lost_error(ctx_->errstr);
      csk::logger("service")->warn("{} (connection {})", text, index());
      lost();
      return unexpected(std::move(text));
    }
    reply out = convert(*rep);
    freeReplyObject(rep);
    return out;
  }

 private:
  std::string open(int& fd) override {
    const timeval ctv = to_timeval(opts_.connect_timeout);
    redisContext* x = opts_.unix_path.empty() ? redisConnectWithTimeout(opts_.host.c_str(), opts_.port, ctv)
                                              : redisConnectUnixWithTimeout(opts_.unix_path.c_str(), ctv);
    if (x == nullptr) return "out of memory";
    if (x->err != 0) {
      std::string error = x->errstr;
      redisFree(x);
      return error;
    }
    ctx_ = x;
    fd = x->fd;
    return {};
  }

  std::string setup() override {
    (void)redisSetTimeout(ctx_, to_timeval(opts_.command_timeout));
    if (opts_.unix_path.empty()) (void)redisEnableKeepAlive(ctx_);
    std::string error;
    auto setup_command = [&](const command& words) {
      if (!error.empty()) return;
      redisReply* rep = send_command(ctx_, words);
      if (rep == nullptr) {
        error = words[0] + " failed: " + ctx_->errstr;
        return;
      }
      if (rep->type == REDIS_REPLY_ERROR) error = words[0] + " failed: " + std::string(rep->str, rep->len);
      freeReplyObject(rep);
    };
    if (!opts_.password.empty()) setup_command({"AUTH", opts_.password});
    if (opts_.db != 0) setup_command({"SELECT", std::to_string(opts_.db)});
    return error;
  }

  void close() override {
    redisFree(ctx_);
    ctx_ = nullptr;
  }

  const options opts_;
  redisContext* ctx_ = nullptr;  // open: connected (the I/O thread's)
};

}  // namespace

io_pool::settings pool_settings(const options& o) {
  return io_pool::settings{.service = "redis", .where = o.where(), .job = "command", .connections = o.pool};
}

std::unique_ptr<io_pool::driver<command>> make_connection(const options& o) {
  return std::make_unique<hiredis_connection>(o);
}

}  // namespace csk::redis
