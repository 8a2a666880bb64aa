#include "worker/console.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "common/base/memory_budget.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/registry.hpp"
#include "services/gate/directory.hpp"
#include "services/gate/gate.hpp"
#include "tools/wire/plain_json.hpp"
#include "worker/message_log.hpp"

namespace csk::console {
namespace {

using json = nlohmann::json;
using actor::values;
using words = std::vector<std::string>;

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

// skynet's adjust_address, plus our "@name": ".name", "@name", ":0000000a", or hex digits
// (the node's harbor added).
actor::handle_t resolve(actor::runtime& rt, const std::string& addr) {
  actor::handle_t h = 0;
  if (!addr.empty() && (addr[0] == '.' || addr[0] == '@')) {
    h = rt.resolve(addr);
  } else if (!addr.empty() && addr[0] == ':') {
    h = rt.resolve_address(actor::address(addr));
  } else {
    char* end = nullptr;
    const unsigned long v = std::strtoul(addr.c_str(), &end, 16);
    if (addr.empty() || *end != '\0' || v > actor::handle_mask) fail("bad address '" + addr + "' (.name, @name or :0000000a)");
    h = static_cast<actor::handle_t>(v) | (rt.options().harbor << actor::harbor_shift);
  }
  if (h == 0 || !rt.alive(h)) fail("no service " + addr);
  return h;
}

void need(const words& w, std::size_t n, const char* usage) {
  if (w.size() < n) fail(std::string("usage: ") + usage);
}

json service_json(const actor::service_info& i) {
  return {{"handle", actor::handle_string(i.handle)},
          {"type", i.type},
          {"names", i.names},
          {"mailbox", i.mailbox},
          {"messages", i.messages},
          {"busy_ms", static_cast<double>(i.busy_ns) / 1e6},
          {"cpu_ms", static_cast<double>(i.cpu_ns) / 1e6},
          {"tasks", i.tasks}};
}

std::optional<actor::service_info> info_of(const actor::runtime& rt, actor::handle_t h) {
  for (auto& i : rt.services()) {
    if (i.handle == h) return std::move(i);
  }
  return std::nullopt;
}

// Arguments from words[from]: JSON if they parse, else strings; skynet's commas dropped.
values args_of(const words& w, std::size_t from) {
  values out;
  for (std::size_t i = from; i < w.size(); ++i) {
    std::string_view a = w[i];
    if (a == ",") continue;
    if (a.size() > 1 && a.back() == ',') a.remove_suffix(1);
    out.push_back(tools::parse_cli_arg(a));
  }
  return out;
}

// /proc/self/status's VmRSS, VmHWM, VmSize in kB.
json process_memory() {
  std::ifstream in("/proc/self/status");
  json out = json::object();
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"VmRSS", "VmHWM", "VmSize"}) {
      const std::string k = std::string(key) + ":";
      if (line.rfind(k, 0) != 0) continue;
      out[std::string(key) + "_kb"] = std::strtoull(line.c_str() + k.size(), nullptr, 10);
    }
  }
  return out;
}

// --- gperftools, found at run time (the worker programs link it outside sanitizer builds;
// the admin endpoint's /debug/pprof uses the same heap profiler) -----------------------

struct heap_profiler {
  void (*start)(const char*) = nullptr;
  void (*stop)() = nullptr;
  int (*running)() = nullptr;
  char* (*profile)() = nullptr;
  int (*numeric)(const char*, std::size_t*) = nullptr;  // MallocExtension_GetNumericProperty

  static const heap_profiler& get() {
    static const heap_profiler h = [] {
      heap_profiler t;
      const auto sym = [](const char* name) { return ::dlsym(RTLD_DEFAULT, name); };
      t.start = reinterpret_cast<void (*)(const char*)>(sym("HeapProfilerStart"));
      t.stop = reinterpret_cast<void (*)()>(sym("HeapProfilerStop"));
      t.running = reinterpret_cast<int (*)()>(sym("IsHeapProfilerRunning"));
      t.profile = reinterpret_cast<char* (*)()>(sym("GetHeapProfile"));
      t.numeric = reinterpret_cast<int (*)(const char*, std::size_t*)>(sym("MallocExtension_GetNumericProperty"));
      return t;
    }();
    return h;
  }
  bool linked() const { return start != nullptr && stop != nullptr && running != nullptr && profile != nullptr; }
};

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): nobody sets it while we run
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

// --- the verbs -----------------------------------------------------------------------

json do_help(const parts&, const words&) { return help_table(); }

json do_list(const parts& p, const words&) {
  json out = json::array();
  for (const auto& i : p.rt->services()) out.push_back(service_json(i));
  return out;
}

json do_stat(const parts& p, const words&) {
  const auto s = p.rt->stats();
  json out = {{"services", s.services},
              {"dispatched", s.dispatched},
              {"dropped", s.dropped},
              {"handler_errors", s.handler_errors},
              {"overload_warnings", s.overload_warnings},
              {"overload_refused", s.overload_refused},
              {"mailbox_pauses", s.mailbox_pauses},
              {"slow_warnings", s.slow_warnings},
              {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - p.started).count()},
              {"cluster_connections", p.cluster != nullptr ? p.cluster->inbound_connections() : 0}};
  out["by_service"] = do_list(p, {});
  return out;
}

json do_mem(const parts&, const words&) { return process_memory(); }

json do_gc(const parts& p, const words& w) {
  if (p.release_memory) p.release_memory();
  return do_mem(p, w);
}

/// The allocator's bytes in use: tcmalloc's figure when it is linked, a sanitizer's own
/// allocator's in ASan/TSan builds (their mallinfo2 answers zeros), else glibc's.
std::size_t allocated_bytes() {
  std::size_t total = 0;
  const auto& h = heap_profiler::get();
  if (h.numeric != nullptr && h.numeric("generic.current_allocated_bytes", &total) != 0) return total;
  using sanitizer_fn = std::size_t (*)();
  if (auto* f = reinterpret_cast<sanitizer_fn>(::dlsym(RTLD_DEFAULT, "__sanitizer_get_current_allocated_bytes"))) {
    return f();
  }
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

json do_cmem(const parts&, const words&) { return {{"block", 0}, {"total", allocated_bytes()}}; }

json do_info(const parts& p, const words& w) {
  need(w, 2, "info ADDR");
  auto i = info_of(*p.rt, resolve(*p.rt, w[1]));
  if (!i) fail("no service " + w[1]);
  return service_json(*i);
}

json do_call(const parts& p, const words& w) {
  need(w, 2, "call ADDR ARGS...");
  auto r = p.rt->call(resolve(*p.rt, w[1]), args_of(w, 2), p.call_timeout).get();
  if (!r) fail(r.error().text);
  json out = json::array();
  for (const auto& v : *r) out.push_back(json(tools::to_plain_json(v)));
  return out;
}

json do_send(const parts& p, const words& w) {
  need(w, 2, "send ADDR ARGS...");
  if (!p.rt->send(resolve(*p.rt, w[1]), args_of(w, 2))) fail("send to " + w[1] + " failed");
  return nullptr;
}

json do_ping(const parts& p, const words& w) {
  need(w, 2, "ping ADDR");
  const auto h = resolve(*p.rt, w[1]);
  const auto t0 = std::chrono::steady_clock::now();
  // Any reply, even an error, proves it alive and not stuck.
  auto r = p.rt->call(h, values{"ping"}, p.call_timeout).get();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  if (!r && r.error().code == actor::call_errc::timeout) fail(w[1] + ": no answer in time");
  return {{"alive", true}, {"round_trip_us", us}};
}

// kill and exit: skynet's kill removes the service at once, exit asks it to skynet.exit();
// ours both retire it before its next message (its stop() runs).
json do_kill(const parts& p, const words& w) {
  need(w, 2, std::string(w[0] == "exit" ? "exit ADDR" : "kill ADDR").c_str());
  const auto h = resolve(*p.rt, w[1]);
  auto i = info_of(*p.rt, h);
  if (!p.rt->kill(h) || !i) fail("no service " + w[1]);
  if (w[0] == "exit") return nullptr;
  json s = service_json(*i);
  std::string description = i->type.empty() ? "-" : i->type;
  for (const auto& n : i->names) description += " " + n;
  return {{"handle", s["handle"]}, {"description", description}};
}

// skynet's logon/logoff: the service's messages to <logpath>/%08x.log (worker/message_log).
json do_logon(const parts& p, const words& w) {
  need(w, 2, "logon ADDR");
  const auto h = resolve(*p.rt, w[1]);
  std::string dir = p.log_dir;
  if (p.env != nullptr) dir = p.env->get("logpath").value_or(dir);
  auto log = open_message_log(dir, h, p.started);
  if (!log) fail("logon: " + log.error());
  if (!p.rt->set_message_log(h, std::move(*log))) fail("no service " + w[1]);
  return nullptr;
}

json do_logoff(const parts& p, const words& w) {
  need(w, 2, "logoff ADDR");
  if (!p.rt->set_message_log(resolve(*p.rt, w[1]), nullptr)) fail("no service " + w[1]);
  return nullptr;
}

// skynet's `trace ADDR [proto] [on|off]` (debug_console.lua + debug.lua TRACELOG): no flag
// is the default (follow a caller's tag), "on"/"true" traces every request, anything
// else forces tracing off. A C++ service has one protocol, skynet's "lua".
json do_trace(const parts& p, const words& w) {
  need(w, 2, "trace ADDR [proto] [on|off]");
  const auto h = resolve(*p.rt, w[1]);
  std::optional<std::string> flag;
  if (w.size() >= 4) {
    if (w[2] != "lua") fail("trace: no protocol " + w[2] + " in a C++ service (only lua)");
    flag = w[3];
  } else if (w.size() == 3 && (w[2] == "on" || w[2] == "off")) {
    flag = w[2];
  } else if (w.size() == 3 && w[2] != "lua") {
    fail("trace: no protocol " + w[2] + " in a C++ service (only lua)");
  }
  using mode = actor::runtime::trace_mode;
  const mode m = !flag ? mode::follow : (*flag == "on" || *flag == "true") ? mode::always : mode::never;
  if (!p.rt->set_trace_mode(h, m)) fail("no service " + w[1]);
  return nullptr;
}

// skynet's `signal ADDR [sig]` (sig 0 when absent): service::signal on this thread.
json do_signal(const parts& p, const words& w) {
  need(w, 2, "signal ADDR [sig]");
  const auto h = resolve(*p.rt, w[1]);
  int sig = 0;
  if (w.size() >= 3) {
    char* end = nullptr;
    const long v = std::strtol(w[2].c_str(), &end, 10);
    if (w[2].empty() || *end != '\0' || v < INT_MIN || v > INT_MAX) fail("signal: bad signal '" + w[2] + "' (a number)");
    sig = static_cast<int>(v);
  }
  if (!p.rt->signal(h, sig)) fail("no service " + w[1]);
  return nullptr;
}

json do_start(const parts& p, const words& w) {
  need(w, 2, "start TYPE ARGS...");
  auto h = p.rt->spawn(w[1], args_of(w, 2));
  if (!h) fail("start " + w[1] + ": " + h.error());
  return {{"handle", actor::handle_string(*h)}, {"type", w[1]}};
}

json do_service(const parts& p, const words&) {
  json out = json::object();
  for (const auto& i : p.rt->services()) {
    for (const auto& n : i.names) out[n].push_back(actor::handle_string(i.handle));
  }
  return out;
}

json do_task(const parts& p, const words& w) {
  need(w, 2, "task ADDR");
  auto i = info_of(*p.rt, resolve(*p.rt, w[1]));
  if (!i) fail("no service " + w[1]);
  return {{"handle", actor::handle_string(i->handle)}, {"tasks", i->tasks}};
}

json do_getenv(const parts& p, const words& w) {
  need(w, 2, "getenv NAME");
  if (p.env == nullptr) fail("getenv: no env table in this node");
  auto v = p.env->get(w[1]);
  return {{w[1], v ? json(*v) : json()}};
}

json do_setenv(const parts& p, const words& w) {
  need(w, 3, "setenv NAME VALUE");
  if (p.env == nullptr) fail("setenv: no env table in this node");
  if (!p.env->set(w[1], w[2])) fail("Can't setenv exist key : " + w[1]);  // skynet.setenv's words
  return nullptr;
}

json do_profactive(const parts&, const words& w) {
  const auto& h = heap_profiler::get();
  if (w.size() > 1) {
    if (w[1] != "on" && w[1] != "off") fail("usage: profactive [on|off]");
    if (!h.linked()) fail("profactive: this worker program has no heap profiler (gperftools' tcmalloc; not in sanitizer builds)");
    const bool on = w[1] == "on";
    if (on && h.running() == 0) h.start((temp_dir() + "/cppskynet-heap." + std::to_string(::getpid())).c_str());
    if (!on && h.running() != 0) h.stop();
  }
  return {{"active", h.linked() && h.running() != 0}};
}

json do_dumpheap(const parts&, const words&) {
  const auto& h = heap_profiler::get();
  if (!h.linked()) fail("dumpheap: this worker program has no heap profiler (gperftools' tcmalloc; not in sanitizer builds)");
  if (h.running() == 0) fail("dumpheap: the heap profiler is not active (profactive on starts it)");
  static std::atomic<int> seq{0};
  const std::string path = temp_dir() + "/cppskynet-heap." + std::to_string(::getpid()) + ".console-" +
                           std::to_string(++seq) + ".heap";
  char* text = h.profile();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (text != nullptr) out << text;
  std::free(text);
  if (!out) fail("dumpheap: cannot write " + path);
  return {{"file", path}};
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

json do_journal(const parts& p, const words&) {
  json out = json::array();
  if (p.entities != nullptr) {
    for (const auto& e : p.entities->list()) out.push_back(journal_json(e));
  }
  return out;
}

json do_checkpoint(const parts& p, const words& w) {
  json out = json::object();
  if (p.entities != nullptr) {
    for (const auto& e : p.entities->list()) {
      if (w.size() > 1 && e.id != w[1]) continue;
      auto r = p.rt->call(e.handle, values{lua_value(entity::upgrade_key()), lua_value("checkpoint")}, p.call_timeout).get();
      if (!r) fail("checkpoint of " + e.id + ": " + r.error().text);
      out[e.id] = !r->empty() && r->at(0).truthy();
    }
  }
  if (w.size() > 1 && out.empty()) fail("no entity store " + w[1]);
  return out;
}

// The node's memory budget (runtime_options::budget), as /status shows it.
json budget_json(const memory_budget* b) {
  if (b == nullptr) return nullptr;
  return {{"held", b->held()}, {"high", b->high()}, {"low", b->low()}, {"waiting", b->waiting()}, {"pauses", b->pauses()}};
}

// Each accepted cluster connection: its traffic, what is held for it, how often it paused.
json connections_json(const cluster::node& c, const net::net* n) {
  json out = json::array();
  for (const auto& i : c.inbound_peers()) {
    out.push_back({{"id", i.id},
                   {"peer", i.peer},
                   {"in_flight", i.in_flight},
                   {"bytes_in", i.stats.bytes_in},
                   {"bytes_out", i.stats.bytes_out},
                   {"pending_bytes", i.stats.pending_bytes},
                   {"queued_bytes", n != nullptr ? n->queued_bytes(i.id) : 0},
                   {"mailbox_pauses", i.stats.mailbox_pauses},
                   {"memory_pauses", i.stats.memory_pauses}});
  }
  return out;
}

// Each node this one has called: its connection's traffic and the calls waiting on it.
json peers_json(const cluster::node& c) {
  json out = json::array();
  for (const auto& p : c.peers()) {
    out.push_back({{"node", p.name},
                   {"connected", p.connected},
                   {"waiting", p.pending},
                   {"calls", p.stats.calls},
                   {"failed_calls", p.stats.failed_calls},
                   {"bytes_in", p.stats.bytes_in},
                   {"bytes_out", p.stats.bytes_out}});
  }
  return out;
}

json gate_stats_json(const actor::runtime& rt) {
  json out = json::array();
  const auto* gates = rt.extension<gate::directory>();
  if (gates == nullptr) return out;
  const auto services = rt.services();
  gates->each([&](actor::handle_t h, const gate::gate_service& g) {
    const auto st = g.stats();
    std::string name;
    for (const auto& s : services) {
      if (s.handle == h && !s.names.empty()) name = s.names.front();
    }
    out.push_back({{"name", name}, {"handle", actor::handle_string(h)}, {"accepted", st.accepted}, {"open", st.open},
                   {"held_bytes", st.held_bytes}, {"mailbox_pauses", st.mailbox_pauses}, {"memory_pauses", st.memory_pauses}});
  });
  return out;
}

json do_netstat(const parts& p, const words&) {
  const auto* n = p.rt->extension<net::net>();
  json cluster = nullptr;
  if (p.cluster != nullptr) {
    cluster = {{"inbound", p.cluster->inbound_ids()}, {"in_flight", p.cluster->inbound_in_flight()},
               {"port", p.cluster->port()}, {"connections", connections_json(*p.cluster, n)},
               {"overrun_closes", p.cluster->inbound_overrun_closes()}, {"peers", peers_json(*p.cluster)}};
  }
  json gates = json::array();
  for (const auto& g : p.gates) gates.push_back(".gate." + g);
  json out = {{"cluster", cluster}, {"gates", gates}, {"gate_stats", gate_stats_json(*p.rt)},
              {"budget", budget_json(p.rt->options().budget)}, {"net", nullptr}};
  if (n != nullptr) {
    const auto st = n->get_stats();
    out["net"] = {{"read_buffer_bytes", st.read_buffer_bytes}, {"read_buffers", st.read_buffers},
                  {"pooled_bytes", st.pooled_bytes}};
  }
  return out;
}

// generations, upgrade: the supervisor's; from the worker's listener, asked over its
// control socket (parts::supervisor).
json do_supervisor(const parts& p, const words& w) {
  if (!p.supervisor) fail(w[0] + ": no supervisor (a standalone node)");
  std::string line;
  for (const auto& word : w) line += (line.empty() ? "" : " ") + word;
  auto reply = p.supervisor(line);
  if (!reply) fail(w[0] + ": " + reply.error());
  answer a = from_reply(w[0], *reply);
  if (!a.ok) fail(a.error);
  return a.value;
}

using verb_fn = json (*)(const parts&, const words&);

struct verb {
  const char* name;
  const char* help;
  verb_fn fn;          ///< nullptr: not in cppskynet, `why` says so
  const char* why = nullptr;
};

// Every verb, in skynet's help order of names (help sorts them anyway).
const std::vector<verb>& verbs() {
  static const std::vector<verb> v = {
      {"call", "call address ...", do_call},
      {"checkpoint", "checkpoint [id] : start a checkpoint of an entity store (every store without id)", do_checkpoint},
      {"clearcache", "clear lua code cache", nullptr, "clearcache: no Lua code cache in cppskynet"},
      {"cmem", "Show C memory info (total: the allocator's bytes in use; block: not counted, 0)", do_cmem},
      {"dbgcmd", "run address debug command", nullptr, "dbgcmd: C++ services have no debug protocol"},
      {"debug", "debug address : debug a lua service", nullptr, "debug: no Lua debugger in cppskynet (attach gdb to the worker)"},
      {"dumpheap", "dumpheap : dump heap profilling (tcmalloc's heap profiler, to a file)", do_dumpheap},
      {"exit", "exit address : ask a service to exit", do_kill},
      {"gc", "gc : give the allocator's free memory back to the system (nothing to collect in C++), then mem", do_gc},
      {"generations", "generations : the supervisor's workers", do_supervisor},
      {"getenv", "getenv name : the node's env table (skynet.getenv)", do_getenv},
      {"help", "This help message", do_help},
      {"info", "info address : get service infomation", do_info},
      {"inject", "inject address luascript.lua", nullptr, "inject: C++ services cannot run injected Lua"},
      {"jmem", "Show jemalloc mem stats", nullptr, "jmem: cppskynet does not use jemalloc (cmem shows the allocator)"},
      {"journal", "journal : every entity store's journal", do_journal},
      {"kill", "kill address : kill service", do_kill},
      {"killtask", "killtask address threadname : threadname listed by task", nullptr,
       "killtask: a C++ service's suspended handlers cannot be killed one by one"},
      {"list", "List all the service", do_list},
      {"log", "launch a new lua service with log", nullptr, "log: no per-service message log in cppskynet (start launches)"},
      {"logoff", "logoff address", do_logoff},
      {"logon", "logon address : log its messages to <logpath>/%08x.log, as skynet does", do_logon},
      {"mem", "mem : the process's memory (a C++ service has no heap of its own to count)", do_mem},
      {"netstat", "netstat : show netstat", do_netstat},
      {"ping", "ping address", do_ping},
      {"profactive", "profactive [on|off] : active/deactive tcmalloc heap profilling", do_profactive},
      {"send", "send address ... : a message without an answer", do_send},
      {"service", "List named services", do_service},
      {"setenv", "setenv name value: the node's env table (skynet.setenv)", do_setenv},
      {"signal", "signal address sig : the service's signal() hook (a C++ handler is not interrupted)", do_signal},
      {"snax", "lanuch a new snax service", nullptr, "snax: no snax in cppskynet (start launches a service type)"},
      {"start", "start type ... : launch a new service of a registered type", do_start},
      {"stat", "Dump all stats", do_stat},
      {"task", "task address : how many handlers wait in an await", do_task},
      {"trace", "trace address [proto] [on|off]", do_trace},
      {"uniqtask", "task address : show service unique task detail", nullptr, "uniqtask: see task"},
      {"upgrade", "upgrade [--worker PATH] [--timeout S] : hand the node over to a new worker", do_supervisor},
  };
  return v;
}

}  // namespace

std::optional<std::string> env_table::get(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

bool env_table::set(const std::string& name, std::string value) {
  std::lock_guard lock(mu_);
  return values_.emplace(name, std::move(value)).second;
}

nlohmann::json help_table() {
  json out = json::object();
  for (const auto& v : verbs()) out[v.name] = v.help;
  return out;
}

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> out;
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && blank(line[i])) ++i;
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
      while (i < line.size() && !blank(line[i])) w.push_back(line[i++]);
    }
    out.push_back(std::move(w));
  }
  return out;
}

answer run(const parts& p, std::string_view line) {
  const auto w = split_words(line);
  answer a;
  a.verb = w.empty() ? "" : w[0];
  const auto& all = verbs();
  auto it = std::find_if(all.begin(), all.end(), [&](const verb& v) { return a.verb == v.name; });
  try {
    if (it == all.end()) fail(std::string(invalid_command));
    if (it->fn == nullptr) fail(it->why);
    a.value = it->fn(p, w);
  } catch (const std::exception& e) {
    a.ok = false;
    a.value = nullptr;
    a.error = e.what();
  }
  return a;
}

}  // namespace csk::console
