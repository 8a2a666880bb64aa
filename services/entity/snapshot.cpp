#include "services/entity/snapshot.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>

#include "services/entity/registry.hpp"
#include "services/entity/store.hpp"

namespace csk::entity {

const char* key_kind_name(key_kind k) noexcept {
  switch (k) {
    case key_kind::string: return "string";
    case key_kind::integer: return "integer";
  }
  return "unknown";
}

const char* snapshot_kind_name(snapshot_kind k) noexcept {
  switch (k) {
    case snapshot_kind::full: return "full snapshot";
    case snapshot_kind::page: return "page";
    case snapshot_kind::delta: return "delta";
  }
  return "unknown kind";
}

namespace {

void put_le(byte_buffer& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_le(bytes_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{in[at + static_cast<std::size_t>(i)]} << (8 * i);
  return v;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '-';
}

bool good_name(std::string_view n) {
  return !n.empty() && n.size() <= max_type_name && std::all_of(n.begin(), n.end(), name_char);
}

// The least bytes one entry / one deleted key takes in the body.
constexpr std::uint64_t min_entry_bytes = 12;  // key (8), timer count (4)
constexpr std::uint64_t min_key_bytes = 8;

}  // namespace

void validate(const type_desc& d) {
  if (!good_name(d.name)) {
    throw std::invalid_argument("entity type name '" + d.name + "': 1..255 characters of [A-Za-z0-9_.:-]");
  }
  if (d.min_version > d.version) {
    throw std::invalid_argument("entity type '" + d.name + "': min_version " + std::to_string(d.min_version) +
                                " is above its version " + std::to_string(d.version));
  }
  if (d.key != key_kind::string && d.key != key_kind::integer) {
    throw std::invalid_argument("entity type '" + d.name + "': bad key kind");
  }
}

void write_header(byte_buffer& out, const snapshot_header& h) {
  out.insert(out.end(), std::begin(snapshot_magic), std::end(snapshot_magic));
  put_le(out, snapshot_format, 2);
  out.push_back(static_cast<std::uint8_t>(h.kind));
  out.push_back(static_cast<std::uint8_t>(h.key));
  put_le(out, h.version, 4);
  put_le(out, static_cast<std::uint64_t>(h.clock_ms), 8);
  put_le(out, h.entries, 8);
  put_le(out, h.deleted, 8);
  const std::size_t n = std::min(h.type.size(), max_type_name);
  out.push_back(static_cast<std::uint8_t>(n));
  out.insert(out.end(), h.type.begin(), h.type.begin() + static_cast<std::ptrdiff_t>(n));
}

result<snapshot_header, std::string> read_header(bytes_view in, std::size_t* size, bool whole) {
  if (in.size() < header_fixed_size) {
    return unexpected("truncated header: " + std::to_string(in.size()) + " bytes, at least " +
                      std::to_string(header_fixed_size) + " needed");
  }
  if (!std::equal(std::begin(snapshot_magic), std::end(snapshot_magic), in.begin())) {
    return unexpected(std::string("not an entity snapshot (bad magic)"));
  }
  const auto format = get_le(in, 4, 2);
  if (format != snapshot_format) {
    return unexpected("snapshot format " + std::to_string(format) + " is not known here (this binary reads format " +
                      std::to_string(snapshot_format) + ")");
  }
  snapshot_header h;
  const auto kind = in[6];
  if (kind < 1 || kind > 3) return unexpected("unknown snapshot kind " + std::to_string(kind));
  h.kind = static_cast<snapshot_kind>(kind);
  const auto key = in[7];
  if (key < 1 || key > 2) return unexpected("unknown key kind " + std::to_string(key));
  h.key = static_cast<key_kind>(key);
  h.version = static_cast<std::uint32_t>(get_le(in, 8, 4));
  h.clock_ms = static_cast<std::int64_t>(get_le(in, 12, 8));
  h.entries = get_le(in, 20, 8);
  h.deleted = get_le(in, 28, 8);
  const std::size_t n = in[36];
  if (in.size() < header_fixed_size + n) return unexpected(std::string("truncated header: the type name is cut"));
  h.type.assign(reinterpret_cast<const char*>(in.data()) + header_fixed_size, n);
  if (!good_name(h.type)) return unexpected(std::string("bad type name in the header"));
  if (h.kind != snapshot_kind::delta && h.deleted != 0) {
    return unexpected(std::string("a ") + snapshot_kind_name(h.kind) + " has no deleted keys, the header says " +
                      std::to_string(h.deleted));
  }
  const std::size_t hsize = header_fixed_size + n;
  if (size != nullptr) *size = hsize;
  if (!whole) return h;
  // The counts must fit in what follows (the end mark included): nothing is sized from
  // a count the input cannot back.
  const std::uint64_t rest = in.size() - hsize;
  if (rest < 4) return unexpected(std::string("truncated: no room for the body and end mark"));
  const std::uint64_t body = rest - 4;
  if (h.entries > body / min_entry_bytes || h.deleted > (body - h.entries * min_entry_bytes) / min_key_bytes) {
    return unexpected("truncated: " + std::to_string(h.entries) + " entries and " + std::to_string(h.deleted) +
                      " deleted keys cannot fit in " + std::to_string(body) + " bytes");
  }
  return h;
}

result<void, std::string> check_compatible(const snapshot_header& h, const type_desc& binary) {
  const std::string who = "entity type '" + h.type + "'";
  if (h.type != binary.name) {
    return unexpected(who + ": this binary's type is '" + binary.name + "'");
  }
  if (h.key != binary.key) {
    return unexpected(who + ": the snapshot's keys are " + key_kind_name(h.key) + "s, this binary's are " +
                      key_kind_name(binary.key) + "s");
  }
  if (h.version > binary.version) {
    return unexpected(who + ": snapshot version " + std::to_string(h.version) + " is newer than this binary's version " +
                      std::to_string(binary.version));
  }
  if (h.version < binary.min_version) {
    return unexpected(who + ": snapshot version " + std::to_string(h.version) +
                      " is older than the oldest version this binary reads (" + std::to_string(binary.min_version) +
                      "; it writes " + std::to_string(binary.version) + ")");
  }
  return {};
}

result<void, std::string> check_compatible(const snapshot_header& h) {
  const auto d = find_type(h.type);
  if (!d) {
    return unexpected("entity type '" + h.type + "' (snapshot version " + std::to_string(h.version) +
                      ") is not registered in this binary");
  }
  return check_compatible(h, *d);
}

result<snapshot_header, std::string> check_snapshot(bytes_view snapshot) {
  auto h = read_header(snapshot, nullptr, false);
  if (!h) return unexpected(h.error());
  if (auto ok = check_compatible(*h); !ok) return unexpected(ok.error());
  return h;
}

}  // namespace csk::entity
