#include "common/config/cluster_names_lua.hpp"
#include "common/config/cluster_names_rules.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include <lua.hpp>

// Lua reports errors with longjmp (Debian's liblua5.4 is C). So every function Lua calls
// (the allocator, the hook, the message handler, the environment's __newindex,
// protected_run) holds no C++ object with a destructor while it calls into Lua, and every
// call that may raise an error runs under lua_pcall. The results are read after the run
// with the memory limit lifted, by calls that do not allocate.

namespace csk {

namespace {

using config_detail::problem_text;
using config_detail::quote;

constexpr const char* document = "(document)";

// One run's state; the allocator's user data, so every callback finds it.
struct sandbox {
  std::size_t used = 0;
  std::size_t limit = 0;
  int max_instructions = 0;
  const char* source = nullptr;
  std::size_t size = 0;
  const char* chunk_name = nullptr;  // "=name": Lua's messages then start with "name:LINE:"
  enum class phase { setup, parse, run, done } at = phase::setup;
  int status = LUA_OK;     // of the failing step (LUA_ERRMEM: the memory limit)
  bool too_long = false;   // the instruction limit ended the run
  int line = 0;            // the last line the line hook saw (for memory errors)
  int error_line = 0;      // where the message handler found the error
};

void* sandbox_alloc(void* ud, void* ptr, std::size_t old_size, std::size_t new_size) noexcept {
  auto* sb = static_cast<sandbox*>(ud);
  const std::size_t old = ptr != nullptr ? old_size : 0;  // for a new block, old_size is a type tag
  if (new_size == 0) {
    std::free(ptr);
    sb->used -= old;
    return nullptr;
  }
  if (new_size > old && new_size - old > sb->limit - std::min(sb->limit, sb->used)) return nullptr;
  void* p = std::realloc(ptr, new_size);
  if (p != nullptr) sb->used = sb->used - old + new_size;
  return p;
}

sandbox& sandbox_of(lua_State* L) {
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  return *static_cast<sandbox*>(ud);
}

// The line of the innermost Lua function on the stack from `level` up, or 0.
int current_line(lua_State* L, int level) {
  lua_Debug ar{};
  for (; lua_getstack(L, level, &ar) != 0; ++level) {
    if (lua_getinfo(L, "l", &ar) != 0 && ar.currentline > 0) return ar.currentline;
  }
  return 0;
}

// Line events keep the current line (a memory error has no message handler); the count
// event comes once, after max_instructions, and ends the run.
void hook(lua_State* L, lua_Debug* ar) {
  sandbox& sb = sandbox_of(L);
  if (ar->event == LUA_HOOKLINE) {
    sb.line = ar->currentline;
    return;
  }
  if (ar->event == LUA_HOOKCOUNT) {
    sb.too_long = true;
    lua_pushstring(L, "the instruction limit");
    lua_error(L);
  }
}

// Notes the line where the error happened; makes sure the message is a string.
int message_handler(lua_State* L) {
  sandbox_of(L).error_line = current_line(L, 1);
  if (::lua_type(L, 1) != LUA_TSTRING) {
    lua_pushfstring(L, "an error object that is a %s value", lua_typename(L, ::lua_type(L, 1)));
    return 1;
  }
  lua_settop(L, 1);
  return 1;
}

// The environment's __newindex (proxy, key, value); upvalues: the globals, their lines.
// The environment itself stays empty, so every assignment comes here and the line of the
// last one is known for each key.
int env_newindex(lua_State* L) {
  lua_settop(L, 3);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, lua_upvalueindex(1));
  lua_pushvalue(L, 2);
  lua_pushinteger(L, current_line(L, 1));
  lua_rawset(L, lua_upvalueindex(2));
  return 0;
}

// Under lua_pcall: builds the environment, loads and runs the chunk. Returns the globals
// and their lines; an error is raised again with the message, sb.at/status telling where.
int protected_run(lua_State* L) {
  sandbox& sb = sandbox_of(L);
  lua_settop(L, 0);
  lua_createtable(L, 0, 0);  // 1: the globals the chunk sets
  lua_createtable(L, 0, 0);  // 2: key -> the line that set it last
  lua_createtable(L, 0, 0);  // 3: _ENV, an empty table to the chunk
  lua_createtable(L, 0, 2);  // 4: its metatable
  lua_pushvalue(L, 1);
  lua_setfield(L, 4, "__index");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, env_newindex, 2);
  lua_setfield(L, 4, "__newindex");
  lua_setmetatable(L, 3);
  lua_pushcclosure(L, message_handler, 0);  // 4

  sb.at = sandbox::phase::parse;
  sb.status = luaL_loadbufferx(L, sb.source, sb.size, sb.chunk_name, "t");  // 5: the chunk
  if (sb.status != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 3);
  if (lua_setupvalue(L, 5, 1) == nullptr) lua_pop(L, 1);  // a main chunk's only upvalue is _ENV

  sb.at = sandbox::phase::run;
  lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, sb.max_instructions);
  sb.status = lua_pcall(L, 0, 0, 4);
  lua_sethook(L, nullptr, 0, 0);
  if (sb.status != LUA_OK) return lua_error(L);

  sb.at = sandbox::phase::done;
  lua_settop(L, 2);
  return 2;
}

struct state_closer {
  lua_State* L;
  ~state_closer() { lua_close(L); }
};

std::string mib(std::size_t bytes) {
  if (bytes % (std::size_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// Takes "name:LINE: " off Lua's message (setting line), when it starts so.
std::string strip_position(std::string message, std::string_view name, int& line) {
  if (!std::string_view(message).starts_with(name) || message.size() <= name.size() || message[name.size()] != ':') {
    return message;
  }
  std::size_t i = name.size() + 1;
  int n = 0;
  const std::size_t digits = i;
  while (i < message.size() && message[i] >= '0' && message[i] <= '9' && n < 100'000'000) {
    n = n * 10 + (message[i] - '0');
    ++i;
  }
  if (i == digits || i + 1 >= message.size() || message[i] != ':' || message[i + 1] != ' ') return message;
  if (line == 0) line = n;
  return message.substr(i + 2);
}

// "integer 2528", "string \"x\"", "a table": what a Lua value is, for messages. Calls
// nothing that allocates in Lua (no lua_tolstring on numbers).
std::string describe(lua_State* L, int index) {
  switch (::lua_type(L, index)) {
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return lua_toboolean(L, index) != 0 ? "boolean true" : "boolean false";
    case LUA_TNUMBER: {
      if (lua_isinteger(L, index) != 0) return "integer " + std::to_string(lua_tointegerx(L, index, nullptr));
      char text[64];
      std::snprintf(text, sizeof text, "%.14g", lua_tonumberx(L, index, nullptr));
      return std::string("number ") + text;
    }
    case LUA_TSTRING: {
      std::size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      return "string " + quote(std::string(s, n));
    }
    default: return std::string("a ") + lua_typename(L, ::lua_type(L, index));
  }
}

std::string string_at(lua_State* L, int index) {
  std::size_t n = 0;
  const char* s = lua_tolstring(L, index, &n);
  return std::string(s, n);
}

std::string failure(lua_State* L, const sandbox& sb, const lua_names_limits& limits, std::string_view name) {
  const std::string too_much_memory =
      "the node table needs more than " + mib(limits.max_memory) + " of memory (an endless table or string?)";
  int line = sb.error_line;
  std::string message = ::lua_type(L, -1) == LUA_TSTRING ? string_at(L, -1) : "an error without a message";
  switch (sb.at) {
    case sandbox::phase::setup:
    case sandbox::phase::done:
      return problem_text(document, 0, "cannot run the Lua node table: " + message);
    case sandbox::phase::parse:
      if (sb.status == LUA_ERRMEM) return problem_text(document, 0, too_much_memory);
      message = strip_position(std::move(message), name, line);
      return line > 0 ? "syntax error (line " + std::to_string(line) + "): " + message : "syntax error: " + message;
    case sandbox::phase::run:
      if (sb.too_long) {
        return problem_text(document, line,
                            "the node table took too long (an endless loop?): more than " +
                                std::to_string(limits.max_instructions) + " Lua instructions");
      }
      if (sb.status == LUA_ERRMEM) return problem_text(document, sb.line, too_much_memory);
      message = strip_position(std::move(message), name, line);
      return problem_text(document, line, message);
  }
  return problem_text(document, 0, message);
}

struct problem {
  int line;
  std::string text;
};

// The globals (stack index 1) and their lines (2) as a node table, or every problem.
result<cluster_names, std::string> read_globals(lua_State* L) {
  cluster_names names;
  std::vector<problem> problems;
  lua_checkstack(L, 8);
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {  // key -2, value -1
    lua_pushvalue(L, -2);
    lua_rawget(L, 2);
    const int line = static_cast<int>(lua_tointegerx(L, -1, nullptr));
    lua_pop(L, 1);
    const auto fail = [&](const std::string& path, const std::string& message) {
      problems.push_back({line, problem_text(path, line, message)});
    };
    if (::lua_type(L, -2) != LUA_TSTRING) {
      fail(document, "keys must be strings, got " + describe(L, -2));
    } else if (const std::string key = string_at(L, -2); key.starts_with("__")) {
      if (key != "__nowaiting") {
        fail(key, "unknown option (only __nowaiting is known)");
      } else if (::lua_type(L, -1) != LUA_TBOOLEAN) {
        fail(key, "expected a boolean (true or false), got " + describe(L, -1));
      } else {
        names.nowaiting = lua_toboolean(L, -1) != 0;
      }
    } else if (!config_detail::valid_node_name(key)) {
      fail(document, config_detail::node_name_rule() + ", got " + quote(key));
    } else if (::lua_type(L, -1) == LUA_TBOOLEAN) {
      if (lua_toboolean(L, -1) != 0) {
        fail(key, "true is not an address: give \"host:port\", or false to mark the node down");
      } else {
        names.nodes[key] = std::nullopt;
      }
    } else if (::lua_type(L, -1) != LUA_TSTRING) {
      fail(key, "expected \"host:port\" or false, got " + describe(L, -1));
    } else {
      const std::string text = string_at(L, -1);
      cluster_node_address address;
      const std::string why = config_detail::node_address_problem(text, address);
      if (why.empty()) {
        names.nodes[key] = std::move(address);
      } else {
        fail(key, why + ", got " + quote(text));
      }
    }
    lua_pop(L, 1);
  }
  if (problems.empty()) return names;
  std::sort(problems.begin(), problems.end(),
            [](const problem& a, const problem& b) { return std::tie(a.line, a.text) < std::tie(b.line, b.text); });
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += '\n';
    out += p.text;
  }
  return unexpected{std::move(out)};
}

}  // namespace

bool is_lua_names_file(std::string_view path) { return path.ends_with(".lua"); }

result<cluster_names, std::string> load_cluster_names_lua(std::string_view source, std::string_view chunk_name,
                                                          const lua_names_limits& limits) {
  // Lua shows a "=name" chunk name as it is, up to LUA_IDSIZE - 1 bytes: keep it shorter.
  const std::string name(chunk_name.substr(0, 40));
  const std::string lua_name = "=" + name;
  sandbox sb;
  sb.limit = limits.max_memory;
  sb.max_instructions = std::max(1, limits.max_instructions);
  sb.source = source.data();
  sb.size = source.size();
  sb.chunk_name = lua_name.c_str();
  lua_State* L = lua_newstate(sandbox_alloc, &sb);
  if (L == nullptr) return unexpected{problem_text(document, 0, "cannot start Lua: out of memory")};
  const state_closer closer{L};
  lua_pushcclosure(L, protected_run, 0);
  const int status = lua_pcall(L, 0, 2, 0);
  sb.limit = std::numeric_limits<std::size_t>::max();  // reading the results must not fail
  if (status != LUA_OK) return unexpected{failure(L, sb, limits, name)};
  return read_globals(L);
}

}  // namespace csk
