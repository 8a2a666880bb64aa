#include "examples/entity/counter.hpp"

#include <stdexcept>

#include "services/entity/entity.hpp"

namespace csk::examples {

using actor::context;
using actor::task;
using actor::values;

lua_value to_lua(const counter& c) {
  return entity::fields().add("value", c.value).add("increments", c.increments).table();
}

void from_lua(const lua_value& in, counter& c) {
  entity::field_reader(in, "example.counter").get("value", c.value).get("increments", c.increments).done();
}

namespace {

/// System service: the counters' logic, no state of its own (so it needs no snapshot).
class counter_api final : public actor::dispatch_service {
 public:
  counter_api() {
    on("incr", [this](context& ctx, values& a) -> task<values> {
      const std::string name = a.at(0).as_string();
      const std::int64_t n = a.size() > 1 ? a[1].as_integer() : 1;
      auto op = counters_.mutate(ctx, name, "incr", values{n});
      auto r = co_await op;
      co_return r;
    });
    on("get", [this](context& ctx, values& a) -> task<values> {
      auto op = counters_.get(ctx, a.at(0).as_string());
      auto c = co_await op;
      co_return values{c ? c->value : 0};
    });
    on("reset_in", [this](context& ctx, values& a) -> task<values> {
      values args{lua_value("schedule"), a.at(0), lua_value("reset"), a.at(1)};
      auto op = ctx.call(counters_.address(), std::move(args));
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      co_return std::move(*r);
    });
  }

 private:
  entity::client<counter> counters_{".counters"};
};

}  // namespace

void register_counter_types(actor::runtime& rt) {
  entity::register_type<counter>("example.counter", 1)  // reads versions 1 and 2
      .mutation(
          "incr",
          [](counter& c, values& a) {
            c.value += a.empty() ? 1 : a[0].as_integer();
            ++c.increments;
            return values{c.value};
          },
          entity::entity_type<counter>::missing::create)
      .on_timer("reset", [](entity::entity_type<counter>::timer_call& t) { t.value.value = 0; });
  entity::install_service_types(rt);
  rt.register_type("counter_api", [] { return std::make_unique<counter_api>(); });
}

void spawn_counter_services(actor::runtime& rt) {
  auto store = rt.spawn(entity::service_type_name("example.counter"), {lua_value(lua_table{}.set("id", "counters"))},
                        {".counters"});
  if (!store) throw std::runtime_error(store.error());
  auto api = rt.spawn("counter_api", {}, {".counter_api", "@counter"});
  if (!api) throw std::runtime_error(api.error());
}

}  // namespace csk::examples
