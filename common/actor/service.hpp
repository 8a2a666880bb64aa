#pragma once
// What a service author sees: the service base class, its context, and the
// awaitables for calls, sleeps and timers.
//
// Thread rules: a service's handlers, hooks and coroutines all run inside its own
// dispatch, one message at a time, on whichever pool thread picked the service up.
// Service state therefore needs no locking. context methods are for use from the
// service's own handlers only; use runtime methods from other threads.

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/actor/message.hpp"
#include "common/actor/task.hpp"
#include "common/base/result.hpp"

namespace csk::actor {

class runtime;
class context;
namespace detail {
struct cell;
struct root_state;
}  // namespace detail

struct call_error {
  call_errc code = call_errc::remote_error;
  std::string text;
};
using call_result = result<values, call_error>;

/// A call or send target: a handle, or a name (".local" or "@cluster").
struct address {
  handle_t handle = 0;
  std::string name;
  address(handle_t h) : handle(h) {}                 // NOLINT: implicit by design
  address(std::string_view n) : name(n) {}           // NOLINT
  address(const char* n) : name(n) {}                // NOLINT
  address(const std::string& n) : name(n) {}         // NOLINT
};

using timer_id = std::uint64_t;

/// Identifies a request whose answer is given later (ctx.defer_reply()).
struct reply_token {
  handle_t to = 0;
  session_t session = 0;
  bool valid() const noexcept { return session != 0; }
};

class service {
 public:
  virtual ~service() = default;
  /// First thing the service runs, before any message. `args` come from spawn/config.
  virtual void init(context& ctx, const values& args);
  /// Runs once the node is started (right after init for services spawned later).
  /// May await calls; messages are handled while it is suspended.
  virtual task<void> start(context& ctx);
  /// Last thing the service runs: on exit() or node shutdown.
  virtual void stop(context& ctx);
  /// Handles a call or a send. For a call the returned values are the reply, unless
  /// the handler called defer_reply(). A thrown exception becomes an error reply
  /// (for a send it is logged); the service keeps running.
  virtual task<values> handle(context& ctx, message& msg) = 0;
  /// skynet's `signal` (runtime::signal): called on the thread that sends it, maybe
  /// while a handler runs on the owner thread, so it may touch only what is safe from
  /// any thread (an atomic a long loop polls, say). skynet's Lua services abort the
  /// running code on signal 0; a C++ handler cannot be interrupted, it can only look.
  /// The default does nothing (the runtime logs the signal).
  virtual void signal(int sig);
};

/// A service that dispatches on the command name in args[0], like skynet.dispatch.
class dispatch_service : public service {
 public:
  using async_handler = std::function<task<values>(context&, values&)>;
  using sync_handler = std::function<values(context&, values&)>;

  /// Handlers get the arguments after the command name.
  void on(std::string cmd, async_handler h);
  void on_sync(std::string cmd, sync_handler h);

  task<values> handle(context& ctx, message& msg) override;

 private:
  std::unordered_map<std::string, async_handler> async_;
  std::unordered_map<std::string, sync_handler> sync_;
};

// ------------------------------------------------------------- awaitables --

class call_awaiter {
 public:
  call_awaiter(context& ctx, address to, values args, std::chrono::milliseconds timeout)
      : ctx_(ctx), to_(std::move(to)), args_(std::move(args)), timeout_(timeout) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  call_result await_resume() { return std::move(*result_); }

 private:
  friend class context;
  context& ctx_;
  address to_;
  values args_;
  std::chrono::milliseconds timeout_;
  std::optional<call_result> result_;
};

/// Where the answer to one call must go: the calling service's session (which
/// resumes its awaiter) or, with handle 0, a runtime external call. Anything that
/// answers calls outside the runtime (the cluster sender) completes a route with
/// runtime::complete(); a route is completed at most once that matters: later
/// completions find no session and are dropped.
struct reply_route {
  handle_t handle = 0;
  session_t session = 0;
};

/// `co_await ctx.call_via(start, timeout)`: takes a session and a timeout like a
/// call, then hands the route to `start`, which arranges for runtime::complete(route,
/// result) to be called later from any thread. Used for calls that leave the node.
class routed_call_awaiter {
 public:
  routed_call_awaiter(context& ctx, std::function<void(reply_route)> start, std::chrono::milliseconds timeout)
      : ctx_(ctx), start_(std::move(start)), timeout_(timeout) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  call_result await_resume() { return std::move(*result_); }

 private:
  context& ctx_;
  std::function<void(reply_route)> start_;
  std::chrono::milliseconds timeout_;
  std::optional<call_result> result_;
};

class sleep_awaiter {
 public:
  sleep_awaiter(context& ctx, std::chrono::milliseconds d) : ctx_(ctx), d_(d) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}

 private:
  context& ctx_;
  std::chrono::milliseconds d_;
};

class context {
 public:
  context(runtime& rt, detail::cell& c) : rt_(rt), cell_(c) {}
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  handle_t self() const noexcept;
  runtime& rt() noexcept { return rt_; }

  /// One-way message. A send to an unknown address is dropped and logged.
  void send(const address& to, values args);
  /// `co_await ctx.call(to, args)` -> call_result. timeout 0 = the node default.
  call_awaiter call(const address& to, values args, std::chrono::milliseconds timeout = {}) {
    return call_awaiter(*this, to, std::move(args), timeout);
  }
  /// A call answered by something outside the runtime (see routed_call_awaiter).
  routed_call_awaiter call_via(std::function<void(reply_route)> start, std::chrono::milliseconds timeout = {}) {
    return routed_call_awaiter(*this, std::move(start), timeout);
  }
  /// `co_await ctx.sleep(d)`: resumes after d (rounded up to ticks); other messages
  /// are handled meanwhile.
  sleep_awaiter sleep(std::chrono::milliseconds d) { return sleep_awaiter(*this, d); }
  /// Runs fn in this service after d, unless cancelled.
  timer_id timeout(std::chrono::milliseconds d, std::function<void()> fn);
  bool cancel_timeout(timer_id id);

  /// Takes over the answer to the call being handled: its handler's return value is
  /// ignored and the answer is given later with reply()/reply_error(), from any message.
  reply_token defer_reply();
  void reply(const reply_token& t, values v);
  void reply_error(const reply_token& t, std::string text);

  /// Leaves after the current message: stop() runs, queued calls get errors.
  void exit();

  /// Calls, sleeps and timers this service is waiting on.
  std::size_t pending() const noexcept;

  // -- traces (skynet.trace) ------------------------------------------------------
  //
  // A tag belongs to one handler invocation (skynet keeps it per coroutine): the one that
  // called trace(), or whose call message carried a tag (a traced caller, or a cluster
  // trace frame). It stays with that handler across its awaits, whatever else this
  // service handles meanwhile, and goes with every call it makes (ctx.call, call_via,
  // so cluster calls too; sends are not traced, as in skynet). The runtime logs each hop
  // in skynet's trace format (trace_line): request, call, sleep, resume, response, end,
  // error.

  /// skynet.trace(): traces the handler being run under a new tag ":%08x-N" (this
  /// service's handle, N counting from 1 per service) and logs "trace" ("trace <info>").
  /// Outside a handler (init, stop, a timeout callback) the line is logged but no
  /// handler keeps the tag.
  void trace();
  void trace(std::string_view info);
  /// skynet.tracetag(): the tag of the handler being run; "" when it is not traced.
  std::string trace_tag() const;
  /// The same, shared (nullptr: not traced), for code that passes it on (the cluster node).
  trace_ptr current_trace() const;

 private:
  friend class call_awaiter;
  friend class routed_call_awaiter;
  friend class sleep_awaiter;
  void begin_trace(std::string_view what);
  runtime& rt_;
  detail::cell& cell_;
};

}  // namespace csk::actor
