#include "examples/service/relay.hpp"

#include <stdexcept>
#include <string>

#include "services/cluster/cluster.hpp"

namespace csk::examples {
namespace {

using namespace csk::actor;

std::string string_arg(const values& args, const char* key, std::string fallback) {
  if (args.empty() || !args[0].is_table()) return fallback;
  const lua_value* v = args[0].as_table().find(key);
  return v != nullptr && v->is_string() ? v->as_string() : fallback;
}

class relay : public dispatch_service {
 public:
  relay() {
    on("echo", [this](context& ctx, values& args) -> task<values> { co_return co_await echo(ctx, args); });
    on("hello", [this](context& ctx, values& args) -> task<values> {
      lua_value name = args.empty() ? lua_value("stranger") : args[0];
      co_return co_await hello(ctx, std::move(name));
    });
    on("both", [this](context& ctx, values& args) -> task<values> {
      const lua_value name = args.empty() ? lua_value("stranger") : args[0];
      values rest(args.begin() + (args.empty() ? 0 : 1), args.end());
      values echoed = co_await echo(ctx, rest);
      values greeted = co_await hello(ctx, name);
      co_return values{lua_table(std::move(echoed)), lua_table(std::move(greeted))};
    });
  }

  void init(context& ctx, const values& args) override {
    echo_node_ = string_arg(args, "echo_node", "cluster1");
    hello_node_ = string_arg(args, "hello_node", "cluster2");
    // skynet's cluster.proxy: a local handle for cluster2's @hello.
    auto p = cluster::proxy(ctx, hello_node_, "@hello");
    if (!p) throw std::runtime_error(p.error());
    hello_proxy_ = *p;
    // skynet's cluster.register: cluster callers reach this service as @relay.
    if (auto r = cluster::register_name(ctx, string_arg(args, "name", "relay")); !r) throw std::runtime_error(r.error());
  }

 private:
  task<values> echo(context& ctx, values args) {
    auto op = cluster::call(ctx, echo_node_, "@echo", std::move(args));
    auto r = co_await op;
    if (!r) throw std::runtime_error(echo_node_ + " @echo: " + r.error().text);
    co_return std::move(*r);
  }

  task<values> hello(context& ctx, lua_value name) {
    auto op = ctx.call(hello_proxy_, values{lua_value("hello"), std::move(name)});
    auto r = co_await op;
    if (!r) throw std::runtime_error(hello_node_ + " @hello: " + r.error().text);
    co_return std::move(*r);
  }

  std::string echo_node_;
  std::string hello_node_;
  handle_t hello_proxy_ = 0;
};

}  // namespace

void register_relay_types(actor::runtime& rt) {
  rt.register_type("relay", [] { return std::make_unique<relay>(); });
}

}  // namespace csk::examples
