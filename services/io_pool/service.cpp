#include "services/io_pool/service.hpp"

#include "common/log/log.hpp"

namespace csk::io_pool {
namespace {

/// A deferred reply's token as a job id and back: the pool carries only the number.
std::uint64_t token_id(const actor::reply_token& t) { return (std::uint64_t{t.to} << 32) | t.session; }
actor::reply_token token_of(std::uint64_t id) {
  return actor::reply_token{static_cast<actor::handle_t>(id >> 32), static_cast<actor::session_t>(id & 0xffffffffu)};
}

}  // namespace

void inbox::push(std::uint64_t id, reply r) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    done_.emplace_back(id, std::move(r));
    wake = !std::exchange(woken_, true);
  }
  if (wake) (void)rt_.send(self_, actor::values{}, self_);
}

void inbox::answer(actor::context& ctx) {
  std::vector<std::pair<std::uint64_t, reply>> done;
  {
    std::lock_guard lock(mu_);
    woken_ = false;
    done = std::exchange(done_, {});
  }
  for (auto& [id, r] : done) {
    const actor::reply_token t = token_of(id);
    if (!t.valid()) {  // a send: nobody waits for the answer
      if (!r) csk::logger("service")->warn("{} {}", csk::format_handle(ctx.self()), r.error());
      continue;
    }
    if (r) {
      ctx.reply(t, actor::values{std::move(*r)});
    } else {
      ctx.reply_error(t, r.error());
    }
  }
}

std::uint64_t defer(actor::context& ctx, const actor::message& m) {
  return m.type == actor::msg_type::call ? token_id(ctx.defer_reply()) : 0;
}

void log_start(actor::context& ctx, const settings& s) {
  csk::logger("service")->info("{} {} pool of {} to {}", csk::format_handle(ctx.self()), s.service, s.connections,
                               s.where);
}

}  // namespace csk::io_pool
