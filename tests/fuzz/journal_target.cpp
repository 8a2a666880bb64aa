// The entity journal's decoders (services/entity/journal_format.hpp) on arbitrary bytes.
//
// Input: the first 4096 bytes are the journal file's header page (zeros when shorter);
// what follows, cut to a multiple of 8, is the ring (any size: the target scans the bytes
// there are, whatever the superblock says the ring's size is).
//
// Checks: read_superblocks never accepts a copy that does not re-encode to its own bytes;
// the chain scan, from the superblock's head (or offset 0 and the seq of whatever record is
// there), stays inside the ring, reads at most one lap, counts seqs without a gap and ends
// at an offset inside the ring; every record it returns reads again at its offset; delta
// payloads go to an entity store (string keys, "fuzz.entity"), which takes or refuses them
// (entity_target.cpp checks that part); the ring read as a checkpoint slot (frames) gives
// pages inside it and checksums that hold.

#include <cstdint>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "common/base/crc32c.hpp"
#include "common/base/little_endian.hpp"
#include "services/entity/journal_format.hpp"
#include "services/entity/store.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace fuzz_journal {

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

}  // namespace fuzz_journal

CEREAL_CLASS_VERSION(fuzz_journal::thing, 1)

namespace {

using csk::byte_buffer;
using csk::bytes_view;
namespace journal = csk::entity::journal;

std::size_t chain_records = 0;

void superblocks(bytes_view page) {
  auto cur = journal::read_superblocks(page);
  if (!cur || !cur->sb) return;
  CSK_FUZZ_CHECK(cur->copy == 0 || cur->copy == 1);
  const byte_buffer again = journal::encode_superblock(*cur->sb);
  const bytes_view copy = page.subspan(journal::superblock_at[cur->copy], journal::superblock_space);
  CSK_FUZZ_CHECK(again.size() <= copy.size());
  CSK_FUZZ_CHECK(std::equal(again.begin(), again.end(), copy.begin()));
}

void chain(bytes_view page, bytes_view ring) {
  std::uint64_t head = 0, head_seq = 1;
  auto cur = journal::read_superblocks(page);
  if (cur && cur->sb && cur->sb->head < ring.size()) {
    head = cur->sb->head;
    head_seq = cur->sb->head_seq;
  } else if (ring.size() >= journal::record_header_size) {
    head_seq = csk::le::get(ring, 8, 8);
  }
  const auto desc = csk::entity::describe<fuzz_journal::thing, std::string>("fuzz.entity");
  csk::entity::manual_clock clk(0);
  csk::entity::store<fuzz_journal::thing, std::string> s(desc, &clk);
  std::uint64_t seen = 0;
  auto r = journal::scan(ring, head, head_seq, [&](const journal::record& rec) -> csk::result<void, std::string> {
    CSK_FUZZ_CHECK(rec.offset + rec.size <= ring.size());
    CSK_FUZZ_CHECK(rec.offset % journal::record_align == 0);
    CSK_FUZZ_CHECK(rec.kind == journal::record_kind::delta || rec.kind == journal::record_kind::clear);
    auto again = journal::read_record(ring, rec.offset, rec.seq, rec.epoch);
    CSK_FUZZ_CHECK(again.has_value() && again->size == rec.size);
    ++seen;
    if (rec.kind == journal::record_kind::clear) {
      s.clear();
    } else {
      (void)s.apply(rec.payload);
    }
    return {};
  });
  CSK_FUZZ_CHECK(r.has_value());  // the callback never fails here
  CSK_FUZZ_CHECK(r->used <= ring.size());
  CSK_FUZZ_CHECK(r->tail < ring.size() || (r->tail == 0 && ring.empty()) || (r->records == 0 && r->tail == head));
  CSK_FUZZ_CHECK(r->next_seq == head_seq + r->records);
  CSK_FUZZ_CHECK(seen <= r->records);
  CSK_FUZZ_CHECK(!r->stop.empty());
  CSK_FUZZ_CHECK(s.timer_count() <= ring.size());
  chain_records = seen;
}

void frames(bytes_view ring, std::uint64_t pages) {
  std::uint64_t n = 0;
  auto r = journal::read_frames(ring, pages, ring.size(), [&](bytes_view page) -> csk::result<void, std::string> {
    CSK_FUZZ_CHECK(page.data() >= ring.data() && page.data() + page.size() <= ring.data() + ring.size());
    CSK_FUZZ_CHECK(csk::le::get(bytes_view(page.data() - 8, 8), 4, 4) == csk::crc32c(page));
    ++n;
    return {};
  });
  if (r) CSK_FUZZ_CHECK(n == pages);
}

}  // namespace

int csk_fuzz_journal(const std::uint8_t* data, std::size_t size) {
  byte_buffer page(journal::header_page_size, 0);
  std::copy(data, data + std::min(size, journal::header_page_size), page.begin());
  const bytes_view ring = size > journal::header_page_size
                              ? bytes_view(data + journal::header_page_size, (size - journal::header_page_size) / 8 * 8)
                              : bytes_view{};
  superblocks(page);
  (void)journal::read_hint(page);
  chain(page, ring);
  frames(ring, size > 0 ? data[0] % 16 : 0);
  return 0;
}

int csk_fuzz_journal_records() { return static_cast<int>(chain_records); }
