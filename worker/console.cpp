#include "worker/console.hpp"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/base/memory_budget.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/registry.hpp"
#include "tools/wire/plain_json.hpp"

namespace csk::console {
namespace {

using json = nlohmann::json;
using actor::values;

actor::handle_t resolve(actor::runtime& rt, const std::string& addr) {
  if (addr.empty() || (addr[0] != '.' && addr[0] != '@' && addr[0] != ':')) {
    throw std::runtime_error("bad address '" + addr + "' (.name, @name or :0000000a)");
  }
  const actor::handle_t h = addr[0] == ':' ? rt.resolve_address(actor::address(addr)) : rt.resolve(addr);
  if (h == 0 || !rt.alive(h)) throw std::runtime_error("no service " + addr);
  return h;
}

json info_json(const actor::service_info& i) {
  return {{"handle", actor::handle_string(i.handle)},
          {"names", i.names},
          {"mailbox", i.mailbox},
          {"messages", i.messages},
          {"busy_ms", static_cast<double>(i.busy_ns) / 1e6},
          {"cpu_ms", static_cast<double>(i.cpu_ns) / 1e6}};
}

values args_of(const std::vector<std::string>& w, std::size_t from) {
  values out;
  for (std::size_t i = from; i < w.size(); ++i) out.push_back(tools::parse_cli_arg(w[i]));
  return out;
}

json call_json(const parts& p, actor::handle_t h, values args) {
  auto r = p.rt->call(h, std::move(args), p.call_timeout).get();
  if (!r) throw std::runtime_error(r.error().text);
  json out = json::array();
  for (const auto& v : *r) out.push_back(json(tools::to_plain_json(v)));
  return out;
}

json memory() {
  std::ifstream in("/proc/self/status");
  json out = json::object();
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"VmRSS", "VmHWM", "VmSize"}) {
      const std::string k = std::string(key) + ":";
      if (line.rfind(k, 0) == 0) {
        std::size_t kb = 0;
        try {
          kb = std::stoul(line.substr(k.size()));
        } catch (const std::exception&) {
          continue;
        }
        out[std::string(key) + "_kb"] = kb;
      }
    }
  }
  return out;
}

json journal_json(const entity::directory::entry& e) {
  json out = {{"id", e.id}, {"type", e.type}, {"handle", actor::handle_string(e.handle)}};
  if (!e.journal) {
    out["journal"] = nullptr;
    return out;
  }
  const auto& j = *e.journal;
  out["journal"] = {{"entities", j.entities.load()},
                    {"bytes", j.used_bytes.load()},
                    {"capacity", j.ring_bytes.load()},
                    {"records_since_checkpoint", j.records_since_checkpoint.load()},
                    {"checkpoints", j.checkpoints.load()},
                    {"checkpointing", j.checkpointing.load()},
                    {"forced_checkpoints", j.forced_checkpoints.load()},
                    {"last_checkpoint_unix_ms", j.last_checkpoint_unix_ms.load()},
                    {"recovered_entities", j.recovered_entities.load()},
                    {"recovered_records", j.recovered_records.load()},
                    {"recovery_ms", static_cast<double>(j.recovery_us.load()) / 1000.0},
                    {"recovery_stopped_at_bad_record", j.recovery_stopped_at_bad_record.load()},
                    {"recovery_note", j.note()}};
  return out;
}

// The node's memory budget (runtime_options::budget), as /status shows it.
json budget_json(const memory_budget* b) {
  if (b == nullptr) return nullptr;
  return {{"held", b->held()}, {"high", b->high()}, {"low", b->low()}, {"waiting", b->waiting()}, {"pauses", b->pauses()}};
}

// Each accepted cluster connection: what is held for it and how often it paused.
json connections_json(const cluster::node& c, const net::net* n) {
  json out = json::array();
  for (const auto& i : c.inbound_peers()) {
    out.push_back({{"id", i.id},
                   {"peer", i.peer},
                   {"in_flight", i.in_flight},
                   {"pending_bytes", i.stats.pending_bytes},
                   {"queued_bytes", n != nullptr ? n->queued_bytes(i.id) : 0},
                   {"mailbox_pauses", i.stats.mailbox_pauses},
                   {"memory_pauses", i.stats.memory_pauses}});
  }
  return out;
}

json netstat_json(const parts& p) {
  const auto* n = p.rt->extension<net::net>();
  json cluster = nullptr;
  if (p.cluster != nullptr) {
    cluster = {{"inbound", p.cluster->inbound_ids()}, {"in_flight", p.cluster->inbound_in_flight()},
               {"port", p.cluster->port()}, {"connections", connections_json(*p.cluster, n)},
               {"overrun_closes", p.cluster->inbound_overrun_closes()}};
  }
  json gates = json::array();
  for (const auto& g : p.gates) gates.push_back(".gate." + g);
  json out = {{"cluster", cluster}, {"gates", gates}, {"budget", budget_json(p.rt->options().budget)}, {"net", nullptr}};
  if (n != nullptr) {
    const auto st = n->get_stats();
    out["net"] = {{"read_buffer_bytes", st.read_buffer_bytes},
                  {"read_buffers", st.read_buffers},
                  {"pooled_bytes", st.pooled_bytes}};
  }
  return out;
}

const char* const help_text =
    "list | stat | mem | info ADDR | call ADDR ARGS... | send ADDR ARGS... | ping ADDR | netstat | journal | "
    "checkpoint [ID] | help"
    " (the supervisor adds: generations, upgrade [--worker PATH] [--timeout S])";

}  // namespace

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string w;
    if (line[i] == '"') {
      ++i;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        w.push_back(line[i++]);
      }
      if (i < line.size()) ++i;  // the closing quote
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') w.push_back(line[i++]);
    }
    out.push_back(std::move(w));
  }
  return out;
}

std::string run(const parts& p, std::string_view line) {
  const auto w = split_words(line);
  if (w.empty()) throw std::runtime_error(std::string("empty line; verbs: ") + help_text);
  const std::string& verb = w[0];
  auto& rt = *p.rt;
  const auto need = [&](std::size_t n, const char* usage) {
    if (w.size() < n) throw std::runtime_error(std::string("usage: ") + usage);
  };
  json out;
  if (verb == "help") {
    out = help_text;
  } else if (verb == "list") {
    out = json::array();
    for (const auto& i : rt.services()) out.push_back(info_json(i));
  } else if (verb == "stat") {
    const auto s = rt.stats();
    out = {{"services", s.services},
           {"dispatched", s.dispatched},
           {"dropped", s.dropped},
           {"handler_errors", s.handler_errors},
           {"overload_warnings", s.overload_warnings},
           {"overload_refused", s.overload_refused},
           {"mailbox_pauses", s.mailbox_pauses},
           {"slow_warnings", s.slow_warnings},
           {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - p.started).count()},
           {"cluster_connections", p.cluster != nullptr ? p.cluster->inbound_connections() : 0}};
  } else if (verb == "mem") {
    out = memory();
  } else if (verb == "info") {
    need(2, "info ADDR");
    const auto h = resolve(rt, w[1]);
    for (const auto& i : rt.services()) {
      if (i.handle == h) out = info_json(i);
    }
  } else if (verb == "call") {
    need(2, "call ADDR ARGS...");
    out = call_json(p, resolve(rt, w[1]), args_of(w, 2));
  } else if (verb == "send") {
    need(2, "send ADDR ARGS...");
    if (!rt.send(resolve(rt, w[1]), args_of(w, 2))) throw std::runtime_error("send to " + w[1] + " failed");
    out = {{"sent", true}};
  } else if (verb == "ping") {
    need(2, "ping ADDR");
    const auto h = resolve(rt, w[1]);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = rt.call(h, values{"ping"}, p.call_timeout).get();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (!r && r.error().code == actor::call_errc::timeout) throw std::runtime_error(w[1] + ": no answer in time");
    out = {{"alive", true}, {"round_trip_us", us}};
  } else if (verb == "netstat") {
    out = netstat_json(p);
  } else if (verb == "journal") {
    out = json::array();
    if (p.entities != nullptr) {
      for (const auto& e : p.entities->list()) out.push_back(journal_json(e));
    }
  } else if (verb == "checkpoint") {
    out = json::object();
    if (p.entities != nullptr) {
      for (const auto& e : p.entities->list()) {
        if (w.size() > 1 && e.id != w[1]) continue;
        auto r = rt.call(e.handle, values{lua_value(entity::upgrade_key()), lua_value("checkpoint")}, p.call_timeout).get();
        if (!r) throw std::runtime_error("checkpoint of " + e.id + ": " + r.error().text);
        out[e.id] = !r->empty() && r->at(0).truthy();
      }
    }
    if (w.size() > 1 && out.empty()) throw std::runtime_error("no entity store " + w[1]);
  } else {
    throw std::runtime_error("unknown verb '" + verb + "'; verbs: " + help_text);
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace csk::console
