#include "examples/service/hello.hpp"

#include <string>

namespace csk::examples {
namespace {

using namespace csk::actor;

class counter : public dispatch_service {
 public:
  counter() {
    on_sync("incr", [this](context&, values&) { return values{++n_}; });
    on_sync("get", [this](context&, values&) { return values{n_}; });
  }

 private:
  std::int64_t n_ = 0;
};

class hello : public dispatch_service {
 public:
  hello() {
    on("hello", [this](context& ctx, values& args) -> task<values> {
      const std::string who = !args.empty() && args[0].is_string() ? args[0].as_string() : std::string("stranger");
      // Ask another service; this handler is suspended meanwhile, the service is not.
      auto op = ctx.call(".counter", values{"incr"});
      auto visitor = co_await op;
      if (!visitor) throw std::runtime_error("counter unavailable: " + visitor.error().text);
      ++greetings_;
      co_return values{"hello, " + who + "!", visitor->at(0)};
    });
    on_sync("stats", [this](context&, values&) { return values{greetings_, ticks_}; });
  }

  void init(context&, const values& args) override {
    // args: [{interval_ms = N}] from the config file
    if (!args.empty() && args[0].is_table()) {
      if (const lua_value* v = args[0].as_table().find("interval_ms"); v != nullptr && v->is_integer()) {
        interval_ = std::chrono::milliseconds(v->as_integer());
      }
    }
  }

  task<void> start(context& ctx) override {
    arm(ctx);
    co_return;
  }

 private:
  void arm(context& ctx) {
    ctx.timeout(interval_, [this, &ctx] {
      ++ticks_;
      arm(ctx);
    });
  }

  std::chrono::milliseconds interval_{1000};
  std::int64_t greetings_ = 0;
  std::int64_t ticks_ = 0;
};

}  // namespace

void register_hello_types(actor::runtime& rt) {
  rt.register_type("hello", [] { return std::make_unique<hello>(); });
  rt.register_type("counter", [] { return std::make_unique<counter>(); });
}

}  // namespace csk::examples
