#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "services/entity/store.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace fuzz_entity {

struct thing {
  std::int64_t a = 0;
  std::int32_t b = 0;
  bool c = false;
  double d = 0;
  std::string s;
  std::vector<std::int32_t> v;
  template <class A>
  void serialize(A& ar, std::uint32_t) {
    ar(a, b, c, d, s, v);
  }
};

}  // namespace fuzz_entity

CEREAL_CLASS_VERSION(fuzz_entity::thing, 1)

namespace {

using csk::bytes_view;
using csk::byte_buffer;
namespace entity = csk::entity;

template <class Key>
std::size_t timers_in(const entity::store<fuzz_entity::thing, Key>& s) {
  std::size_t n = 0;
  for (const auto& [k, e] : s.entries()) n += e.timers.size();
  return n;
}

// One key kind: restore must refuse (store left empty) or accept and re-encode to exactly
// the input (one encoding per state); apply must refuse (store unchanged) or apply.
template <class Key>
bool run(bytes_view in, const entity::snapshot_header* h) {
  const auto desc = entity::describe<fuzz_entity::thing, Key>("fuzz.entity");
  entity::manual_clock clk(h != nullptr ? h->clock_ms : 0);
  entity::store<fuzz_entity::thing, Key> s(desc, &clk);
  auto r = s.restore(in);
  if (!r) {
    CSK_FUZZ_CHECK(!r.error().empty());
    CSK_FUZZ_CHECK(s.size() == 0 && s.timer_count() == 0);
  } else {
    CSK_FUZZ_CHECK(h != nullptr && h->kind == entity::snapshot_kind::full);
    CSK_FUZZ_CHECK(*r == s.size() && s.size() == h->entries);
    CSK_FUZZ_CHECK(s.timer_count() == timers_in(s));
    byte_buffer again;
    s.snapshot(again);
    CSK_FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
  }

  // apply onto a store that already holds one entry.
  entity::store<fuzz_entity::thing, Key> t(desc, &clk);
  t.set(Key{}, fuzz_entity::thing{});
  (void)t.schedule(Key{}, "t", 5);
  auto a = t.apply(in);
  if (!a) {
    CSK_FUZZ_CHECK(!a.error().empty());
    CSK_FUZZ_CHECK(t.size() == 1 && t.timer_count() == 1 && t.deadline(Key{}, "t") == 5);
  } else {
    CSK_FUZZ_CHECK(h != nullptr && h->kind != entity::snapshot_kind::full);
    CSK_FUZZ_CHECK(a->changed == h->entries && a->deleted <= h->deleted);
    CSK_FUZZ_CHECK(t.timer_count() == timers_in(t));
  }
  return r.has_value() || a.has_value();
}

int accepted = 0;

}  // namespace

// Input: an entity snapshot of type "fuzz.entity" (either key kind, any snapshot kind).
int csk_fuzz_entity(const std::uint8_t* data, std::size_t size) {
  const bytes_view in(data, size);
  auto h = entity::read_header(in, nullptr, false);
  const entity::snapshot_header* hp = h ? &*h : nullptr;
  accepted = (run<std::string>(in, hp) ? 1 : 0) + (run<std::int64_t>(in, hp) ? 1 : 0);
  return 0;
}

int csk_fuzz_entity_accepted() { return accepted; }
