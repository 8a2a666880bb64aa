#include "tools/wire/dissect.hpp"

#include <cstdio>
#include <map>

#include "common/wire/cluster_assembler.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"

namespace csk::tools {
namespace {

constexpr std::size_t max_payload_hex = 8192;

std::string hex_type(std::uint8_t t) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", t);
  return buf;
}

std::string address_hex(std::uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", a);
  return buf;
}

json request_frame_json(const wire::request_frame& f, std::uint64_t offset, std::size_t len) {
  json j;
  j["offset"] = offset;
  j["frame_len"] = len;
  j["type"] = hex_type(static_cast<std::uint8_t>(f.type));
  j["kind"] = wire::request_type_name(f.type);
  if (f.type == wire::request_type::trace) {
    j["tag"] = std::string(as_chars(f.data));
    return j;
  }
  if (f.by_name()) {
    j["name"] = std::string(f.name);
    j["name_len"] = f.name.size();
  } else if (f.type != wire::request_type::mpart && f.type != wire::request_type::mpart_end) {
    j["address"] = f.address;
    j["address_hex"] = address_hex(f.address);
  }
  j["session"] = f.session;
  if (f.is_multipart_header()) {
    j["total_len"] = f.total;
  } else {
    j["payload_len"] = f.data.size();
  }
  if (f.type != wire::request_type::mpart && f.type != wire::request_type::mpart_end) j["push"] = f.push();
  return j;
}

json response_frame_json(const wire::response_frame& f, std::uint64_t offset, std::size_t len) {
  json j;
  j["offset"] = offset;
  j["frame_len"] = len;
  j["session"] = f.session;
  j["type"] = static_cast<int>(f.type);
  j["kind"] = wire::response_type_name(f.type);
  if (f.type == wire::response_type::multi_begin) {
    j["total_len"] = f.total;
  } else {
    j["payload_len"] = f.data.size();
  }
  return j;
}

// Adds "values" (or reports the payload as malformed).
std::optional<std::string> add_values(json& msg, const byte_buffer& payload) {
  if (payload.size() <= max_payload_hex) msg["payload_hex"] = to_hex(payload);
  auto values = seri::unpack(payload);
  if (!values) return "payload is not valid seri data: " + values.error().message();
  msg["values"] = values_to_json(*values);
  return std::nullopt;
}

// Frames of messages still incomplete: the trace frame waiting for its request,
// and each multi-part session's frames so far.
struct frame_log {
  json trace = json::array();
  std::map<std::uint32_t, json> by_session;
};

}  // namespace

stream_dissection dissect_stream(bytes_view in, direction dir) {
  stream_dissection out;
  wire::frame_reader reader;
  reader.feed(in);
  wire::request_assembler requests;
  wire::response_assembler responses;
  frame_log log;
  auto fail = [&](std::uint64_t at, std::string what) {
    out.error = dissect_error{static_cast<std::size_t>(at), std::move(what)};
  };

  while (auto body = reader.next()) {
    const std::uint64_t at = reader.last_frame_offset();
    if (dir == direction::request) {
      auto f = wire::decode_request_frame(*body);
      if (!f) {
        fail(at, "request frame: " + f.error().message());
        return out;
      }
      json fj = request_frame_json(*f, at, body->size());
      json frames = json::array();
      if (f->type == wire::request_type::trace) {
        log.trace = json::array({fj});
      } else if (f->is_multipart_header()) {
        json& slot = log.by_session[f->session];
        slot = std::exchange(log.trace, json::array());
        slot.push_back(fj);
      } else if (f->type == wire::request_type::mpart || f->type == wire::request_type::mpart_end) {
        log.by_session[f->session].push_back(fj);
        if (f->type == wire::request_type::mpart_end) {
          frames = std::move(log.by_session[f->session]);
          log.by_session.erase(f->session);
        }
      } else {
        frames = std::exchange(log.trace, json::array());
        frames.push_back(fj);
      }
      auto ev = requests.push(*f);
      using kind = wire::request_event::kind;
      if (ev.what == kind::none) continue;
      if (ev.what != kind::request) {
        std::string what = "session " + std::to_string(ev.session) + ": " + ev.reason;
        if (!ev.error_text.empty()) what += " (skynet answers \"" + std::string(ev.error_text) + "\")";
        fail(at, what);
        return out;
      }
      const auto& m = ev.message;
      json msg;
      msg["frames"] = std::move(frames);
      msg["session"] = m.session;
      msg["push"] = m.push;
      if (m.to.by_name) {
        msg["name"] = m.to.name;
      } else {
        msg["address"] = m.to.address;
      }
      if (m.multipart) msg["multipart_total_len"] = m.payload.size();
      if (m.has_trace) msg["trace_tag"] = m.trace_tag;
      msg["payload_len"] = m.payload.size();
      if (auto e = add_values(msg, m.payload)) {
        fail(at, "session " + std::to_string(m.session) + ": " + *e);
        return out;
      }
      out.messages.push_back(std::move(msg));
    } else {
      auto f = wire::decode_response_frame(*body);
      if (!f) {
        fail(at, "response frame: " + f.error().message());
        return out;
      }
      json fj = response_frame_json(*f, at, body->size());
      json& slot = log.by_session[f->session];
      slot.push_back(fj);
      auto ev = responses.push(*f);
      using kind = wire::response_event::kind;
      if (ev.what == kind::none) continue;
      if (ev.what != kind::response) {
        fail(at, "session " + std::to_string(f->session) + ": " + ev.reason);
        return out;
      }
      const auto& m = ev.message;
      json msg;
      msg["frames"] = std::move(slot);
      log.by_session.erase(f->session);
      msg["session"] = m.session;
      msg["ok"] = m.ok;
      msg["payload_len"] = m.payload.size();
      if (m.ok) {
        if (auto e = add_values(msg, m.payload)) {
          fail(at, "session " + std::to_string(m.session) + ": " + *e);
          return out;
        }
      } else {
        msg["error_text"] = std::string(m.payload.begin(), m.payload.end());
      }
      out.messages.push_back(std::move(msg));
    }
  }
  const std::size_t left = reader.buffered();
  if (left > 0) {
    fail(in.size() - left, "truncated frame: " + std::to_string(left) + " bytes left over");
  } else if (!log.by_session.empty()) {
    fail(in.size(), "stream ends inside the multi-part message of session " +
                        std::to_string(log.by_session.begin()->first));
  } else if (log.trace.size() > 0) {
    fail(in.size(), "stream ends after a trace frame with no request");
  }
  return out;
}

result<json, dissect_error> dissect_seri(bytes_view in) {
  auto values = seri::unpack(in);
  if (!values) return unexpected(dissect_error{values.error().offset, values.error().message()});
  json j;
  j["values"] = values_to_json(*values);
  return j;
}

namespace {

result<byte_buffer, std::string> payload_of(const json& msg) {
  byte_buffer payload;
  if (msg.contains("values")) {
    auto values = values_from_json(msg["values"]);
    if (!values) return unexpected(values.error());
    auto r = seri::pack(*values, payload);
    if (!r) return unexpected("values: " + r.error().message());
  } else if (msg.contains("payload_hex")) {
    if (!msg["payload_hex"].is_string() || !from_hex(msg["payload_hex"].get<std::string>(), payload)) {
      return unexpected(std::string("payload_hex: not a hex string"));
    }
  }
  return payload;
}

result<std::uint32_t, std::string> u32_field(const json& msg, const char* key, bool required) {
  if (!msg.contains(key)) {
    if (required) return unexpected(std::string("missing \"") + key + "\"");
    return 0u;
  }
  const auto& v = msg[key];
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 0xffffffffu) {
    return unexpected(std::string("\"") + key + "\" must be an integer in 0..2^32-1");
  }
  return v.get<std::uint32_t>();
}

}  // namespace

result<void, std::string> encode_message(const json& msg, direction dir, byte_buffer& out) {
  if (!msg.is_object()) return unexpected(std::string("message must be a JSON object"));
  auto session = u32_field(msg, "session", dir == direction::response);
  if (!session) return unexpected(session.error());
  auto payload = payload_of(msg);
  if (!payload) return unexpected(payload.error());
  if (dir == direction::response) {
    const bool ok = !msg.contains("error_text") && msg.value("ok", true);
    if (!ok) {
      if (!msg.contains("error_text") || !msg["error_text"].is_string()) {
        return unexpected(std::string("an error response needs \"error_text\""));
      }
      *payload = byte_buffer();
      const auto text = msg["error_text"].get<std::string>();
      payload->assign(text.begin(), text.end());
    }
    auto r = wire::encode_response(*session, ok, *payload, out);
    if (!r) return unexpected(r.error().message());
    return {};
  }
  wire::target to;
  if (msg.contains("name")) {
    if (!msg["name"].is_string()) return unexpected(std::string("\"name\" must be a string"));
    to = wire::target::named(msg["name"].get<std::string>());
  } else {
    auto a = u32_field(msg, "address", true);
    if (!a) return unexpected(std::string(a.error()) + " (or \"name\")");
    to = wire::target::handle(*a);
  }
  const bool push = msg.value("push", false);
  if (msg.contains("trace_tag")) {
    if (!msg["trace_tag"].is_string()) return unexpected(std::string("\"trace_tag\" must be a string"));
    auto r = wire::encode_trace(msg["trace_tag"].get<std::string>(), out);
    if (!r) return unexpected(r.error().message());
  }
  auto r = wire::encode_request(to, *session, push, *payload, out);
  if (!r) return unexpected(r.error().message());
  return {};
}

result<void, std::string> encode_seri(const json& j, byte_buffer& out) {
  const json& arr = j.is_object() && j.contains("values") ? j["values"] : j;
  auto values = values_from_json(arr);
  if (!values) return unexpected(values.error());
  auto r = seri::pack(*values, out);
  if (!r) return unexpected(r.error().message());
  return {};
}

}  // namespace csk::tools
