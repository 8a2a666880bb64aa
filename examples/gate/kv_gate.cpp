#include "examples/gate/kv_gate.hpp"

#include <charconv>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "services/entity/entity.hpp"

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

lua_value to_lua(const kv_value& v) { return entity::fields().add("value", v.value).table(); }

void from_lua(const lua_value& in, kv_value& v) {
  entity::field_reader(in, "example.kv").get("value", v.value).done();
  if (v.value.empty()) throw std::invalid_argument("example.kv.value: a non-empty string expected");
}

namespace {

using kv_type = entity::entity_type<kv_value>;

/// INCR, run inside the store on (a copy of) the key's value: a decimal string counts as
/// its number (as in Redis), a key just created (empty value) as 0.
values incr(kv_value& v, values&) {
  std::int64_t n = 0;
  if (!v.value.empty()) {
    const std::string& t = v.value;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (ec != std::errc{} || end != t.data() + t.size()) throw std::runtime_error("value is not an integer");
  }
  if (n == std::numeric_limits<std::int64_t>::max()) throw std::runtime_error("increment would overflow");
  ++n;
  v.value = std::to_string(n);
  return {n};
}

/// Entity: the data and nothing else (an entity service of kv_value).
void register_kv_entity() {
  static const kv_type& registered =
      entity::register_type<kv_value>("example.kv").mutation("incr", incr, kv_type::missing::create);
  (void)registered;  // once per process: the hook table is shared by every runtime's stores
}

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
    // The entity service's messages (services/entity/service.hpp).
    values args;
    if (cmd == "GET" && w.size() == 2) {
      args = {lua_value("get"), w[1]};
    } else if (cmd == "SET" && w.size() == 3) {
      args = {lua_value("set"), w[1], to_lua(kv_value{w[2]})};
    } else if (cmd == "INCR" && w.size() == 2) {
      args = {lua_value("mutate"), w[1], lua_value("incr")};
    } else if (cmd == "DEL" && w.size() == 2) {
      args = {lua_value("delete"), w[1]};
    } else {
      co_return text("ERR unknown command or wrong arguments: " + cmd);
    }
    auto call = ctx.call(store_, std::move(args));
    auto r = co_await call;
    if (!r) co_return text("ERR " + r.error().text);
    if (cmd == "SET") co_return text("OK");
    if (cmd == "DEL") co_return text("DELETED " + std::to_string(r->at(0).as_integer()));
    if (cmd == "INCR") co_return text("INTEGER " + std::to_string(r->at(0).as_integer()));
    if (r->empty() || r->at(0).is_nil()) co_return text("NIL");
    kv_value v;
    from_lua(r->at(0), v);
    co_return text("VALUE " + v.value);
  }

 private:
  std::string store_;
};

}  // namespace

void register_kv_types(actor::runtime& rt) {
  register_kv_entity();
  entity::install_service_types(rt);  // "entity:example.kv" (and any other type registered by now)
  // The name configs use; with no args its id is the type name, "example.kv".
  rt.register_type("kvstore", [] { return std::make_unique<entity::entity_service<kv_value>>(); });
  rt.register_type("kv_gate", [] { return std::make_unique<kv_gate>(); });
}

std::unique_ptr<gate::gate_service> make_kv_gate(net::net& n, gate::gate_options o, std::string store) {
  return std::make_unique<kv_gate>(n, std::move(o), std::move(store));
}

}  // namespace csk::examples
