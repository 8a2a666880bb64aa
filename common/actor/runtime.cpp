#include "common/actor/runtime.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>
#include <optional>
#include <unordered_set>

#include "common/log/log.hpp"

namespace csk::actor {

namespace {
/// Locks `m`, trying a little before sleeping on it. The hot locks here (a mailbox, the
/// run queue, a shard of the external calls) are held for tens of nanoseconds, by a net
/// thread on one side and a worker on the other: blocking on the futex at the first
/// miss made both sides sleep and wake each other in turn (a convoy) under load.
void lock_spinning(std::mutex& m) {
  for (int i = 0; i < 64; ++i) {
    if (m.try_lock()) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  m.lock();
}

/// lock_guard over lock_spinning.
class spin_guard {
 public:
  explicit spin_guard(std::mutex& m) : m_(m) { lock_spinning(m_); }
  ~spin_guard() { m_.unlock(); }
  spin_guard(const spin_guard&) = delete;
  spin_guard& operator=(const spin_guard&) = delete;

 private:
  std::mutex& m_;
};
}  // namespace

// ------------------------------------------------------------------ cell --

namespace detail {

/// A handler invocation the runtime drives: the message it handles lives here
/// until the handler's coroutine finishes (handlers take it by reference).
struct root_state {
  runtime* rt = nullptr;
  cell* owner = nullptr;
  message msg;
  bool deferred = false;
  bool is_start = false;
  bool finished = false;    // the handler ran to its end
  bool registered = false;  // owned by cell::roots (it suspended); else by dispatch()
  std::coroutine_handle<> frame;
  /// The handler's trace tag (skynet's session_coroutine_tracetag): its message's, or
  /// context::trace()'s. Read through cell::current, so it is the running handler's tag
  /// whenever this root is started or resumed.
  trace_ptr trace;
};

/// What a session of this service is waiting for.
struct pending_entry {
  enum class kind : std::uint8_t { call, sleep, callback };
  kind what = kind::call;
  std::coroutine_handle<> waiter;
  std::optional<call_result>* slot = nullptr;  // call: where the awaiter reads its result
  timer_id timer = 0;
  root_state* root = nullptr;  // the handler invocation that waits
  std::function<void()> fn;    // callback
};

/// A FIFO in one growable array (std::deque allocates and frees a block every few
/// messages). Capacity is a power of two and, as skynet's queues, does not shrink,
/// except that a very large buffer (a burst) is released once it empties.
template <class T>
class ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  T& front() noexcept { return buf_[head_]; }
  void push_back(T v) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = std::move(v);
    ++size_;
  }
  void push_front(T v) {
    if (size_ == buf_.size()) grow();
    head_ = (head_ + buf_.size() - 1) & (buf_.size() - 1);
    buf_[head_] = std::move(v);
    ++size_;
  }
  /// Moves the front element out.
  T take_front() {
    T v = std::move(buf_[head_]);
    head_ = (head_ + 1) & (buf_.size() - 1);
    if (--size_ == 0) {
      head_ = 0;
      if (buf_.size() > keep_capacity) std::vector<T>().swap(buf_);
    }
    return v;
  }
  /// Moves every element out, in order.
  template <class F>
  void drain(F&& f) {
    while (size_ != 0) f(take_front());
  }

 private:
  static constexpr std::size_t keep_capacity = 65536;
  void grow() {
    std::vector<T> bigger(buf_.empty() ? 16 : buf_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(buf_[(head_ + i) & (buf_.size() - 1)]);
    buf_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// One service: its mailbox (any thread, under mu) and its dispatch state
/// (only the thread currently dispatching it).
struct cell {
  cell(runtime& rt, handle_t h, std::unique_ptr<service> s, std::size_t warn)
      : handle(h), svc(std::move(s)), ctx(rt, *this), warn_at(warn), warn_base(warn) {}

  const handle_t handle;
  std::unique_ptr<service> svc;
  context ctx;

  // -- mailbox: guarded by mu -------------------------------------------------
  std::mutex mu;
  ring<message> queue;
  bool in_global = false;  // queued on (or being run from) the run queue
  std::atomic<bool> dead{false};  // written under mu; alive() reads it without the lock
  std::size_t warn_at;
  const std::size_t warn_base;
  /// queue.size(), stored under mu at every change, read without it (mailbox_full).
  std::atomic<std::size_t> length{0};
  /// when_mailbox_drains: run (outside mu) once the queue is down to mailbox_low or the
  /// service is dead. Empty unless a feeder paused on this mailbox.
  std::vector<std::function<void()>> drain_waiters;
  void sync_length() noexcept { length.store(queue.size(), std::memory_order_relaxed); }
  /// The waiters to run now (mu held): all of them once the queue is at `low` or dead.
  std::vector<std::function<void()>> take_waiters(std::size_t low) {
    if (drain_waiters.empty() || (queue.size() > low && !dead.load(std::memory_order_relaxed))) return {};
    return std::exchange(drain_waiters, {});
  }

  // -- dispatch state: owner thread only -------------------------------------------
  session_t next_session = 0;
  std::unordered_map<session_t, pending_entry> pending;
  std::unordered_map<root_state*, std::unique_ptr<root_state>> roots;
  std::unordered_set<std::uint64_t> open_deferred;  // (to << 32 | session) not yet answered
  root_state* current = nullptr;
  bool inited = false;
  bool started = false;
  bool held = false;  // runtime::hold: start() leaves it be (owner thread, before start)
  bool exit_requested = false;
  bool retired = false;
  std::uint64_t traces = 0;  // tags made by context::trace (":%08x-N")
  std::vector<std::string> names;

  // -- counters: written by the dispatching thread, read by services() -------------
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> busy_ns{0};
  std::atomic<std::uint64_t> cpu_ns{0};
  std::atomic<std::size_t> tasks{0};  // roots.size(), stored at the end of each turn
  /// runtime::kill: set by any thread; the owner retires the service before its next message.
  std::atomic<bool> kill_requested{false};
  /// runtime::set_trace_mode (any thread); read by dispatch.
  std::atomic<runtime::trace_mode> trace_mode{runtime::trace_mode::follow};
  /// runtime::set_message_log: guarded by mu; each turn copies it with its messages.
  std::shared_ptr<const runtime::message_log> message_log;
  std::string type;  // set before the cell is published, constant after

  session_t new_session() {
    do {
      ++next_session;
      if (next_session == 0) next_session = 1;
    } while (pending.count(next_session) != 0);
    return next_session;
  }
};

}  // namespace detail

namespace {

using detail::cell;
using detail::pending_entry;
using detail::root_state;

std::shared_ptr<spdlog::logger> actor_log() { return csk::logger("actor"); }

/// The tag of the handler `c` runs now; nullptr when it is not traced (or none runs).
const trace_ptr* running_trace(const cell& c) noexcept {
  return c.current != nullptr && c.current->trace ? &c.current->trace : nullptr;
}

/// Logs `what` under the tag of the handler `c` runs, if it is traced; returns the tag
/// (nullptr if none) for the message the handler sends next.
trace_ptr trace_hop(const cell& c, std::string_view what) {
  const trace_ptr* t = running_trace(c);
  if (t == nullptr) return nullptr;
  trace_log(c.handle, **t, what);
  return *t;
}

/// A new tag of service `c` (":%08x-N", N counting its traces), logged with `what`.
/// Owner thread of `c`.
trace_ptr new_trace(cell& c, std::string_view what) {
  char tag[32];
  std::snprintf(tag, sizeof tag, ":%08x-%llu", c.handle, static_cast<unsigned long long>(++c.traces));
  auto t = std::make_shared<const std::string>(tag);
  trace_log(c.handle, *t, what);
  return t;
}

/// The tag a send or call runs under, by the service's trace mode (skynet's traceproto).
trace_ptr trace_of_request(cell& c, trace_ptr incoming) {
  switch (c.trace_mode.load(std::memory_order_relaxed)) {
    case runtime::trace_mode::never:
      return nullptr;
    case runtime::trace_mode::always:
      if (!incoming) return new_trace(c, "trace");
      break;
    case runtime::trace_mode::follow:
      break;
  }
  if (incoming) trace_log(c.handle, *incoming, "request");
  return incoming;
}

/// This thread's CPU time (user + system), ns. A turn runs on one thread from start to
/// end, so the difference of two readings around it is the CPU the turn used.
std::uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// The CPU clock is a system call (no vDSO for it), about as dear as a small turn. A
/// worker that goes straight from one turn to the next (pop_ready found work at once)
/// reuses the reading that ended the last turn as the start of the next: the few hundred
/// nanoseconds of taking the next service off the run queue are charged to that service.
/// Anything else in between (idle spinning or sleeping, the owner's own work between
/// run_until_idle calls in manual mode, a turn nested in a turn) breaks the chain, and
/// the next turn reads the clock afresh.
struct cpu_chain {
  std::uint64_t last_end = 0;
  bool valid = false;
};
thread_local cpu_chain this_thread_cpu;

std::string command_of(const message& m) {
  if (!m.args.empty() && m.args[0].is_string()) return m.args[0].as_string();
  return "?";
}

bool valid_name(std::string_view n) { return n.size() >= 2 && n.size() <= 255 && (n[0] == '.' || n[0] == '@'); }

std::uint64_t deferred_key(handle_t to, session_t s) { return static_cast<std::uint64_t>(to) << 32 | s; }

int weight_for(std::size_t worker) {
  // skynet gives its first workers weight -1 (one message per turn); on small
  // machines that costs a run-queue trip per message, so ours start at 0 (the
  // whole queue, up to batch_limit) and halve the batch for later workers.
  if (worker < 4) return 0;
  if (worker < 8) return 1;
  if (worker < 16) return 2;
  return 3;
}

}  // namespace

const char* msg_type_name(msg_type t) noexcept {
  switch (t) {
    case msg_type::send: return "send";
    case msg_type::call: return "call";
    case msg_type::response: return "response";
    case msg_type::error: return "error";
    case msg_type::timer: return "timer";
  }
  return "?";
}

const char* call_errc_name(call_errc c) noexcept {
  switch (c) {
    case call_errc::none: return "none";
    case call_errc::timeout: return "timeout";
    case call_errc::remote_error: return "remote error";
    case call_errc::invalid_address: return "invalid address";
    case call_errc::service_exited: return "service exited";
    case call_errc::shutting_down: return "shutting down";
    case call_errc::overloaded: return "service overloaded";
  }
  return "?";
}

std::string handle_string(handle_t h) {
  char buf[16];
  std::snprintf(buf, sizeof buf, ":%08x", h);
  return buf;
}

std::string trace_line(handle_t h, std::string_view tag, std::int64_t ns, std::string_view what) {
  std::string out = "[" + handle_string(h) + "] <TRACE ";
  out.append(tag);
  out += "> ";
  out += std::to_string(ns);
  out += ' ';
  out.append(what);
  return out;
}

void trace_log(handle_t h, std::string_view tag, std::string_view what) {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::int64_t ns = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  actor_log()->info("{}", trace_line(h, tag, ns, what));
}

// --------------------------------------------------------------- service --

void service::init(context&, const values&) {}
task<void> service::start(context&) { co_return; }
void service::stop(context&) {}

void service::signal(int) {}

void dispatch_service::on(std::string cmd, async_handler h) { async_[std::move(cmd)] = std::move(h); }
void dispatch_service::on_sync(std::string cmd, sync_handler h) { sync_[std::move(cmd)] = std::move(h); }

task<values> dispatch_service::handle(context& ctx, message& msg) {
  const std::string cmd = command_of(msg);
  // Handlers get the arguments after the command; msg keeps the command for logs.
  values args;
  if (msg.args.size() > 1) {
    args.assign(std::make_move_iterator(msg.args.begin() + 1), std::make_move_iterator(msg.args.end()));
    msg.args.resize(1);
  }
  if (auto s = sync_.find(cmd); s != sync_.end()) co_return s->second(ctx, args);
  if (auto a = async_.find(cmd); a != async_.end()) co_return co_await a->second(ctx, args);
  throw std::runtime_error("unknown command '" + cmd + "'");
}

// --------------------------------------------------------------- context --

handle_t context::self() const noexcept { return cell_.handle; }

void context::send(const address& to, values args) {
  // By handle: post() itself drops sends to dead or unknown handles.
  const handle_t h = to.name.empty() ? to.handle : rt_.resolve_address(to);
  if (h == 0) {
    rt_.dropped_.fetch_add(1, std::memory_order_relaxed);
    actor_log()->warn("{} send to unknown address {}", handle_string(cell_.handle),
                      to.name.empty() ? handle_string(to.handle) : to.name);
    return;
  }
  rt_.post(h, message{cell_.handle, 0, msg_type::send, call_errc::none, std::move(args), {}});
}

bool call_awaiter::await_suspend(std::coroutine_handle<> h) {
  cell& c = ctx_.cell_;
  runtime& rt = ctx_.rt_;
  trace_ptr trace = trace_hop(c, "call");  // as skynet.call: logged before the address is checked
  // By handle: post() answers calls to dead or unknown handles with an error.
  const handle_t to = to_.name.empty() ? to_.handle : rt.resolve_address(to_);
  if (to == 0) {
    result_.emplace(unexpected(call_error{call_errc::invalid_address,
                                          "call to invalid address " + (to_.name.empty() ? handle_string(to_.handle) : to_.name)}));
    return false;  // resume at once
  }
  const session_t s = c.new_session();
  const auto timeout = timeout_.count() > 0 ? timeout_ : rt.options().call_timeout;
  pending_entry e;
  e.what = pending_entry::kind::call;
  e.waiter = h;
  e.slot = &result_;
  e.timer = rt.add_timer(timeout, c.handle, s);
  e.root = c.current;
  c.pending.emplace(s, std::move(e));
  rt.post(to, message{c.handle, s, msg_type::call, call_errc::none, std::move(args_), {}, 0, std::move(trace)});
  return true;
}

void routed_call_awaiter::await_suspend(std::coroutine_handle<> h) {
  cell& c = ctx_.cell_;
  runtime& rt = ctx_.rt_;
  (void)trace_hop(c, "call");  // start_ reads the tag itself (context::current_trace)
  const session_t s = c.new_session();
  pending_entry e;
  e.what = pending_entry::kind::call;
  e.waiter = h;
  e.slot = &result_;
  e.timer = rt.add_timer(timeout_.count() > 0 ? timeout_ : rt.options().call_timeout, c.handle, s);
  e.root = c.current;
  c.pending.emplace(s, std::move(e));
  // Even if start_ completes the route at once, the answer is a message that is
  // handled after this dispatch: the awaiter never resumes inside await_suspend.
  start_(reply_route{c.handle, s});
}

void sleep_awaiter::await_suspend(std::coroutine_handle<> h) {
  cell& c = ctx_.cell_;
  (void)trace_hop(c, "sleep");
  const session_t s = c.new_session();
  pending_entry e;
  e.what = pending_entry::kind::sleep;
  e.waiter = h;
  e.timer = ctx_.rt_.add_timer(d_, c.handle, s);
  e.root = c.current;
  c.pending.emplace(s, std::move(e));
}

timer_id context::timeout(std::chrono::milliseconds d, std::function<void()> fn) {
  const session_t s = cell_.new_session();
  pending_entry e;
  e.what = pending_entry::kind::callback;
  e.fn = std::move(fn);
  e.timer = rt_.add_timer(d, cell_.handle, s);
  cell_.pending.emplace(s, std::move(e));
  return s;
}

bool context::cancel_timeout(timer_id id) {
  auto it = cell_.pending.find(static_cast<session_t>(id));
  if (id > 0xffffffffu || it == cell_.pending.end() || it->second.what != pending_entry::kind::callback) return false;
  rt_.cancel_timer(it->second.timer);
  cell_.pending.erase(it);
  return true;
}

reply_token context::defer_reply() {
  root_state* r = cell_.current;
  if (r == nullptr || r->msg.type != msg_type::call || r->deferred) return {};
  r->deferred = true;
  cell_.open_deferred.insert(deferred_key(r->msg.source, r->msg.session));
  return reply_token{r->msg.source, r->msg.session};
}

void context::reply(const reply_token& t, values v) {
  if (!t.valid() || cell_.open_deferred.erase(deferred_key(t.to, t.session)) == 0) return;
  rt_.post(t.to, message{cell_.handle, t.session, msg_type::response, call_errc::none, std::move(v), {}});
}

void context::reply_error(const reply_token& t, std::string text) {
  if (!t.valid() || cell_.open_deferred.erase(deferred_key(t.to, t.session)) == 0) return;
  rt_.post(t.to, message{cell_.handle, t.session, msg_type::error, call_errc::remote_error, {}, std::move(text)});
}

void context::exit() { cell_.exit_requested = true; }

std::size_t context::pending() const noexcept { return cell_.pending.size(); }

void context::trace() { begin_trace("trace"); }

void context::trace(std::string_view info) { begin_trace("trace " + std::string(info)); }

void context::begin_trace(std::string_view what) {
  trace_ptr t = new_trace(cell_, what);
  if (cell_.current != nullptr) cell_.current->trace = std::move(t);
}

std::string context::trace_tag() const {
  const trace_ptr* t = running_trace(cell_);
  return t != nullptr ? **t : std::string();
}

trace_ptr context::current_trace() const {
  const trace_ptr* t = running_trace(cell_);
  return t != nullptr ? *t : nullptr;
}

// ---------------------------------------------------------- root handlers --

namespace {

void finish_root(root_state* r, std::exception_ptr error, values* result) {
  cell& c = *r->owner;
  runtime& rt = *r->rt;
  const message& m = r->msg;
  if (error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    actor_log()->error("{} {} '{}' from {} raised: {}", handle_string(c.handle), r->is_start ? "start" : msg_type_name(m.type),
                       r->is_start ? "" : command_of(m), handle_string(m.source), what);
    if (m.type == msg_type::call && !r->is_start) {
      if (r->trace) trace_log(c.handle, *r->trace, "error");  // skynet's suspend(): calls only, no "end"
      if (r->deferred) c.open_deferred.erase(deferred_key(m.source, m.session));
      rt.post(m.source, message{c.handle, m.session, msg_type::error, call_errc::remote_error, {}, what});
    }
    return;
  }
  const bool answer = m.type == msg_type::call && !r->is_start && !r->deferred && result != nullptr;
  if (r->trace) {
    // skynet logs "response" (skynet.ret) and then "end" (the coroutine returns). Both are
    // logged before the answer goes: the handler has ended by now, and an external caller's
    // completion runs inside post(), so its lines follow these.
    if (answer) trace_log(c.handle, *r->trace, "response");
    trace_log(c.handle, *r->trace, "end");
  }
  if (answer) rt.post(m.source, message{c.handle, m.session, msg_type::response, call_errc::none, std::move(*result), {}});
}

// A root that finished while dispatch() still runs it is freed by dispatch();
// one that had suspended is owned by its cell.
void release_root(root_state* r) {
  r->finished = true;
  r->frame = {};
  if (r->registered) r->owner->roots.erase(r);
}

// Root hooks: called from the final suspend of a root task; they own the frame.
void values_root_done(void* ctx, std::coroutine_handle<> frame) {
  auto* r = static_cast<root_state*>(ctx);
  auto h = task<values>::handle_type::from_address(frame.address());
  auto& p = h.promise();
  finish_root(r, p.exception, p.value ? &*p.value : nullptr);
  if (p.exception) r->rt->note_handler_error();
  h.destroy();
  release_root(r);
}

void void_root_done(void* ctx, std::coroutine_handle<> frame) {
  auto* r = static_cast<root_state*>(ctx);
  auto h = task<void>::handle_type::from_address(frame.address());
  finish_root(r, h.promise().exception, nullptr);
  if (h.promise().exception) r->rt->note_handler_error();
  h.destroy();
  release_root(r);
}

}  // namespace

// --------------------------------------------------------------- runtime --

runtime::runtime(runtime_options opts) : opts_(std::move(opts)) {
  if (opts_.threads <= 0) opts_.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (opts_.tick.count() <= 0) opts_.tick = std::chrono::milliseconds(1);
  if (opts_.batch_limit == 0) opts_.batch_limit = 1;
  cells_.resize(1);  // handle index 0 is "nobody"
  cell_chunks_ = std::make_unique<std::atomic<std::atomic<cell*>*>[]>(cell_chunk_count);
  for (std::size_t i = 0; i < cell_chunk_count; ++i) cell_chunks_[i].store(nullptr, std::memory_order_relaxed);
  cell_count_.store(1, std::memory_order_release);
}

runtime::~runtime() {
  shutdown();
  for (std::size_t i = 0; i < cell_chunk_count; ++i) delete[] cell_chunks_[i].load(std::memory_order_relaxed);
}

void runtime::note_handler_error() { handler_errors_.fetch_add(1, std::memory_order_relaxed); }

void runtime::register_type(std::string type, factory f) {
  std::unique_lock lock(reg_mu_);
  types_[std::move(type)] = std::move(f);
}

bool runtime::has_type(std::string_view type) const {
  std::shared_lock lock(reg_mu_);
  return types_.find(type) != types_.end();
}

result<handle_t, std::string> runtime::spawn(std::string_view type, values args, std::vector<std::string> names) {
  factory f;
  {
    std::shared_lock lock(reg_mu_);
    auto it = types_.find(type);
    if (it == types_.end()) return unexpected(std::string("unknown service type '") + std::string(type) + "'");
    f = it->second;
  }
  std::unique_ptr<service> svc;
  try {
    svc = f();
  } catch (const std::exception& e) {
    return unexpected(std::string("creating '") + std::string(type) + "' failed: " + e.what());
  }
  if (!svc) return unexpected(std::string("factory of '") + std::string(type) + "' returned nothing");
  return spawn(std::move(svc), std::move(args), std::move(names), std::string(type));
}

result<handle_t, std::string> runtime::spawn(std::unique_ptr<service> svc, values args,
                                             std::vector<std::string> names, std::string type) {
  if (shutting_down_.load()) return unexpected(std::string("node is shutting down"));
  for (const auto& n : names) {
    if (!valid_name(n)) return unexpected("invalid service name '" + n + "': must start with '.' or '@', 2..255 bytes");
  }
  cell_ptr c;
  {
    std::unique_lock lock(reg_mu_);
    if (cells_.size() > handle_mask) return unexpected(std::string("out of handles"));
    const auto index = static_cast<handle_t>(cells_.size());
    const handle_t h = (opts_.harbor << harbor_shift) | index;
    c = std::make_shared<cell>(*this, h, std::move(svc), opts_.mailbox_warn);
    c->type = std::move(type);
    // Visible (so it may be addressed) but not runnable until init has returned:
    // in_global keeps posts from scheduling it.
    c->in_global = true;
    auto& chunk = cell_chunks_[index >> cell_chunk_bits];
    std::atomic<cell*>* slots = chunk.load(std::memory_order_relaxed);
    if (slots == nullptr) {
      slots = new std::atomic<cell*>[cell_chunk_size];
      for (std::size_t i = 0; i < cell_chunk_size; ++i) slots[i].store(nullptr, std::memory_order_relaxed);
      chunk.store(slots, std::memory_order_release);
    }
    slots[index & (cell_chunk_size - 1)].store(c.get(), std::memory_order_release);
    cells_.push_back(c);
    cell_count_.store(cells_.size(), std::memory_order_release);
  }
  try {
    c->svc->init(c->ctx, args);
    c->inited = true;
  } catch (const std::exception& e) {
    actor_log()->error("{} init failed: {}", handle_string(c->handle), e.what());
    retire(*c, call_errc::service_exited);
    return unexpected(std::string("init failed: ") + e.what());
  }
  for (auto& n : names) {
    auto r = add_name(c->handle, std::move(n));
    if (!r) return unexpected(r.error());
  }
  actor_log()->debug("{} spawned", handle_string(c->handle));
  if (running_.load()) schedule(c.get());
  return c->handle;
}

result<void, std::string> runtime::add_name(handle_t h, std::string name) {
  if (!valid_name(name)) return unexpected("invalid service name '" + name + "': must start with '.' or '@', 2..255 bytes");
  std::unique_lock lock(reg_mu_);
  const auto index = h & handle_mask;
  if (harbor_of(h) != opts_.harbor || index >= cells_.size() || !cells_[index]) {
    return unexpected("no service " + handle_string(h));
  }
  auto& entry = names_[name];
  if (std::find(entry.handles.begin(), entry.handles.end(), h) == entry.handles.end()) entry.handles.push_back(h);
  cells_[index]->names.push_back(std::move(name));
  names_version_.fetch_add(1, std::memory_order_release);
  return {};
}

handle_t runtime::resolve(std::string_view name) {
  std::shared_lock lock(reg_mu_);  // the cursor is atomic: readers need not exclude each other
  auto it = names_.find(name);
  if (it == names_.end() || it->second.handles.empty()) return 0;
  auto& e = it->second;
  return e.handles[e.next.fetch_add(1, std::memory_order_relaxed) % e.handles.size()];
}

handle_t runtime::resolve(std::string_view name, name_cache& cache) {
  const std::uint64_t version = names_version_.load(std::memory_order_acquire);
  if (cache.version == version && cache.handle != 0 && cache.name == name) return cache.handle;
  std::shared_lock lock(reg_mu_);
  auto it = names_.find(name);
  if (it == names_.end() || it->second.handles.empty()) return 0;
  auto& e = it->second;
  if (e.handles.size() == 1) {
    cache.name.assign(name);
    cache.handle = e.handles[0];
    cache.version = version;  // read before the lookup: a change since makes it stale
    return cache.handle;
  }
  return e.handles[e.next.fetch_add(1, std::memory_order_relaxed) % e.handles.size()];
}

std::vector<handle_t> runtime::handles_of(std::string_view name) const {
  std::shared_lock lock(reg_mu_);
  auto it = names_.find(name);
  return it == names_.end() ? std::vector<handle_t>{} : it->second.handles;
}

handle_t runtime::resolve_address(const address& a) {
  if (a.name.empty()) return alive(a.handle) ? a.handle : 0;
  if (a.name[0] == ':') {  // ":0000000a", as skynet writes handles
    unsigned long v = 0;
    if (std::sscanf(a.name.c_str() + 1, "%lx", &v) != 1) return 0;
    return alive(static_cast<handle_t>(v)) ? static_cast<handle_t>(v) : 0;
  }
  return resolve(a.name);
}

cell* runtime::grab(handle_t h) const noexcept {
  const std::size_t index = h & handle_mask;
  if (harbor_of(h) != opts_.harbor || index == 0 || index >= cell_count_.load(std::memory_order_acquire)) {
    return nullptr;
  }
  const std::atomic<cell*>* slots = cell_chunks_[index >> cell_chunk_bits].load(std::memory_order_acquire);
  return slots[index & (cell_chunk_size - 1)].load(std::memory_order_acquire);
}

bool runtime::alive(handle_t h) const {
  const cell* c = grab(h);
  return c != nullptr && !c->dead.load(std::memory_order_acquire);
}

// -- delivery ------------------------------------------------------------------

void runtime::post(handle_t to, message m) {
  if (to == 0) {
    deliver_external(m);
    return;
  }
  cell* c = grab(to);
  if (c == nullptr) {
    bounce(m, call_errc::invalid_address);
    return;
  }
  // Only calls and sends may be refused: an answer or a timer is owed to its service.
  const bool refusable = opts_.mailbox_limit != 0 && (m.type == msg_type::call || m.type == msg_type::send);
  enum class outcome : std::uint8_t { queued, dead, full } what = outcome::queued;
  // Charged before the message is visible: the service may take it (and release) at once.
  const std::uint32_t charge = opts_.budget != nullptr ? m.charge : 0;
  if (charge != 0) opts_.budget->charge(charge);
  bool run = false;
  std::size_t overloaded = 0;
  {
    spin_guard lock(c->mu);
    if (c->dead.load(std::memory_order_relaxed)) {
      what = outcome::dead;
    } else if (refusable && c->queue.size() >= opts_.mailbox_limit) {
      what = outcome::full;
    } else {
      c->queue.push_back(std::move(m));
      c->sync_length();
      if (!c->in_global) {
        c->in_global = true;
        run = true;
      }
      if (c->queue.size() > c->warn_at) {
        overloaded = c->queue.size();
        c->warn_at *= 2;
      }
    }
  }
  if (what != outcome::queued && charge != 0) opts_.budget->release(charge);
  if (what == outcome::dead) return bounce(m, call_errc::service_exited);
  if (what == outcome::full) {
    overload_refused_.fetch_add(1, std::memory_order_relaxed);
    return bounce(m, call_errc::overloaded);
  }
  if (overloaded != 0) {
    overload_warnings_.fetch_add(1, std::memory_order_relaxed);
    actor_log()->warn("{} may overload, message queue length = {}", handle_string(to), overloaded);
  }
  if (run) schedule(c);
}

void runtime::uncharge(const message* m, std::size_t n) {
  if (opts_.budget == nullptr) return;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < n; ++i) bytes += m[i].charge;
  opts_.budget->release(bytes);
}

bool runtime::mailbox_full(handle_t h) const noexcept {
  if (opts_.mailbox_high == 0) return false;
  const cell* c = grab(h);
  return c != nullptr && c->length.load(std::memory_order_relaxed) > opts_.mailbox_high;
}

void runtime::when_mailbox_drains(handle_t h, std::function<void()> resume) {
  cell* c = grab(h);
  if (c != nullptr) {
    spin_guard lock(c->mu);
    if (!c->dead.load(std::memory_order_relaxed) && c->queue.size() > opts_.mailbox_low &&
        !shutting_down_.load(std::memory_order_relaxed)) {
      c->drain_waiters.push_back(std::move(resume));
      mailbox_pauses_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  resume();
}

void runtime::bounce(const message& m, call_errc why) {
  if (m.type == msg_type::call) {
    // The caller must not wait for its timeout: answer now, as skynet does for a
    // call to an invalid address.
    std::string text = std::string(call_errc_name(why));
    post(m.source, message{0, m.session, msg_type::error, why, {}, std::move(text)});
    return;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  if (m.type == msg_type::send) {
    actor_log()->warn("dropped send '{}' from {}: {}", command_of(m), handle_string(m.source), call_errc_name(why));
  }
}

void runtime::deliver_external(message& m) {
  // Handle 0 is the runtime itself: replies and timers of calls made with call().
  if (m.type == msg_type::call) {
    bounce(m, call_errc::invalid_address);
    return;
  }
  if (m.type == msg_type::send) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::optional<ext_call> call;
  {
    ext_shard& sh = ext_shard_of(m.session);
    spin_guard lock(sh.mu);
    call = sh.calls.take(m.session);
  }
  if (!call) {  // a late reply (the call timed out), or a second answer
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto& done = call->done;
  switch (m.type) {
    case msg_type::response: done(std::move(m.args)); break;
    case msg_type::error: done(unexpected(call_error{m.code, std::move(m.error)})); break;
    default: done(unexpected(call_error{call_errc::timeout, "call timed out"})); break;
  }
}

bool runtime::send(const address& to, values args, handle_t source) {
  const handle_t h = resolve_address(to);
  if (h == 0) return false;
  post(h, message{source, 0, msg_type::send, call_errc::none, std::move(args), {}});
  return true;
}

std::future<call_result> runtime::call(const address& to, values args, std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<call_result>>();
  auto f = p->get_future();
  call(to, std::move(args), timeout, [p](call_result r) { p->set_value(std::move(r)); });
  return f;
}

void runtime::call(const address& to, values args, std::chrono::milliseconds timeout,
                   std::function<void(call_result)> done, std::uint32_t charge, trace_ptr trace) {
  if (shut_down_.load()) {
    done(unexpected(call_error{call_errc::shutting_down, "node is shut down"}));
    return;
  }
  const handle_t h = resolve_address(to);
  if (h == 0) {
    done(unexpected(call_error{call_errc::invalid_address,
                               "call to invalid address " + (to.name.empty() ? handle_string(to.handle) : to.name)}));
    return;
  }
  const reply_route route = external_route(timeout, std::move(done));
  post(h, message{0, route.session, msg_type::call, call_errc::none, std::move(args), {}, charge, std::move(trace)});
}

namespace {
struct deadline_later {
  template <class D>
  bool operator()(const D& a, const D& b) const noexcept {
    return a.due != b.due ? a.due > b.due : a.seq > b.seq;
  }
};
}  // namespace

reply_route runtime::external_route(std::chrono::milliseconds timeout, std::function<void(call_result)> done) {
  const auto d = timeout.count() > 0 ? timeout : opts_.call_timeout;
  const auto tick = opts_.tick.count();
  const auto ticks = static_cast<std::uint64_t>(std::max<std::int64_t>(0, (d.count() + tick - 1) / tick));
  for (;;) {
    // Sessions count up (0 skipped) as before; one that wrapped onto a call still open
    // is skipped too.
    const std::uint64_t seq = ext_counter_.fetch_add(1, std::memory_order_relaxed) + 1;
    const auto s = static_cast<session_t>(seq);
    if (s == 0) continue;
    ext_shard& sh = ext_shard_of(s);
    spin_guard lock(sh.mu);
    if (sh.calls.contains(s)) continue;
    sh.calls.insert(s, ext_call{std::move(done), seq});
    // Expires on the tick the timer wheel would have chosen: its now() plus the delay.
    const std::uint64_t now = ext_now_.load(std::memory_order_relaxed);
    const std::uint64_t due =
        ticks > std::numeric_limits<std::uint64_t>::max() - now ? std::numeric_limits<std::uint64_t>::max() : now + ticks;
    sh.deadlines.push_back(ext_deadline{s, seq, due});
    std::push_heap(sh.deadlines.begin(), sh.deadlines.end(), deadline_later{});
    // Answered calls leave their deadline behind; drop those once they are the majority.
    if (sh.deadlines.size() > 2 * sh.calls.size() + 256) {
      std::erase_if(sh.deadlines, [&sh](const ext_deadline& e) {
        const ext_call* c = sh.calls.find(e.session);
        return c == nullptr || c->seq != e.seq;
      });
      std::make_heap(sh.deadlines.begin(), sh.deadlines.end(), deadline_later{});
    }
    return reply_route{0, s};
  }
}

void runtime::ext_shard::expire(std::uint64_t tick, std::vector<ext_expired>& out) {
  while (!deadlines.empty() && deadlines.front().due <= tick) {
    std::pop_heap(deadlines.begin(), deadlines.end(), deadline_later{});
    const ext_deadline e = deadlines.back();
    deadlines.pop_back();
    ext_call* c = calls.find(e.session);
    if (c == nullptr || c->seq != e.seq) continue;  // answered already
    out.push_back(ext_expired{e.due, e.seq, std::move(c->done)});
    calls.erase(e.session);
  }
}

void runtime::complete(reply_route route, call_result result) {
  if (result) {
    post(route.handle, message{0, route.session, msg_type::response, call_errc::none, std::move(*result), {}});
  } else {
    call_error e = result.error();
    post(route.handle, message{0, route.session, msg_type::error, e.code, {}, std::move(e.text)});
  }
}

// -- timers ---------------------------------------------------------------------

timer_id runtime::add_timer(std::chrono::milliseconds d, handle_t h, session_t s) {
  const auto tick = opts_.tick.count();
  const auto ticks = static_cast<std::uint64_t>(std::max<std::int64_t>(0, (d.count() + tick - 1) / tick));
  std::lock_guard lock(timer_mu_);
  return wheel_.add(ticks, h, s);
}

bool runtime::cancel_timer(timer_id id) {
  std::lock_guard lock(timer_mu_);
  return wheel_.cancel(id);
}

void runtime::fire_timers(std::uint64_t tick) {
  std::vector<std::pair<std::uint64_t, timer_event>> fired;  // (expiry tick, event)
  bool moved = false;
  {
    std::lock_guard lock(timer_mu_);
    wheel_.advance_to(tick, [&](const timer_event& e) { fired.emplace_back(wheel_.now(), e); });
    if (tick > ext_now_.load(std::memory_order_relaxed)) {
      ext_now_.store(tick, std::memory_order_relaxed);
      moved = true;
    }
  }
  std::vector<ext_expired> expired;
  if (moved) {
    for (auto& sh : ext_shards_) {
      std::lock_guard lock(sh.mu);
      sh.expire(tick, expired);
    }
    std::sort(expired.begin(), expired.end(), [](const ext_expired& a, const ext_expired& b) {
      return a.due != b.due ? a.due < b.due : a.seq < b.seq;
    });
  }
  // In expiry order across both, as when external calls were wheel timers too.
  std::size_t j = 0;
  auto time_out = [](ext_expired& x) { x.done(unexpected(call_error{call_errc::timeout, "call timed out"})); };
  for (const auto& [at, e] : fired) {
    for (; j < expired.size() && expired[j].due < at; ++j) time_out(expired[j]);
    post(e.handle, message{0, e.session, msg_type::timer, call_errc::none, {}, {}});
  }
  for (; j < expired.size(); ++j) time_out(expired[j]);
}

void runtime::advance_time(std::chrono::milliseconds d) {
  manual_ms_ += static_cast<std::uint64_t>(d.count());
  fire_timers(manual_ms_ / static_cast<std::uint64_t>(opts_.tick.count()));
}

// -- scheduling -------------------------------------------------------------------

void runtime::schedule(cell* c) {
  {
    spin_guard lock(run_mu_);
    run_queue_.push_back(c);
    run_queue_ready_.store(true, std::memory_order_relaxed);
  }
  run_cv_.notify_one();  // no system call unless a worker sleeps
}

namespace {
/// How often this worker's recent idle gaps (running out of work until finding more, by
/// spinning or by being woken) were shorter than the spin ceiling: an exponentially
/// weighted rate, 0..1024 (the last 8 gaps weigh most). A worker spins
/// (runtime_options::idle_spin) only while at least a quarter of its gaps were that short,
/// i.e. while a spin pays: under steady traffic the next message comes within it and the
/// spin saves a futex wake-up; work that comes further apart (one caller at a time over
/// the network) or not at all (an idle node) is waited for asleep, at no CPU cost.
thread_local int this_thread_short_gaps = 512;
constexpr int spin_when_short_gaps = 256;

void note_gap(std::chrono::nanoseconds gap, std::chrono::nanoseconds ceiling) {
  this_thread_short_gaps = (7 * this_thread_short_gaps + (gap < ceiling ? 1024 : 0)) / 8;
}
}  // namespace

cell* runtime::pop_ready(bool wait) {
  lock_spinning(run_mu_);
  std::unique_lock lock(run_mu_, std::adopt_lock);
  const std::chrono::nanoseconds ceiling = opts_.idle_spin;
  if (wait && run_queue_.empty() && !stopping_threads_.load()) {
    this_thread_cpu.valid = false;  // idle time is nobody's
    const auto idle_since = std::chrono::steady_clock::now();
    if (ceiling.count() > 0 && this_thread_short_gaps >= spin_when_short_gaps) {
      // Look for work a little longer before sleeping (see runtime_options::idle_spin).
      lock.unlock();
      const auto until = idle_since + ceiling;
      while (!run_queue_ready_.load(std::memory_order_relaxed) && !stopping_threads_.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
      }
      // schedule() may still hold the lock: blocking on it now would cost it a futex wake.
      while (!lock.try_lock()) std::this_thread::yield();
    }
    if (run_queue_.empty() && !stopping_threads_.load()) {
      run_cv_.wait(lock, [&] { return !run_queue_.empty() || stopping_threads_.load(); });
    }
    if (ceiling.count() > 0) note_gap(std::chrono::steady_clock::now() - idle_since, ceiling);
  }
  if (run_queue_.empty()) return nullptr;
  cell* c = run_queue_.front();
  run_queue_.pop_front();
  run_queue_ready_.store(!run_queue_.empty(), std::memory_order_relaxed);
  busy_.fetch_add(1);
  return c;
}

namespace {
// The flushers registered during the turn this thread is running (nullptr: no turn).
/// The flushers of one turn: a few inline (a turn usually answers one or two agents).
class turn_flush_list {
 public:
  void add(runtime::turn_flusher* f) {
    if (n_ < inline_.size()) {
      inline_[n_++] = f;
    } else {
      more_.push_back(f);
    }
  }
  void flush_all() {
    for (std::size_t i = 0; i < n_; ++i) inline_[i]->flush();
    for (auto* f : more_) f->flush();
  }

 private:
  std::array<runtime::turn_flusher*, 8> inline_{};
  std::size_t n_ = 0;
  std::vector<runtime::turn_flusher*> more_;
};
thread_local turn_flush_list* turn_flushers = nullptr;

/// Installs a turn's flush list for this thread and puts the outer one (a nested turn's
/// caller, usually none) back when the turn ends, even by an exception.
class turn_flush_scope {
 public:
  explicit turn_flush_scope(turn_flush_list& l) : outer_(std::exchange(turn_flushers, &l)) {}
  ~turn_flush_scope() { turn_flushers = outer_; }
  turn_flush_scope(const turn_flush_scope&) = delete;
  turn_flush_scope& operator=(const turn_flush_scope&) = delete;

 private:
  turn_flush_list* outer_;
};

/// The messages of one turn. One per thread, reused: a turn allocates nothing for it.
struct turn_batch {
  std::vector<message> msgs;
  std::size_t next = 0;
  bool in_use = false;  // a turn nested in a turn (shutdown() from a handler) gets its own
  bool empty() const noexcept { return next == msgs.size(); }
};
thread_local turn_batch this_turn_batch;
}  // namespace

void runtime::flush_after_turn(turn_flusher& f) {
  if (turn_flushers != nullptr) {
    turn_flushers->add(&f);
    return;
  }
  f.flush();
}

std::size_t runtime::run_turn(cell* cp, int weight, std::size_t worker) {
  cell& c = *cp;
  turn_batch nested;
  turn_batch& batch = this_turn_batch.in_use ? nested : this_turn_batch;
  batch.in_use = true;
  std::vector<std::function<void()>> drained;  // feeders to resume (outside c.mu)
  batch.msgs.clear();
  batch.next = 0;
  std::shared_ptr<const message_log> log;  // logon's observer, as of this turn
  {
    spin_guard lock(c.mu);
    std::size_t n = c.queue.size();
    n = weight < 0 ? 1 : std::max<std::size_t>(1, n >> weight);
    n = std::min({n, opts_.batch_limit, c.queue.size()});
    for (std::size_t i = 0; i < n; ++i) batch.msgs.push_back(c.queue.take_front());
    c.sync_length();
    log = c.message_log;
    drained = c.take_waiters(opts_.mailbox_low);
  }
  uncharge(batch.msgs.data(), batch.msgs.size());
  for (auto& resume : drained) resume();
  drained.clear();
  worker_state* ws = worker < workers_.size() ? workers_[worker].get() : nullptr;
  std::size_t done = 0;
  turn_flush_list flushers;
  std::optional<turn_flush_scope> flush_scope(std::in_place, flushers);
  if (!c.started && !c.retired && running_.load()) {
    start_service(c);
    this_thread_cpu.valid = false;  // start() is not counted, as it is not in busy_ns
  }
  const auto turn_started = std::chrono::steady_clock::now();
  std::uint64_t cpu_started = 0;
  if (opts_.profile) {
    cpu_started = this_thread_cpu.valid ? this_thread_cpu.last_end : thread_cpu_ns();
    this_thread_cpu.valid = false;  // a nested turn reads its own start
  }
  while (!batch.empty() && !c.exit_requested && !c.retired && !c.kill_requested.load(std::memory_order_relaxed)) {
    message m = std::move(batch.msgs[batch.next++]);
    if (ws != nullptr) {
      ws->type.store(static_cast<std::uint8_t>(m.type), std::memory_order_relaxed);
      ws->current.store(c.handle, std::memory_order_relaxed);
      ws->version.fetch_add(1, std::memory_order_release);
    }
    c.messages.fetch_add(1, std::memory_order_relaxed);  // before: a reply may be seen before the turn ends
    if (log) (*log)(c.handle, m);
    dispatch(c, m);
    ++done;
    if (ws != nullptr) {
      ws->current.store(0, std::memory_order_relaxed);
      ws->version.fetch_add(1, std::memory_order_release);
    }
  }
  dispatched_.fetch_add(done, std::memory_order_relaxed);
  c.busy_ns.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - turn_started)
                          .count()),
                      std::memory_order_relaxed);
  if ((c.exit_requested || c.kill_requested.load(std::memory_order_relaxed)) && !c.retired) {
    retire(c, call_errc::service_exited);
  }
  c.tasks.store(c.roots.size(), std::memory_order_relaxed);
  flush_scope.reset();  // flushers run outside the turn: what they cause is not deferred
  flushers.flush_all();
  if (opts_.profile) {
    // After the flushes: writing the answers the turn produced is this service's CPU too.
    const std::uint64_t cpu_ended = thread_cpu_ns();
    if (cpu_ended > cpu_started) c.cpu_ns.fetch_add(cpu_ended - cpu_started, std::memory_order_relaxed);
    this_thread_cpu = cpu_chain{cpu_ended, cpu_ended != 0};
  }

  std::vector<message> orphans;
  bool again = false;
  {
    spin_guard lock(c.mu);
    if (c.dead.load(std::memory_order_relaxed)) {
      c.queue.drain([&](message&& m) { orphans.push_back(std::move(m)); });
      c.in_global = false;  // (waiters went when it died: retire)
    } else if (c.queue.empty() && batch.empty() && !c.kill_requested.load(std::memory_order_relaxed)) {
      // (a kill that came after the check above keeps it scheduled: the next turn retires it)
      c.in_global = false;
      c.warn_at = c.warn_base;
    } else {
      // Unprocessed batch messages go back to the front, in order.
      while (!batch.empty()) {
        c.queue.push_front(std::move(batch.msgs.back()));
        batch.msgs.pop_back();
      }
      again = true;
    }
    c.sync_length();
    drained = c.take_waiters(opts_.mailbox_low);
  }
  for (auto& resume : drained) resume();
  for (std::size_t i = batch.next; i < batch.msgs.size(); ++i) bounce(batch.msgs[i], call_errc::service_exited);
  batch.msgs.clear();
  batch.next = 0;
  batch.in_use = false;
  uncharge(orphans.data(), orphans.size());
  for (auto& m : orphans) bounce(m, call_errc::service_exited);
  if (again) schedule(cp);
  {
    spin_guard lock(run_mu_);
    busy_.fetch_sub(1);
  }
  // Only shutdown() waits for the turns to end (workers wait for schedule()'s notify):
  // waking every idle worker at the end of every turn was a futex storm with N workers.
  if (shutting_down_.load()) run_cv_.notify_all();
  return done;
}

void runtime::start_service(cell& c) {
  c.started = true;
  auto r = std::make_unique<root_state>();
  root_state* rs = r.get();
  rs->rt = this;
  rs->owner = &c;
  rs->is_start = true;
  task<void> t;
  try {
    t = c.svc->start(c.ctx);
  } catch (const std::exception& e) {
    actor_log()->error("{} start failed: {}", handle_string(c.handle), e.what());
    return;
  }
  auto h = t.release();
  rs->frame = h;
  h.promise().root = detail::root_hook{&void_root_done, rs};
  c.current = rs;
  h.resume();
  c.current = nullptr;
  if (!rs->finished) {
    rs->registered = true;
    c.roots.emplace(rs, std::move(r));
  }
}

void runtime::dispatch(cell& c, message& m) {
  switch (m.type) {
    case msg_type::send:
    case msg_type::call: {
      auto r = std::make_unique<root_state>();
      root_state* rs = r.get();
      rs->rt = this;
      rs->owner = &c;
      rs->msg = std::move(m);
      rs->trace = trace_of_request(c, std::move(rs->msg.trace));
      task<values> t;
      try {
        t = c.svc->handle(c.ctx, rs->msg);
      } catch (...) {
        finish_root(rs, std::current_exception(), nullptr);
        note_handler_error();
        return;
      }
      auto h = t.release();
      rs->frame = h;
      h.promise().root = detail::root_hook{&values_root_done, rs};
      c.current = rs;
      h.resume();  // runs to its end (the hook answers) or suspends on a call/sleep
      c.current = nullptr;
      if (!rs->finished) {
        rs->registered = true;
        c.roots.emplace(rs, std::move(r));
      }
      return;
    }
    case msg_type::response:
    case msg_type::error:
    case msg_type::timer: {
      auto it = c.pending.find(m.session);
      if (it == c.pending.end() || (m.type != msg_type::timer && it->second.what != pending_entry::kind::call)) {
        // A reply after its call timed out, or a timer cancelled too late.
        dropped_.fetch_add(1, std::memory_order_relaxed);
        actor_log()->debug("{} dropped {} for session {} (no one waits)", handle_string(c.handle),
                           msg_type_name(m.type), m.session);
        return;
      }
      pending_entry e = std::move(it->second);
      c.pending.erase(it);
      if (e.what == pending_entry::kind::callback) {
        try {
          e.fn();
        } catch (const std::exception& ex) {
          note_handler_error();
          actor_log()->error("{} timer callback raised: {}", handle_string(c.handle), ex.what());
        }
        return;
      }
      if (e.what == pending_entry::kind::call) {
        if (m.type != msg_type::timer) cancel_timer(e.timer);
        if (m.type == msg_type::response) {
          e.slot->emplace(std::move(m.args));
        } else if (m.type == msg_type::error) {
          e.slot->emplace(unexpected(call_error{m.code == call_errc::none ? call_errc::remote_error : m.code, std::move(m.error)}));
        } else {
          e.slot->emplace(unexpected(call_error{call_errc::timeout, "call timed out"}));
        }
      }
      if (e.root != nullptr && e.root->trace) trace_log(c.handle, *e.root->trace, "resume");
      c.current = e.root;  // the handler's tag comes back with it
      e.waiter.resume();
      c.current = nullptr;
      return;
    }
  }
}

// -- lifecycle ----------------------------------------------------------------------

void runtime::start() {
  if (running_.exchange(true) || shutting_down_.load()) return;
  std::vector<cell*> all;
  {
    std::shared_lock lock(reg_mu_);
    for (const auto& c : cells_) {
      if (c) all.push_back(c.get());
    }
  }
  if (opts_.run_mode == runtime_options::mode::threaded) {
    for (int i = 0; i < opts_.threads; ++i) workers_.push_back(std::make_unique<worker_state>());
    for (int i = 0; i < opts_.threads; ++i) {
      threads_.emplace_back([this, i] { worker_main(static_cast<std::size_t>(i)); });
    }
    timer_thread_ = std::thread([this] { timer_main(); });
  }
  // Services spawned before start were held back (in_global set): run them now,
  // which runs their start() first. Those hold() keeps stay so (in_global still set:
  // posts queue without scheduling) until release().
  for (auto& c : all) {
    if (!c->held) schedule(c);
  }
}

bool runtime::hold(handle_t h) {
  cell* c = grab(h);
  if (c == nullptr || running_.load() || c->dead.load()) return false;
  c->held = true;
  return true;
}

bool runtime::release(handle_t h) {
  cell* c = grab(h);
  if (c == nullptr || !c->held) return false;
  c->held = false;
  if (running_.load() && !shutting_down_.load()) schedule(c);  // in_global is still set from its spawn
  return true;
}

bool runtime::kill(handle_t h) {
  cell* c = grab(h);
  if (c == nullptr) return false;
  bool run = false;
  {
    // The flag is set before the lock: a turn ending meanwhile sees it under the lock (and
    // stays scheduled), or has cleared in_global by the time we look (and we schedule).
    if (c->kill_requested.exchange(true)) return !c->dead.load();
    spin_guard lock(c->mu);
    if (c->dead.load(std::memory_order_relaxed)) return false;
    if (!c->in_global) {
      c->in_global = true;
      run = true;
    }
  }
  if (run) schedule(c);
  return true;
}

bool runtime::set_message_log(handle_t h, std::shared_ptr<const message_log> log) {
  cell* c = grab(h);
  if (c == nullptr) return false;
  spin_guard lock(c->mu);
  if (c->dead.load(std::memory_order_relaxed)) return false;
  c->message_log = std::move(log);
  return true;
}

bool runtime::set_trace_mode(handle_t h, trace_mode mode) {
  cell* c = grab(h);
  if (c == nullptr || c->dead.load(std::memory_order_acquire)) return false;
  c->trace_mode.store(mode, std::memory_order_relaxed);
  return true;
}

bool runtime::signal(handle_t h, int sig) {
  cell* c = grab(h);
  if (c == nullptr || c->dead.load(std::memory_order_acquire)) return false;
  actor_log()->info("{} signal {}", handle_string(h), sig);
  c->svc->signal(sig);  // the service object lives as long as the cell (see grab)
  return true;
}

void runtime::worker_main(std::size_t index) {
  const int weight = weight_for(index);
  while (cell* c = pop_ready(true)) run_turn(c, weight, index);
}

std::size_t runtime::run_until_idle() {
  this_thread_cpu.valid = false;  // what the owner did since its last call is its own
  std::size_t n = 0;
  while (cell* c = pop_ready(false)) n += run_turn(c, 0, 0);
  return n;
}

bool runtime::dispatch_one() {
  this_thread_cpu.valid = false;
  cell* c = pop_ready(false);
  if (c == nullptr) return false;
  run_turn(c, 0, 0);
  return true;
}

void runtime::timer_main() {
  using clock = std::chrono::steady_clock;
  const auto origin = clock::now();
  const auto tick = opts_.tick;
  auto next_check = origin + opts_.slow_handler;
  std::unique_lock lock(timer_wait_mu_);
  for (;;) {
    const auto now = clock::now();
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - origin);
    const auto ticks = static_cast<std::uint64_t>(elapsed.count() / tick.count());
    lock.unlock();
    fire_timers(ticks);
    if (now >= next_check) {
      check_slow_handlers();
      next_check = now + opts_.slow_handler;
    }
    lock.lock();
    if (stopping_threads_) return;
    timer_wait_cv_.wait_until(lock, origin + tick * static_cast<std::int64_t>(ticks + 1),
                              [&] { return stopping_threads_.load(); });
    if (stopping_threads_) return;
  }
}

void runtime::check_slow_handlers() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    worker_state& w = *workers_[i];
    const std::uint64_t v = w.version.load(std::memory_order_acquire);
    const handle_t h = w.current.load(std::memory_order_relaxed);
    if (h != 0 && v == w.seen_version) {
      slow_warnings_.fetch_add(1, std::memory_order_relaxed);
      actor_log()->warn("{} may be in an endless loop: one {} message has run for over {} ms (worker {})",
                        handle_string(h), msg_type_name(static_cast<msg_type>(w.type.load(std::memory_order_relaxed))),
                        opts_.slow_handler.count(), i);
    }
    w.seen_version = v;
  }
}

void runtime::retire(cell& c, call_errc why) {
  if (c.retired) return;
  c.retired = true;
  {
    std::unique_lock lock(reg_mu_);
    for (const auto& n : c.names) {
      auto it = names_.find(n);
      if (it == names_.end()) continue;
      auto& hs = it->second.handles;
      hs.erase(std::remove(hs.begin(), hs.end(), c.handle), hs.end());
      if (hs.empty()) names_.erase(it);
    }
    names_version_.fetch_add(1, std::memory_order_release);
  }
  std::vector<std::function<void()>> drained;
  {
    std::lock_guard lock(c.mu);
    c.dead.store(true, std::memory_order_release);  // from now on posts bounce
    drained = c.take_waiters(0);                    // dead: every feeder goes on
    c.message_log.reset();                          // logon's file closes with its service
  }
  for (auto& resume : drained) resume();
  try {
    if (c.inited) c.svc->stop(c.ctx);
  } catch (const std::exception& e) {
    actor_log()->error("{} stop raised: {}", handle_string(c.handle), e.what());
  }
  // Suspended handlers will never resume: answer their callers, free their frames.
  const std::string text = call_errc_name(why);
  for (auto& [rs, owned] : c.roots) {
    if (rs->msg.type == msg_type::call && !rs->is_start && !rs->deferred) {
      post(rs->msg.source, message{c.handle, rs->msg.session, msg_type::error, why, {}, text});
    }
  }
  for (std::uint64_t key : c.open_deferred) {
    post(static_cast<handle_t>(key >> 32), message{c.handle, static_cast<session_t>(key), msg_type::error, why, {}, text});
  }
  c.open_deferred.clear();
  for (auto& [s, e] : c.pending) cancel_timer(e.timer);
  c.pending.clear();
  auto roots = std::move(c.roots);
  for (auto& [rs, owned] : roots) {
    if (rs->frame) rs->frame.destroy();
  }
  roots.clear();
  actor_log()->debug("{} retired ({})", handle_string(c.handle), text);
}

void runtime::shutdown() {
  if (shut_down_.load() || shutting_down_.exchange(true)) return;
  const bool threaded = opts_.run_mode == runtime_options::mode::threaded && running_.load();
  // 1. Let queued work finish, up to the deadline.
  if (threaded) {
    std::unique_lock lock(run_mu_);
    run_cv_.wait_for(lock, opts_.shutdown_timeout, [&] { return run_queue_.empty() && busy_.load() == 0; });
  } else if (running_.load()) {
    run_until_idle();
  }
  // 2. Stop the threads.
  {
    std::lock_guard lock(run_mu_);
    stopping_threads_ = true;
  }
  run_cv_.notify_all();
  {
    std::lock_guard lock(timer_wait_mu_);
  }
  timer_wait_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (timer_thread_.joinable()) timer_thread_.join();
  // 3. Retire every service, newest first; their last messages are answered.
  std::vector<cell_ptr> all;
  {
    std::shared_lock lock(reg_mu_);
    for (auto it = cells_.rbegin(); it != cells_.rend(); ++it) {
      if (*it) all.push_back(*it);
    }
  }
  std::size_t unfinished = 0;
  for (auto& c : all) {
    if (c->retired) continue;
    unfinished += c->roots.size();
    retire(*c, call_errc::shutting_down);
    std::vector<message> left;
    {
      std::lock_guard lock(c->mu);
      c->queue.drain([&](message&& m) { left.push_back(std::move(m)); });
      c->sync_length();
    }
    uncharge(left.data(), left.size());
    unfinished += left.size();
    for (auto& m : left) bounce(m, call_errc::shutting_down);
  }
  {
    std::lock_guard lock(run_mu_);
    run_queue_.clear();
    run_queue_ready_.store(false, std::memory_order_relaxed);
  }
  // 4. Calls from outside that are still open fail explicitly.
  std::vector<std::pair<session_t, ext_call>> ext;
  for (auto& sh : ext_shards_) {
    std::lock_guard lock(sh.mu);
    for (auto& e : sh.calls.drain()) ext.push_back(std::move(e));
    sh.deadlines.clear();
  }
  for (auto& [s, c] : ext) c.done(unexpected(call_error{call_errc::shutting_down, "node is shutting down"}));
  if (unfinished != 0) actor_log()->warn("shutdown: {} unfinished messages or handlers were failed", unfinished);
  running_.store(false);
  shut_down_.store(true);
}

runtime_stats runtime::stats() const {
  runtime_stats s;
  s.dispatched = dispatched_.load();
  s.dropped = dropped_.load();
  s.overload_warnings = overload_warnings_.load();
  s.overload_refused = overload_refused_.load();
  s.mailbox_pauses = mailbox_pauses_.load();
  s.slow_warnings = slow_warnings_.load();
  s.handler_errors = handler_errors_.load();
  std::shared_lock lock(reg_mu_);
  for (const auto& c : cells_) {
    if (c && !c->dead.load(std::memory_order_relaxed)) ++s.services;  // (retired is the owner thread's)
  }
  return s;
}

std::vector<service_info> runtime::services() const {
  std::vector<service_info> out;
  std::shared_lock lock(reg_mu_);
  std::unordered_map<handle_t, std::size_t> at;
  for (const auto& c : cells_) {
    if (!c || c->dead.load(std::memory_order_relaxed)) continue;
    service_info i;
    i.handle = c->handle;
    i.type = c->type;
    i.tasks = c->tasks.load(std::memory_order_relaxed);
    {
      spin_guard q(c->mu);
      i.mailbox = c->queue.size();
    }
    i.messages = c->messages.load(std::memory_order_relaxed);
    i.busy_ns = c->busy_ns.load(std::memory_order_relaxed);
    i.cpu_ns = c->cpu_ns.load(std::memory_order_relaxed);
    at[c->handle] = out.size();
    out.push_back(std::move(i));
  }
  for (const auto& [name, entry] : names_) {
    for (const handle_t h : entry.handles) {
      if (auto it = at.find(h); it != at.end()) out[it->second].names.push_back(name);
    }
  }
  for (auto& i : out) std::sort(i.names.begin(), i.names.end());
  return out;
}

void runtime::set_extension(std::type_index type, void* p) {
  std::lock_guard lock(extension_mu_);
  if (p == nullptr) {
    extensions_.erase(type);
  } else {
    extensions_[type] = p;
  }
}

void* runtime::extension(std::type_index type) const {
  std::lock_guard lock(extension_mu_);
  auto it = extensions_.find(type);
  return it == extensions_.end() ? nullptr : it->second;
}

}  // namespace csk::actor
