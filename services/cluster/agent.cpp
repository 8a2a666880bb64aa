#include "services/cluster/agent.hpp"

#include <cstdio>

#include "common/log/log.hpp"
#include "common/wire/seri.hpp"

namespace csk::cluster {
namespace {

std::shared_ptr<spdlog::logger> log() { return csk::logger("cluster"); }

byte_buffer error_frame(std::uint32_t session, std::string_view text) {
  byte_buffer out;
  (void)wire::encode_response(session, false, as_bytes(text), out);  // errors always encode
  return out;
}

}  // namespace

agent::agent(actor::runtime& rt, std::string peer, write_fn write, close_fn close, wire::assembler_limits limits,
             std::chrono::milliseconds call_timeout)
    : rt_(rt),
      peer_(std::move(peer)),
      write_(std::move(write)),
      close_(std::move(close)),
      assembler_(limits),
      call_timeout_(call_timeout) {}

agent_stats agent::stats() const {
  return agent_stats{counters_->calls.load(), counters_->pushes.load(), counters_->queries.load(),
                     counters_->error_replies.load(), counters_->dropped.load()};
}

void agent::answer_error(std::uint32_t session, std::string_view text) {
  counters_->error_replies.fetch_add(1, std::memory_order_relaxed);
  write_(error_frame(session, text));
}

void agent::on_frame(bytes_view body) {
  if (closed_) return;
  auto f = wire::decode_request_frame(body);
  if (!f) {
    // skynet logs and drops a malformed request frame; the connection stays.
    counters_->dropped.fetch_add(1, std::memory_order_relaxed);
    log()->warn("cluster peer {}: dropped request frame: {}", peer_, f.error().message());
    return;
  }
  if (f->type == wire::request_type::trace) {
    log()->debug("cluster peer {}: trace tag {}", peer_, as_chars(f->data));
  }
  auto ev = assembler_.push(*f);
  using kind = wire::request_event::kind;
  switch (ev.what) {
    case kind::none: return;
    case kind::request: dispatch(ev.message); return;
    case kind::reply_error:
      log()->warn("cluster peer {}: session {}: {}", peer_, ev.session, ev.reason);
      answer_error(ev.session, ev.error_text);
      return;
    case kind::dropped:
      counters_->dropped.fetch_add(1, std::memory_order_relaxed);
      log()->warn("cluster peer {}: {}", peer_, ev.reason);
      return;
    case kind::fatal:
      closed_ = true;
      log()->error("cluster peer {}: closing: {}", peer_, ev.reason);
      close_(ev.reason);
      return;
  }
}

actor::handle_t agent::resolve(const wire::request_message& m, std::string_view& error_text) {
  static constexpr std::string_view invalid_address = "call to invalid address";
  if (!m.to.by_name) {
    if (rt_.alive(m.to.address)) return m.to.address;
    error_text = invalid_address;
    return 0;
  }
  const std::string& name = m.to.name;
  if (!name.empty() && (name[0] == '@' || name[0] == '.' || name[0] == ':')) {
    const actor::handle_t h = rt_.resolve_address(actor::address(name));
    if (h != 0) return h;
    error_text = name[0] == '@' ? wire::error_invalid_name : invalid_address;
    return 0;
  }
  error_text = wire::error_invalid_name;  // a bare skynet global name: never resolvable here
  return 0;
}

void agent::dispatch(wire::request_message& m) {
  // Name query (address 0): the payload is skynet.pack(name), the name without '@'.
  if (!m.to.by_name && m.to.address == 0) {
    counters_->queries.fetch_add(1, std::memory_order_relaxed);
    auto v = seri::unpack(m.payload);
    actor::handle_t h = 0;
    if (v && v->size() == 1 && (*v)[0].is_string()) h = rt_.resolve("@" + (*v)[0].as_string());
    if (h == 0) {
      answer_error(m.session, wire::error_name_not_found);
      return;
    }
    byte_buffer payload;
    (void)seri::pack(std::vector<lua_value>{lua_value(static_cast<std::int64_t>(h))}, payload);
    byte_buffer out;
    (void)wire::encode_response(m.session, true, payload, out);
    write_(std::move(out));
    return;
  }

  std::string_view error_text;
  const actor::handle_t to = resolve(m, error_text);
  if (m.push) {
    counters_->pushes.fetch_add(1, std::memory_order_relaxed);
    if (to == 0) {
      if (m.to.by_name && !m.to.name.empty() && m.to.name[0] == '@') {
        answer_error(m.session, wire::error_invalid_name);  // skynet answers this one push
      } else {
        counters_->dropped.fetch_add(1, std::memory_order_relaxed);
        log()->warn("cluster peer {}: push to unknown address {} dropped", peer_,
                    m.to.by_name ? m.to.name : actor::handle_string(m.to.address));
      }
      return;
    }
    auto args = seri::unpack(m.payload);
    if (!args) {
      counters_->dropped.fetch_add(1, std::memory_order_relaxed);
      log()->warn("cluster peer {}: push with a bad payload dropped: {}", peer_, args.error().message());
      return;
    }
    rt_.send(to, std::move(*args));
    return;
  }

  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  if (to == 0) {
    answer_error(m.session, error_text);
    return;
  }
  auto args = seri::unpack(m.payload);
  if (!args) {
    answer_error(m.session, args.error().message());
    return;
  }
  rt_.call(to, std::move(*args), call_timeout_,
           [write = write_, session = m.session, counters = counters_](actor::call_result r) {
             byte_buffer out;
             if (r) {
               byte_buffer payload;
               auto packed = seri::pack(*r, payload);
               if (packed) {
                 if (wire::encode_response(session, true, payload, out)) {
                   write(std::move(out));
                   return;
                 }
                 out.clear();
               }
               counters->error_replies.fetch_add(1, std::memory_order_relaxed);
               const std::string text = packed ? "reply too large" : packed.error().message();
               write(error_frame(session, text));
               return;
             }
             counters->error_replies.fetch_add(1, std::memory_order_relaxed);
             write(error_frame(session, r.error().text));
           });
}

}  // namespace csk::cluster
