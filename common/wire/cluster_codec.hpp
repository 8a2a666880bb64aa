#pragma once
// skynet cluster frames (lua-cluster.c), as pure functions on bytes.
//
// Every frame:   len : u16 BIG-endian | body : len bytes
// Every integer inside a body is LITTLE-endian.
//
// Request bodies (connecting side -> accepting side), first byte = type:
//   0x00 REQ_ADDR    | address u32 | session u32 | payload            (payload < 32768)
//   0x80 REQ_NAME    | k u8 | name[k] | session u32 | payload         (name incl. '@')
//   0x01 MREQ_ADDR   | address u32 | session u32 | total u32          (body exactly 13)
//   0x41 MPUSH_ADDR  | same as 0x01, a push
//   0x81 MREQ_NAME   | k u8 | name[k] | session u32 | total u32
//   0xC1 MPUSH_NAME  | same as 0x81, a push
//   0x02 MPART       | session u32 | chunk       (more chunks follow)
//   0x03 MPART_END   | session u32 | chunk       (last chunk)
//   0x04 TRACE       | tag                       (applies to the next request)
// A single-frame request with session 0 is a push. Payloads >= 32768 bytes go
// multi-part in 32768-byte chunks; the last chunk may be a full 32768.
//
// Response bodies (accepting side -> connecting side):
//   session u32 | type u8 | rest
//   type 0 ERROR       rest = error text (raw, <= 32768 bytes)
//   type 1 OK          rest = payload (<= 32768 bytes)
//   type 2 MULTI_BEGIN rest = total u32 (body exactly 9)
//   type 3 MULTI_PART  rest = chunk, more follow
//   type 4 MULTI_END   rest = last chunk
// Note the asymmetries: responses go multi-part only when payload > 32768, and the
// chunk type codes differ from the request direction.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"

namespace csk::wire {

inline constexpr std::size_t frame_header_size = 2;
inline constexpr std::size_t max_frame_body = 0xffff;
inline constexpr std::size_t multipart_chunk_size = 0x8000;
/// A request payload is sent in one frame while it is < 32768 bytes.
inline constexpr std::size_t max_single_request_payload = 0x7fff;
/// A response payload is sent in one frame while it is <= 32768 bytes.
inline constexpr std::size_t max_single_response_payload = 0x8000;
inline constexpr std::size_t max_error_text = 0x8000;
inline constexpr std::size_t max_name_length = 255;
inline constexpr std::size_t max_trace_tag = 0x8000;
/// skynet keeps message sizes in a C int.
inline constexpr std::size_t max_wire_message = 0x7fffffff;

enum class request_type : std::uint8_t {
  req_addr = 0x00,
  req_name = 0x80,
  mreq_addr = 0x01,
  mpush_addr = 0x41,
  mreq_name = 0x81,
  mpush_name = 0xc1,
  mpart = 0x02,
  mpart_end = 0x03,
  trace = 0x04,
};

enum class response_type : std::uint8_t {
  error = 0,
  ok = 1,
  multi_begin = 2,
  multi_part = 3,
  multi_end = 4,
};

/// Names as the vectors and the dissector spell them ("req_name", "multi_end", ...).
const char* request_type_name(request_type t) noexcept;
const char* response_type_name(response_type t) noexcept;

/// Error numbers are pinned: they reach logs and tools.
enum class frame_errc : std::uint8_t {
  empty_frame = 1,   ///< zero-length body
  bad_type = 2,      ///< unknown request/response type byte
  truncated = 3,     ///< body shorter than its type requires
  bad_size = 4,      ///< body of a fixed-size frame has the wrong size
  bad_name = 5,      ///< encode: name length not in 1..255
  too_large = 6,     ///< encode: payload or tag over the protocol limit
};

struct frame_error {
  frame_errc code = frame_errc::truncated;
  std::uint8_t type = 0;     ///< the type byte seen, if any
  std::size_t offset = 0;    ///< offset inside the body where the problem is
  const char* detail = "";
  std::string message() const;
};

// ------------------------------------------------------------- splitting --

enum class split_status : std::uint8_t { ok, need_more };

struct split_result {
  split_status status = split_status::need_more;
  std::size_t consumed = 0;  ///< header + body, when ok
  bytes_view body;           ///< view into the input, when ok
};

/// Looks at the front of `in` for one whole frame. Pure; O(1).
split_result split_frame(bytes_view in) noexcept;

/// Accumulates stream bytes in any chunking and yields whole frame bodies.
/// Thread rules: single owner (one connection), no locking.
class frame_reader {
 public:
  /// Appends received bytes.
  void feed(bytes_view data);
  /// The next whole frame body, or nullopt when more bytes are needed. The view
  /// stays valid until the next feed() or next().
  std::optional<bytes_view> next();
  /// Bytes held that do not yet form a whole frame.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  /// Offset in the stream of the last returned frame's length prefix.
  std::uint64_t last_frame_offset() const noexcept { return last_offset_; }

 private:
  byte_buffer buf_;
  std::size_t pos_ = 0;
  std::uint64_t consumed_total_ = 0;
  std::uint64_t last_offset_ = 0;
};

// ------------------------------------------------------------ request frames --

struct request_frame {
  request_type type = request_type::req_addr;
  std::uint32_t address = 0;  ///< req_addr, mreq_addr, mpush_addr
  std::string_view name;      ///< req_name, mreq_name, mpush_name (view into the body)
  std::uint32_t session = 0;  ///< all but trace
  std::uint32_t total = 0;    ///< multi-part headers
  bytes_view data;            ///< payload (single), chunk (mpart*), tag (trace)

  bool by_name() const noexcept {
    return type == request_type::req_name || type == request_type::mreq_name ||
           type == request_type::mpush_name;
  }
  /// A push: a single frame with session 0, or a multi-push header.
  bool push() const noexcept;
  bool is_multipart_header() const noexcept;
};

/// Decodes one request body. Rejects exactly what skynet's receiver drops.
[[nodiscard]] result<request_frame, frame_error> decode_request_frame(bytes_view body);

// ----------------------------------------------------------- response frames --

struct response_frame {
  response_type type = response_type::ok;
  std::uint32_t session = 0;
  std::uint32_t total = 0;  ///< multi_begin
  bytes_view data;          ///< payload, chunk, or error text
};

/// Decodes one response body. Rejects what makes skynet's caller drop the connection:
/// a body under 5 bytes, an unknown type, a MULTI_BEGIN body that is not 9 bytes.
[[nodiscard]] result<response_frame, frame_error> decode_response_frame(bytes_view body);

// ------------------------------------------------------------------ encoding --

/// Where a request goes: a numeric handle on the remote node, or a string address
/// ("@name", ".name", ":0000000a") sent exactly as given.
struct target {
  std::uint32_t address = 0;
  std::string name;
  bool by_name = false;

  static target handle(std::uint32_t h) { return target{h, {}, false}; }
  static target named(std::string n) { return target{0, std::move(n), true}; }
};

/// True when a request of this size uses a session number: every call, and a push
/// that goes multi-part (single pushes carry session 0).
constexpr bool request_uses_session(bool push, std::size_t payload_size) noexcept {
  return !push || payload_size > max_single_request_payload;
}

/// Appends the frames of one request (single or multi-part, skynet's exact split).
/// For a single push the session field is written as 0 whatever `session` is.
[[nodiscard]] result<void, frame_error> encode_request(const target& to, std::uint32_t session,
                                                       bool push, bytes_view payload,
                                                       byte_buffer& out);

/// Appends a trace frame (tag <= 32768 bytes).
[[nodiscard]] result<void, frame_error> encode_trace(std::string_view tag, byte_buffer& out);

/// Appends the frames of one response. ok=false: `payload` is the error text,
/// truncated to 32768 bytes, always one frame. ok=true: one OK frame up to 32768
/// bytes, else MULTI_BEGIN + 32768-byte chunks + MULTI_END. Fails (too_large) only
/// for an OK payload of 2^31 bytes or more.
[[nodiscard]] result<void, frame_error> encode_response(std::uint32_t session, bool ok,
                                                        bytes_view payload, byte_buffer& out);

// ------------------------------------------------------------------ counting --

/// The number of whole frames at the start of `bytes` (len u16 BE | body), for counters:
/// the encoders above always append whole frames, so for their output this is the number
/// of frames they wrote. A trailing partial frame is not counted.
std::size_t count_frames(bytes_view bytes) noexcept;

}  // namespace csk::wire
