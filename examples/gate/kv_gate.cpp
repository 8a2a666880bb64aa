#include "examples/gate/kv_gate.hpp"

#include <charconv>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace csk::examples {

using actor::context;
using actor::task;
using actor::values;

net::unpack_result line_framing::unpack(bytes_view buffered) const {
  const std::size_t n = std::min(buffered.size(), max_line + 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (buffered[i] == '\n') return net::unpack_result::message(0, i + 1);
  }
  if (buffered.size() > max_line) return net::unpack_result::failed("line longer than " + std::to_string(max_line) + " bytes");
  return net::unpack_result::need_more();
}

void line_framing::frame(byte_buffer& out, bytes_view body) const {
  out.insert(out.end(), body.begin(), body.end());
  out.push_back('\n');
}

namespace {

/// Entity: the data and nothing else.
class kvstore final : public actor::dispatch_service {
 public:
  kvstore() {
    on_sync("get", [this](context&, values& a) -> values {
      auto it = data_.find(key(a));
      return it == data_.end() ? values{lua_value{}} : values{it->second};
    });
    on_sync("set", [this](context&, values& a) -> values {
      if (a.size() < 2) throw std::runtime_error("set: key and value needed");
      data_[key(a)] = a[1];
      return {};
    });
    on_sync("incr", [this](context&, values& a) -> values {
      auto& v = data_[key(a)];
      std::int64_t n = 0;  // a missing key counts from 0; a decimal string counts too (as in Redis)
      if (v.is_integer()) {
        n = v.as_integer();
      } else if (v.is_string()) {
        const std::string& t = v.as_string();
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
        if (ec != std::errc{} || end != t.data() + t.size()) throw std::runtime_error("value is not an integer");
      } else if (!v.is_nil()) {
        throw std::runtime_error("value is not an integer");
      }
      v = lua_value(n + 1);
      return {v};
    });
    on_sync("del", [this](context&, values& a) -> values { return {static_cast<std::int64_t>(data_.erase(key(a)))}; });
  }

 private:
  static std::string key(const values& a) {
    if (a.empty() || !a[0].is_string()) throw std::runtime_error("key must be a string");
    return a[0].as_string();
  }
  std::unordered_map<std::string, lua_value> data_;
};

std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.emplace_back(line.substr(start, i - start));
  }
  return out;
}

byte_buffer text(std::string_view s) { return byte_buffer(s.begin(), s.end()); }

/// System: the protocol's logic, no data of its own.
class kv_gate final : public gate::gate_service {
 public:
  kv_gate(net::net& n, gate::gate_options o, std::string store)
      : gate_service(n, std::move(o), std::make_shared<line_framing>()), store_(std::move(store)) {}
  /// Configured at spawn: args[0] the gate options, args[1] (optional) the store's name.
  kv_gate() : gate_service(std::make_shared<line_framing>()), store_(".kvstore") {}

  void on_init(context&, const values& args) override {
    if (!args.empty() && args[0].is_string()) store_ = args[0].as_string();
  }

  task<std::optional<byte_buffer>> on_message(context& ctx, net::conn_id id, byte_buffer msg) override {
    std::string_view line(reinterpret_cast<const char*>(msg.data()), msg.size());
    line.remove_suffix(1);  // '\n'
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto w = words(line);
    if (w.empty()) co_return text("ERR empty request");
    const std::string& cmd = w[0];
    if (cmd == "PING") co_return text("PONG");
    if (cmd == "QUIT") {
      close_after_answers(id, "client quit");  // BYE (and earlier answers) go out first
      co_return text("BYE");
    }
    values args;
    std::string op;
    if (cmd == "GET" && w.size() == 2) {
      op = "get";
      args = {w[1]};
    } else if (cmd == "SET" && w.size() == 3) {
      op = "set";
      args = {w[1], w[2]};
    } else if (cmd == "INCR" && w.size() == 2) {
      op = "incr";
      args = {w[1]};
    } else if (cmd == "DEL" && w.size() == 2) {
      op = "del";
      args = {w[1]};
    } else {
      co_return text("ERR unknown command or wrong arguments: " + cmd);
    }
    args.insert(args.begin(), lua_value(op));
    auto call = ctx.call(store_, std::move(args));
    auto r = co_await call;
    if (!r) co_return text("ERR " + r.error().text);
    if (op == "set") co_return text("OK");
    if (op == "del") co_return text("DELETED " + std::to_string(r->at(0).as_integer()));
    if (op == "incr") co_return text("INTEGER " + std::to_string(r->at(0).as_integer()));
    if (r->empty() || r->at(0).is_nil()) co_return text("NIL");
    const lua_value& v = r->at(0);
    co_return text("VALUE " + (v.is_integer() ? std::to_string(v.as_integer()) : v.as_string()));
  }

 private:
  std::string store_;
};

}  // namespace

void register_kv_types(actor::runtime& rt) {
  rt.register_type("kvstore", [] { return std::make_unique<kvstore>(); });
  rt.register_type("kv_gate", [] { return std::make_unique<kv_gate>(); });
}

std::unique_ptr<gate::gate_service> make_kv_gate(net::net& n, gate::gate_options o, std::string store) {
  return std::make_unique<kv_gate>(n, std::move(o), std::move(store));
}

}  // namespace csk::examples
