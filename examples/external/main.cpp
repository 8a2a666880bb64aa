// greeter-worker: a cppskynet worker with its own service, built against the installed
// package (CMakeLists.txt). The node's config names the service types it registers:
//
//   services:
//     - {type: greeter, names: ["@greeter"]}     # "greet", NAME -> "hello, NAME (from greeter-worker)"
//     - {type: "entity:greeter.visits", names: [.visits]}   # visits per name: survives upgrades
//
// plus cppskynet's lab services (echo, ...). Run it under `cppskynet run` (supervisor.worker)
// or upgrade a running node to it: `cppskynet upgrade --worker ./greeter-worker`.

#include <cereal/cereal.hpp>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "services/entity/entity.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/worker_main.hpp"

namespace greeter {

struct visits {
  std::int64_t count = 0;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    ar(count);
  }
};
csk::lua_value to_lua(const visits& v) { return csk::entity::fields().add("count", v.count).table(); }
void from_lua(const csk::lua_value& in, visits& v) {
  csk::entity::field_reader(in, "greeter.visits").get("count", v.count).done();
}

/// System service: the greeting logic; the counts live in the entity service .visits.
class greeter final : public csk::actor::dispatch_service {
 public:
  greeter() {
    on("greet", [](csk::actor::context& ctx, csk::actor::values& a) -> csk::actor::task<csk::actor::values> {
      const std::string name = a.at(0).as_string();
      csk::actor::values args{csk::lua_value("mutate"), csk::lua_value(name), csk::lua_value("visit")};
      auto op = ctx.call(".visits", std::move(args));
      auto r = co_await op;
      if (!r) throw std::runtime_error(r.error().text);
      co_return csk::actor::values{csk::lua_value("hello, " + name + " (from greeter-worker)"), r->at(0)};
    });
  }
};

}  // namespace greeter

CEREAL_CLASS_VERSION(greeter::visits, 1)

int main(int argc, char** argv) {
  return csk::worker_main(argc, argv, [](csk::actor::runtime& rt) {
    csk::lab::register_lab_types(rt);
    csk::entity::register_type<greeter::visits>("greeter.visits")
        .mutation(
            "visit",
            [](greeter::visits& v, csk::actor::values&) {
              ++v.count;
              return csk::actor::values{v.count};
            },
            csk::entity::entity_type<greeter::visits>::missing::create);
    rt.register_type("greeter", [] { return std::make_unique<greeter::greeter>(); });
  });
}
