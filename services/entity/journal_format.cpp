#include "services/entity/journal_format.hpp"

#include <algorithm>
#include <cstring>

#include "common/base/crc32c.hpp"
#include "common/base/little_endian.hpp"

namespace csk::entity::journal {
namespace {

constexpr std::uint8_t sb_magic[4] = {'C', 'S', 'K', 'S'};
constexpr std::uint8_t rec_magic[4] = {'C', 'S', 'K', 'J'};
constexpr std::uint16_t sb_format = 1;
constexpr std::size_t sb_fixed = 112;  // bytes before the store id

bool all_zero(bytes_view b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t c) { return c == 0; });
}

}  // namespace

const char* record_kind_name(record_kind k) noexcept {
  switch (k) {
    case record_kind::delta: return "delta";
    case record_kind::clear: return "clear";
    case record_kind::wrap: return "wrap";
  }
  return "unknown";
}

byte_buffer encode_superblock(const superblock& sb) {
  byte_buffer out(sb_magic, sb_magic + 4);
  le::put(out, sb_format, 2);
  le::put(out, 0, 2);
  le::put(out, sb.counter, 8);
  le::put(out, sb.epoch, 8);
  le::put(out, sb.ring_size, 8);
  le::put(out, sb.head, 8);
  le::put(out, sb.head_seq, 8);
  out.push_back(sb.slot);
  out.push_back(static_cast<std::uint8_t>(sb.key));
  le::put(out, 0, 6);
  le::put(out, sb.checkpoint_pages, 8);
  le::put(out, sb.checkpoint_bytes, 8);
  le::put(out, static_cast<std::uint64_t>(sb.checkpoint_clock_ms), 8);
  le::put(out, static_cast<std::uint64_t>(sb.checkpoint_unix_ms), 8);
  le::put(out, sb.checkpoints, 8);
  out.insert(out.end(), sb.boot.begin(), sb.boot.end());
  for (const std::string* s : {&sb.store_id, &sb.type}) {
    const std::size_t n = std::min<std::size_t>(s->size(), 255);
    out.push_back(static_cast<std::uint8_t>(n));
    out.insert(out.end(), s->begin(), s->begin() + static_cast<std::ptrdiff_t>(n));
  }
  le::put(out, crc32c(out), 4);
  return out;
}

result<superblock, std::string> decode_superblock(bytes_view in) {
  if (in.size() < sb_fixed + 2 + 4) return unexpected(std::string("too short"));
  if (!std::equal(sb_magic, sb_magic + 4, in.begin())) return unexpected(std::string("no superblock magic"));
  if (le::get(in, 4, 2) != sb_format) return unexpected("superblock format " + std::to_string(le::get(in, 4, 2)));
  superblock sb;
  std::size_t at = sb_fixed;
  std::string* names[2] = {&sb.store_id, &sb.type};
  for (std::string* s : names) {
    if (at >= in.size()) return unexpected(std::string("truncated names"));
    const std::size_t n = in[at++];
    if (n == 0 || n > in.size() - at) return unexpected(std::string("bad name length"));
    s->assign(reinterpret_cast<const char*>(in.data() + at), n);
    at += n;
  }
  if (in.size() - at < 4) return unexpected(std::string("truncated checksum"));
  if (le::get(in, at, 4) != crc32c(in.first(at))) return unexpected(std::string("superblock checksum mismatch"));
  sb.counter = le::get(in, 8, 8);
  sb.epoch = le::get(in, 16, 8);
  sb.ring_size = le::get(in, 24, 8);
  sb.head = le::get(in, 32, 8);
  sb.head_seq = le::get(in, 40, 8);
  sb.slot = in[48];
  sb.key = static_cast<key_kind>(in[49]);
  sb.checkpoint_pages = le::get(in, 56, 8);
  sb.checkpoint_bytes = le::get(in, 64, 8);
  sb.checkpoint_clock_ms = static_cast<std::int64_t>(le::get(in, 72, 8));
  sb.checkpoint_unix_ms = static_cast<std::int64_t>(le::get(in, 80, 8));
  sb.checkpoints = le::get(in, 88, 8);
  std::copy_n(in.begin() + 96, 16, sb.boot.begin());
  if (sb.ring_size < min_ring_size || sb.ring_size > max_ring_size || sb.ring_size % record_align != 0) {
    return unexpected("bad ring size " + std::to_string(sb.ring_size));
  }
  if (sb.head >= sb.ring_size || sb.head % record_align != 0) return unexpected("bad head " + std::to_string(sb.head));
  if (sb.head_seq == 0) return unexpected(std::string("bad head seq 0"));
  if (sb.slot != 0 && sb.slot != 1 && sb.slot != no_slot) return unexpected("bad slot " + std::to_string(sb.slot));
  if (sb.key != key_kind::string && sb.key != key_kind::integer) return unexpected(std::string("bad key kind"));
  if (sb.slot == no_slot && (sb.checkpoint_pages != 0 || sb.checkpoint_bytes != 0)) {
    return unexpected(std::string("checkpoint size without a slot"));
  }
  return sb;
}

result<current_superblock, std::string> read_superblocks(bytes_view page) {
  if (page.size() < header_page_size) return unexpected(std::string("header page truncated"));
  if (all_zero(page.first(hint_at))) return current_superblock{};
  std::optional<superblock> copies[2];
  std::string why[2];
  for (int i = 0; i < 2; ++i) {
    auto r = decode_superblock(page.subspan(superblock_at[i], superblock_space));
    if (r) {
      copies[i] = std::move(*r);
    } else {
      why[i] = r.error();
    }
  }
  if (!copies[0] && !copies[1]) {
    return unexpected("no valid superblock (copy 0: " + why[0] + "; copy 1: " + why[1] + ")");
  }
  int pick = !copies[1] ? 0 : !copies[0] ? 1 : (copies[1]->counter > copies[0]->counter ? 1 : 0);
  return current_superblock{std::move(copies[pick]), pick};
}

void write_hint(std::uint8_t* page, const tail_hint& h) noexcept {
  std::uint8_t* p = page + hint_at;
  le::store(p, h.epoch, 8);
  le::store(p + 8, h.next_seq, 8);
  le::store(p + 16, h.tail, 8);
  le::store(p + 24, h.used, 8);
}

tail_hint read_hint(bytes_view page) noexcept {
  if (page.size() < hint_at + hint_size) return {};
  return tail_hint{le::get(page, hint_at, 8), le::get(page, hint_at + 8, 8), le::get(page, hint_at + 16, 8),
                   le::get(page, hint_at + 24, 8)};
}

void write_record(std::uint8_t* at, std::uint64_t seq, std::uint32_t epoch, record_kind kind,
                  bytes_view payload) noexcept {
  const std::size_t size = record_size(payload.size());
  std::memcpy(at, rec_magic, 4);
  le::store(at + 8, seq, 8);
  le::store(at + 16, epoch, 4);
  at[20] = static_cast<std::uint8_t>(kind);
  at[21] = at[22] = at[23] = 0;
  le::store(at + 24, payload.size(), 4);
  le::store(at + 28, 0, 4);
  if (!payload.empty()) std::memcpy(at + record_header_size, payload.data(), payload.size());
  std::memset(at + record_header_size + payload.size(), 0, size - record_header_size - payload.size());
  le::store(at + 4, crc32c(bytes_view(at + 8, record_header_size - 8 + payload.size())), 4);
}

result<record, std::string> read_record(bytes_view ring, std::uint64_t at, std::uint64_t expect_seq,
                                        std::uint32_t min_epoch) {
  if (at % record_align != 0 || at > ring.size() || ring.size() - at < record_header_size) {
    return unexpected("no room for a record at " + std::to_string(at));
  }
  const bytes_view h = ring.subspan(static_cast<std::size_t>(at));
  if (!std::equal(rec_magic, rec_magic + 4, h.begin())) {
    return unexpected(all_zero(h.first(record_header_size)) ? std::string("never written") : std::string("no record magic"));
  }
  const std::uint64_t n = le::get(h, 24, 4);
  if (n > h.size() - record_header_size) return unexpected("payload length " + std::to_string(n) + " past the ring's end");
  if (le::get(h, 4, 4) != crc32c(h.subspan(8, record_header_size - 8 + static_cast<std::size_t>(n)))) {
    return unexpected(std::string("checksum mismatch"));
  }
  record r;
  r.seq = le::get(h, 8, 8);
  r.epoch = static_cast<std::uint32_t>(le::get(h, 16, 4));
  r.kind = static_cast<record_kind>(h[20]);
  r.payload = h.subspan(record_header_size, static_cast<std::size_t>(n));
  r.offset = at;
  r.size = record_size(static_cast<std::size_t>(n));
  if (r.seq != expect_seq) {
    return unexpected("seq " + std::to_string(r.seq) + " where " + std::to_string(expect_seq) + " was due");
  }
  if (r.epoch < min_epoch) {
    return unexpected("epoch " + std::to_string(r.epoch) + " after epoch " + std::to_string(min_epoch));
  }
  if (r.kind != record_kind::delta && r.kind != record_kind::clear && r.kind != record_kind::wrap) {
    return unexpected("unknown record kind " + std::to_string(h[20]));
  }
  if (r.kind != record_kind::delta && n != 0) return unexpected(std::string(record_kind_name(r.kind)) + " record with a payload");
  if (r.size > h.size()) return unexpected(std::string("padding past the ring's end"));
  return r;
}

result<scan_result, std::string> scan(bytes_view ring, std::uint64_t head, std::uint64_t head_seq,
                                      const std::function<result<void, std::string>(const record&)>& on) {
  scan_result s;
  s.tail = head;
  s.next_seq = head_seq;
  const std::uint64_t size = ring.size();
  std::uint64_t at = head;
  std::uint64_t used = 0;
  for (;;) {
    std::uint64_t waste = 0;
    if (size - at < record_header_size) {  // the implicit wrap
      waste = size - at;
      at = 0;
    }
    auto r = read_record(ring, at, s.next_seq, s.epoch);
    if (!r) {
      s.stop = r.error();
      return s;
    }
    const std::uint64_t take = r->kind == record_kind::wrap ? size - at : r->size;
    if (used + waste + take > size) {
      s.stop = "a full lap of the ring read";
      return s;
    }
    if (r->kind != record_kind::wrap) {
      if (auto ok = on(*r); !ok) return unexpected(ok.error());
    }
    used += waste + take;
    at = r->kind == record_kind::wrap || at + take == size ? 0 : at + take;
    s.tail = at;
    s.used = used;
    s.next_seq = r->seq + 1;
    s.epoch = r->epoch;
    ++s.records;
  }
}

void write_frame(byte_buffer& out, bytes_view page) {
  le::put(out, page.size(), 4);
  le::put(out, crc32c(page), 4);
  out.insert(out.end(), page.begin(), page.end());
}

result<void, std::string> read_frames(bytes_view slot, std::uint64_t pages, std::uint64_t bytes,
                                      const std::function<result<void, std::string>(bytes_view page)>& on) {
  if (bytes > slot.size()) {
    return unexpected("checkpoint of " + std::to_string(bytes) + " bytes, the slot file has " +
                      std::to_string(slot.size()));
  }
  const bytes_view in = slot.first(static_cast<std::size_t>(bytes));
  std::size_t at = 0;
  for (std::uint64_t i = 0; i < pages; ++i) {
    const std::string which = "checkpoint page " + std::to_string(i + 1) + " of " + std::to_string(pages);
    if (in.size() - at < frame_header_size) return unexpected(which + ": truncated frame header");
    const std::uint64_t n = le::get(in, at, 4);
    if (n > in.size() - at - frame_header_size) return unexpected(which + ": length " + std::to_string(n) + " past the end");
    const bytes_view page = in.subspan(at + frame_header_size, static_cast<std::size_t>(n));
    if (le::get(in, at + 4, 4) != crc32c(page)) return unexpected(which + ": checksum mismatch");
    if (auto ok = on(page); !ok) return unexpected(which + ": " + ok.error());
    at += frame_header_size + static_cast<std::size_t>(n);
  }
  if (at != in.size()) return unexpected(std::to_string(in.size() - at) + " bytes after the last checkpoint page");
  return {};
}

}  // namespace csk::entity::journal
