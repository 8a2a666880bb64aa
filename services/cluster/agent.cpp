#include "services/cluster/agent.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>

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

// Most answers are small; an outbox that starts here rarely regrows within a turn.
constexpr std::size_t outbox_initial_capacity = 4096;
// What a request costs while it waits in a mailbox, for the node's memory budget: its
// packed size (the unpacked values take about as much) plus the message itself.
std::uint32_t mailbox_charge(std::size_t payload) {
  constexpr std::size_t overhead = sizeof(actor::message) + 64;
  return static_cast<std::uint32_t>(std::min<std::size_t>(payload + overhead, UINT32_MAX));
}

// A scratch buffer that grew past this (one huge answer) is released after use.
constexpr std::size_t scratch_keep_capacity = 1u << 20;

}  // namespace

class agent::outbox final : public actor::runtime::turn_flusher {
 public:
  outbox(actor::runtime& rt, write_fn write) : rt_(rt), write_(std::move(write)) {}

  void acquire() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// The completion of one call: encodes the answer into the outbox. Any runtime thread.
  void answer(std::uint32_t session, actor::call_result r) {
    if (!r) {
      error_replies.fetch_add(1, std::memory_order_relaxed);
      append_error(session, r.error().text);
      return;
    }
    thread_local byte_buffer payload;  // the packed values, before framing
    payload.clear();
    auto packed = seri::pack(*r, payload);
    bool framed = false;
    if (packed) {
      std::unique_lock lock(mu_);
      const std::size_t before = buf_.size();
      if (before == 0 && buf_.capacity() < outbox_initial_capacity) buf_.reserve(outbox_initial_capacity);
      framed = static_cast<bool>(wire::encode_response(session, true, payload, buf_));
      if (framed) {
        schedule(lock);
      } else {
        buf_.resize(before);
      }
    }
    if (payload.capacity() > scratch_keep_capacity) byte_buffer{}.swap(payload);
    if (framed) return;
    error_replies.fetch_add(1, std::memory_order_relaxed);
    append_error(session, packed ? std::string_view("reply too large") : std::string_view(packed.error().message()));
  }

  void write_now(byte_buffer b) { emit(std::move(b)); }

  /// Calls dispatched whose completion has not finished, plus one while a flush is
  /// arranged and not yet done: 0 means every answer owed has been handed to `write`.
  std::size_t owed() const noexcept {
    const int refs = refs_.load(std::memory_order_acquire);
    return refs > 1 ? static_cast<std::size_t>(refs - 1) : 0;
  }

  void flush() override {
    byte_buffer b;
    {
      std::lock_guard lock(mu_);
      b.swap(buf_);
      scheduled_ = false;
    }
    if (!b.empty()) emit(std::move(b));
    release();  // the reference schedule() took
  }

  std::atomic<std::uint64_t> calls{0}, pushes{0}, queries{0}, error_replies{0}, dropped{0};
  std::atomic<std::uint64_t> frames_in{0}, bytes_in{0}, frames_out{0}, bytes_out{0};

 private:
  /// Every write goes here: whole frames, counted on their way out.
  void emit(byte_buffer b) {
    frames_out.fetch_add(wire::count_frames(b), std::memory_order_relaxed);
    bytes_out.fetch_add(b.size(), std::memory_order_relaxed);
    write_(std::move(b));
  }

  void append_error(std::uint32_t session, std::string_view text) {
    std::unique_lock lock(mu_);
    (void)wire::encode_response(session, false, as_bytes(text), buf_);  // errors always encode
    schedule(lock);
  }

  /// Arranges one flush for what the outbox holds (mu_ held; released here).
  void schedule(std::unique_lock<std::mutex>& lock) {
    if (scheduled_) return;
    scheduled_ = true;
    acquire();  // flush() releases it
    lock.unlock();
    rt_.flush_after_turn(*this);
  }

  actor::runtime& rt_;
  const write_fn write_;
  std::atomic<int> refs_{1};  // the agent's own
  std::mutex mu_;
  byte_buffer buf_;         // mu_: encoded answers not yet written
  bool scheduled_ = false;  // mu_: a flush is arranged
};

agent::agent(actor::runtime& rt, std::string peer, write_fn write, close_fn close, wire::assembler_limits limits,
             std::chrono::milliseconds call_timeout, flow_control flow)
    : rt_(rt),
      peer_(std::move(peer)),
      close_(std::move(close)),
      assembler_(limits),
      call_timeout_(call_timeout),
      flow_(std::move(flow)),
      out_(new outbox(rt, std::move(write))) {}

agent::~agent() {
  if (flow_.budget != nullptr) flow_.budget->release(charged_);
  out_->release();
}

agent_stats agent::stats() const {
  agent_stats s;
  s.calls = out_->calls.load(std::memory_order_relaxed);
  s.pushes = out_->pushes.load(std::memory_order_relaxed);
  s.queries = out_->queries.load(std::memory_order_relaxed);
  s.error_replies = out_->error_replies.load(std::memory_order_relaxed);
  s.dropped = out_->dropped.load(std::memory_order_relaxed);
  s.frames_in = out_->frames_in.load(std::memory_order_relaxed);
  s.bytes_in = out_->bytes_in.load(std::memory_order_relaxed);
  s.frames_out = out_->frames_out.load(std::memory_order_relaxed);
  s.bytes_out = out_->bytes_out.load(std::memory_order_relaxed);
  s.mailbox_pauses = mailbox_pauses_.load(std::memory_order_relaxed);
  s.memory_pauses = memory_pauses_.load(std::memory_order_relaxed);
  s.pending_bytes = pending_bytes_.load(std::memory_order_relaxed);
  s.overrun = overrun_.load(std::memory_order_relaxed);
  return s;
}

void agent::answer_error(std::uint32_t session, std::string_view text) {
  out_->error_replies.fetch_add(1, std::memory_order_relaxed);
  out_->write_now(error_frame(session, text));
}

void agent::on_frame(bytes_view body) {
  if (closed_) return;
  out_->frames_in.fetch_add(1, std::memory_order_relaxed);
  out_->bytes_in.fetch_add(wire::frame_header_size + body.size(), std::memory_order_relaxed);
  auto f = wire::decode_request_frame(body);
  if (!f) {
    // skynet logs and drops a malformed request frame; the connection stays.
    out_->dropped.fetch_add(1, std::memory_order_relaxed);
    log()->warn("cluster peer {}: dropped request frame: {}", peer_, f.error().message());
    return;
  }
  assembler_.push(*f, event_);
  sync_charge();
  auto& ev = event_;
  using kind = wire::request_event::kind;
  switch (ev.what) {
    case kind::none:
      if (flow_.budget != nullptr && flow_.budget->over()) push_back(0);  // a chunk held
      return;
    case kind::request: push_back(dispatch(ev.message)); return;
    case kind::reply_error:
      log()->warn("cluster peer {}: session {}: {}", peer_, ev.session, ev.reason);
      answer_error(ev.session, ev.error_text);
      return;
    case kind::dropped:
      out_->dropped.fetch_add(1, std::memory_order_relaxed);
      log()->warn("cluster peer {}: {}", peer_, ev.reason);
      return;
    case kind::fatal:
      closed_ = true;
      overrun_.store(true, std::memory_order_relaxed);
      log()->error("cluster peer {}: closing: {}", peer_, ev.reason);
      close_(ev.reason);
      return;
  }
}

void agent::sync_charge() {
  const std::size_t held = assembler_.held_bytes();
  if (held == charged_) return;
  if (flow_.budget != nullptr) {
    if (held > charged_) flow_.budget->charge(held - charged_);
    if (held < charged_) flow_.budget->release(charged_ - held);
  }
  charged_ = held;
  pending_bytes_.store(held, std::memory_order_relaxed);
}

void agent::push_back(actor::handle_t to) {
  if (!flow_.pause || !flow_.resume) return;
  if (to != 0 && rt_.mailbox_full(to)) {
    mailbox_pauses_.fetch_add(1, std::memory_order_relaxed);
    flow_.pause(net::pause_reason::mailbox);  // first: the drain may come at once
    rt_.when_mailbox_drains(to, [resume = flow_.resume] { resume(net::pause_reason::mailbox); });
  }
  if (flow_.budget != nullptr && flow_.budget->over()) {
    memory_pauses_.fetch_add(1, std::memory_order_relaxed);
    flow_.pause(net::pause_reason::memory);
    flow_.budget->when_below_low([resume = flow_.resume] { resume(net::pause_reason::memory); });
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
    const actor::handle_t h = name[0] == ':' ? rt_.resolve_address(actor::address(name)) : resolve_name(name);
    if (h != 0) return h;
    error_text = name[0] == '@' ? wire::error_invalid_name : invalid_address;
    return 0;
  }
  error_text = wire::error_invalid_name;  // a bare skynet global name: never resolvable here
  return 0;
}

actor::handle_t agent::resolve_name(std::string_view name) {
  for (auto& c : names_) {
    if (c.handle != 0 && c.name == name) return rt_.resolve(name, c);
  }
  auto& c = names_[next_name_slot_++ % names_.size()];  // a name not cached: take a slot
  c = actor::runtime::name_cache{};
  return rt_.resolve(name, c);
}

actor::handle_t agent::dispatch(wire::request_message& m) {
  // Name query (address 0): the payload is skynet.pack(name), the name without '@'.
  if (!m.to.by_name && m.to.address == 0) {
    out_->queries.fetch_add(1, std::memory_order_relaxed);
    auto v = seri::unpack(m.payload);
    actor::handle_t h = 0;
    if (v && v->size() == 1 && (*v)[0].is_string()) h = rt_.resolve("@" + (*v)[0].as_string());
    if (h == 0) {
      answer_error(m.session, wire::error_name_not_found);
      return 0;
    }
    byte_buffer payload;
    (void)seri::pack(std::vector<lua_value>{lua_value(static_cast<std::int64_t>(h))}, payload);
    byte_buffer out;
    (void)wire::encode_response(m.session, true, payload, out);
    out_->write_now(std::move(out));
    return 0;
  }

  std::string_view error_text;
  const actor::handle_t to = resolve(m, error_text);
  if (m.push) {
    out_->pushes.fetch_add(1, std::memory_order_relaxed);
    if (to == 0) {
      if (m.to.by_name && !m.to.name.empty() && m.to.name[0] == '@') {
        answer_error(m.session, wire::error_invalid_name);  // skynet answers this one push
      } else {
        out_->dropped.fetch_add(1, std::memory_order_relaxed);
        log()->warn("cluster peer {}: push to unknown address {} dropped", peer_,
                    m.to.by_name ? m.to.name : actor::handle_string(m.to.address));
      }
      return 0;
    }
    auto args = seri::unpack(m.payload);
    if (!args) {
      out_->dropped.fetch_add(1, std::memory_order_relaxed);
      log()->warn("cluster peer {}: push with a bad payload dropped: {}", peer_, args.error().message());
      return 0;
    }
    // `to` was alive a moment ago: post() drops (and logs) the push if it has exited since.
    rt_.post(to, actor::message{0, 0, actor::msg_type::send, actor::call_errc::none, std::move(*args), {},
                                mailbox_charge(m.payload.size())});
    return to;
  }

  out_->calls.fetch_add(1, std::memory_order_relaxed);
  if (to == 0) {
    answer_error(m.session, error_text);
    return 0;
  }
  auto args = seri::unpack(m.payload);
  if (!args) {
    answer_error(m.session, args.error().message());
    return 0;
  }
  // The completion is a pointer and a session (no allocation inside std::function);
  // it holds a reference to the outbox until it has run (exactly once).
  struct complete {
    outbox* out;
    std::uint32_t session;
    void operator()(actor::call_result r) const {
      out->answer(session, std::move(r));
      out->release();
    }
  };
  out_->acquire();
  if (m.has_trace) {
    traced_call(to, std::move(*args), m);
    return to;
  }
  rt_.call(to, std::move(*args), call_timeout_, complete{out_, m.session}, mailbox_charge(m.payload.size()));
  return to;
}

void agent::traced_call(actor::handle_t to, actor::values args, wire::request_message& m) {
  // skynet.tracecall, as skynet's agent makes it: "tracecall begin", the call with the tag
  // (its handler runs traced), "tracecall end" when the answer comes. The agent is not a
  // service: its lines carry handle 0, the runtime's. The outbox reference is taken.
  struct complete {
    outbox* out;
    std::uint32_t session;
    actor::trace_ptr tag;
    void operator()(actor::call_result r) const {
      actor::trace_log(0, *tag, "tracecall end");
      out->answer(session, std::move(r));
      out->release();
    }
  };
  auto tag = std::make_shared<const std::string>(std::move(m.trace_tag));
  actor::trace_log(0, *tag, "tracecall begin");
  rt_.call(to, std::move(args), call_timeout_, complete{out_, m.session, tag}, mailbox_charge(m.payload.size()), tag);
}

// ------------------------------------------------------------ hand-over --
//
// Agent state, all integers little-endian:
//   "CSAG"       4   magic
//   version      u8  state_version (1)
//   assembler    u32 length + bytes: wire::request_assembler::export_state (its own
//                    magic and version: the multi-part requests half received, the trace
//                    tag waiting for the next call)
// Nothing follows. Not part of it: calls in flight (export refuses while there are any),
// the counters (stats() of the new agent start at 0), the limits and the call timeout
// (the new agent's own).

std::size_t agent::in_flight() const noexcept { return out_->owed(); }

result<byte_buffer, std::string> agent::export_state() const {
  if (closed_) return unexpected(std::string("agent state: the connection is closing"));
  if (const std::size_t owed = in_flight(); owed != 0) {
    return unexpected("agent state: " + std::to_string(owed) + " calls in flight (drain them first)");
  }
  byte_buffer assembled;
  assembler_.export_state(assembled);
  byte_buffer out;
  out.reserve(9 + assembled.size());
  out.insert(out.end(), {'C', 'S', 'A', 'G', state_version});
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(assembled.size() >> (8 * i)));
  out.insert(out.end(), assembled.begin(), assembled.end());
  return out;
}

result<void, std::string> agent::import_state(bytes_view in) {
  if (in.size() < 9 || as_chars(in.first(4)) != "CSAG") return unexpected(std::string("agent state: bad magic"));
  if (in[4] != state_version) {
    return unexpected("agent state: unsupported version " + std::to_string(in[4]) + " (this build reads " +
                      std::to_string(state_version) + ")");
  }
  std::size_t len = 0;
  for (std::size_t i = 0; i < 4; ++i) len |= std::size_t{in[5 + i]} << (8 * i);
  if (len != in.size() - 9) return unexpected(std::string("agent state: length does not match the bytes"));
  auto imported = assembler_.import_state(in.subspan(9));
  if (imported) sync_charge();
  return imported;
}

}  // namespace csk::cluster
