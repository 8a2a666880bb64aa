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
  it->second.buf.add(f.data);
  if (!last) return ev;

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
      if (it != pending_.end()) pending_.erase(it);
      ev.what = response_event::kind::response;
      ev.message.session = f.session;
      ev.message.ok = false;
      ev.message.payload.assign(f.data.begin(), f.data.end());
      return ev;
    case response_type::ok:
      if (it != pending_.end()) {
        // skynet's caller treats OK like MULTI_END when a BEGIN was seen.
        it->second.buf.add(f.data);
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
      it->second.buf.add(f.data);
      if (!last) return ev;
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

}  // namespace csk::wire
