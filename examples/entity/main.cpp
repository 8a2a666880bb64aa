// entity-demo: the data path of a hot upgrade, inside one process.
//
// "Worker N" (runtime a) serves counters; "worker N+1" (runtime b) starts empty. The demo
// checks N's header against N+1's registry, copies N's store in pages while N keeps
// taking increments (tracking on), sends the delta, and shows that N+1 now answers with
// the same values. Prints each step; exits non-zero if the two stores differ.
//
//   entity-demo [ENTITIES]     default 100000

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/log/log.hpp"
#include "examples/entity/counter.hpp"
#include "services/entity/entity.hpp"

namespace {

using csk::actor::values;
using clock_type = std::chrono::steady_clock;

values must(csk::actor::runtime& rt, const char* to, values args) {
  auto r = rt.call(to, std::move(args)).get();
  if (!r) {
    std::cerr << "entity-demo: " << to << ": " << r.error().text << "\n";
    std::exit(1);
  }
  return *r;
}

// A snapshot without its header's clock field (bytes 12..19): the state alone.
std::string state_of(std::string snapshot) {
  for (std::size_t i = 12; i < 20 && i < snapshot.size(); ++i) snapshot[i] = 0;
  return snapshot;
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 100000;
  if (n <= 0 || argc > 2) {
    std::cerr << "usage: entity-demo [ENTITIES]\n";
    return 2;
  }
  csk::init_logging(csk::log_config{}, "entity-demo");
  csk::actor::runtime a(csk::actor::runtime_options{.threads = 2});
  csk::actor::runtime b(csk::actor::runtime_options{.threads = 2});
  csk::examples::register_counter_types(a);
  csk::examples::register_counter_types(b);
  csk::examples::spawn_counter_services(a);
  csk::examples::spawn_counter_services(b);
  a.start();
  b.start();

  auto t = clock_type::now();
  for (long i = 0; i < n; ++i) must(a, ".counters", {"mutate", "c" + std::to_string(i), "incr", i % 100});
  std::cout << "worker N: " << n << " counters in " << ms_since(t) << " ms\n";
  std::cout << "worker N: incr c7 -> " << must(a, ".counter_api", {"incr", "c7", 1000}).at(0).as_integer() << "\n";

  // 1. Before any data moves: can N+1 read N's type and version?
  const std::string header = must(a, ".counters", {"header"}).at(0).as_string();
  auto ok = csk::entity::check_snapshot(csk::as_bytes(header));
  if (!ok) {
    std::cerr << "entity-demo: upgrade refused: " << ok.error() << "\n";
    return 1;
  }
  std::cout << "check: " << ok->type << " version " << ok->version << ", " << ok->entries << " entries: ok\n";

  // 2. Pre-copy in pages, N still serving between them.
  t = clock_type::now();
  must(a, ".counters", {csk::entity::upgrade_key(), "track"});
  csk::lua_value cursor;
  std::size_t bytes = 0;
  int pages = 0;
  do {
    auto page = must(a, ".counters", {"snapshot_page", cursor, 5000});
    bytes += page.at(0).as_string().size();
    must(b, ".counters", {csk::entity::upgrade_key(), "apply", page.at(0)});
    cursor = page.at(1);
    must(a, ".counter_api", {"incr", "c" + std::to_string(pages), 1});  // traffic during the copy
    ++pages;
  } while (!cursor.is_nil());
  std::cout << "pre-copy: " << pages << " pages, " << bytes << " bytes in " << ms_since(t) << " ms\n";

  // 3. Freeze (here: simply no more traffic) and the delta.
  t = clock_type::now();
  const std::string delta = must(a, ".counters", {csk::entity::upgrade_key(), "delta"}).at(0).as_string();
  auto applied = must(b, ".counters", {csk::entity::upgrade_key(), "apply", delta});
  std::cout << "delta: " << applied.at(0).as_integer() << " changed, " << delta.size() << " bytes in " << ms_since(t)
            << " ms\n";

  // 4. N+1 answers as N did.
  const auto va = must(a, ".counter_api", {"get", "c7"}).at(0).as_integer();
  const auto vb = must(b, ".counter_api", {"get", "c7"}).at(0).as_integer();
  std::cout << "worker N+1: get c7 -> " << vb << " (worker N: " << va << ")\n";
  const bool same = state_of(must(a, ".counters", {"snapshot"}).at(0).as_string()) ==
                    state_of(must(b, ".counters", {"snapshot"}).at(0).as_string());
  std::cout << (same ? "stores are identical\n" : "STORES DIFFER\n");
  a.shutdown();
  b.shutdown();
  return same && va == vb ? 0 : 1;
}
