#include "worker/console_text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

namespace csk::console {
namespace {

using json = nlohmann::json;

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return lua_number(v);
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "nil";
  return "table";  // a table inside a table's value: Lua prints "table: 0x..."
}

// A table's entries as skynet's dump_list visits them: pairs(), sorted by tostring(key).
// An array's keys are its indexes from 1.
std::vector<std::pair<std::string, const json*>> sorted_entries(const json& t) {
  std::vector<std::pair<std::string, const json*>> out;
  if (t.is_object()) {
    for (auto it = t.begin(); it != t.end(); ++it) out.emplace_back(it.key(), &it.value());
  } else if (t.is_array()) {
    for (std::size_t i = 0; i < t.size(); ++i) out.emplace_back(std::to_string(i + 1), &t[i]);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

// debug_console.lua's format_table: "k:v" per key, sorted, joined by tabs.
std::string format_table(const json& t) {
  std::string out;
  for (const auto& [k, v] : sorted_entries(t)) {
    if (!out.empty()) out += '\t';
    out += k + ":" + scalar_text(*v);
  }
  return out;
}

std::string value_text(const json& v) { return v.is_object() || v.is_array() ? format_table(v) : scalar_text(v); }

std::string str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A count in an object (0 when missing, negative or not a number).
std::uint64_t num(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  const double d = it->get<double>();
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

// What `list` says a service is: its type and names ("-" for a type it was not spawned as).
std::string describe(const json& s) {
  std::string out = str(s, "type");
  if (out.empty()) out = "-";
  if (auto it = s.find("names"); it != s.end() && it->is_array()) {
    for (const auto& n : *it) out += " " + n.get<std::string>();
  }
  return out;
}

// --- one converter per verb: its value -> the table skynet would print ---------------

json list_table(const json& v) {
  json t = json::object();
  for (const auto& s : v) t[str(s, "handle")] = describe(s);
  return t;
}

json stat_table(const json& v) {
  json t = json::object();
  if (!v.is_object() || !v.contains("by_service")) return t;
  for (const auto& s : v["by_service"]) {
    // skynet counts CPU in whole microseconds (skynet.stat "cpu" = us / 1e6): so do we here.
    const double cpu_s = std::round(s.value("cpu_ms", 0.0) * 1000.0) / 1e6;
    t[str(s, "handle")] = {{"cpu", cpu_s}, {"message", num(s, "messages")}, {"mqlen", num(s, "mailbox")},
                           {"task", num(s, "tasks")}};
  }
  return t;
}

json mem_table(const json& v) {
  json t = json::object();
  const std::pair<const char*, const char*> rows[] = {
      {"VmRSS", "process resident"}, {"VmHWM", "process peak resident"}, {"VmSize", "process virtual"}};
  for (const auto& [key, what] : rows) {
    const std::string k = std::string(key) + "_kb";
    if (!v.contains(k)) continue;
    char line[96];
    std::snprintf(line, sizeof line, "%.2f Kb (%s)", v[k].get<double>(), what);
    t[key] = line;
  }
  return t;
}

json info_table(const json& v) {
  json t = v;
  if (t.is_object() && t.contains("names")) {
    std::string names;
    for (const auto& n : v["names"]) names += (names.empty() ? "" : " ") + n.get<std::string>();
    t["names"] = names;
  }
  return t;
}

json call_table(const json& v) {  // table.pack of the results: 1..n, then n
  json t = json::object();
  if (!v.is_array()) return t;
  for (std::size_t i = 0; i < v.size(); ++i) t[std::to_string(i + 1)] = v[i];
  t["n"] = v.size();
  return t;
}

json ping_table(const json& v) {  // skynet.now() ticks: centiseconds
  const double us = v.is_object() ? v.value("round_trip_us", 0.0) : 0.0;
  return std::to_string(static_cast<std::uint64_t>(us / 10000.0));
}

// skynet's netstat entry of an accepted cluster connection: bytes() fields left out at 0.
json connection_entry(const json& c) {
  json e = {{"id", num(c, "id")}, {"peer", str(c, "peer")}, {"type", "TCP"}, {"in_flight", num(c, "in_flight")},
            {"mailbox_pauses", num(c, "mailbox_pauses")}, {"memory_pauses", num(c, "memory_pauses")}};
  const std::pair<const char*, const char*> sizes[] = {
      {"read", "bytes_in"}, {"write", "bytes_out"}, {"wbuffer", "queued_bytes"}, {"pending", "pending_bytes"}};
  for (const auto& [key, from] : sizes) {
    if (const std::string b = skynet_bytes(num(c, from)); !b.empty()) e[key] = b;
  }
  return e;
}

// A connection to a node this one calls (the sender's), while it is up.
json peer_entry(const json& p) {
  json e = {{"type", "TCP"}, {"node", str(p, "node")}, {"waiting", num(p, "waiting")}};
  if (const std::string b = skynet_bytes(num(p, "bytes_in")); !b.empty()) e["read"] = b;
  if (const std::string b = skynet_bytes(num(p, "bytes_out")); !b.empty()) e["write"] = b;
  return e;
}

json netstat_table(const json& v) {
  std::vector<json> entries;
  const json& c = v.is_object() && v.contains("cluster") ? v["cluster"] : json();
  if (c.is_object()) {
    entries.push_back({{"type", "LISTEN"}, {"name", "cluster"}, {"port", num(c, "port")},
                       {"accept", c.contains("inbound") ? c["inbound"].size() : 0}});
    if (c.contains("connections")) {
      for (const auto& conn : c["connections"]) entries.push_back(connection_entry(conn));
    }
    if (c.contains("peers")) {
      for (const auto& peer : c["peers"]) {
        if (peer.value("connected", false)) entries.push_back(peer_entry(peer));
      }
    }
  }
  if (v.is_object() && v.contains("gate_stats")) {
    for (const auto& g : v["gate_stats"]) {
      json e = {{"type", "LISTEN"}, {"name", str(g, "name")}, {"address", str(g, "handle")},
                {"accept", num(g, "accepted")}, {"open", num(g, "open")}};
      if (const std::string b = skynet_bytes(num(g, "held_bytes")); !b.empty()) e["held"] = b;
      entries.push_back(std::move(e));
    }
  }
  json t = json::object();
  for (std::size_t i = 0; i < entries.size(); ++i) t[std::to_string(i + 1)] = std::move(entries[i]);
  for (const char* key : {"budget", "net"}) {
    if (v.is_object() && v.contains(key) && v[key].is_object()) t[key] = v[key];
  }
  return t;
}

json kill_table(const json& v) { return json{{str(v, "handle"), str(v, "description")}}; }

json start_table(const json& v) { return json{{str(v, "handle"), str(v, "type")}}; }

json service_table(const json& v) {
  json t = json::object();
  for (auto it = v.begin(); v.is_object() && it != v.end(); ++it) {
    std::string handles;
    for (const auto& h : it.value()) handles += (handles.empty() ? "" : " ") + h.get<std::string>();
    t[it.key()] = handles;
  }
  return t;
}

json dumpheap_table(const json& v) { return v.is_object() && v.contains("file") ? v["file"] : json(); }

json profactive_table(const json& v) {  // skynet's words, spelling included
  const bool active = v.is_object() && v.value("active", false);
  return std::string("heap profilling is ") + (active ? "active" : "deactive");
}

json journal_table(const json& v) {
  json t = json::object();
  for (const auto& s : v) {
    const json& j = s.contains("journal") ? s["journal"] : json();
    t[str(s, "id")] = j.is_object() ? j : json("no journal");
  }
  return t;
}

json generations_table(const json& v) {
  json t = json::object();
  for (const auto& w : v) {
    json row = w;
    row.erase("generation");
    t[std::to_string(w.value("generation", 0))] = std::move(row);
  }
  return t;
}

json upgrade_table(const json& v) {
  if (!v.is_object() || !v.value("started", false)) return v;
  return "upgrade started: gen " + std::to_string(v.value("from_generation", 0)) + " -> gen " +
         std::to_string(v.value("to_generation", 0)) + "; `generations` shows when it serves";
}

using converter = json (*)(const json&);

const std::map<std::string_view, converter>& converters() {
  static const std::map<std::string_view, converter> m = {
      {"list", list_table},         {"stat", stat_table},       {"mem", mem_table},
      {"gc", mem_table},            {"info", info_table},       {"call", call_table},
      {"ping", ping_table},         {"netstat", netstat_table}, {"kill", kill_table},
      {"start", start_table},       {"service", service_table}, {"dumpheap", dumpheap_table},
      {"profactive", profactive_table}, {"journal", journal_table}, {"generations", generations_table},
      {"upgrade", upgrade_table},
  };
  return m;
}

}  // namespace

std::string lua_number(const nlohmann::json& number) {
  if (number.is_number_integer()) return std::to_string(number.get<std::int64_t>());
  if (number.is_number_unsigned()) return std::to_string(number.get<std::uint64_t>());
  const double d = number.get<double>();
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (std::isnan(d)) return std::signbit(d) ? "-nan" : "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.14g", d);
  std::string out = buf;
  if (out.find_first_not_of("-0123456789") == std::string::npos) out += ".0";  // Lua 5.4: a float says so
  return out;
}

std::string skynet_bytes(std::uint64_t n) {
  if (n == 0) return "";
  if (n < 1024) return std::to_string(n);
  if (n < 1024 * 1024) return lua_number(static_cast<double>(n) / 1024.0) + "K";
  return lua_number(static_cast<double>(n) / (1024.0 * 1024.0)) + "M";
}

std::string dump_list(const nlohmann::json& table) {
  if (table.is_null()) return "";
  if (!table.is_object() && !table.is_array()) return scalar_text(table) + "\n";
  std::string out;
  for (const auto& [k, v] : sorted_entries(table)) out += k + "\t" + value_text(*v) + "\n";
  return out;
}

nlohmann::json skynet_table(std::string_view verb, const nlohmann::json& value) {
  if (value.is_null()) return value;
  const auto& m = converters();
  auto it = m.find(verb);
  return it != m.end() ? it->second(value) : value;
}

std::string render_text(const answer& a) {
  if (a.ok) return dump_list(skynet_table(a.verb, a.value)) + "<CMD OK>\n";
  // skynet prints the (nil) error of an unknown verb too: an empty line.
  return a.error + "\n" + (a.error == invalid_command ? "\n" : "") + "<CMD Error>\n";
}

std::string render_json(const answer& a) {
  const json out = a.ok ? json{{"ok", true}, {"answer", a.value}} : json{{"ok", false}, {"error", a.error}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

answer from_reply(std::string verb, const nlohmann::json& reply) {
  answer a;
  a.verb = std::move(verb);
  a.ok = reply.is_object() && reply.value("ok", false);
  if (a.ok) {
    a.value = reply.contains("answer") ? reply["answer"] : json();
  } else if (reply.is_object() && reply.contains("error") && reply["error"].is_string()) {
    a.error = reply["error"].get<std::string>();
  } else {
    a.error = "unexpected reply: " + reply.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return a;
}

}  // namespace csk::console
