#include "worker/debug_console.hpp"

#include <algorithm>
#include <charconv>
#include <future>
#include <mutex>
#include <set>
#include <vector>

#include "common/log/log.hpp"
#include "common/net/net.hpp"

namespace csk::console {
namespace {

std::string_view text_of(bytes_view b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

bool is_http(std::string_view s) { return s.starts_with("GET ") || s.starts_with("POST "); }

// Too short to tell yet: the bytes so far could still become "GET " or "POST ".
bool maybe_http(std::string_view s) {
  return s.size() < 5 && (std::string_view("GET ").starts_with(s) || std::string_view("POST ").starts_with(s));
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// What a head says about its body. `length` stays 0 without Content-Length.
struct body_spec {
  std::size_t length = 0;
  bool chunked = false;
  bool bad_length = false;
};

body_spec body_of(std::string_view head) {
  body_spec b;
  std::size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at + 2 < head.size()) {
    const std::size_t next = head.find("\r\n", at + 2);
    const std::string_view line = head.substr(at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
    at = next;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (same_name(line.substr(0, colon), "content-length")) {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), b.length);
      b.bad_length = ec != std::errc{} || end != value.data() + value.size();
    } else if (same_name(line.substr(0, colon), "transfer-encoding")) {
      b.chunked = !same_name(value, "identity");
    }
  }
  return b;
}

net::unpack_result unpack_http(std::string_view s, std::size_t max_line) {
  const std::size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 > max_line) {
    return s.size() > max_line ? net::unpack_result::message(0, max_line + 1) : net::unpack_result::need_more();
  }
  const std::size_t head = end + 4;
  if (s.starts_with("GET ")) return net::unpack_result::message(0, head);
  const body_spec b = body_of(s.substr(0, head));
  if (b.chunked || b.bad_length || b.length > max_line) return net::unpack_result::message(0, head);  // refused
  if (s.size() < head + b.length) return net::unpack_result::need_more(0, head + b.length);
  return net::unpack_result::message(0, head + b.length);
}

request bad(std::string why) { return {request::kind::bad, {}, std::move(why)}; }

request parse_http(std::string_view m, std::size_t max_line) {
  const std::size_t end = m.find("\r\n\r\n");
  if (end == std::string_view::npos) return bad("HTTP request head too long (more than " + std::to_string(max_line) + " bytes)");
  // skynet's pattern: ^(%a+)%s+(.-)%s+HTTP/([%d%.]+)$, versions 1.0 and 1.1.
  const std::string_view first = m.substr(0, m.find("\r\n"));
  const std::size_t sp1 = first.find(' ');
  const std::size_t sp2 = first.rfind(' ');
  const std::string_view version = sp2 == std::string_view::npos ? std::string_view() : first.substr(sp2 + 1);
  if (sp1 == sp2 || (version != "HTTP/1.0" && version != "HTTP/1.1")) {
    return bad("bad HTTP request line (expected \"GET /verb/arg HTTP/1.1\")");
  }
  if (m.starts_with("GET ")) {
    std::string line(first.substr(sp1 + 1, sp2 - sp1 - 1));
    if (!line.empty()) line.erase(0, 1);  // url:sub(2)
    std::replace(line.begin(), line.end(), '/', ' ');
    return {request::kind::http, std::move(line), {}};
  }
  const body_spec b = body_of(m.substr(0, end + 4));
  if (b.chunked) return bad("a chunked HTTP body is not read: send Content-Length");
  if (b.bad_length) return bad("bad Content-Length");
  if (b.length > max_line) return bad("HTTP body too large (more than " + std::to_string(max_line) + " bytes)");
  return {request::kind::http, std::string(m.substr(end + 4, b.length)), {}};
}

}  // namespace

net::unpack_result unpack_request(bytes_view buffered, std::size_t max_line) {
  const std::string_view s = text_of(buffered);
  if (maybe_http(s)) return net::unpack_result::need_more();
  if (is_http(s)) return unpack_http(s, max_line);
  const std::size_t nl = s.substr(0, max_line + 1).find('\n');
  if (nl != std::string_view::npos) return net::unpack_result::message(0, nl + 1);
  return s.size() > max_line ? net::unpack_result::message(0, max_line + 1) : net::unpack_result::need_more();
}

request parse_request(bytes_view message, std::size_t max_line) {
  const std::string_view m = text_of(message);
  if (is_http(m)) return parse_http(m, max_line);
  if (m.empty() || m.back() != '\n') return bad("line too long (more than " + std::to_string(max_line) + " bytes)");
  return {request::kind::line, std::string(m.substr(0, m.size() - 1)), {}};
}

// --- the listener ------------------------------------------------------------------------

// The hooks and the lines being answered. Owner rules: the net holds it (as the handler)
// and so does each answering thread, so it outlives both; `n` and `p` are the node's and
// outlive stop(), after which no thread touches them.
struct debug_console::state final : net::handler, std::enable_shared_from_this<debug_console::state> {
  state(net::net& net, parts pp, listener_limits l) : n(net), p(std::move(pp)), limits(l) {}

  net::net& n;
  const parts p;
  const listener_limits limits;
  std::mutex mu;  // guards the members below
  std::set<net::conn_id> open;
  std::vector<std::future<void>> answering;  // one per line being answered
  bool stopped = false;
  std::string farewell;  // stop()'s, for a connection accepted while the listener closes

  void on_accept(net::conn_id id, const std::string& peer) override {
    std::lock_guard lock(mu);
    if (stopped) {
      if (!farewell.empty()) n.send(id, as_bytes(farewell + "\n"));
      n.close(id, "debug console stopped");
      return;
    }
    if (open.size() >= limits.max_connections) {
      n.send(id, as_bytes("too many console connections (at most " + std::to_string(limits.max_connections) +
                          "): closed\n"));
      n.close(id, "over the console's max_connections");
      return;
    }
    open.insert(id);
    n.send(id, as_bytes(std::string(greeting) + "\n"));
    logger("service")->info("debug console: {} connected (id {})", peer, id);
  }

  net::unpack_result unpack(net::conn_id, bytes_view buffered) override { return unpack_request(buffered, limits.max_line); }

  void on_message(net::conn_id id, bytes_view message) override {
    request r = parse_request(message, limits.max_line);
    if (r.what == request::kind::bad) {
      n.send(id, as_bytes(r.error + "\n<CMD Error>\n"));
      n.close(id, "debug console: " + r.error);
      return;
    }
    if (r.what == request::kind::line && r.line.empty()) return;  // skynet skips an empty line
    std::lock_guard lock(mu);
    if (stopped) return;
    n.pause_reading(id);  // the next line waits for this one's answer
    std::erase_if(answering, [](auto& f) { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    answering.push_back(std::async(std::launch::async, [self = shared_from_this(), id, r = std::move(r)] {
      self->reply(id, r);
    }));
  }

  void reply(net::conn_id id, const request& r) {
    n.send(id, as_bytes(render_text(run(p, r.line))));
    if (r.what == request::kind::http) {
      n.close(id, "debug console: HTTP request answered");
    } else {
      n.resume_reading(id);
    }
  }

  void on_close(net::conn_id id, const std::string& reason) override {
    std::lock_guard lock(mu);
    if (open.erase(id) != 0) logger("service")->info("debug console: connection {} closed ({})", id, reason);
  }

  static bytes_view as_bytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }
};

debug_console::debug_console(net::net& n, parts p, listener_limits limits)
    : net_(n), state_(std::make_shared<state>(n, std::move(p), limits)) {}

debug_console::~debug_console() { stop(""); }

namespace {
net::conn_options console_conn_options(const listener_limits& l) {
  net::conn_options o;
  o.max_message = 2 * l.max_line + 2;  // a POST's head and body
  o.idle_timeout = l.idle_timeout;
  o.read_chunk = 4096;
  return o;
}
}  // namespace

result<std::uint16_t, std::string> debug_console::listen(const std::string& host, std::uint16_t port) {
  auto id = net_.listen(host, port, state_, console_conn_options(state_->limits));
  if (!id) return unexpected(id.error());
  listener_ = *id;
  return net_.local_port(listener_);
}

result<std::uint16_t, std::string> debug_console::adopt(int fd) {
  auto id = net_.adopt_listener(fd, state_, console_conn_options(state_->limits));
  if (!id) return unexpected(id.error());
  listener_ = *id;
  return net_.local_port(listener_);
}

void debug_console::stop(const std::string& farewell) {
  std::vector<std::future<void>> answering;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopped) return;
    state_->stopped = true;
    state_->farewell = farewell;
    for (const auto id : state_->open) {
      if (!farewell.empty()) net_.send(id, state::as_bytes(farewell + "\n"));
      net_.close(id, "debug console stopped");
    }
    answering = std::move(state_->answering);
  }
  if (listener_ != 0) net_.close_listener(listener_);
  for (auto& f : answering) f.wait();
}

}  // namespace csk::console
