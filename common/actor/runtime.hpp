#pragma once
// csk::actor::runtime: the registry of services, the scheduler and the timers of
// one node. skynet's design in C++: each service has a mailbox; a mailbox joins
// the global run queue only on its empty -> non-empty edge; a fixed pool of worker
// threads takes a service off the run queue and dispatches a batch of its messages,
// so one service never runs on two threads at once and none is ever scanned idle.
//
// Modes: `threaded` starts `threads` workers plus one timer/monitor thread;
// `manual` starts none, and the owner drives everything with run_until_idle() and
// advance_time() on its own thread (deterministic tests).
//
// Thread rules: every public method is safe to call from any thread, except
// run_until_idle / dispatch_one / advance_time (manual mode, owner thread only)
// and register_type (before spawning that type).

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "common/actor/message.hpp"
#include "common/actor/service.hpp"
#include "common/actor/session_map.hpp"
#include "common/actor/timer_wheel.hpp"
#include "common/base/memory_budget.hpp"
#include "common/base/result.hpp"

namespace csk::actor {

struct runtime_options {
  enum class mode : std::uint8_t { threaded, manual };
  mode run_mode = mode::threaded;
  int threads = 0;                                  ///< 0 = hardware concurrency
  std::uint32_t harbor = 0;                         ///< 0..255, high 8 bits of handles
  std::chrono::milliseconds tick{10};               ///< timer resolution
  std::chrono::milliseconds call_timeout{10000};    ///< default for calls without one
  std::size_t mailbox_warn = 1024;                  ///< overload warning, doubles each time
  std::chrono::milliseconds slow_handler{5000};     ///< "maybe in an endless loop" warning
  std::chrono::milliseconds shutdown_timeout{5000}; ///< how long queued work may finish
  std::size_t batch_limit = 256;                    ///< most messages per service turn
  /// The longest an idle worker keeps looking for work (yielding the CPU between looks)
  /// before it sleeps; 0 = sleep at once. A message posted meanwhile is picked up without
  /// a futex wake-up. The spin is predictive, per thread: a worker spins only while its
  /// recent idle gaps (running out of work -> finding more) average under this ceiling,
  /// i.e. while work keeps arriving that fast; an idle node, or one whose calls come one
  /// at a time over the network, sleeps at once and spends no CPU spinning.
  std::chrono::microseconds idle_spin{50};
  /// Mailbox back-pressure. Feeders that can stop reading (cluster agents, gates) ask
  /// mailbox_full() after each message they deliver: past `mailbox_high` messages they
  /// pause their connection until the mailbox is down to `mailbox_low`
  /// (when_mailbox_drains). 0 = never full.
  std::size_t mailbox_high = 4096;
  std::size_t mailbox_low = 1024;
  /// A hard cap for everybody else: a call or send that finds this many messages waiting
  /// is refused (the caller is answered call_errc::overloaded at once, a send is dropped,
  /// logged and counted). Replies, errors and timers are never refused. 0 = no cap.
  std::size_t mailbox_limit = 1u << 20;
  /// The node's memory budget: messages with a charge (message::charge) are counted in
  /// it from post() until a service takes them. nullptr = not counted. Must outlive the
  /// runtime.
  memory_budget* budget = nullptr;
  /// Measure each service's CPU time (skynet's `profile`): the thread's CPU clock read
  /// at the start and end of every turn (a system call; the end of one turn is the start
  /// of the next while a worker has work, so about one a turn, not a message).
  bool profile = true;
};

/// Counters for tests, metrics and logs.
struct runtime_stats {
  std::uint64_t dispatched = 0;      ///< messages handed to services
  std::uint64_t dropped = 0;         ///< sends to dead/unknown services, late replies
  std::uint64_t overload_warnings = 0;
  std::uint64_t overload_refused = 0;  ///< calls and sends refused at mailbox_limit
  std::uint64_t mailbox_pauses = 0;    ///< when_mailbox_drains waits that found it full
  std::uint64_t slow_warnings = 0;
  std::uint64_t handler_errors = 0;  ///< exceptions raised by handlers
  std::size_t services = 0;          ///< live services
};

/// One live service, for consoles and metrics (runtime::services()).
struct service_info {
  handle_t handle = 0;
  std::vector<std::string> names;  ///< ".x" and "@x" names, sorted
  std::size_t mailbox = 0;         ///< messages waiting now
  std::uint64_t messages = 0;      ///< messages taken from the mailbox to be handled (counted before each is)
  std::uint64_t busy_ns = 0;       ///< time spent handling them (wall clock of its turns)
  /// CPU time of its turns (the worker thread's CPU clock; what a handler spends blocked
  /// does not count). 0 unless runtime_options::profile.
  std::uint64_t cpu_ns = 0;
  std::string type;  ///< the type it was spawned as ("" when spawned from an object)
  /// Its handlers suspended in an await (skynet's `task` count), as of the end of its last turn.
  std::size_t tasks = 0;
};

class runtime {
 public:
  using factory = std::function<std::unique_ptr<service>()>;

  explicit runtime(runtime_options opts = {});
  ~runtime();  ///< shuts down if still running
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  const runtime_options& options() const noexcept { return opts_; }

  // -- services --------------------------------------------------------------

  void register_type(std::string type, factory f);
  bool has_type(std::string_view type) const;

  /// Creates a service, runs its init() (synchronously, on the calling thread, before
  /// any message can reach it) and gives it `names` (".local" or "@cluster"; several
  /// services may share a name: calls then go round robin). start() runs once the
  /// runtime is started. Errors: unknown type, bad name, init threw, shutting down.
  result<handle_t, std::string> spawn(std::string_view type, values args = {},
                                      std::vector<std::string> names = {});
  /// `type`: what services() reports as its type (spawn(type, ...) passes its own).
  result<handle_t, std::string> spawn(std::unique_ptr<service> svc, values args = {},
                                      std::vector<std::string> names = {}, std::string type = {});

  /// Adds a name to a live service. Names start with '.' (local) or '@' (cluster).
  result<void, std::string> add_name(handle_t h, std::string name);
  /// The next handle for `name` (round robin), or 0.
  handle_t resolve(std::string_view name);
  /// What resolve(name, cache) remembers: one name's single service, while no name
  /// changed anywhere in the runtime.
  struct name_cache {
    std::string name;
    handle_t handle = 0;
    std::uint64_t version = 0;
  };
  /// resolve() for a caller that resolves the same name again and again (the cluster
  /// agent, per message): while no service gained or lost a name since `cache` was
  /// filled and the name has one service, the answer comes from the cache (an atomic
  /// load instead of a lock and a hash). A name shared by several services still goes
  /// round robin, every time.
  handle_t resolve(std::string_view name, name_cache& cache);
  /// Every handle currently registered under `name`.
  std::vector<handle_t> handles_of(std::string_view name) const;
  bool alive(handle_t h) const;

  // -- messages from outside any service --------------------------------------

  /// One-way message from `source` (0 = the runtime). False if nobody has that address.
  bool send(const address& to, values args, handle_t source = 0);
  /// A call from a thread that is not a service (tests, tools, the net layer).
  /// The future is fulfilled from the runtime's threads (or in run_until_idle()).
  std::future<call_result> call(const address& to, values args, std::chrono::milliseconds timeout = {});
  /// The same with a completion instead of a future: `done` runs exactly once, on a
  /// runtime thread (inside run_until_idle in manual mode), or at once on this thread
  /// when the address is unknown. It must be short and must not block.
  /// `charge`: see message::charge. `trace`: the handler of the call runs traced under
  /// it (see message::trace; the cluster agent passes the tag of a trace frame).
  void call(const address& to, values args, std::chrono::milliseconds timeout,
            std::function<void(call_result)> done, std::uint32_t charge = 0, trace_ptr trace = {});
  /// Back-pressure (runtime_options::mailbox_high): true while `h`'s mailbox holds more
  /// than mailbox_high messages. A relaxed read, for a feeder after each delivery. Any thread.
  bool mailbox_full(handle_t h) const noexcept;
  /// Runs `resume` exactly once, on whichever thread sees it happen: when `h`'s mailbox is
  /// down to mailbox_low, or `h` is gone (or at shutdown); at once on this thread if it
  /// already is. Any thread. `resume` must be short and must not block.
  void when_mailbox_drains(handle_t h, std::function<void()> resume);
  /// Answers a call route (see reply_route). Safe from any thread.
  void complete(reply_route route, call_result result);
  /// A route for a call made from outside any service (tools, tests): whoever gets the
  /// route answers it with complete(); `done` runs once with the answer, or with a
  /// timeout error after `timeout` (0 = the default call timeout).
  reply_route external_route(std::chrono::milliseconds timeout, std::function<void(call_result)> done);

  /// Something that batches output produced during a service turn (the cluster agent
  /// gathers the answers of many calls into one socket write).
  class turn_flusher {
   public:
    virtual void flush() = 0;

   protected:
    ~turn_flusher() = default;
  };
  /// Calls f.flush() once the current service turn of this thread has dispatched its
  /// last message, or at once when this thread is not running a turn (timer thread,
  /// net threads, tests). `f` must stay valid until then. A flusher registered twice in
  /// one turn is flushed twice: register once per batch. Any thread.
  void flush_after_turn(turn_flusher& f);

  // -- lifecycle ----------------------------------------------------------------

  /// Starts the threads (threaded mode) and every service's start().
  void start();
  /// Keeps a service spawned before start() from running when start() is called: its
  /// start() does not run and the messages sent to it wait in its mailbox (calls may time
  /// out) until release(h). A worker taking over from another uses it so that its system
  /// services start only once it serves (docs/upgrade.md). False if `h` is unknown or the
  /// runtime has started. Owner thread (the one that calls start()).
  bool hold(handle_t h);
  /// Ends hold(h): the service runs its start(), then what waits in its mailbox. False if
  /// `h` is not held. Owner thread.
  bool release(handle_t h);
  /// skynet's `kill`: ends service `h` as if its handler had called ctx.exit(): before it
  /// handles another message (after the one in progress, if any) it retires: stop() runs,
  /// its callers and what waits in its mailbox are answered service_exited. False if `h`
  /// is unknown or already dead. Any thread.
  bool kill(handle_t h);
  /// Sees each message a service is about to handle (skynet's logon), on the service's
  /// owner thread, before its handler; never concurrently for one service.
  using message_log = std::function<void(handle_t, const message&)>;
  /// skynet's `logon`/`logoff`: from its next turn on, every message service `h` takes
  /// from its mailbox is shown to `log` first; nullptr turns it off. The runtime keeps
  /// the shared pointer until the last turn that copied it ends. False if `h` is unknown
  /// or dead. Any thread.
  bool set_message_log(handle_t h, std::shared_ptr<const message_log> log);
  /// skynet's traceproto (the console's `trace ADDR [on|off]`), per service:
  /// follow  - the default: a call's tag is honoured, nothing else is traced;
  /// always  - every send or call it handles that carries no tag starts a trace
  ///           (":%08x-N", as context::trace);
  /// never   - incoming tags are dropped: its handlers run untraced.
  enum class trace_mode : std::uint8_t { follow, always, never };
  /// Sets `h`'s trace mode from its next message on. False if `h` is unknown or dead.
  /// Any thread.
  bool set_trace_mode(handle_t h, trace_mode mode);
  /// skynet's `signal ADDR [sig]`: logs it and calls service::signal(sig) on the caller's
  /// thread (the service may be in a handler on another). False if `h` is unknown or
  /// dead. Any thread.
  bool signal(handle_t h, int sig);
  /// Orderly stop: no new spawns; queued messages run until idle or the shutdown
  /// timeout; then every service's stop() runs, suspended handlers are dropped with
  /// their callers answered "shutting down", and the threads end. Idempotent.
  void shutdown();
  bool running() const noexcept { return running_.load(); }

  // -- manual mode ------------------------------------------------------------

  /// Dispatches one service turn. False when nothing is queued.
  bool dispatch_one();
  /// Dispatches until no service has messages. Returns the number of messages.
  std::size_t run_until_idle();
  /// Moves the manual clock forward; expired timers are queued (not run).
  void advance_time(std::chrono::milliseconds d);

  runtime_stats stats() const;
  /// Every live service, by handle. Takes the registry lock and each mailbox's lock
  /// briefly. Threads: any.
  std::vector<service_info> services() const;

  // -- extensions ---------------------------------------------------------------

  /// A typed slot per component type, so that services find node components (the
  /// cluster node) from their context: `ctx.rt().extension<cluster::node>()`.
  /// nullptr clears the slot; setting it again replaces the pointer.
  /// Owner rule: the registrant must outlive every service of this runtime that may use
  /// the pointer (shut the runtime down first), or clear the slot before it goes; a
  /// pointer already handed out is not recalled.
  void set_extension(std::type_index type, void* p);
  /// The pointer set for `type`, or nullptr.
  void* extension(std::type_index type) const;
  template <class T>
  T* extension() const {
    return static_cast<T*>(extension(std::type_index(typeid(T))));
  }

  // -- internals used by context (same translation unit family) -------------------

  /// Delivers a message. Replies to unknown/dead handles are dropped; calls to them
  /// are answered with an error. Safe from any thread.
  void post(handle_t to, message m);
  timer_id add_timer(std::chrono::milliseconds d, handle_t h, session_t s);
  bool cancel_timer(timer_id id);
  handle_t resolve_address(const address& a);
  void note_handler_error();

 private:
  friend class context;
  using cell_ptr = std::shared_ptr<detail::cell>;

  /// The cell of a handle, or nullptr. Lock-free: cells are never destroyed before the
  /// runtime (a retired cell stays, marked dead), so the pointer stays valid.
  detail::cell* grab(handle_t h) const noexcept;
  void schedule(detail::cell* c);              // mailbox became non-empty
  detail::cell* pop_ready(bool wait);
  std::size_t run_turn(detail::cell* c, int weight, std::size_t worker);
  void dispatch(detail::cell& c, message& m);
  void start_service(detail::cell& c);
  void retire(detail::cell& c, call_errc why);  // exit or shutdown: answer what is pending
  void bounce(const message& m, call_errc why);
  /// Gives the charges of messages taken out of a mailbox back to opts_.budget.
  void uncharge(const message* m, std::size_t n);
  void deliver_external(message& m);
  void worker_main(std::size_t index);
  void timer_main();
  void fire_timers(std::uint64_t tick);
  void check_slow_handlers();
  struct ext_expired {
    std::uint64_t due;
    std::uint64_t seq;
    std::function<void(call_result)> done;
  };

  runtime_options opts_;

  mutable std::shared_mutex reg_mu_;
  std::vector<cell_ptr> cells_;  // index = handle & handle_mask; slot 0 unused (owners)
  // Lock-free mirror of cells_ for grab(): chunks of cell pointers, published with
  // release stores before cell_count_ grows past them.
  static constexpr unsigned cell_chunk_bits = 12;
  static constexpr std::size_t cell_chunk_size = std::size_t{1} << cell_chunk_bits;
  static constexpr std::size_t cell_chunk_count = (std::size_t{handle_mask} + 1) / cell_chunk_size;
  std::unique_ptr<std::atomic<std::atomic<detail::cell*>*>[]> cell_chunks_;
  std::atomic<std::size_t> cell_count_{0};
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct name_entry {
    std::vector<handle_t> handles;   // reg_mu_
    std::atomic<std::size_t> next{0};  // round-robin cursor: advanced under the shared lock
  };
  std::unordered_map<std::string, name_entry, string_hash, std::equal_to<>> names_;
  std::atomic<std::uint64_t> names_version_{1};  // bumped (under reg_mu_) when names_ changes
  std::unordered_map<std::string, factory, string_hash, std::equal_to<>> types_;

  std::mutex run_mu_;
  std::condition_variable run_cv_;
  std::deque<detail::cell*> run_queue_;
  std::atomic<bool> run_queue_ready_{false};  // !run_queue_.empty(), for spinning workers
  std::atomic<bool> stopping_threads_{false};  // set under run_mu_; read by the timer thread too

  std::mutex timer_mu_;
  timer_wheel wheel_;
  std::uint64_t manual_ms_ = 0;

  // External calls (call() and external_route()): session -> completion, and their
  // deadlines. A deadline is not a timer-wheel entry (that cost a second lock, two
  // node allocations and a cancel per call): it is a heap entry (due tick, seq) that
  // an answered call simply leaves behind; fire_timers() skips such entries when they
  // come due, and external_route() drops them in bulk once they outnumber the open
  // calls (amortised O(1) per call). Calls expire on the ticks the wheel would have
  // chosen (its now() + the delay), in (due, order made) order.
  //
  // The table is split in ext_shard_count shards by session (a prime count: the
  // calls being answered are the ones made a window ago, and a window of N calls
  // falls on the shard being filled only when N is a multiple of the count), so the
  // thread making calls (the cluster agent's net thread) and the one answering them
  // (a worker) seldom want the same lock: one lock had them convoying on its futex.
  struct ext_call {
    std::function<void(call_result)> done;
    std::uint64_t seq = 0;  // unique per call: a deadline matches only its own call
  };
  struct ext_deadline {
    session_t session;
    std::uint64_t seq;
    std::uint64_t due;
  };
  struct alignas(64) ext_shard {
    std::mutex mu;
    session_map<ext_call> calls;
    std::vector<ext_deadline> deadlines;  // a min-heap on (due, seq)
    /// Moves the calls whose deadline is <= tick to `out`, in expiry order (mu held).
    void expire(std::uint64_t tick, std::vector<ext_expired>& out);
  };
  static constexpr std::size_t ext_shard_count = 7;
  ext_shard& ext_shard_of(session_t s) noexcept { return ext_shards_[s % ext_shard_count]; }
  std::array<ext_shard, ext_shard_count> ext_shards_;
  std::atomic<std::uint64_t> ext_counter_{0};  // sessions are its low 32 bits, seq all of it
  std::atomic<std::uint64_t> ext_now_{0};      // the last tick fire_timers() reached (the wheel's now)

  struct worker_state {
    std::atomic<std::uint64_t> version{0};   // bumped at each message start/end
    std::atomic<handle_t> current{0};         // service being dispatched, 0 = idle
    std::atomic<std::uint8_t> type{0};
    std::uint64_t seen_version = 0;           // monitor thread only
  };
  std::vector<std::unique_ptr<worker_state>> workers_;
  std::vector<std::thread> threads_;
  std::thread timer_thread_;
  std::mutex timer_wait_mu_;
  std::condition_variable timer_wait_cv_;

  mutable std::mutex extension_mu_;
  std::unordered_map<std::type_index, void*> extensions_;

  std::atomic<bool> running_{false};
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<std::uint64_t> dispatched_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> overload_warnings_{0};
  std::atomic<std::uint64_t> overload_refused_{0};
  std::atomic<std::uint64_t> mailbox_pauses_{0};
  std::atomic<std::uint64_t> slow_warnings_{0};
  std::atomic<std::uint64_t> handler_errors_{0};
  std::atomic<std::size_t> busy_{0};  // turns in progress (for idle detection)
};

}  // namespace csk::actor
