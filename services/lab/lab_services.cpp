#include "services/lab/lab_services.hpp"

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
