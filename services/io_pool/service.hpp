#pragma once
// The service half of a pooled data service (redis, mysql): its handlers only check a
// message and queue the job, taking a deferred reply for a call; the pool's I/O threads
// run it and push the answer to the service's inbox; the inbox wakes the service with an
// empty send to itself, and the service gives the answers in its own turn.
//
// Thread rules: inbox::push runs on the pool's I/O threads; everything else on the
// service's turns. The service owns the pool; stop() ends the pool's threads before the
// service goes, so no push reaches a service that is gone (the inbox is shared with the
// pool's callback all the same).

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/actor/service.hpp"
#include "services/io_pool/pool.hpp"

namespace csk::io_pool {

/// Finished replies, pushed by the pool's I/O threads and taken by the service.
class inbox {
 public:
  inbox(actor::runtime& rt, actor::handle_t self) : rt_(rt), self_(self) {}

  /// Any thread. The first push after a take wakes the service with an empty send to
  /// itself.
  void push(std::uint64_t id, reply r);
  /// The service's turn: answers every finished call (ctx.reply / ctx.reply_error); a
  /// failed one-way send is logged.
  void answer(actor::context& ctx);

 private:
  actor::runtime& rt_;
  const actor::handle_t self_;
  std::mutex mu_;
  std::vector<std::pair<std::uint64_t, reply>> done_;  // mu_
  bool woken_ = false;                                  // mu_: a wake-up is on its way
};

/// The job id for the message being handled: its deferred reply for a call, 0 for a send
/// (nobody waits for the answer).
std::uint64_t defer(actor::context& ctx, const actor::message& m);

/// Logs "<handle> <service> pool of N to <where>" when a service starts its pool.
void log_start(actor::context& ctx, const settings& s);

/// A service that runs its jobs on a pool<Job>. The derived service parses its options in
/// init() and calls start_pool(), and turns a message's arguments into a job (make_job,
/// which throws for a bad one: an error reply). handle() answers the inbox's wake-up (an
/// empty send from the service itself) and queues every other message as a job.
template <class Job>
class pooled_service : public actor::service {
 public:
  ~pooled_service() override {
    if (pool_) pool_->stop();
  }

  actor::task<actor::values> handle(actor::context& ctx, actor::message& m) override {
    if (m.type == actor::msg_type::send && m.args.empty() && m.source == ctx.self()) {  // the inbox's wake-up
      answer(ctx);
      co_return actor::values{};
    }
    submit(ctx, m, make_job(m.args));  // throws: an error reply
    co_return actor::values{};
  }

  void stop(actor::context& ctx) override {
    pool_->stop();
    inbox_->answer(ctx);  // what finished before the threads ended; the runtime fails the rest
  }

 protected:
  void start_pool(actor::context& ctx, settings s, const typename pool<Job>::make_fn& make) {
    inbox_ = std::make_shared<inbox>(ctx.rt(), ctx.self());
    pool_ = std::make_unique<pool<Job>>(s, make, [in = inbox_](std::uint64_t id, reply r) { in->push(id, std::move(r)); });
    log_start(ctx, s);
  }
  /// The job for a message's arguments; throws (std::exception) for a bad message.
  virtual Job make_job(const actor::values& args) = 0;
  /// Gives the answers the pool has finished (the inbox's wake-up).
  void answer(actor::context& ctx) { inbox_->answer(ctx); }
  /// Queues `job` for the message being handled; a call is answered when it is done.
  void submit(actor::context& ctx, const actor::message& m, Job job) { pool_->submit(defer(ctx, m), std::move(job)); }

 private:
  std::shared_ptr<inbox> inbox_;
  std::unique_ptr<pool<Job>> pool_;
};

}  // namespace csk::io_pool
