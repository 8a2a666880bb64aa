#include "common/channel/messages.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <type_traits>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "common/channel/archive.hpp"

namespace csk::channel {

// --- the payloads: one serialize per message, fields in wire order ------------------

template <class A> void serialize(A& ar, hello& m) { ar(m.protocol_version, m.generation, m.pid); }
template <class A> void serialize(A& ar, welcome& m) { ar(m.heartbeat_ms); }
template <class A> void serialize(A& ar, refuse& m) { ar(m.reason); }
template <class A> void serialize(A& ar, listeners& m) { ar(m.names, m.batch, m.batches); }
template <class A> void serialize(A&, ready&) {}
template <class A> void serialize(A& ar, heartbeat& m) {
  ar(m.seq, m.uptime_ms, m.services, m.dispatched, m.connections);
}
template <class A> void serialize(A&, reload&) {}
template <class A> void serialize(A&, log_reopen&) {}
template <class A> void serialize(A& ar, drain& m) { ar(m.deadline_ms); }
template <class A> void serialize(A&, drained&) {}
template <class A> void serialize(A& ar, stop& m) { ar(m.deadline_ms); }
template <class A> void serialize(A&, stopped&) {}
template <class A> void serialize(A& ar, handover& m) { ar(m.to_generation, m.deadline_ms); }
template <class A> void serialize(A& ar, takeover& m) { ar(m.from_generation, m.deadline_ms); }
template <class A> void serialize(A& ar, console& m) { ar(m.id, m.line); }
template <class A> void serialize(A& ar, console_reply& m) { ar(m.id, m.ok, m.text); }
template <class A> void serialize(A& ar, counters& m) {
  ar(m.restarts, m.upgrades_ok, m.upgrades_failed, m.last_upgrade_total_us, m.last_upgrade_frozen_us);
}
template <class A> void serialize(A& ar, keep& m) { ar(m.names); }
template <class A> void serialize(A& ar, store_stat& m) {
  ar(m.id, m.type, m.entities, m.ring_bytes, m.used_bytes, m.records_since_checkpoint, m.checkpoints,
     m.last_checkpoint_unix_ms, m.checkpointing, m.recovered_entities, m.recovered_records, m.recovery_us,
     m.recovery_bad, m.note);
}
template <class A> void serialize(A& ar, stores& m) { ar(m.list); }
template <class A> void serialize(A& ar, upgrade_result& m) {
  ar(m.ok, m.reason, m.phase, m.total_us, m.precopy_us, m.frozen_us, m.entities, m.delta_entities, m.final_delta,
     m.state_bytes, m.connections);
}

namespace {

constexpr std::uint8_t magic[4] = {'C', 'S', 'K', 'C'};
constexpr std::size_t max_reason = 4096;

// The variant's alternatives in kind order: kind k is alternative k - 1.
static_assert(std::variant_size_v<message> == static_cast<std::size_t>(kind::stores));
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(kind::listeners) - 1, message>,
                             listeners>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(kind::stopped) - 1, message>,
                             stopped>);

constexpr std::string_view kind_names[] = {"hello",      "welcome", "refuse",  "listeners",
                                           "ready",      "heartbeat", "reload", "log_reopen",
                                           "drain",      "drained", "stop",    "stopped",
                                           "handover",   "takeover", "upgrade_result", "console",
                                           "console_reply", "counters", "keep", "stores"};

void put_le(byte_buffer& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_le(bytes_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{in[at + static_cast<std::size_t>(i)]} << (8 * i);
  return v;
}

// Default-constructs alternative `index` of the variant (index < variant_size).
template <std::size_t... I>
message make_alternative(std::size_t index, std::index_sequence<I...>) {
  message m;
  (void)((index == I ? (m.emplace<I>(), true) : false) || ...);
  return m;
}

}  // namespace

kind kind_of(const message& m) { return static_cast<kind>(m.index() + 1); }

std::string_view name_of(kind k) {
  const auto i = static_cast<std::size_t>(k);
  if (i == 0 || i > std::size(kind_names)) return "unknown";
  return kind_names[i - 1];
}

std::size_t fds_announced(const message& m) {
  if (const auto* l = std::get_if<listeners>(&m)) return l->names.size();
  if (const auto* k = std::get_if<keep>(&m)) return k->names.size();
  if (std::holds_alternative<handover>(m) || std::holds_alternative<takeover>(m)) return 1;
  return 0;
}

std::string check(const message& m) {
  if (const auto* l = std::get_if<listeners>(&m)) {
    if (l->batches == 0) return "listeners: batches must be at least 1";
    if (l->batch >= l->batches) {
      return "listeners: batch " + std::to_string(l->batch) + " of " + std::to_string(l->batches);
    }
    if (l->names.size() > max_fds_per_record) {
      return "listeners: " + std::to_string(l->names.size()) + " names in one record (at most " +
             std::to_string(max_fds_per_record) + ")";
    }
    for (const auto& n : l->names) {
      if (n.empty()) return "listeners: empty name";
    }
  }
  if (const auto* k = std::get_if<keep>(&m)) {
    if (k->names.empty() || k->names.size() > max_fds_per_record) {
      return "keep: 1.." + std::to_string(max_fds_per_record) + " names, got " + std::to_string(k->names.size());
    }
    for (const auto& n : k->names) {
      if (n.empty() || n.size() > 255) return "keep: names are 1..255 bytes";
    }
  }
  if (const auto* st = std::get_if<stores>(&m)) {
    if (st->list.size() > 200) return "stores: at most 200, got " + std::to_string(st->list.size());
    for (const auto& e : st->list) {
      if (e.note.size() > 1024 || e.checkpointing > 1 || e.recovery_bad > 1) {
        return "stores: note at most 1024 bytes, flags 0 or 1";
      }
    }
  }
  if (const auto* r = std::get_if<refuse>(&m); r != nullptr && r->reason.size() > max_reason) {
    return "refuse: reason longer than " + std::to_string(max_reason) + " bytes";
  }
  if (const auto* u = std::get_if<upgrade_result>(&m);
      u != nullptr && (u->ok > 1 || u->reason.size() > max_reason || u->phase.size() > 64)) {
    return "upgrade_result: ok is 0 or 1, reason at most " + std::to_string(max_reason) + " bytes, phase at most 64";
  }
  if (const auto* c = std::get_if<console>(&m); c != nullptr && c->line.size() > max_reason) {
    return "console: line longer than " + std::to_string(max_reason) + " bytes";
  }
  if (const auto* c = std::get_if<console_reply>(&m); c != nullptr && (c->ok > 1 || c->text.size() > max_record - 64)) {
    return "console_reply: ok is 0 or 1, text at most " + std::to_string(max_record - 64) + " bytes";
  }
  return "";
}

byte_buffer encode(const message& m) {
  byte_buffer out(magic, magic + 4);
  put_le(out, header_format, 2);
  put_le(out, static_cast<std::uint16_t>(kind_of(m)), 2);
  put_le(out, 0, 4);  // payload length, patched below
  {
    detail::output_archive ar(out);
    std::visit([&](const auto& body) { ar(body); }, m);  // cereal saves through a const_cast of its own
  }
  const std::size_t payload = out.size() - header_size;
  for (int i = 0; i < 4; ++i) out[8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(payload >> (8 * i));
  return out;
}

result<message, std::string> decode(bytes_view record) {
  if (record.size() < header_size) {
    return unexpected("truncated header: " + std::to_string(record.size()) + " of " +
                      std::to_string(header_size) + " bytes");
  }
  if (record.size() > max_record) {
    return unexpected("record of " + std::to_string(record.size()) + " bytes (at most " +
                      std::to_string(max_record) + ")");
  }
  if (!std::equal(magic, magic + 4, record.begin())) return unexpected(std::string("bad magic (not a channel record)"));
  const auto format = get_le(record, 4, 2);
  if (format != header_format) {
    return unexpected("header format " + std::to_string(format) + " (this side reads " +
                      std::to_string(header_format) + ")");
  }
  const auto k = get_le(record, 6, 2);
  if (k == 0 || k > std::variant_size_v<message>) return unexpected("unknown message kind " + std::to_string(k));
  const auto length = get_le(record, 8, 4);
  const bytes_view payload = record.subspan(header_size);
  const std::string name(name_of(static_cast<kind>(k)));
  if (length != payload.size()) {
    return unexpected(name + ": payload length says " + std::to_string(length) + " bytes, the record has " +
                      std::to_string(payload.size()));
  }
  message m = make_alternative(static_cast<std::size_t>(k - 1), std::make_index_sequence<std::variant_size_v<message>>{});
  try {
    detail::input_archive ar(payload);
    std::visit([&](auto& body) { ar(body); }, m);
    if (ar.remaining() != 0) {
      return unexpected(name + ": " + std::to_string(ar.remaining()) + " bytes after the payload");
    }
  } catch (const std::exception& e) {
    return unexpected("bad " + name + " payload: " + e.what());
  }
  if (std::string why = check(m); !why.empty()) return unexpected(std::move(why));
  return m;
}

}  // namespace csk::channel
