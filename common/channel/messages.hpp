#pragma once
// The supervisor <-> worker channel: the message catalog and its encoding. Pure: no
// sockets here (fd_channel.hpp sends and receives), no actor runtime, no wire codec.
//
// One message per SOCK_SEQPACKET record:
//
//   offset  size  field
//   0       4     magic "CSKC"
//   4       2     format, little-endian: 1. The header and hello's payload never change
//                 shape, so any two builds can exchange hello and refuse each other cleanly.
//   6       2     kind, little-endian (enum kind below; numbers are pinned)
//   8       4     payload length, little-endian: exactly the bytes that follow
//   12      n     payload: the message's fields, cereal-serialized little-endian (strings
//                 and sequences: a u64 length, then the elements)
//
// A whole record is at most max_record bytes. protocol_version (in hello) names the
// catalog: bump it whenever an old and a new build can no longer talk (a field added,
// removed or retyped, a kind's meaning changed). The supervisor refuses a worker whose
// protocol_version differs from its own.
//
// Who sends what (S = supervisor, W = worker):
//   W->S hello        first message: protocol_version, generation (from CSK_GENERATION), pid
//   S->W welcome      hello accepted: heartbeat interval; listeners follow
//   S->W refuse       hello refused (reason); the supervisor then kills the worker
//   S->W listeners    names of the fds attached to this record, in order; batch/batches
//                     split more than max_fds_per_record fds over several records
//   W->S ready        services booted and started; the worker serves
//   W->S heartbeat    every heartbeat_ms once ready: seq and a few counters
//   S->W reload       reload the node table (SIGHUP)
//   S->W log_reopen   reopen log files (SIGUSR1)
//   S->W drain        stop accepting, finish in-flight work before deadline_ms; answer drained
//   W->S drained
//   S->W stop         orderly stop within deadline_ms, then exit
//   W->S stopped      sent just before a requested exit
//   S->W handover     to the serving worker (N) at an upgrade: hand everything over to
//                     generation to_generation; one fd: N's end of the transfer socket
//   S->W takeover     to the new worker (N+1), right after listeners: take over from
//                     from_generation; one fd: its end of the transfer socket
//   W->S upgrade_result  from N: the upgrade's verdict (ok, or why it was abandoned and
//                     N serves on) and its timings; N exits after an ok one
//   S->W console      an operator's console line for the worker (`cppskynet console`)
//   W->S console_reply  its answer, JSON text, by id
//   S->W counters     the supervisor's counters (restarts, upgrades), for the worker's
//                     /metrics; sent when a worker is ready and whenever they change
//   W->S keep         fds the supervisor must hold for the workers to come (an entity
//                     store's state in memory: its journal and checkpoint memfds), by
//                     name; it passes every one it holds to each worker it starts, after
//                     the listeners in the same set (names "state:..."), and never reads them
//   W->S stores       each entity store's journal counters, for `cppskynet status`; with
//                     every heartbeat
//
// The two workers talk to each other over the transfer socket (transfer.hpp), never
// through the supervisor.
//
// Decoding never throws and never trusts a length: every size is checked against the
// bytes that are actually there before anything is allocated.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"

namespace csk::channel {

/// A worker's exit code that tells the supervisor not to restart it: the entity state it
/// was given cannot be read by this binary (a newer version, another type, a damaged
/// checkpoint). The supervisor keeps the state and waits for `cppskynet upgrade --worker`.
inline constexpr int exit_state_unreadable = 6;

/// The catalog's version, carried in hello. Bump on any incompatible change.
inline constexpr std::uint32_t protocol_version = 3;
/// The header's format field. Never changes (see above).
inline constexpr std::uint16_t header_format = 1;
inline constexpr std::size_t header_size = 12;
/// Largest record (header + payload) either side sends or accepts.
inline constexpr std::size_t max_record = 64 * 1024;
/// The kernel's SCM_MAX_FD: most fds one sendmsg may carry.
inline constexpr std::size_t max_fds_per_record = 253;

/// Message kinds as numbered on the wire (pinned: never renumber, only add).
enum class kind : std::uint16_t {
  hello = 1,
  welcome = 2,
  refuse = 3,
  listeners = 4,
  ready = 5,
  heartbeat = 6,
  reload = 7,
  log_reopen = 8,
  drain = 9,
  drained = 10,
  stop = 11,
  stopped = 12,
  handover = 13,
  takeover = 14,
  upgrade_result = 15,
  console = 16,
  console_reply = 17,
  counters = 18,
  keep = 19,
  stores = 20,
};

struct hello {
  std::uint32_t protocol_version = channel::protocol_version;
  std::uint32_t generation = 0;
  std::int32_t pid = 0;
  friend bool operator==(const hello&, const hello&) = default;
};
struct welcome {
  std::uint32_t heartbeat_ms = 1000;  ///< how often the worker sends heartbeat once ready
  friend bool operator==(const welcome&, const welcome&) = default;
};
struct refuse {
  std::string reason;
  friend bool operator==(const refuse&, const refuse&) = default;
};
struct listeners {
  std::vector<std::string> names;  ///< one per fd attached to this record, in order
  std::uint32_t batch = 0;         ///< 0-based index of this record
  std::uint32_t batches = 1;       ///< records in the whole set (>= 1)
  friend bool operator==(const listeners&, const listeners&) = default;
};
struct ready {
  friend bool operator==(const ready&, const ready&) = default;
};
struct heartbeat {
  std::uint64_t seq = 0;          ///< 1, 2, 3, ...
  std::uint64_t uptime_ms = 0;    ///< since the worker started
  std::uint64_t services = 0;     ///< live services
  std::uint64_t dispatched = 0;   ///< messages handled so far
  std::uint64_t connections = 0;  ///< inbound cluster connections now
  friend bool operator==(const heartbeat&, const heartbeat&) = default;
};
struct reload {
  friend bool operator==(const reload&, const reload&) = default;
};
struct log_reopen {
  friend bool operator==(const log_reopen&, const log_reopen&) = default;
};
struct drain {
  std::uint32_t deadline_ms = 0;
  friend bool operator==(const drain&, const drain&) = default;
};
struct drained {
  friend bool operator==(const drained&, const drained&) = default;
};
struct stop {
  std::uint32_t deadline_ms = 0;
  friend bool operator==(const stop&, const stop&) = default;
};
struct stopped {
  friend bool operator==(const stopped&, const stopped&) = default;
};

struct handover {
  std::uint32_t to_generation = 0;
  std::uint32_t deadline_ms = 0;  ///< the whole upgrade; past it N abandons and serves on
  friend bool operator==(const handover&, const handover&) = default;
};
struct takeover {
  std::uint32_t from_generation = 0;
  std::uint32_t deadline_ms = 0;
  friend bool operator==(const takeover&, const takeover&) = default;
};
/// The old worker's verdict. Durations in microseconds, measured by N.
struct upgrade_result {
  std::uint8_t ok = 0;             ///< 1: N+1 serves, N exits; 0: abandoned, N serves on
  std::string reason;              ///< why it was abandoned ("" when ok); at most 4 KiB
  std::string phase;               ///< where it ended: "offer", "pre-copy", "freeze", "hand-over", "cutover", "done"
  std::uint64_t total_us = 0;      ///< handover received -> serving (or abandoned)
  std::uint64_t precopy_us = 0;    ///< offer accepted -> freeze
  std::uint64_t frozen_us = 0;     ///< freeze -> the new worker serving: no inbound request read meanwhile
  std::uint64_t entities = 0;      ///< entities in the pre-copy pages
  std::uint64_t delta_entities = 0;  ///< changed + deleted keys sent in deltas (final included)
  std::uint64_t final_delta = 0;   ///< of which in the final (frozen) delta
  std::uint64_t state_bytes = 0;   ///< snapshot bytes sent
  std::uint64_t connections = 0;   ///< connections handed over (cluster + gates)
  friend bool operator==(const upgrade_result&, const upgrade_result&) = default;
};

struct console {
  std::uint64_t id = 0;  ///< the supervisor's, echoed in the reply
  std::string line;      ///< "list", "call @echo hi", ...; at most 4 KiB
  friend bool operator==(const console&, const console&) = default;
};
struct console_reply {
  std::uint64_t id = 0;
  std::uint8_t ok = 0;   ///< 1: `text` is the answer; 0: `text` says what went wrong
  std::string text;      ///< JSON; at most max_record - 64 bytes
  friend bool operator==(const console_reply&, const console_reply&) = default;
};

struct counters {
  std::uint64_t restarts = 0;          ///< workers restarted after a death
  std::uint64_t upgrades_ok = 0;
  std::uint64_t upgrades_failed = 0;
  std::uint64_t last_upgrade_total_us = 0;   ///< of the last successful upgrade
  std::uint64_t last_upgrade_frozen_us = 0;
  friend bool operator==(const counters&, const counters&) = default;
};

struct keep {
  std::vector<std::string> names;  ///< one per fd attached, in order; 1..max_fds_per_record
  friend bool operator==(const keep&, const keep&) = default;
};

/// One entity store's journal, as the worker's stats say (services/entity/journal.hpp).
struct store_stat {
  std::string id;
  std::string type;
  std::uint64_t entities = 0;
  std::uint64_t ring_bytes = 0;
  std::uint64_t used_bytes = 0;
  std::uint64_t records_since_checkpoint = 0;
  std::uint64_t checkpoints = 0;
  std::int64_t last_checkpoint_unix_ms = 0;  ///< 0: none yet
  std::uint8_t checkpointing = 0;
  std::uint64_t recovered_entities = 0;
  std::uint64_t recovered_records = 0;
  std::uint64_t recovery_us = 0;
  std::uint8_t recovery_bad = 0;  ///< the last recovery stopped at a bad record
  std::string note;               ///< where and why (at most 1 KiB)
  friend bool operator==(const store_stat&, const store_stat&) = default;
};
struct stores {
  std::vector<store_stat> list;  ///< at most 200
  friend bool operator==(const stores&, const stores&) = default;
};

using message = std::variant<hello, welcome, refuse, listeners, ready, heartbeat, reload, log_reopen, drain,
                             drained, stop, stopped, handover, takeover, upgrade_result, console, console_reply,
                             counters, keep, stores>;

/// The kind of a message, and its name ("hello", "listeners", ...) for logs.
kind kind_of(const message& m);
std::string_view name_of(kind k);

/// How many fds must travel with this record (listeners and keep: one per name; handover
/// and takeover: one; others: none).
std::size_t fds_announced(const message& m);

/// Header + payload. Pure; never fails for a message that passes check().
byte_buffer encode(const message& m);

/// One whole record back to a message. Errors say what is wrong ("truncated header: 5 of
/// 12 bytes", "unknown message kind 99", "bad listeners payload: ..."). Pure, no throw.
result<message, std::string> decode(bytes_view record);

/// The rules a message must keep beyond its encoding (listeners: batch < batches, at most
/// max_fds_per_record names, no empty name; refuse, upgrade_result: reason under 4 KiB).
/// "" when fine.
/// encode() does not check; decode() does.
std::string check(const message& m);

}  // namespace csk::channel
