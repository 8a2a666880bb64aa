#pragma once
// Per-connection reassembly of cluster messages from decoded frames.
//
// skynet interleaves frames of different sessions (single requests travel between a
// multi-part header and its chunks; responses arrive in any order), so all state is
// keyed by session. Both assemblers are pure state machines: frames in, events out.
// They never touch a socket; the connection decides what to do with each event.
//
// Thread rules: one owner (the connection's thread), no locking.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/wire/cluster_codec.hpp"

namespace csk::wire {

namespace detail {
/// The bytes of one multi-part message collected so far. Stops storing (but keeps
/// counting) once discarded: over a size limit, or past the announced total.
struct multipart_buffer {
  std::uint64_t total = 0;
  std::uint64_t received = 0;
  bool discard = false;
  byte_buffer data;

  void add(bytes_view chunk);
  bool complete() const noexcept { return !discard && received == total; }
};

/// add() that keeps `held` (the bytes all of one connection's buffers take: their
/// capacity, not only what they store) true and refuses (false, nothing counted or
/// stored) a chunk that would take it past `budget`. A buffer grows by doubling (up to its
/// announced total) while the budget has room for that, else by exactly the chunk: the
/// memory a connection's chunks take is at most `budget`, allocator overhead aside.
bool add_within(multipart_buffer& b, bytes_view chunk, std::size_t& held, std::size_t budget);
/// The buffer leaves the connection's account (completed, refused or reset).
inline void release(multipart_buffer& b, std::size_t& held) noexcept { held -= b.data.capacity(); }
}  // namespace detail

struct assembler_limits {
  /// Largest whole message (payload) accepted; larger multi-part messages are
  /// refused from their header on, without buffering their chunks.
  std::size_t max_message_size = 64u << 20;
  /// Most multi-part messages that may be incomplete at once on one connection.
  std::size_t max_pending_messages = 4096;
  /// Bytes all incomplete multi-part messages of one connection may hold together. A chunk
  /// that would go over it is fatal (the connection closes with the reason): without it the
  /// two limits above multiply to 256 GiB per connection.
  std::size_t max_pending_bytes = 4 * (64u << 20);
};

/// skynet's receiver error texts (section 6.1 of the protocol contract).
inline constexpr std::string_view error_invalid_name = "Invalid name";
inline constexpr std::string_view error_invalid_large_req = "Invalid large req";
inline constexpr std::string_view error_name_not_found = "name not found";

/// One whole request, as the accepting side dispatches it.
struct request_message {
  target to;                   ///< numeric handle or string address (as sent, incl. '@')
  std::uint32_t session = 0;   ///< 0 for a single push; real for calls and multi-pushes
  bool push = false;
  bool multipart = false;      ///< arrived as header + chunks
  bool has_trace = false;
  std::string trace_tag;       ///< tag of the trace frame that preceded it
  byte_buffer payload;         ///< skynet.pack data, not decoded here
};

struct request_event {
  enum class kind : std::uint8_t {
    none,         ///< frame absorbed (trace, header, middle chunk)
    request,      ///< `message` is complete
    reply_error,  ///< answer `session` with ERROR `error_text` (skynet does the same)
    dropped,      ///< something was discarded; log `reason`, keep the connection
    fatal,        ///< limits exceeded; close the connection, log `reason`
  };
  kind what = kind::none;
  request_message message;
  std::uint32_t session = 0;
  std::string_view error_text;
  std::string reason;
};

/// Accepting side: request frames in, whole requests out.
class request_assembler {
 public:
  explicit request_assembler(assembler_limits limits = {}) : limits_(limits) {}

  /// Feeds one decoded frame (views may die after the call).
  request_event push(const request_frame& f);
  /// The same, into `ev` (overwritten): a caller that keeps one event for every frame
  /// reuses its buffers, so single-frame requests cost no allocation once warm.
  void push(const request_frame& f, request_event& ev);

  std::size_t pending() const noexcept { return pending_.size(); }
  /// Bytes the incomplete multi-part requests take (buffer capacity; at most
  /// limits.max_pending_bytes).
  std::size_t held_bytes() const noexcept { return held_; }

  /// Hand-over (a connection moving to another worker): appends the whole state, i.e.
  /// every incomplete multi-part request and the trace tag waiting for the next call, as
  /// a versioned, self-delimiting blob (layout in cluster_assembler.cpp, state_version).
  /// Deterministic: the same state gives the same bytes. Limits are not part of it.
  void export_state(byte_buffer& out) const;
  /// Replaces the state with an exported one, checked to its last byte (lengths against
  /// the bytes present, counts against limits, no duplicate session, no trailing bytes).
  /// This assembler's limits apply from now on: a message over max_message_size is
  /// discarded as on_header would. On error the state is unchanged.
  result<void, std::string> import_state(bytes_view in);
  /// The blob's format version (its first byte after the magic).
  static constexpr std::uint8_t state_version = 1;

 private:
  struct partial {
    target to;
    bool push = false;
    bool orphan = false;        ///< chunks without a header: ends in "Invalid large req"
    bool spoiled = false;       ///< a second header for the session: ends in "Invalid large req"
    bool has_trace = false;
    std::string trace_tag;
    detail::multipart_buffer buf;
  };

  void single(const request_frame& f, request_event& ev);
  request_event on_header(const request_frame& f);
  request_event on_chunk(const request_frame& f);

  assembler_limits limits_;
  std::unordered_map<std::uint32_t, partial> pending_;
  std::size_t held_ = 0;  // sum of pending_'s buf.data sizes
  bool has_trace_ = false;
  std::string trace_tag_;
};

/// One whole response, as the connecting side completes a call.
struct response_message {
  std::uint32_t session = 0;
  bool ok = false;
  bool multipart = false;
  byte_buffer payload;  ///< seri payload when ok, raw error text otherwise
};

struct response_event {
  enum class kind : std::uint8_t {
    none,      ///< frame absorbed (BEGIN, middle chunk)
    response,  ///< `message` is complete (ok or error)
    dropped,   ///< a chunk for no known multi-part session; log `reason`
    fatal,     ///< limits exceeded; close the connection
  };
  kind what = kind::none;
  response_message message;
  std::string reason;
};

/// Connecting side: response frames in, whole responses out.
///
/// Deviation from skynet's caller, on purpose: when the chunks do not add up to the
/// BEGIN total, skynet silently returns zero values; we complete the call with an
/// error ("multi-part response size mismatch") so no data loss goes unnoticed.
class response_assembler {
 public:
  explicit response_assembler(assembler_limits limits = {}) : limits_(limits) {}

  response_event push(const response_frame& f);
  /// The same, into `ev` (overwritten), reusing its buffers (see request_assembler).
  void push(const response_frame& f, response_event& ev);

  std::size_t pending() const noexcept { return pending_.size(); }
  /// Bytes the incomplete multi-part responses take (buffer capacity; at most
  /// limits.max_pending_bytes).
  std::size_t held_bytes() const noexcept { return held_; }

 private:
  struct partial {
    bool too_large = false;  ///< BEGIN total over max_message_size
    detail::multipart_buffer buf;
  };

  response_event finish(std::uint32_t session, partial& p);
  response_event over_budget(std::size_t chunk) const;

  assembler_limits limits_;
  std::unordered_map<std::uint32_t, partial> pending_;
  std::size_t held_ = 0;  // sum of pending_'s buf.data sizes
};

}  // namespace csk::wire
