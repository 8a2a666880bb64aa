#pragma once
// The entity snapshot header, and the compatibility rule.
//
// A snapshot is one byte string: a fixed header (hand-encoded, readable without knowing
// the entity type), then a cereal body (services/entity/archive.hpp), then a 4-byte end
// mark. The layout (all integers little-endian):
//
//   offset  size  field
//   0       4     magic "CSKE"
//   4       2     format (1)
//   6       1     kind: 1 full, 2 page (part of a full snapshot), 3 delta
//   7       1     key kind: 1 string, 2 integer (int64)
//   8       4     class version of the entity type (CEREAL_CLASS_VERSION)
//   12      8     writer's clock, ms (entity::clock; CLOCK_MONOTONIC by default)
//   20      8     entries that follow
//   28      8     deleted keys that follow (delta only; 0 otherwise)
//   36      1     n = type name length (1..255)
//   37      n     type name ("game.player")
//   37+n    ...   body: entries [key, value, timer count u32, timers (name, deadline i64)],
//                 then the deleted keys, then "EKSC"
//
// Keys, values and timer names are cereal: a string is a u64 length and its bytes, an
// integer its 8 bytes. Entries are in increasing key order and a key's timers in
// increasing name order, so one state has exactly one encoding.
//
// The compatibility rule (check_compatible): a binary can read a snapshot of type X,
// class version v, when X is registered here with the same key kind and
// min_version <= v <= version. It is checked on the header alone, before any data moves.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"

namespace csk::entity {

enum class key_kind : std::uint8_t { string = 1, integer = 2 };
const char* key_kind_name(key_kind k) noexcept;

enum class snapshot_kind : std::uint8_t { full = 1, page = 2, delta = 3 };
const char* snapshot_kind_name(snapshot_kind k) noexcept;

/// What a binary knows about one entity type: its stable name, the class version its
/// serialize() writes, the oldest version it can still read, and its key kind.
struct type_desc {
  std::string name;
  std::uint32_t version = 0;
  std::uint32_t min_version = 0;
  key_kind key = key_kind::string;
};

struct snapshot_header {
  snapshot_kind kind = snapshot_kind::full;
  key_kind key = key_kind::string;
  std::uint32_t version = 0;
  std::int64_t clock_ms = 0;
  std::uint64_t entries = 0;
  std::uint64_t deleted = 0;
  std::string type;

  friend bool operator==(const snapshot_header&, const snapshot_header&) = default;
};

inline constexpr std::uint8_t snapshot_magic[4] = {'C', 'S', 'K', 'E'};
inline constexpr std::uint8_t snapshot_end[4] = {'E', 'K', 'S', 'C'};
inline constexpr std::uint16_t snapshot_format = 1;
inline constexpr std::size_t max_type_name = 255;
inline constexpr std::size_t header_fixed_size = 37;  ///< header size without the type name

/// Appends the header. The type name must be 1..255 bytes (checked at registration).
void write_header(byte_buffer& out, const snapshot_header& h);

/// Parses the header at the start of `in`; `size` (if given) receives its length.
/// Refuses a wrong magic, an unknown format or kind, a bad key kind or name, and, when
/// `whole` (in is the whole snapshot), counts that the rest of the input cannot hold.
/// With whole = false, `in` may be just the header or the first chunk of a stream.
result<snapshot_header, std::string> read_header(bytes_view in, std::size_t* size = nullptr, bool whole = true);

/// The compatibility rule for one type. The error names the type and both versions.
result<void, std::string> check_compatible(const snapshot_header& h, const type_desc& binary);
/// The same against this process's registry of entity types (services/entity/registry.hpp).
result<void, std::string> check_compatible(const snapshot_header& h);
/// Reads the header at the start of `snapshot` (the whole snapshot, or only its header or
/// first chunk) and checks it against the registry.
result<snapshot_header, std::string> check_snapshot(bytes_view snapshot);

}  // namespace csk::entity
