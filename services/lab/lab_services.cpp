#include "services/lab/lab_services.hpp"

#include <chrono>
#include <stdexcept>

namespace csk::lab {
namespace {

using namespace csk::actor;

class echo : public service {
 public:
  task<values> handle(context&, message& m) override { co_return std::move(m.args); }
};

class fail : public service {
 public:
  task<values> handle(context&, message&) override {
    throw std::runtime_error("lab fail service raised");
    co_return values{};
  }
};

class gen : public service {
 public:
  task<values> handle(context&, message& m) override {
    const auto n = m.args.at(0).as_integer();
    const std::string c = m.args.at(1).as_string();
    co_return values{std::string(static_cast<std::size_t>(n), c.empty() ? ' ' : c[0])};
  }
};

class noret : public service {
 public:
  task<values> handle(context&, message&) override { co_return values{}; }
};

class slow : public service {
 public:
  task<values> handle(context& ctx, message& m) override {
    co_await ctx.sleep(std::chrono::milliseconds(m.args.at(0).as_integer()));
    co_return std::move(m.args);
  }
};

class counter : public service {
 public:
  task<values> handle(context&, message&) override { co_return values{++n_}; }

 private:
  std::int64_t n_ = 0;
};

/// A slow consumer: every message but "get" holds its worker thread for the delay given at
/// spawn (args[0], microseconds: a handler doing real work, not a coroutine that yields)
/// and is counted; "get" returns the count. For back-pressure tests: a flood of pushes
/// must reach it, every one, without its mailbox growing past the node's limits.
class sink : public service {
 public:
  void init(context&, const values& args) override {
    if (!args.empty() && args[0].is_integer()) delay_ = std::chrono::microseconds(args[0].as_integer());
  }
  task<values> handle(context&, message& m) override {
    if (!m.args.empty() && m.args[0].is_string() && m.args[0].as_string() == "get") co_return values{count_};
    const auto until = std::chrono::steady_clock::now() + delay_;
    while (std::chrono::steady_clock::now() < until) {
    }
    ++count_;
    co_return values{};
  }

 private:
  std::chrono::microseconds delay_{0};
  std::int64_t count_ = 0;
};

class filler : public service {
 public:
  task<values> handle(context&, message&) override { co_return values{}; }
};

}  // namespace

void register_lab_types(actor::runtime& rt) {
  rt.register_type("echo", [] { return std::make_unique<echo>(); });
  rt.register_type("fail", [] { return std::make_unique<fail>(); });
  rt.register_type("gen", [] { return std::make_unique<gen>(); });
  rt.register_type("noret", [] { return std::make_unique<noret>(); });
  rt.register_type("slow", [] { return std::make_unique<slow>(); });
  rt.register_type("sink", [] { return std::make_unique<sink>(); });
}

actor::handle_t spawn_lab_services(actor::runtime& rt) {
  for (int i = 1; i < 10; ++i) {
    if (!rt.spawn(std::make_unique<filler>())) throw std::runtime_error("spawn failed");
  }
  auto e = rt.spawn(std::make_unique<echo>(), {}, {"@echo", ".echo"});
  if (!e || *e != 0x0a) throw std::runtime_error("echo is not handle 0x0a: spawn the lab into an empty runtime");
  (void)rt.spawn(std::make_unique<fail>(), {}, {"@fail"});
  (void)rt.spawn(std::make_unique<gen>(), {}, {"@gen"});
  (void)rt.spawn(std::make_unique<noret>(), {}, {"@noret"});
  (void)rt.spawn(std::make_unique<slow>(), {}, {"@slow"});
  (void)rt.spawn(std::make_unique<counter>(), {}, {"@counter"});
  return *e;
}

}  // namespace csk::lab
