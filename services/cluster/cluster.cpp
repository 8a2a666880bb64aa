#include "services/cluster/cluster.hpp"

#include <charconv>
#include <typeinfo>

#include "common/log/log.hpp"

namespace csk::cluster {
namespace {

std::shared_ptr<spdlog::logger> log() { return csk::logger("cluster"); }

bool is_hex(std::string_view s) {
  for (char ch : s) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return false;
  }
  return true;
}

/// A call that fails at once: the error arrives like any answer, in a later dispatch.
actor::routed_call_awaiter failed_call(actor::context& ctx, std::string text, std::chrono::milliseconds timeout) {
  actor::runtime& rt = ctx.rt();
  return ctx.call_via(
      [&rt, text = std::move(text)](actor::reply_route route) {
        rt.complete(route, unexpected(actor::call_error{actor::call_errc::invalid_address, text}));
      },
      timeout);
}

std::string cluster_name(std::string_view name) {
  return !name.empty() && name[0] == '@' ? std::string(name) : "@" + std::string(name);
}

}  // namespace

node* node_of(const actor::runtime& rt) { return rt.extension<node>(); }

remote_address::remote_address(std::string_view s) {
  const auto bad = [&] {
    error = "bad cluster address '" + std::string(s) + "': use @name, .name, :0000000a or a handle number";
  };
  if (s.size() >= 2 && (s[0] == '@' || s[0] == '.')) {
    target = wire::target::named(std::string(s));
    return;
  }
  if (s.size() >= 2 && s.size() <= 9 && s[0] == ':' && is_hex(s.substr(1))) {
    target = wire::target::named(std::string(s));
    return;
  }
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const std::string_view digits = hex ? s.substr(2) : s;
  std::uint32_t h = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), h, hex ? 16 : 10);
  if (digits.empty() || r.ec != std::errc{} || r.ptr != digits.data() + digits.size()) {
    bad();
    return;
  }
  target = wire::target::handle(h);
}

actor::routed_call_awaiter call(actor::context& ctx, std::string_view node_name, const remote_address& to,
                                actor::values args, std::chrono::milliseconds timeout) {
  node* n = node_of(ctx.rt());
  if (n == nullptr) return failed_call(ctx, std::string(not_configured), timeout);
  if (!to.ok()) return failed_call(ctx, to.error, timeout);
  return n->call(ctx, node_name, to.target, std::move(args), timeout);
}

bool send(actor::context& ctx, std::string_view node_name, const remote_address& to, const actor::values& args) {
  return send(ctx.rt(), node_name, to, args);
}

bool send(actor::runtime& rt, std::string_view node_name, const remote_address& to, const actor::values& args) {
  node* n = node_of(rt);
  if (n == nullptr) {
    log()->warn("cluster: push to {} dropped: {}", node_name, not_configured);
    return false;
  }
  if (!to.ok()) {
    log()->warn("cluster: push to {} dropped: {}", node_name, to.error);
    return false;
  }
  return n->send(node_name, to.target, args);
}

query_result query_awaiter::await_resume() {
  actor::call_result r = op_.await_resume();
  if (!r) return unexpected(std::move(r.error()));
  if (r->size() != 1 || !r->front().is_integer() || r->front().as_integer() <= 0 ||
      r->front().as_integer() > 0xffffffff) {
    return unexpected(actor::call_error{actor::call_errc::remote_error, "cluster query: the answer is not a handle"});
  }
  return static_cast<actor::handle_t>(r->front().as_integer());
}

query_awaiter query(actor::context& ctx, std::string_view node_name, std::string_view name,
                    std::chrono::milliseconds timeout) {
  if (!name.empty() && name[0] == '@') name.remove_prefix(1);
  return query_awaiter(call(ctx, node_name, wire::target::handle(0), actor::values{std::string(name)}, timeout));
}

result<void, std::string> register_name(actor::context& ctx, std::string_view name) {
  return register_name(ctx.rt(), name, ctx.self());
}

result<void, std::string> register_name(actor::context& ctx, std::string_view name, actor::handle_t handle) {
  return register_name(ctx.rt(), name, handle);
}

result<void, std::string> register_name(actor::runtime& rt, std::string_view name, actor::handle_t handle) {
  return rt.add_name(handle, cluster_name(name));
}

result<actor::handle_t, std::string> proxy(actor::context& ctx, std::string_view node_name, const remote_address& to) {
  return proxy(ctx.rt(), node_name, to);
}

result<actor::handle_t, std::string> proxy(actor::runtime& rt, std::string_view node_name, const remote_address& to) {
  node* n = node_of(rt);
  if (n == nullptr) return unexpected(std::string(not_configured));
  if (!to.ok()) return unexpected(to.error);
  return n->proxy(node_name, to.target);
}

}  // namespace csk::cluster
