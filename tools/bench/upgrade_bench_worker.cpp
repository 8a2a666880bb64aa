// The worker program of cppskynet-upgrade-bench (upgrade_bench.cpp): the lab services, one
// entity type "bench.item" (integer keys; a value of about 100 bytes: an 88-byte string and
// two int64, 124 bytes per entry in a snapshot with its key and timer count), with the
// mutation "incr" (a += 1, returns a), and the system service "bench.filler" that fills
// the store at boot.
//
// Follows tests/process/upgrade_worker.cpp (the upgrade tests' worker).
//
//   bench.filler args: [address, n]   on start: `set` keys 0..n-1 in `address`, by sends in
//                                     batches of 5000, each batch closed by a `count` call
//                                     (the store has applied it). Does nothing in a worker
//                                     started by an upgrade (CSK_TAKEOVER set): that one
//                                     receives the state from the old worker.

#include <cstdlib>
#include <string>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>

#include "common/log/log.hpp"
#include "services/entity/entity.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/worker_main.hpp"

namespace {

using namespace csk::actor;

struct item {
  std::string name;
  std::int64_t a = 0;
  std::int64_t b = 0;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    ar(name, a, b);
  }
};

csk::lua_value to_lua(const item& v) { return csk::entity::fields().add("name", v.name).add("a", v.a).add("b", v.b).table(); }
void from_lua(const csk::lua_value& in, item& v) {
  csk::entity::field_reader(in, "bench.item").get("name", v.name).get("a", v.a).get("b", v.b).done();
}

constexpr std::size_t name_bytes = 88;
bool g_takeover = false;  // CSK_TAKEOVER, read in main(): worker_main unsets it before services start
constexpr std::int64_t fill_batch = 5000;

class filler : public service {
 public:
  void init(context&, const values& args) override {
    if (args.size() >= 2) {
      to_ = args.at(0).as_string();
      n_ = args.at(1).as_integer();
    }
    if (g_takeover) n_ = 0;
  }
  task<void> start(context& ctx) override {
    if (n_ <= 0) co_return;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string pad(name_bytes, 'x');
    const address to(to_);
    const values count{"count"};
    for (std::int64_t base = 0; base < n_; base += fill_batch) {
      const std::int64_t end = std::min(n_, base + fill_batch);
      for (std::int64_t k = base; k < end; ++k) {
        ctx.send(to, values{"set", k, csk::entity::fields().add("name", pad).add("a", std::int64_t{0}).add("b", k).table()});
      }
      auto r = co_await ctx.call(to, count, std::chrono::milliseconds(60000));
      if (!r) {
        csk::logger("service")->error("filler: count failed at {}", base);
        co_return;
      }
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    csk::logger("service")->info("filler: {} entities in {} ms", n_, ms);
  }
  task<values> handle(context&, message&) override { co_return values{n_}; }

 private:
  std::string to_;
  std::int64_t n_ = 0;
};

}  // namespace

CEREAL_CLASS_VERSION(item, 1)

int main(int argc, char** argv) {
  const char* takeover = std::getenv("CSK_TAKEOVER");  // NOLINT(concurrency-mt-unsafe): before threads
  g_takeover = takeover != nullptr && *takeover != '\0';
  return csk::worker_main(argc, argv, [](runtime& rt) {
    csk::lab::register_lab_types(rt);
    rt.register_type("bench.filler", [] { return std::make_unique<filler>(); });
    csk::entity::register_type<item, std::int64_t>("bench.item")
        .mutation(
            "incr",
            [](item& v, values&) {
              ++v.a;
              return values{v.a};
            },
            csk::entity::entity_type<item, std::int64_t>::missing::create);
  });
}
