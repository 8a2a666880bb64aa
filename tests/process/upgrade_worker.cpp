// The worker program of the upgrade process tests: cppskynet's lab services plus one entity
// type, "test.tally" (a counter per key, mutation "incr"), built twice: with class version
// 1 (csk_upgrade_worker) and with version 9 that reads nothing older
// (csk_upgrade_worker_v9: an incompatible upgrade).
//
// CSK_TEST_FAULT makes a takeover worker (CSK_TAKEOVER=1) fail on purpose; a wrapper script
// sets it, so only the new worker of an upgrade gets it:
//   crash          abort() at start, before hello
//   fail_restore   reading any tally from a snapshot throws (the restore fails)
//   hang_restore   reading a tally blocks forever (the new worker hangs mid-transfer)
//
// Service type "boots" (a system service): its start() increments the tally "boots" in
// .tally, once per worker that serves; a failure is logged as "boots: ...".

#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <thread>

#include <cereal/cereal.hpp>

#include "common/log/log.hpp"
#include "services/entity/entity.hpp"
#include "services/lab/lab_services.hpp"
#include "worker/worker_main.hpp"

#ifndef CSK_TALLY_VERSION
#define CSK_TALLY_VERSION 1
#endif

namespace {

enum class fault { none, fail_restore, hang_restore };
fault g_fault = fault::none;

struct tally {
  std::int64_t n = 0;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    if constexpr (Archive::is_loading::value) {
      if (g_fault == fault::fail_restore) throw std::runtime_error("CSK_TEST_FAULT=fail_restore: cannot read a tally");
      if (g_fault == fault::hang_restore) {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
      }
    }
    ar(n);
  }
};

class boots final : public csk::actor::service {
 public:
  csk::actor::task<void> start(csk::actor::context& ctx) override {
    csk::actor::values args{csk::lua_value("mutate"), csk::lua_value("boots"), csk::lua_value("incr")};
    auto op = ctx.call(".tally", std::move(args));
    auto r = co_await op;
    if (!r) csk::logger("service")->error("boots: {}", r.error().text);
  }
  csk::actor::task<csk::actor::values> handle(csk::actor::context&, csk::actor::message&) override {
    co_return csk::actor::values{};
  }
};

csk::lua_value to_lua(const tally& t) { return csk::entity::fields().add("n", t.n).table(); }
void from_lua(const csk::lua_value& in, tally& t) { csk::entity::field_reader(in, "test.tally").get("n", t.n).done(); }

}  // namespace

CEREAL_CLASS_VERSION(tally, CSK_TALLY_VERSION)

int main(int argc, char** argv) {
  const char* f = std::getenv("CSK_TEST_FAULT");  // NOLINT(concurrency-mt-unsafe): before threads
  const char* takeover = std::getenv("CSK_TAKEOVER");  // NOLINT(concurrency-mt-unsafe)
  const std::string_view which = f != nullptr && takeover != nullptr ? f : "";
  if (which == "crash") std::abort();
  if (which == "fail_restore") g_fault = fault::fail_restore;
  if (which == "hang_restore") g_fault = fault::hang_restore;
  return csk::worker_main(argc, argv, [](csk::actor::runtime& rt) {
    csk::lab::register_lab_types(rt);
    rt.register_type("boots", [] { return std::make_unique<boots>(); });
    csk::entity::register_type<tally>("test.tally", CSK_TALLY_VERSION)
        .mutation(
            "incr",
            [](tally& t, csk::actor::values&) {
              ++t.n;
              return csk::actor::values{t.n};
            },
            csk::entity::entity_type<tally>::missing::create);
  });
}
