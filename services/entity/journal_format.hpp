#pragma once
// The bytes of an entity store's journal (docs/durability.md). Pure functions on byte
// spans: no files, no mapping, no clock (journal.hpp does the I/O).
//
// A store's state lives in three files (memfds the supervisor holds, or files in
// persist.dir): the journal file and two checkpoint slots.
//
// Journal file: a 4096-byte header page, then the ring (ring_size bytes, a multiple of 8).
//
//   header page
//   offset  size  field
//   0       1024  superblock copy 0 } the valid copy with the higher counter is the
//   1024    1024  superblock copy 1 } current one; a writer replaces the other copy
//   2048    32    tail hint: epoch u64, next_seq u64, tail u64, used u64 (no checksum: a
//                 hint, rewritten after every append; recovery trusts the records)
//
//   superblock (little-endian)
//   0    4  magic "CSKS"
//   4    2  format (1)
//   6    2  0
//   8    8  counter: bumped at every write of a superblock
//   16   8  epoch: bumped by each writer as it starts (a crashed worker's successor,
//           the new worker of an upgrade at its commit)
//   24   8  ring_size
//   32   8  head: ring offset of the first record after the checkpoint
//   40   8  head_seq: that record's seq (the checkpoint holds everything before it)
//   48   1  slot: the checkpoint's slot file, 0 or 1; 255 = no checkpoint yet
//   49   1  key kind of the store (1 string, 2 integer)
//   50   6  0
//   56   8  checkpoint pages
//   64   8  checkpoint bytes (of the slot file: its frames)
//   72   8  checkpoint clock ms (the entity clock when it began)
//   80   8  checkpoint unix ms (the wall clock when it was committed, for operators)
//   88   8  checkpoints committed in this region
//   96   16 boot id of the kernel that wrote this copy (/proc/sys/kernel/random/boot_id)
//   112  1  n, then n bytes: the store's id
//        1  m, then m bytes: its entity type name
//        4  CRC-32C of every byte before it
//
//   record (8-aligned in the ring; never split by the ring's end)
//   0    4  magic "CSKJ"
//   4    4  CRC-32C of bytes 8 .. 32+n
//   8    8  seq: 1, 2, 3, ... with no gap, wrap records included
//   16   4  epoch of the writer (never lower than the record before it)
//   20   1  kind: 1 delta (payload: an entity snapshot of kind delta, snapshot.hpp: the
//           whole entries of the keys one message changed, and the keys it deleted),
//           2 clear (no payload: every entity deleted), 3 wrap (no payload: the next
//           record is at ring offset 0)
//   21   3  0
//   24   4  n = payload length
//   28   4  0
//   32   n  payload, then zeros up to a multiple of 8
//   Fewer than 32 bytes left before the ring's end: the next record is at offset 0.
//
// Checkpoint slot file: frames, one per page: u32 length, u32 CRC-32C of the page, the
// page (an entity snapshot of kind page). The superblock names the slot and says how
// many frames and bytes make the checkpoint. A checkpoint is fuzzy: pages are written
// between the store's messages while it keeps changing, so recovery applies the pages,
// then replays every record from head_seq on; a record always carries a key's whole
// entry, so replaying it over a page that already saw the change gives the same state.
//
// The chain: recovery reads records from `head`, each with the next seq, a good checksum
// and an epoch no lower than the one before; the first position that breaks this ends
// it (bytes never written, a stale record of an earlier lap or epoch, a torn or
// corrupted one). Whether that end is the writer's tail or a bad record in the middle of
// what it wrote is told by the tail hint (scan_result and journal.hpp).

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "services/entity/snapshot.hpp"

namespace csk::entity::journal {

inline constexpr std::size_t header_page_size = 4096;
inline constexpr std::size_t superblock_space = 1024;
inline constexpr std::size_t superblock_at[2] = {0, 1024};
inline constexpr std::size_t hint_at = 2048;
inline constexpr std::size_t hint_size = 32;
inline constexpr std::size_t record_header_size = 32;
inline constexpr std::size_t record_align = 8;
inline constexpr std::size_t frame_header_size = 8;
inline constexpr std::uint8_t no_slot = 0xFF;
/// Smallest and largest rings (journal.size_mb's range is inside these).
inline constexpr std::uint64_t min_ring_size = 64 * 1024;
inline constexpr std::uint64_t max_ring_size = std::uint64_t{1} << 40;

enum class record_kind : std::uint8_t { delta = 1, clear = 2, wrap = 3 };
const char* record_kind_name(record_kind k) noexcept;

using boot_id = std::array<std::uint8_t, 16>;

struct superblock {
  std::uint64_t counter = 0;
  std::uint64_t epoch = 0;
  std::uint64_t ring_size = 0;
  std::uint64_t head = 0;
  std::uint64_t head_seq = 1;
  std::uint8_t slot = no_slot;
  key_kind key = key_kind::string;
  std::uint64_t checkpoint_pages = 0;
  std::uint64_t checkpoint_bytes = 0;
  std::int64_t checkpoint_clock_ms = 0;
  std::int64_t checkpoint_unix_ms = 0;
  std::uint64_t checkpoints = 0;
  boot_id boot{};
  std::string store_id;  ///< 1..255 bytes
  std::string type;      ///< 1..255 bytes

  friend bool operator==(const superblock&, const superblock&) = default;
};

/// The superblock's bytes (at most superblock_space). Pure.
byte_buffer encode_superblock(const superblock& sb);
/// One copy back; an error says what is wrong (magic, format, checksum, a field).
result<superblock, std::string> decode_superblock(bytes_view copy);

/// The current superblock of a header page: the valid copy with the higher counter, and
/// which copy it is (0 or 1). A page of zeros is a new region: no superblock (nullopt).
/// A page with bytes but no valid copy is an error naming both copies' faults.
struct current_superblock {
  std::optional<superblock> sb;
  int copy = -1;
};
result<current_superblock, std::string> read_superblocks(bytes_view header_page);

struct tail_hint {
  std::uint64_t epoch = 0;
  std::uint64_t next_seq = 0;
  std::uint64_t tail = 0;
  std::uint64_t used = 0;
  friend bool operator==(const tail_hint&, const tail_hint&) = default;
};
void write_hint(std::uint8_t* header_page, const tail_hint& h) noexcept;
tail_hint read_hint(bytes_view header_page) noexcept;

/// Bytes a record with `payload` bytes takes in the ring (header, payload, padding).
constexpr std::size_t record_size(std::size_t payload) noexcept {
  return (record_header_size + payload + record_align - 1) / record_align * record_align;
}
/// Writes one record at `at`, which has record_size(payload.size()) bytes. Pure.
void write_record(std::uint8_t* at, std::uint64_t seq, std::uint32_t epoch, record_kind kind,
                  bytes_view payload) noexcept;

struct record {
  std::uint64_t seq = 0;
  std::uint32_t epoch = 0;
  record_kind kind = record_kind::delta;
  bytes_view payload;
  std::uint64_t offset = 0;  ///< in the ring
  std::size_t size = 0;      ///< record_size(payload.size())
};

/// Reads the record at ring offset `at` if it continues a chain: seq `expect_seq`, epoch
/// >= `min_epoch`, a good checksum, a known kind. Otherwise the reason it does not.
result<record, std::string> read_record(bytes_view ring, std::uint64_t at, std::uint64_t expect_seq,
                                        std::uint32_t min_epoch);

/// Where a chain ended and why.
struct scan_result {
  std::uint64_t tail = 0;      ///< where the next record goes
  std::uint64_t next_seq = 1;  ///< its seq
  std::uint64_t used = 0;      ///< ring bytes from head to tail (wrap waste included)
  std::uint64_t records = 0;   ///< records read (wrap records included)
  std::uint32_t epoch = 0;     ///< the last record's epoch (0 if none)
  std::string stop;            ///< why the record at `tail` does not continue the chain
};

/// Reads the chain from `head` (seq `head_seq`), calling `on` for every delta and clear
/// record in order. Stops at the end of the chain (reported in scan_result), or when `on`
/// returns an error (returned as is). Never reads more than one lap of the ring.
result<scan_result, std::string> scan(bytes_view ring, std::uint64_t head, std::uint64_t head_seq,
                                      const std::function<result<void, std::string>(const record&)>& on);

/// Appends one checkpoint frame (u32 length, u32 CRC-32C, the page). Pure.
void write_frame(byte_buffer& out, bytes_view page);
/// Calls `on` for each of the `pages` frames in the first `bytes` bytes of a slot file.
/// An error names the frame and what is wrong (length, checksum, count).
result<void, std::string> read_frames(bytes_view slot, std::uint64_t pages, std::uint64_t bytes,
                                      const std::function<result<void, std::string>(bytes_view page)>& on);

}  // namespace csk::entity::journal
