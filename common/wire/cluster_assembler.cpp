#include "common/wire/cluster_assembler.hpp"

#include <algorithm>

namespace csk::wire {
namespace {

}  // namespace

void detail::multipart_buffer::add(bytes_view chunk) {
  received += chunk.size();
  if (discard) return;
  if (received > total) {
    discard = true;  // can no longer match: stop buffering
    data = byte_buffer{};
    return;
  }
  data.insert(data.end(), chunk.begin(), chunk.end());
}

bool detail::add_within(multipart_buffer& b, bytes_view chunk, std::size_t& held, std::size_t budget) {
  const bool stores = !b.discard && b.received + chunk.size() <= b.total;
  const std::size_t before = b.data.capacity();  // counted in `held`
  const std::size_t need = b.data.size() + chunk.size();
  if (stores && need > before) {
    const std::size_t room = budget - std::min(budget, held);  // beyond what is counted
    if (need - before > room) return false;
    const std::size_t doubled = std::min<std::uint64_t>(std::max(need, 2 * before), b.total);
    b.data.reserve(doubled - before <= room ? doubled : need);
  }
  b.add(chunk);
  held = held - before + b.data.capacity();
  return true;
}

namespace {
std::string budget_text(const char* what, std::size_t held, std::size_t chunk, std::size_t budget) {
  return std::string("incomplete multi-part ") + what + " hold " + std::to_string(held) + " bytes; a chunk of " +
         std::to_string(chunk) + " would pass the connection's budget of " + std::to_string(budget) +
         " (max_pending_bytes)";
}
}  // namespace

// ------------------------------------------------------------- requests --

request_event request_assembler::push(const request_frame& f) {
  request_event ev;
  switch (f.type) {
    case request_type::trace:
      // As skynet's agent: the tag waits for the next call or multi-part header on this
      // connection; single pushes leave it waiting.
      has_trace_ = true;
      trace_tag_.assign(as_chars(f.data));
      return ev;
    case request_type::req_addr:
    case request_type::req_name: single(f, ev); return ev;
    case request_type::mreq_addr:
    case request_type::mpush_addr:
    case request_type::mreq_name:
    case request_type::mpush_name: return on_header(f);
    case request_type::mpart:
    case request_type::mpart_end: return on_chunk(f);
  }
  return ev;
}

void request_assembler::push(const request_frame& f, request_event& ev) {
  if (f.type == request_type::req_addr || f.type == request_type::req_name) {
    single(f, ev);
    return;
  }
  ev = push(f);
}

// A whole request in one frame. Every field of `ev` is set (it may be a reused event).
void request_assembler::single(const request_frame& f, request_event& ev) {
  ev.what = request_event::kind::request;
  ev.session = 0;
  ev.error_text = {};
  ev.reason.clear();
  request_message& m = ev.message;
  m.to.by_name = f.by_name();
  m.to.address = f.address;
  m.to.name.assign(f.name);
  m.session = f.session;
  m.push = f.push();
  m.multipart = false;
  if (!m.push) {
    m.has_trace = std::exchange(has_trace_, false);
    m.trace_tag = std::exchange(trace_tag_, std::string());
  } else {
    m.has_trace = false;
    m.trace_tag.clear();
  }
  m.payload.assign(f.data.begin(), f.data.end());
}

request_event request_assembler::on_header(const request_frame& f) {
  request_event ev;
  auto it = pending_.find(f.session);
  if (it == pending_.end()) {
    if (pending_.size() >= limits_.max_pending_messages) {
      ev.what = request_event::kind::fatal;
      ev.reason = "too many incomplete multi-part requests (" + std::to_string(pending_.size()) + ")";
      return ev;
    }
    it = pending_.emplace(f.session, partial{}).first;
  } else {
    // skynet appends the second header to the first message, which then cannot add up:
    // the message ends in "Invalid large req". Keep counting, stop storing.
    ev.what = request_event::kind::dropped;
    ev.reason = "multi-part header repeats session " + std::to_string(f.session) +
                "; the message will be refused";
    detail::release(it->second.buf, held_);
    it->second.buf.discard = true;
    it->second.spoiled = true;
    it->second.buf.data = byte_buffer{};
    return ev;
  }
  partial& p = it->second;
  p.to.by_name = f.by_name();
  p.to.address = f.address;
  p.to.name.assign(f.name);
  p.push = f.push();
  p.buf.total = f.total;
  p.has_trace = std::exchange(has_trace_, false);
  p.trace_tag = std::move(trace_tag_);
  trace_tag_.clear();
  if (f.total > limits_.max_message_size) {
    p.buf.discard = true;
    ev.what = request_event::kind::dropped;
    ev.reason = "multi-part request of " + std::to_string(f.total) + " bytes is over the limit of " +
                std::to_string(limits_.max_message_size) + "; its chunks will be discarded";
  }
  // No reserve from the (untrusted) total: the buffer grows with the bytes that arrive.
  return ev;
}

request_event request_assembler::on_chunk(const request_frame& f) {
  request_event ev;
  const bool last = f.type == request_type::mpart_end;
  auto it = pending_.find(f.session);
  if (it == pending_.end()) {
    if (last) {
      // skynet answers a last chunk without header as an unknown name.
      ev.what = request_event::kind::reply_error;
      ev.session = f.session;
      ev.error_text = error_invalid_name;
      ev.reason = "multi-part chunk without header";
      return ev;
    }
    if (pending_.size() >= limits_.max_pending_messages) {
      ev.what = request_event::kind::fatal;
      ev.reason = "too many incomplete multi-part requests (" + std::to_string(pending_.size()) + ")";
      return ev;
    }
    partial orphan;  // skynet starts a message without a header; it can never add up
    orphan.orphan = true;
    orphan.buf.discard = true;
    orphan.has_trace = std::exchange(has_trace_, false);
    orphan.trace_tag = std::exchange(trace_tag_, std::string());
    it = pending_.emplace(f.session, std::move(orphan)).first;
  }
  if (!detail::add_within(it->second.buf, f.data, held_, limits_.max_pending_bytes)) {
    ev.what = request_event::kind::fatal;
    ev.reason = budget_text("requests", held_, f.data.size(), limits_.max_pending_bytes);
    return ev;
  }
  if (!last) return ev;

  detail::release(it->second.buf, held_);
  partial done = std::move(it->second);
  pending_.erase(it);
  if (!done.buf.complete() || done.orphan || done.spoiled) {
    ev.what = request_event::kind::reply_error;
    ev.session = f.session;
    ev.error_text = error_invalid_large_req;
    if (done.orphan) {
      ev.reason = "multi-part chunks without a header";
    } else if (done.spoiled) {
      ev.reason = "multi-part message with a repeated header";
    } else {
      ev.reason = "multi-part request announced " + std::to_string(done.buf.total) + " bytes, carried " +
                  std::to_string(done.buf.received);
      if (done.buf.total > limits_.max_message_size) ev.reason += " (over the size limit)";
    }
    return ev;
  }
  ev.what = request_event::kind::request;
  request_message& m = ev.message;
  m.to = std::move(done.to);
  m.session = f.session;
  m.push = done.push;
  m.multipart = true;
  m.has_trace = done.has_trace;
  m.trace_tag = std::move(done.trace_tag);
  m.payload = std::move(done.buf.data);
  return ev;
}

// ------------------------------------------------------------ responses --

response_event response_assembler::push(const response_frame& f) {
  response_event ev;
  auto it = pending_.find(f.session);
  switch (f.type) {
    case response_type::error:
      // An ERROR replaces whatever a multi-part response had collected.
      if (it != pending_.end()) {
        detail::release(it->second.buf, held_);
        pending_.erase(it);
      }
      ev.what = response_event::kind::response;
      ev.message.session = f.session;
      ev.message.ok = false;
      ev.message.payload.assign(f.data.begin(), f.data.end());
      return ev;
    case response_type::ok:
      if (it != pending_.end()) {
        // skynet's caller treats OK like MULTI_END when a BEGIN was seen.
        if (!detail::add_within(it->second.buf, f.data, held_, limits_.max_pending_bytes)) return over_budget(f.data.size());
        detail::release(it->second.buf, held_);
        partial done = std::move(it->second);
        pending_.erase(it);
        return finish(f.session, done);
      }
      ev.what = response_event::kind::response;
      ev.message.session = f.session;
      ev.message.ok = true;
      ev.message.payload.assign(f.data.begin(), f.data.end());
      return ev;
    case response_type::multi_begin: {
      if (it == pending_.end()) {
        if (pending_.size() >= limits_.max_pending_messages) {
          ev.what = response_event::kind::fatal;
          ev.reason = "too many incomplete multi-part responses";
          return ev;
        }
        it = pending_.emplace(f.session, partial{}).first;
      } else {
        ev.what = response_event::kind::dropped;
        ev.reason = "MULTI_BEGIN repeats session " + std::to_string(f.session);
        detail::release(it->second.buf, held_);
        it->second = partial{};
      }
      partial& p = it->second;
      p.buf.total = f.total;
      if (f.total > limits_.max_message_size) {
        p.buf.discard = true;
        p.too_large = true;
      }
      return ev;
    }
    case response_type::multi_part:
    case response_type::multi_end: {
      const bool last = f.type == response_type::multi_end;
      if (it == pending_.end()) {
        if (!last) {
          ev.what = response_event::kind::dropped;
          ev.reason = "MULTI_PART for session " + std::to_string(f.session) + " without MULTI_BEGIN";
          return ev;
        }
        ev.what = response_event::kind::response;
        ev.message.session = f.session;
        ev.message.ok = false;
        const std::string_view text = "multi-part response without MULTI_BEGIN";
        ev.message.payload.assign(text.begin(), text.end());
        return ev;
      }
      if (!detail::add_within(it->second.buf, f.data, held_, limits_.max_pending_bytes)) return over_budget(f.data.size());
      if (!last) return ev;
      detail::release(it->second.buf, held_);
      partial done = std::move(it->second);
      pending_.erase(it);
      return finish(f.session, done);
    }
  }
  return ev;
}

void response_assembler::push(const response_frame& f, response_event& ev) {
  const bool single = f.type == response_type::error || f.type == response_type::ok;
  if (!single || (!pending_.empty() && pending_.count(f.session) != 0)) {
    ev = push(f);
    return;
  }
  // A whole response in one frame, no multi-part in progress for its session.
  ev.what = response_event::kind::response;
  ev.reason.clear();
  ev.message.session = f.session;
  ev.message.ok = f.type == response_type::ok;
  ev.message.multipart = false;
  ev.message.payload.assign(f.data.begin(), f.data.end());
}

response_event response_assembler::over_budget(std::size_t chunk) const {
  response_event ev;
  ev.what = response_event::kind::fatal;
  ev.reason = budget_text("responses", held_, chunk, limits_.max_pending_bytes);
  return ev;
}

response_event response_assembler::finish(std::uint32_t session, partial& p) {
  response_event ev;
  ev.what = response_event::kind::response;
  ev.message.session = session;
  ev.message.multipart = true;
  std::string_view text;
  if (p.too_large) {
    text = "multi-part response over the size limit";
  } else if (!p.buf.complete()) {
    text = "multi-part response size mismatch";
  }
  if (!text.empty()) {
    ev.message.ok = false;
    ev.message.payload.assign(text.begin(), text.end());
    ev.reason = std::string(text) + ": announced " + std::to_string(p.buf.total) + " bytes, received " +
                std::to_string(p.buf.received);
    return ev;
  }
  ev.message.ok = true;
  ev.message.payload = std::move(p.buf.data);
  return ev;
}

// ------------------------------------------------------- hand-over state --
//
// request_assembler state, all integers little-endian:
//   "CSRA"        4   magic
//   version       u8  state_version (1)
//   has_trace     u8  0/1: a trace tag waits for the next call
//   trace_tag     u32 length + bytes
//   count         u32 incomplete multi-part requests, then each, by ascending session:
//     session     u32
//     flags       u8  1 push, 2 orphan, 4 spoiled, 8 has_trace, 16 discard, 32 by_name
//     address     u32 (target.address)
//     name        u32 length + bytes (target.name, at most max_name_length)
//     trace_tag   u32 length + bytes
//     total       u64 announced size
//     received    u64 bytes counted so far
//     data        u64 length + bytes: == received unless discard (then 0); <= total
// Nothing follows the last request.

namespace {

constexpr std::uint8_t flag_push = 1, flag_orphan = 2, flag_spoiled = 4, flag_trace = 8, flag_discard = 16,
                       flag_by_name = 32;
constexpr std::string_view state_magic = "CSRA";

void put_u32(byte_buffer& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(byte_buffer& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_bytes32(byte_buffer& out, bytes_view b) {
  put_u32(out, static_cast<std::uint32_t>(b.size()));
  out.insert(out.end(), b.begin(), b.end());
}

/// Reads the fields in order; any read past the end sets `bad` and yields zeros.
struct state_reader {
  bytes_view in;
  bool bad = false;

  bool take(std::size_t n, bytes_view& out) {
    if (bad || in.size() < n) {
      bad = true;
      return false;
    }
    out = in.first(n);
    in = in.subspan(n);
    return true;
  }
  std::uint64_t uint(std::size_t n) {
    bytes_view b;
    if (!take(n, b)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[i]} << (8 * i);
    return v;
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(uint(1)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
  std::uint64_t u64() { return uint(8); }
  /// A length-prefixed byte string, the length checked against what is left first.
  bytes_view bytes(std::uint64_t len) {
    bytes_view b;
    if (len > in.size()) {
      bad = true;
      return {};
    }
    take(static_cast<std::size_t>(len), b);
    return b;
  }
};

}  // namespace

void request_assembler::export_state(byte_buffer& out) const {
  out.insert(out.end(), state_magic.begin(), state_magic.end());
  out.push_back(state_version);
  out.push_back(has_trace_ ? 1 : 0);
  put_bytes32(out, as_bytes(trace_tag_));
  std::vector<std::uint32_t> sessions;
  sessions.reserve(pending_.size());
  for (const auto& [session, p] : pending_) sessions.push_back(session);
  std::sort(sessions.begin(), sessions.end());
  put_u32(out, static_cast<std::uint32_t>(sessions.size()));
  for (const std::uint32_t session : sessions) {
    const partial& p = pending_.at(session);
    put_u32(out, session);
    std::uint8_t flags = 0;
    if (p.push) flags |= flag_push;
    if (p.orphan) flags |= flag_orphan;
    if (p.spoiled) flags |= flag_spoiled;
    if (p.has_trace) flags |= flag_trace;
    if (p.buf.discard) flags |= flag_discard;
    if (p.to.by_name) flags |= flag_by_name;
    out.push_back(flags);
    put_u32(out, p.to.address);
    put_bytes32(out, as_bytes(p.to.name));
    put_bytes32(out, as_bytes(p.trace_tag));
    put_u64(out, p.buf.total);
    put_u64(out, p.buf.received);
    put_u64(out, p.buf.discard ? 0 : p.buf.data.size());
    if (!p.buf.discard) out.insert(out.end(), p.buf.data.begin(), p.buf.data.end());
  }
}

result<void, std::string> request_assembler::import_state(bytes_view in) {
  const auto fail = [](std::string why) { return unexpected("request assembler state: " + std::move(why)); };
  state_reader r{in};
  bytes_view magic;
  if (!r.take(state_magic.size(), magic) || as_chars(magic) != state_magic) return fail("bad magic");
  const std::uint8_t version = r.u8();
  if (r.bad || version != state_version) {
    return fail("unsupported version " + std::to_string(version) + " (this build reads " +
                std::to_string(state_version) + ")");
  }
  const std::uint8_t has_trace = r.u8();
  const bytes_view tag = r.bytes(r.u32());
  const std::uint32_t count = r.u32();
  if (r.bad) return fail("truncated header");
  if (has_trace > 1) return fail("bad trace flag");
  if (count > limits_.max_pending_messages) {
    return fail(std::to_string(count) + " incomplete requests, over the limit of " +
                std::to_string(limits_.max_pending_messages));
  }
  std::unordered_map<std::uint32_t, partial> pending;
  std::size_t held = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t session = r.u32();
    const std::uint8_t flags = r.u8();
    partial p;
    p.to.address = r.u32();
    const bytes_view name = r.bytes(r.u32());
    const bytes_view ptag = r.bytes(r.u32());
    p.buf.total = r.u64();
    p.buf.received = r.u64();
    const bytes_view data = r.bytes(r.u64());
    if (r.bad) return fail("truncated at request " + std::to_string(i));
    if ((flags & ~std::uint8_t{63}) != 0) return fail("unknown flags at session " + std::to_string(session));
    if (name.size() > max_name_length) return fail("name too long at session " + std::to_string(session));
    p.push = (flags & flag_push) != 0;
    p.orphan = (flags & flag_orphan) != 0;
    p.spoiled = (flags & flag_spoiled) != 0;
    p.has_trace = (flags & flag_trace) != 0;
    p.buf.discard = (flags & flag_discard) != 0;
    p.to.by_name = (flags & flag_by_name) != 0;
    p.to.name.assign(as_chars(name));
    p.trace_tag.assign(as_chars(ptag));
    if (p.buf.discard ? !data.empty() : (data.size() != p.buf.received || p.buf.received > p.buf.total)) {
      return fail("inconsistent sizes at session " + std::to_string(session));
    }
    if ((p.orphan || p.spoiled) && !p.buf.discard) return fail("refused message not discarded at session " +
                                                               std::to_string(session));
    if (!p.buf.discard && p.buf.total > limits_.max_message_size) {
      p.buf.discard = true;  // this assembler's limit: refused at its end, as on_header does
    } else {
      if (data.size() > limits_.max_pending_bytes - held) {
        return fail("the incomplete requests hold more than the budget of " + std::to_string(limits_.max_pending_bytes) +
                    " bytes");
      }
      p.buf.data.assign(data.begin(), data.end());
      held += p.buf.data.capacity();
    }
    if (!pending.emplace(session, std::move(p)).second) return fail("duplicate session " + std::to_string(session));
  }
  if (!r.in.empty()) return fail(std::to_string(r.in.size()) + " trailing bytes");
  pending_ = std::move(pending);
  held_ = held;
  has_trace_ = has_trace != 0;
  trace_tag_.assign(as_chars(tag));
  return {};
}

}  // namespace csk::wire
