#include "common/wire/cluster_codec.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace csk::wire {
namespace {

std::uint32_t load_u32le(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void put_u16be(byte_buffer& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32le(byte_buffer& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 24));
}

void put_bytes(byte_buffer& out, bytes_view b) { out.insert(out.end(), b.begin(), b.end()); }

// Room for `more` bytes in one allocation (growing at least geometrically, so that many
// frames appended to one buffer stay amortised O(1) each).
void make_room(byte_buffer& out, std::size_t more) {
  if (out.capacity() - out.size() >= more) return;
  out.reserve(std::max(out.size() + more, 2 * out.capacity()));
}

/// Writes a single frame in place: grows `out` by `size` bytes once and fills them
/// through a cursor (no per-byte capacity checks).
class frame_writer {
 public:
  frame_writer(byte_buffer& out, std::size_t size) {
    make_room(out, size);
    const std::size_t at = out.size();
    out.resize(at + size);
    p_ = out.data() + at;
  }
  void u8(std::uint8_t v) noexcept { *p_++ = v; }
  void u16be(std::size_t v) noexcept {
    *p_++ = static_cast<std::uint8_t>(v >> 8);
    *p_++ = static_cast<std::uint8_t>(v);
  }
  void u32le(std::uint32_t v) noexcept {
    *p_++ = static_cast<std::uint8_t>(v);
    *p_++ = static_cast<std::uint8_t>(v >> 8);
    *p_++ = static_cast<std::uint8_t>(v >> 16);
    *p_++ = static_cast<std::uint8_t>(v >> 24);
  }
  void bytes(bytes_view b) noexcept {
    if (!b.empty()) std::memcpy(p_, b.data(), b.size());
    p_ += b.size();
  }

 private:
  std::uint8_t* p_;
};

frame_error err(frame_errc code, std::uint8_t type, std::size_t offset, const char* detail) {
  return frame_error{code, type, offset, detail};
}

}  // namespace

const char* request_type_name(request_type t) noexcept {
  switch (t) {
    case request_type::req_addr: return "req_addr";
    case request_type::req_name: return "req_name";
    case request_type::mreq_addr: return "mreq_addr";
    case request_type::mpush_addr: return "mpush_addr";
    case request_type::mreq_name: return "mreq_name";
    case request_type::mpush_name: return "mpush_name";
    case request_type::mpart: return "mpart";
    case request_type::mpart_end: return "mpart_end";
    case request_type::trace: return "trace";
  }
  return "unknown";
}

const char* response_type_name(response_type t) noexcept {
  switch (t) {
    case response_type::error: return "error";
    case response_type::ok: return "ok";
    case response_type::multi_begin: return "multi_begin";
    case response_type::multi_part: return "multi_part";
    case response_type::multi_end: return "multi_end";
  }
  return "unknown";
}

std::string frame_error::message() const {
  const char* what = "";
  switch (code) {
    case frame_errc::empty_frame: what = "empty frame"; break;
    case frame_errc::bad_type: what = "unknown frame type"; break;
    case frame_errc::truncated: what = "truncated frame"; break;
    case frame_errc::bad_size: what = "bad frame size"; break;
    case frame_errc::bad_name: what = "invalid name"; break;
    case frame_errc::too_large: what = "too large"; break;
  }
  char type_hex[8];
  std::snprintf(type_hex, sizeof type_hex, "0x%02x", type);
  return std::string(what) + " (type " + type_hex + ", at byte " + std::to_string(offset) +
         " of the body: " + detail + ")";
}

// ------------------------------------------------------------- splitting --

split_result split_frame(bytes_view in) noexcept {
  if (in.size() < frame_header_size) return {};
  const std::size_t len = static_cast<std::size_t>(in[0]) << 8 | in[1];
  if (in.size() - frame_header_size < len) return {};
  return split_result{split_status::ok, frame_header_size + len, in.subspan(frame_header_size, len)};
}

void frame_reader::feed(bytes_view data) {
  // Compact before growing: a connection's buffer never holds more than the
  // unconsumed tail plus one read.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= buf_.size() / 2)) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
}

std::optional<bytes_view> frame_reader::next() {
  auto r = split_frame(bytes_view(buf_).subspan(pos_));
  if (r.status != split_status::ok) return std::nullopt;
  last_offset_ = consumed_total_;
  pos_ += r.consumed;
  consumed_total_ += r.consumed;
  return r.body;
}

// ------------------------------------------------------------ request frames --

bool request_frame::push() const noexcept {
  switch (type) {
    case request_type::req_addr:
    case request_type::req_name: return session == 0;
    case request_type::mpush_addr:
    case request_type::mpush_name: return true;
    default: return false;
  }
}

bool request_frame::is_multipart_header() const noexcept {
  switch (type) {
    case request_type::mreq_addr:
    case request_type::mpush_addr:
    case request_type::mreq_name:
    case request_type::mpush_name: return true;
    default: return false;
  }
}

result<request_frame, frame_error> decode_request_frame(bytes_view body) {
  if (body.empty()) return unexpected(err(frame_errc::empty_frame, 0, 0, "request size == 0"));
  const std::uint8_t t = body[0];
  const std::uint8_t* p = body.data();
  const std::size_t n = body.size();
  request_frame f;
  switch (t) {
    case 0x00:  // REQ_ADDR
      if (n < 9) return unexpected(err(frame_errc::truncated, t, n, "numeric request needs 9 bytes"));
      f.type = request_type::req_addr;
      f.address = load_u32le(p + 1);
      f.session = load_u32le(p + 5);
      f.data = body.subspan(9);
      return f;
    case 0x80: {  // REQ_NAME
      if (n < 2) return unexpected(err(frame_errc::truncated, t, n, "missing name length"));
      const std::size_t k = p[1];
      if (n < 6 + k) return unexpected(err(frame_errc::truncated, t, n, "named request shorter than 6 + name"));
      f.type = request_type::req_name;
      f.name = as_chars(body.subspan(2, k));
      f.session = load_u32le(p + 2 + k);
      f.data = body.subspan(6 + k);
      return f;
    }
    case 0x01:
    case 0x41:  // MREQ_ADDR / MPUSH_ADDR
      if (n != 13) return unexpected(err(frame_errc::bad_size, t, n, "multi-part numeric header must be 13 bytes"));
      f.type = static_cast<request_type>(t);
      f.address = load_u32le(p + 1);
      f.session = load_u32le(p + 5);
      f.total = load_u32le(p + 9);
      return f;
    case 0x81:
    case 0xc1: {  // MREQ_NAME / MPUSH_NAME
      if (n < 2) return unexpected(err(frame_errc::truncated, t, n, "missing name length"));
      const std::size_t k = p[1];
      if (n < 10 + k) return unexpected(err(frame_errc::truncated, t, n, "multi-part header shorter than 10 + name"));
      f.type = static_cast<request_type>(t);
      f.name = as_chars(body.subspan(2, k));
      f.session = load_u32le(p + 2 + k);
      f.total = load_u32le(p + 6 + k);
      return f;
    }
    case 0x02:
    case 0x03:  // MPART / MPART_END
      if (n < 5) return unexpected(err(frame_errc::truncated, t, n, "multi-part chunk needs 5 bytes"));
      f.type = static_cast<request_type>(t);
      f.session = load_u32le(p + 1);
      f.data = body.subspan(5);
      return f;
    case 0x04:  // TRACE
      f.type = request_type::trace;
      f.data = body.subspan(1);
      return f;
    default:
      return unexpected(err(frame_errc::bad_type, t, 0, "Invalid req package type"));
  }
}

// ----------------------------------------------------------- response frames --

result<response_frame, frame_error> decode_response_frame(bytes_view body) {
  if (body.size() < 5) {
    return unexpected(err(frame_errc::truncated, 0, body.size(), "response shorter than 5 bytes"));
  }
  response_frame f;
  f.session = load_u32le(body.data());
  const std::uint8_t t = body[4];
  if (t > 4) return unexpected(err(frame_errc::bad_type, t, 4, "Invalid response type"));
  f.type = static_cast<response_type>(t);
  if (f.type == response_type::multi_begin) {
    if (body.size() != 9) return unexpected(err(frame_errc::bad_size, t, body.size(), "MULTI_BEGIN must be 9 bytes"));
    f.total = load_u32le(body.data() + 5);
    return f;
  }
  f.data = body.subspan(5);
  return f;
}

// ------------------------------------------------------------------ encoding --

result<void, frame_error> encode_request(const target& to, std::uint32_t session, bool push,
                                         bytes_view payload, byte_buffer& out) {
  if (to.by_name && (to.name.empty() || to.name.size() > max_name_length)) {
    return unexpected(err(frame_errc::bad_name, 0, 0,
                          "name length is invalid, must be between 1 and 255 characters"));
  }
  if (payload.size() > max_wire_message) {
    return unexpected(err(frame_errc::too_large, 0, 0, "payload must be below 2^31 bytes"));
  }
  const std::size_t k = to.name.size();
  if (payload.size() <= max_single_request_payload) {
    const std::uint32_t s = push ? 0 : session;
    const std::size_t body = (to.by_name ? 6 + k : 9) + payload.size();
    frame_writer w(out, frame_header_size + body);
    w.u16be(body);
    if (to.by_name) {
      w.u8(static_cast<std::uint8_t>(request_type::req_name));
      w.u8(static_cast<std::uint8_t>(k));
      w.bytes(as_bytes(to.name));
    } else {
      w.u8(static_cast<std::uint8_t>(request_type::req_addr));
      w.u32le(to.address);
    }
    w.u32le(s);
    w.bytes(payload);
    return {};
  }
  // Multi-part: header, then 32768-byte chunks, the last one typed MPART_END.
  const std::size_t nchunks = (payload.size() + multipart_chunk_size - 1) / multipart_chunk_size;
  make_room(out, payload.size() + nchunks * 7 + k + 14);
  if (to.by_name) {
    put_u16be(out, 10 + k);
    out.push_back(static_cast<std::uint8_t>(push ? request_type::mpush_name : request_type::mreq_name));
    out.push_back(static_cast<std::uint8_t>(k));
    put_bytes(out, as_bytes(to.name));
  } else {
    put_u16be(out, 13);
    out.push_back(static_cast<std::uint8_t>(push ? request_type::mpush_addr : request_type::mreq_addr));
    put_u32le(out, to.address);
  }
  put_u32le(out, session);
  put_u32le(out, static_cast<std::uint32_t>(payload.size()));
  for (std::size_t off = 0; off < payload.size(); off += multipart_chunk_size) {
    const std::size_t m = std::min(multipart_chunk_size, payload.size() - off);
    const bool last = off + m == payload.size();
    put_u16be(out, 5 + m);
    out.push_back(static_cast<std::uint8_t>(last ? request_type::mpart_end : request_type::mpart));
    put_u32le(out, session);
    put_bytes(out, payload.subspan(off, m));
  }
  return {};
}

result<void, frame_error> encode_trace(std::string_view tag, byte_buffer& out) {
  if (tag.size() > max_trace_tag) {
    return unexpected(err(frame_errc::too_large, 0x04, 0, "trace tag longer than 32768 bytes"));
  }
  make_room(out, frame_header_size + 1 + tag.size());
  put_u16be(out, 1 + tag.size());
  out.push_back(static_cast<std::uint8_t>(request_type::trace));
  put_bytes(out, as_bytes(tag));
  return {};
}

result<void, frame_error> encode_response(std::uint32_t session, bool ok, bytes_view payload,
                                          byte_buffer& out) {
  if (!ok) {
    const auto text = payload.first(std::min(payload.size(), max_error_text));
    frame_writer w(out, frame_header_size + 5 + text.size());
    w.u16be(5 + text.size());
    w.u32le(session);
    w.u8(static_cast<std::uint8_t>(response_type::error));
    w.bytes(text);
    return {};
  }
  if (payload.size() > max_wire_message) {
    return unexpected(err(frame_errc::too_large, 1, 0, "payload must be below 2^31 bytes"));
  }
  if (payload.size() <= max_single_response_payload) {
    frame_writer w(out, frame_header_size + 5 + payload.size());
    w.u16be(5 + payload.size());
    w.u32le(session);
    w.u8(static_cast<std::uint8_t>(response_type::ok));
    w.bytes(payload);
    return {};
  }
  const std::size_t nchunks = (payload.size() + multipart_chunk_size - 1) / multipart_chunk_size;
  make_room(out, payload.size() + nchunks * 7 + 11);
  put_u16be(out, 9);
  put_u32le(out, session);
  out.push_back(static_cast<std::uint8_t>(response_type::multi_begin));
  put_u32le(out, static_cast<std::uint32_t>(payload.size()));
  for (std::size_t off = 0; off < payload.size(); off += multipart_chunk_size) {
    const std::size_t m = std::min(multipart_chunk_size, payload.size() - off);
    const bool last = off + m == payload.size();
    put_u16be(out, 5 + m);
    put_u32le(out, session);
    out.push_back(static_cast<std::uint8_t>(last ? response_type::multi_end : response_type::multi_part));
    put_bytes(out, payload.subspan(off, m));
  }
  return {};
}

std::size_t count_frames(bytes_view bytes) noexcept {
  std::size_t n = 0;
  std::size_t at = 0;
  while (bytes.size() - at >= frame_header_size) {
    const std::size_t len = (static_cast<std::size_t>(bytes[at]) << 8) | bytes[at + 1];
    if (bytes.size() - at - frame_header_size < len) break;
    at += frame_header_size + len;
    ++n;
  }
  return n;
}

}  // namespace csk::wire
