#pragma once
// task<T>: the coroutine type of service handlers.
//
// Lazy (starts when awaited or when the runtime starts it), single-owner, and
// resumed only from its service's dispatch, so a handler never runs on two threads
// at once. Awaiting a task transfers control symmetrically (no stack growth).
// A task started by the runtime ("root") has a completion hook that the runtime
// uses to send the reply and free the frame; nested tasks resume their awaiter.

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace csk::actor {

template <class T>
class task;

namespace detail {

/// Called when a root task finishes (value, exception or nothing yet). The hook
/// owns the frame from then on and must destroy it.
struct root_hook {
  void (*done)(void* ctx, std::coroutine_handle<> frame) = nullptr;
  void* ctx = nullptr;
};

struct promise_base {
  std::coroutine_handle<> continuation;
  std::exception_ptr exception;
  root_hook root;

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      if (p.continuation) return p.continuation;
      if (p.root.done != nullptr) p.root.done(p.root.ctx, h);
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  struct promise_type : detail::promise_base {
    std::optional<T> value;
    task get_return_object() { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    template <class U>
    void return_value(U&& v) {
      value.emplace(std::forward<U>(v));
    }
  };
  using handle_type = std::coroutine_handle<promise_type>;

  task() = default;
  explicit task(handle_type h) : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().continuation = awaiting;
    return h_;
  }
  T await_resume() {
    if (h_.promise().exception) std::rethrow_exception(h_.promise().exception);
    return std::move(*h_.promise().value);
  }

  /// Gives up ownership of the frame (the runtime drives root tasks).
  handle_type release() noexcept { return std::exchange(h_, {}); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  void reset() {
    if (h_) h_.destroy();
    h_ = {};
  }
  handle_type h_;
};

template <>
class [[nodiscard]] task<void> {
 public:
  struct promise_type : detail::promise_base {
    task get_return_object() { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    void return_void() noexcept {}
  };
  using handle_type = std::coroutine_handle<promise_type>;

  task() = default;
  explicit task(handle_type h) : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().continuation = awaiting;
    return h_;
  }
  void await_resume() {
    if (h_.promise().exception) std::rethrow_exception(h_.promise().exception);
  }
  handle_type release() noexcept { return std::exchange(h_, {}); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  handle_type h_;
};

}  // namespace csk::actor
