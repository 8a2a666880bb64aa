// Input layout (so that the fuzzer controls how the stream is cut):
//
//   byte 0      control: bits 0-2 = k, the number of chunk-size bytes that follow
//                        bit 3    = chunk sizes are multiplied by 256
//                        bit 4    = tight assembler limits (4 KiB messages, 2 pending)
//                                   instead of 1 MiB messages, 64 pending
//                        bit 5    = an empty feed() before every chunk
//   bytes 1..k  chunk sizes: the i-th feed() gets sizes[i % k] + 1 bytes (times 256
//               with bit 3); k = 0 feeds the whole stream at once
//   the rest    the cluster byte stream: frames, each with its 2-byte length prefix
//
// Every frame is decoded both as a request and as a response: one stream exercises
// both directions. The assemblers are checked against a small model of the
// documented behaviour (cluster_assembler.hpp).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace {

namespace wire = csk::wire;
using csk::byte_buffer;
using csk::bytes_view;

constexpr std::uint8_t control_chunk_count = 0x07;
constexpr std::uint8_t control_big_chunks = 0x08;
constexpr std::uint8_t control_tight_limits = 0x10;
constexpr std::uint8_t control_empty_feeds = 0x20;

std::uint32_t le32(bytes_view b, std::size_t at) {
  return static_cast<std::uint32_t>(b[at]) | static_cast<std::uint32_t>(b[at + 1]) << 8 |
         static_cast<std::uint32_t>(b[at + 2]) << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
}

std::size_t be16(bytes_view b, std::size_t at) {
  return static_cast<std::size_t>(b[at]) << 8 | static_cast<std::size_t>(b[at + 1]);
}

bool same_bytes(bytes_view a, bytes_view b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

// `inner` is exactly body[at, at + size).
bool is_sub(bytes_view body, bytes_view inner, std::size_t at) {
  return at <= body.size() && inner.size() == body.size() - at && (inner.empty() || inner.data() == body.data() + at);
}

bool inside(bytes_view outer, bytes_view inner) {
  if (inner.empty()) return true;
  const auto lo = reinterpret_cast<std::uintptr_t>(outer.data());
  const auto p = reinterpret_cast<std::uintptr_t>(inner.data());
  return p >= lo && p - lo <= outer.size() && inner.size() <= outer.size() - (p - lo);
}

int chunk_count(std::size_t payload) {
  return static_cast<int>((payload + wire::multipart_chunk_size - 1) / wire::multipart_chunk_size);
}

byte_buffer framed(bytes_view body) {
  byte_buffer out;
  out.push_back(static_cast<std::uint8_t>(body.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// Splits a whole encoded buffer into frame bodies with split_frame, checking that
// nothing is left over.
template <class F>
void for_each_frame(bytes_view buf, F&& f) {
  while (!buf.empty()) {
    const wire::split_result s = wire::split_frame(buf);
    CSK_FUZZ_CHECK(s.status == wire::split_status::ok);
    f(s.body);
    buf = buf.subspan(s.consumed);
  }
}

// ---------------------------------------------------------------- requests --

// What decode_request_frame must accept, from the layout in cluster_codec.hpp.
bool valid_request_body(bytes_view b) {
  if (b.empty()) return false;
  const std::size_t n = b.size();
  switch (b[0]) {
    case 0x00: return n >= 9;
    case 0x80: return n >= 2 && n >= 6 + std::size_t{b[1]};
    case 0x01:
    case 0x41: return n == 13;
    case 0x81:
    case 0xc1: return n >= 2 && n >= 10 + std::size_t{b[1]};
    case 0x02:
    case 0x03: return n >= 5;
    case 0x04: return true;
    default: return false;
  }
}

class request_side {
 public:
  explicit request_side(wire::assembler_limits limits) : limits_(limits), assembler_(limits) {}

  void on_frame(bytes_view body) {
    auto decoded = wire::decode_request_frame(body);
    CSK_FUZZ_CHECK(decoded.has_value() == valid_request_body(body));
    if (!decoded) {
      const wire::frame_error& e = decoded.error();
      if (body.empty()) {
        CSK_FUZZ_CHECK(e.code == wire::frame_errc::empty_frame);
      } else {
        CSK_FUZZ_CHECK(e.type == body[0]);
        CSK_FUZZ_CHECK(e.code == wire::frame_errc::bad_type || e.code == wire::frame_errc::truncated ||
                       e.code == wire::frame_errc::bad_size);
      }
      CSK_FUZZ_CHECK(e.offset <= body.size());
      CSK_FUZZ_CHECK(!e.message().empty());
      return;
    }
    const wire::request_frame& f = *decoded;
    check_fields(body, f);
    check_reencode(body, f);
    if (!closed_) assemble(f);
  }

 private:
  // Model of one incomplete multi-part message.
  struct partial {
    bool header = false;   ///< false: chunks came first (ends in "Invalid large req")
    bool spoiled = false;  ///< a second header arrived (ends in "Invalid large req")
    wire::target to;
    bool push = false;
    bool has_trace = false;
    std::string trace_tag;
    std::uint64_t total = 0;
    std::uint64_t received = 0;
    byte_buffer data;  ///< complete only while received <= total <= limit
  };

  static void check_fields(bytes_view body, const wire::request_frame& f) {
    CSK_FUZZ_CHECK(static_cast<std::uint8_t>(f.type) == body[0]);
    CSK_FUZZ_CHECK(inside(body, f.data));
    CSK_FUZZ_CHECK(inside(body, csk::as_bytes(f.name)));
    const std::size_t k = body.size() > 1 ? body[1] : 0;
    switch (f.type) {
      case wire::request_type::req_addr:
        CSK_FUZZ_CHECK(f.address == le32(body, 1) && f.session == le32(body, 5));
        CSK_FUZZ_CHECK(is_sub(body, f.data, 9));
        CSK_FUZZ_CHECK(f.push() == (f.session == 0) && !f.by_name() && !f.is_multipart_header());
        break;
      case wire::request_type::req_name:
        CSK_FUZZ_CHECK(f.name.size() == k && (k == 0 || f.name.data() == csk::as_chars(body).data() + 2));
        CSK_FUZZ_CHECK(f.session == le32(body, 2 + k));
        CSK_FUZZ_CHECK(is_sub(body, f.data, 6 + k));
        CSK_FUZZ_CHECK(f.push() == (f.session == 0) && f.by_name() && !f.is_multipart_header());
        break;
      case wire::request_type::mreq_addr:
      case wire::request_type::mpush_addr:
        CSK_FUZZ_CHECK(f.address == le32(body, 1) && f.session == le32(body, 5) && f.total == le32(body, 9));
        CSK_FUZZ_CHECK(f.data.empty() && !f.by_name() && f.is_multipart_header());
        CSK_FUZZ_CHECK(f.push() == (f.type == wire::request_type::mpush_addr));
        break;
      case wire::request_type::mreq_name:
      case wire::request_type::mpush_name:
        CSK_FUZZ_CHECK(f.name.size() == k && (k == 0 || f.name.data() == csk::as_chars(body).data() + 2));
        CSK_FUZZ_CHECK(f.session == le32(body, 2 + k) && f.total == le32(body, 6 + k));
        CSK_FUZZ_CHECK(f.data.empty() && f.by_name() && f.is_multipart_header());
        CSK_FUZZ_CHECK(f.push() == (f.type == wire::request_type::mpush_name));
        break;
      case wire::request_type::mpart:
      case wire::request_type::mpart_end:
        CSK_FUZZ_CHECK(f.session == le32(body, 1) && is_sub(body, f.data, 5));
        CSK_FUZZ_CHECK(!f.push() && !f.by_name() && !f.is_multipart_header());
        break;
      case wire::request_type::trace:
        CSK_FUZZ_CHECK(is_sub(body, f.data, 1));
        CSK_FUZZ_CHECK(!f.push() && !f.by_name() && !f.is_multipart_header());
        break;
    }
  }

  static void check_reencode(bytes_view body, const wire::request_frame& f) {
    const bool single = f.type == wire::request_type::req_addr || f.type == wire::request_type::req_name;
    if (single && !(f.by_name() && f.name.empty())) {
      const wire::target to = f.by_name() ? wire::target::named(std::string(f.name)) : wire::target::handle(f.address);
      byte_buffer out;
      auto r = wire::encode_request(to, f.session, f.push(), f.data, out);
      CSK_FUZZ_CHECK(r.has_value());
      if (f.data.size() <= wire::max_single_request_payload) {
        CSK_FUZZ_CHECK(same_bytes(out, framed(body)));
      } else {
        // A single frame may carry more than skynet would send in one; re-encoding
        // goes multi-part and must reassemble to the same request.
        check_multipart_request(out, to, f);
      }
    } else if (f.type == wire::request_type::trace && f.data.size() <= wire::max_trace_tag) {
      byte_buffer out;
      auto r = wire::encode_trace(csk::as_chars(f.data), out);
      CSK_FUZZ_CHECK(r.has_value());
      CSK_FUZZ_CHECK(same_bytes(out, framed(body)));
    }
  }

  static void check_multipart_request(bytes_view encoded, const wire::target& to, const wire::request_frame& f) {
    wire::request_assembler assembler;
    int frames = 0;
    int requests = 0;
    for_each_frame(encoded, [&](bytes_view body) {
      ++frames;
      auto d = wire::decode_request_frame(body);
      CSK_FUZZ_CHECK(d.has_value());
      CSK_FUZZ_CHECK(body.size() <= wire::multipart_chunk_size + 5 || d->is_multipart_header());
      const wire::request_event ev = assembler.push(*d);
      if (ev.what == wire::request_event::kind::none) return;
      CSK_FUZZ_CHECK(ev.what == wire::request_event::kind::request);
      ++requests;
      const wire::request_message& m = ev.message;
      CSK_FUZZ_CHECK(m.multipart && m.push == f.push() && m.session == f.session);
      CSK_FUZZ_CHECK(m.to.by_name == to.by_name && m.to.name == to.name && m.to.address == to.address);
      CSK_FUZZ_CHECK(same_bytes(m.payload, f.data));
    });
    CSK_FUZZ_CHECK(frames == 1 + chunk_count(f.data.size()) && requests == 1);
  }

  void assemble(const wire::request_frame& f) {
    const wire::request_event ev = assembler_.push(f);
    switch (f.type) {
      case wire::request_type::trace:
        CSK_FUZZ_CHECK(ev.what == kind::none);
        has_trace_ = true;
        trace_tag_.assign(csk::as_chars(f.data));
        break;
      case wire::request_type::req_addr:
      case wire::request_type::req_name: {
        CSK_FUZZ_CHECK(ev.what == kind::request);
        const wire::request_message& m = ev.message;
        CSK_FUZZ_CHECK(!m.multipart && m.session == f.session && m.push == f.push());
        CSK_FUZZ_CHECK(m.to.by_name == f.by_name() && m.to.name == f.name && m.to.address == f.address);
        // The tag waits for a call: single pushes leave it pending (skynet's agent).
        if (m.push) {
          CSK_FUZZ_CHECK(!m.has_trace && m.trace_tag.empty());
        } else {
          CSK_FUZZ_CHECK(m.has_trace == has_trace_ && m.trace_tag == trace_tag_);
          has_trace_ = false;
          trace_tag_.clear();
        }
        CSK_FUZZ_CHECK(same_bytes(m.payload, f.data));
        break;
      }
      case wire::request_type::mreq_addr:
      case wire::request_type::mpush_addr:
      case wire::request_type::mreq_name:
      case wire::request_type::mpush_name: on_header(f, ev); break;
      case wire::request_type::mpart:
      case wire::request_type::mpart_end: on_chunk(f, ev); break;
    }
    if (closed_) return;
    CSK_FUZZ_CHECK(assembler_.pending() == pending_.size());
    CSK_FUZZ_CHECK(pending_.size() <= limits_.max_pending_messages);
  }

  void on_header(const wire::request_frame& f, const wire::request_event& ev) {
    const bool repeated = pending_.count(f.session) != 0;
    if (!repeated && pending_.size() >= limits_.max_pending_messages) {
      CSK_FUZZ_CHECK(ev.what == kind::fatal && !ev.reason.empty());
      closed_ = true;  // the connection closes: nothing more is fed
      return;
    }
    const bool over_limit = f.total > limits_.max_message_size;
    CSK_FUZZ_CHECK(ev.what == (repeated || over_limit ? kind::dropped : kind::none));
    if (repeated) {
      // skynet appends the second header to the first message: it can never add up.
      pending_[f.session].spoiled = true;
      return;
    }
    partial& p = pending_[f.session];
    p = partial{};
    p.header = true;
    p.to.by_name = f.by_name();
    p.to.address = f.address;
    p.to.name.assign(f.name);
    p.push = f.push();
    p.total = f.total;
    p.has_trace = std::exchange(has_trace_, false);
    p.trace_tag = std::exchange(trace_tag_, std::string());
  }

  void on_chunk(const wire::request_frame& f, const wire::request_event& ev) {
    const bool last = f.type == wire::request_type::mpart_end;
    auto it = pending_.find(f.session);
    if (it == pending_.end()) {
      if (last) {
        expect_reply_error(ev, f.session, wire::error_invalid_name);
        return;
      }
      if (pending_.size() >= limits_.max_pending_messages) {
        CSK_FUZZ_CHECK(ev.what == kind::fatal && !ev.reason.empty());
        closed_ = true;
        return;
      }
      it = pending_.emplace(f.session, partial{}).first;
      // An orphan chunk starts a message, and takes the waiting trace tag with it.
      has_trace_ = false;
      trace_tag_.clear();
    }
    partial& p = it->second;
    p.received += f.data.size();
    if (p.header && !p.spoiled && p.total <= limits_.max_message_size && p.received <= p.total) {
      p.data.insert(p.data.end(), f.data.begin(), f.data.end());
    }
    if (!last) {
      CSK_FUZZ_CHECK(ev.what == kind::none);
      return;
    }
    const partial done = std::move(p);
    pending_.erase(it);
    if (!done.header || done.spoiled || done.total > limits_.max_message_size || done.received != done.total) {
      expect_reply_error(ev, f.session, wire::error_invalid_large_req);
      return;
    }
    CSK_FUZZ_CHECK(ev.what == kind::request);
    const wire::request_message& m = ev.message;
    CSK_FUZZ_CHECK(m.multipart && m.session == f.session && m.push == done.push);
    CSK_FUZZ_CHECK(m.to.by_name == done.to.by_name && m.to.name == done.to.name &&
                   m.to.address == done.to.address);
    CSK_FUZZ_CHECK(m.has_trace == done.has_trace && m.trace_tag == done.trace_tag);
    CSK_FUZZ_CHECK(m.payload.size() == done.total && m.payload.size() <= limits_.max_message_size);
    CSK_FUZZ_CHECK(same_bytes(m.payload, done.data));
  }

  static void expect_reply_error(const wire::request_event& ev, std::uint32_t session, std::string_view text) {
    CSK_FUZZ_CHECK(ev.what == kind::reply_error && ev.session == session && ev.error_text == text);
  }

  using kind = wire::request_event::kind;

  wire::assembler_limits limits_;
  wire::request_assembler assembler_;
  std::unordered_map<std::uint32_t, partial> pending_;
  bool has_trace_ = false;
  std::string trace_tag_;
  bool closed_ = false;
};

// --------------------------------------------------------------- responses --

// What decode_response_frame must accept, from the layout in cluster_codec.hpp.
bool valid_response_body(bytes_view b) { return b.size() >= 5 && b[4] <= 4 && (b[4] != 2 || b.size() == 9); }

class response_side {
 public:
  explicit response_side(wire::assembler_limits limits) : limits_(limits), assembler_(limits) {}

  void on_frame(bytes_view body) {
    auto decoded = wire::decode_response_frame(body);
    CSK_FUZZ_CHECK(decoded.has_value() == valid_response_body(body));
    if (!decoded) {
      const wire::frame_error& e = decoded.error();
      CSK_FUZZ_CHECK(e.code == wire::frame_errc::truncated || e.code == wire::frame_errc::bad_type ||
                     e.code == wire::frame_errc::bad_size);
      CSK_FUZZ_CHECK(e.offset <= body.size());
      CSK_FUZZ_CHECK(!e.message().empty());
      return;
    }
    const wire::response_frame& f = *decoded;
    CSK_FUZZ_CHECK(f.session == le32(body, 0) && static_cast<std::uint8_t>(f.type) == body[4]);
    CSK_FUZZ_CHECK(inside(body, f.data));
    if (f.type == wire::response_type::multi_begin) {
      CSK_FUZZ_CHECK(f.total == le32(body, 5) && f.data.empty());
    } else {
      CSK_FUZZ_CHECK(is_sub(body, f.data, 5));
    }
    check_reencode(body, f);
    if (!closed_) assemble(f);
  }

 private:
  struct partial {
    std::uint64_t total = 0;
    std::uint64_t received = 0;
    bool too_large = false;  ///< BEGIN total over the limit: nothing is stored
    bool overflow = false;   ///< more bytes than announced: can no longer complete
    byte_buffer data;
  };

  static void check_reencode(bytes_view body, const wire::response_frame& f) {
    const bool ok = f.type == wire::response_type::ok;
    if (!ok && f.type != wire::response_type::error) return;
    byte_buffer out;
    auto r = wire::encode_response(f.session, ok, f.data, out);
    CSK_FUZZ_CHECK(r.has_value());
    if (!ok) {
      // Error text is cut at 32768 bytes, always one frame.
      const std::size_t cut = std::min(body.size(), 5 + wire::max_error_text);
      CSK_FUZZ_CHECK(same_bytes(out, framed(body.first(cut))));
    } else if (f.data.size() <= wire::max_single_response_payload) {
      CSK_FUZZ_CHECK(same_bytes(out, framed(body)));
    } else {
      // A single OK frame over 32768 bytes re-encodes as BEGIN + 2 chunks.
      wire::response_assembler assembler;
      int frames = 0;
      int responses = 0;
      for_each_frame(out, [&](bytes_view b) {
        ++frames;
        auto d = wire::decode_response_frame(b);
        CSK_FUZZ_CHECK(d.has_value() && d->session == f.session);
        const wire::response_event ev = assembler.push(*d);
        if (ev.what == wire::response_event::kind::none) return;
        CSK_FUZZ_CHECK(ev.what == wire::response_event::kind::response);
        ++responses;
        CSK_FUZZ_CHECK(ev.message.ok && ev.message.multipart && ev.message.session == f.session);
        CSK_FUZZ_CHECK(same_bytes(ev.message.payload, f.data));
      });
      CSK_FUZZ_CHECK(frames == 1 + chunk_count(f.data.size()) && responses == 1);
    }
  }

  void assemble(const wire::response_frame& f) {
    const wire::response_event ev = assembler_.push(f);
    auto it = pending_.find(f.session);
    switch (f.type) {
      case wire::response_type::error:
        if (it != pending_.end()) pending_.erase(it);
        expect_single(ev, f, false);
        break;
      case wire::response_type::ok:
        if (it == pending_.end()) {
          expect_single(ev, f, true);
          break;
        }
        // After a BEGIN, OK ends the multi-part response like MULTI_END.
        add_chunk(it->second, f.data);
        finish(ev, f.session, it);
        break;
      case wire::response_type::multi_begin: {
        const bool repeated = it != pending_.end();
        if (!repeated && pending_.size() >= limits_.max_pending_messages) {
          CSK_FUZZ_CHECK(ev.what == kind::fatal && !ev.reason.empty());
          closed_ = true;
          return;
        }
        CSK_FUZZ_CHECK(ev.what == (repeated ? kind::dropped : kind::none));
        partial& p = pending_[f.session];
        p = partial{};
        p.total = f.total;
        p.too_large = f.total > limits_.max_message_size;
        break;
      }
      case wire::response_type::multi_part:
      case wire::response_type::multi_end: {
        const bool last = f.type == wire::response_type::multi_end;
        if (it == pending_.end()) {
          if (last) {
            CSK_FUZZ_CHECK(ev.what == kind::response && ev.message.session == f.session);
            CSK_FUZZ_CHECK(!ev.message.ok && !ev.message.multipart && !ev.message.payload.empty());
          } else {
            CSK_FUZZ_CHECK(ev.what == kind::dropped && !ev.reason.empty());
          }
          break;
        }
        add_chunk(it->second, f.data);
        if (last) {
          finish(ev, f.session, it);
        } else {
          CSK_FUZZ_CHECK(ev.what == kind::none);
        }
        break;
      }
    }
    CSK_FUZZ_CHECK(assembler_.pending() == pending_.size());
    CSK_FUZZ_CHECK(pending_.size() <= limits_.max_pending_messages);
  }

  static void add_chunk(partial& p, bytes_view chunk) {
    p.received += chunk.size();
    if (p.too_large || p.overflow) return;
    if (p.received > p.total) {
      p.overflow = true;
      p.data = byte_buffer{};
      return;
    }
    p.data.insert(p.data.end(), chunk.begin(), chunk.end());
  }

  void finish(const wire::response_event& ev, std::uint32_t session,
              std::unordered_map<std::uint32_t, partial>::iterator it) {
    const partial done = std::move(it->second);
    pending_.erase(it);
    CSK_FUZZ_CHECK(ev.what == kind::response && ev.message.session == session && ev.message.multipart);
    if (done.too_large || done.overflow || done.received != done.total) {
      // Completed as an error so that the caller never gets truncated data.
      CSK_FUZZ_CHECK(!ev.message.ok && !ev.message.payload.empty());
      return;
    }
    CSK_FUZZ_CHECK(ev.message.ok);
    CSK_FUZZ_CHECK(ev.message.payload.size() == done.total && done.total <= limits_.max_message_size);
    CSK_FUZZ_CHECK(same_bytes(ev.message.payload, done.data));
  }

  static void expect_single(const wire::response_event& ev, const wire::response_frame& f, bool ok) {
    CSK_FUZZ_CHECK(ev.what == kind::response && ev.message.session == f.session);
    CSK_FUZZ_CHECK(ev.message.ok == ok && !ev.message.multipart);
    CSK_FUZZ_CHECK(same_bytes(ev.message.payload, f.data));
  }

  using kind = wire::response_event::kind;

  wire::assembler_limits limits_;
  wire::response_assembler assembler_;
  std::unordered_map<std::uint32_t, partial> pending_;
  bool closed_ = false;
};

}  // namespace

int csk_fuzz_cluster(const std::uint8_t* data, std::size_t size) {
  const bytes_view in(data, size);
  const std::uint8_t control = size > 0 ? in[0] : 0;
  const bytes_view sizes = in.subspan(std::min<std::size_t>(size, 1)).first(
      std::min(static_cast<std::size_t>(control & control_chunk_count), size > 0 ? size - 1 : 0));
  const bytes_view stream = in.subspan(std::min(size, 1 + sizes.size()));

  wire::assembler_limits limits;
  if (control & control_tight_limits) {
    limits.max_message_size = 4096;
    limits.max_pending_messages = 2;
  } else {
    limits.max_message_size = 1u << 20;
    limits.max_pending_messages = 64;
  }
  request_side requests(limits);
  response_side responses(limits);

  wire::frame_reader reader;
  std::size_t fed = 0;
  std::size_t consumed = 0;  // end of the last frame, by our own reading of the stream
  std::size_t chunk = 0;
  while (fed < stream.size()) {
    std::size_t n = stream.size() - fed;
    if (!sizes.empty()) {
      std::size_t want = std::size_t{sizes[chunk++ % sizes.size()]} + 1;
      if (control & control_big_chunks) want *= 256;
      n = std::min(n, want);
    }
    if (control & control_empty_feeds) reader.feed({});
    reader.feed(stream.subspan(fed, n));
    fed += n;

    while (auto body = reader.next()) {
      CSK_FUZZ_CHECK(fed - consumed >= wire::frame_header_size);
      const std::size_t len = be16(stream, consumed);
      CSK_FUZZ_CHECK(fed - consumed - wire::frame_header_size >= len);
      CSK_FUZZ_CHECK(reader.last_frame_offset() == consumed);
      CSK_FUZZ_CHECK(body->size() == len && body->size() <= wire::max_frame_body);
      CSK_FUZZ_CHECK(same_bytes(*body, stream.subspan(consumed + wire::frame_header_size, len)));

      const bytes_view rest = stream.subspan(consumed, fed - consumed);
      const wire::split_result s = wire::split_frame(rest);
      CSK_FUZZ_CHECK(s.status == wire::split_status::ok && s.consumed == wire::frame_header_size + len);
      CSK_FUZZ_CHECK(is_sub(rest.first(s.consumed), s.body, wire::frame_header_size));

      consumed += wire::frame_header_size + len;
      CSK_FUZZ_CHECK(reader.buffered() == fed - consumed);
      requests.on_frame(*body);
      responses.on_frame(*body);
    }
    // No whole frame may be left behind.
    const bytes_view rest = stream.subspan(consumed, fed - consumed);
    CSK_FUZZ_CHECK(rest.size() < wire::frame_header_size ||
                   rest.size() < wire::frame_header_size + be16(rest, 0));
    CSK_FUZZ_CHECK(wire::split_frame(rest).status == wire::split_status::need_more);
    CSK_FUZZ_CHECK(reader.buffered() == rest.size());
  }
  return 0;
}
