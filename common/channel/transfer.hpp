#pragma once
// The transfer socket: how the old worker (generation N) hands its state and connections
// to the new one (N+1) during an upgrade, directly, worker to worker. The supervisor makes
// the AF_UNIX SOCK_SEQPACKET pair and gives one end to each (channel messages handover
// and takeover); it never reads what goes over it. docs/upgrade.md has the sequence.
//
// A transfer message can be far larger than one record (a snapshot page is ~1 MB, a
// connection's unread bytes up to the cluster's message limit), so it travels as one or
// more records of at most max_record bytes each:
//
//   offset  size  field
//   0       4     magic "CSKX"
//   4       2     kind, little-endian (enum kind below; pinned)
//   6       1     flags: bit 0 "more" (the message continues in the next record); others 0
//   7       1     0
//   8       4     part length, little-endian: exactly the bytes that follow
//   12      n     part: the next bytes of the message's body
//
// Every record of one message has the same kind; the fds a message carries (conn: one)
// ride on its last record. The body is the message's fields, cereal little-endian through
// the channel's bounded archive (strings and byte strings: u64 length, then the bytes).
// The receiver refuses a message whose body grows past its max_message before allocating
// more, any record with the wrong magic, flags or kind, and fds on a record that is not a
// message's last.
//
// Who sends what (N = old worker, M = new worker), in order:
//   N->M offer      N's entity stores (id, type, full snapshot header) and gates
//   M->N accept     M has a store of the same id and type for each, reads every header
//                   (entity::check_snapshot), has every gate; its stores are cleared and
//                   sealed. Or M->N refuse{reason}: the upgrade is abandoned.
//   N->M page*      snapshot pages and deltas of one store (entity snapshot bytes)
//   M->N applied    one per page, after the store applied it (N keeps a few in flight)
//   N->M commit     the state is complete (N is frozen and its stores are sealed)
//   N->M conn*      one established connection: listener name, peer, unread bytes,
//                   protocol state; its fd attached
//   N->M done       every connection was sent
//   M->N serving    M adopted them, opened its listeners and serves: N exits
//   either abort    reason; the sender gives up (N resumes serving; M exits)
//
// Threads: the functions keep no state; one thread sends and one receives per end.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "common/channel/fd_channel.hpp"

namespace csk::channel::transfer {

inline constexpr std::size_t record_header = 12;
/// Largest record either side sends or accepts.
inline constexpr std::size_t max_record = 64 * 1024;

enum class kind : std::uint16_t {
  offer = 1,
  accept = 2,
  refuse = 3,
  page = 4,
  applied = 5,
  commit = 6,
  conn = 7,
  done = 8,
  serving = 9,
  abort = 10,
};

struct store_offer {
  std::string id;      ///< the entity service's stable id (entity::directory)
  std::string type;    ///< its entity type name
  byte_buffer header;  ///< the header a full snapshot of it has (entity "header")
  friend bool operator==(const store_offer&, const store_offer&) = default;
};
struct offer {
  std::uint32_t generation = 0;      ///< N's
  std::vector<store_offer> stores;
  std::vector<std::string> gates;    ///< gate names (config `gates:`) whose connections follow
  friend bool operator==(const offer&, const offer&) = default;
};
struct accept {
  friend bool operator==(const accept&, const accept&) = default;
};
struct refuse {
  std::string reason;
  friend bool operator==(const refuse&, const refuse&) = default;
};
struct page {
  std::string store;   ///< id
  byte_buffer bytes;   ///< an entity snapshot page or delta
  friend bool operator==(const page&, const page&) = default;
};
struct applied {
  std::string store;
  std::uint64_t changed = 0;
  std::uint64_t deleted = 0;
  friend bool operator==(const applied&, const applied&) = default;
};
struct commit {
  friend bool operator==(const commit&, const commit&) = default;
};
struct conn {
  std::string listener;  ///< "cluster" or "gate:<name>" (config::listeners_of)
  std::string peer;      ///< "ip:port", for logs
  byte_buffer unread;    ///< received, not delivered (net::detached_connection)
  byte_buffer state;     ///< protocol state (cluster: agent::export_state; gates: empty)
  friend bool operator==(const conn&, const conn&) = default;
};
struct done {
  std::uint64_t connections = 0;  ///< conn messages sent
  friend bool operator==(const done&, const done&) = default;
};
struct serving {
  friend bool operator==(const serving&, const serving&) = default;
};
struct abort {
  std::string reason;
  friend bool operator==(const abort&, const abort&) = default;
};

using message = std::variant<offer, accept, refuse, page, applied, commit, conn, done, serving, abort>;

kind kind_of(const message& m);
std::string_view name_of(kind k);
/// conn: 1; others: 0.
std::size_t fds_announced(const message& m);

/// The message's body (without records). Pure.
byte_buffer encode_body(const message& m);
/// A whole body back to a message of kind `k`. Pure, no throw; every length checked.
result<message, std::string> decode_body(kind k, bytes_view body);
/// The records `m` travels as (each at most max_record bytes). Pure.
std::vector<byte_buffer> encode_records(const message& m);

/// What one record's header says, once parse_record has checked it.
struct record_head {
  transfer::kind type = transfer::kind::offer;  ///< a known kind
  bool more = false;             ///< flags bit 0: the message continues in the next record
  std::size_t length = 0;        ///< the part's bytes: exactly the record's size - record_header
};
/// Checks one whole record as received (`rec`: header and part): magic, flags and the
/// zero byte, the part length against the record's size, the kind; in that order. Pure.
/// The error is the text recv fails with ("transfer: ...").
result<record_head, std::string> parse_record(bytes_view rec);

/// Sends `m` (with `fds` on its last record) within `timeout` (a peer that does not read
/// makes it fail, not hang). fds.size() must equal fds_announced(m). Never raises SIGPIPE.
result<void, std::string> send(int sock, const message& m, std::chrono::milliseconds timeout,
                               std::span<const int> fds = {});

struct received {
  message msg;
  std::vector<unique_fd> fds;
};
/// Receives one whole message within `timeout`; its body may be at most `max_message`
/// bytes. recv_error::kind::closed when the peer is gone.
result<received, recv_error> recv(int sock, std::chrono::milliseconds timeout, std::size_t max_message);

}  // namespace csk::channel::transfer
