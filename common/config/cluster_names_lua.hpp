#pragma once
// The node table as skynet's own clustername.lua. load_cluster_names_file
// (load_config.hpp) reads a file whose name ends in ".lua" with this loader, any other
// file as YAML; both give the same cluster_names, with the same rules and messages.
//
// The chunk is run as skynet's clusterd runs it (service/clusterd.lua, loadconfig: a text
// chunk loaded with a fresh empty table as its environment, then called with no
// arguments): the globals it sets are the table.
//   cluster1 = "127.0.0.1:2528"    -- IPv4, hostname, or "[::1]:2528"; port 1..65535
//   cluster2 = false               -- a node that is down
//   __nowaiting = true             -- "__" keys are options; __nowaiting is the only one
// Anything the chunk computes is fine (locals, loops, functions, string concatenation);
// what counts is the globals it leaves. Values must be an address string or false;
// `true`, numbers, tables and functions are refused naming the key and the line that
// set it last. Keys that are not strings are refused.
//
// Sandbox: no library is opened (print, os, io, require, load, string methods ... are
// nil), binary chunks are refused, the chunk may run at most max_instructions VM
// instructions and allocate at most max_memory bytes; the file loader also refuses a
// file larger than names_file_max_bytes before reading it.
//
// Errors use the YAML loader's style, one problem a line, sorted by line:
//   `syntax error (line 3): '=' expected near 'x'`            (Lua's own message)
//   `(document) (line 2): attempt to call a nil value (global 'print')`
//   `(document) (line 1): the node table took too long (an endless loop?): ...`
//   `db (line 4): expected "host:port" or false, got integer 2528`
// Callers that show them add the file's name, as for YAML (cppskynet check).
//
// Threads: each call uses its own Lua state; any thread, no globals.

#include <cstddef>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/config/config.hpp"

namespace csk {

/// The largest node table file (either form) load_cluster_names_file reads: 1 MiB.
inline constexpr std::size_t names_file_max_bytes = std::size_t{1} << 20;

/// The sandbox of one clustername.lua run.
struct lua_names_limits {
  std::size_t max_memory = std::size_t{16} << 20;  ///< bytes the Lua state may hold
  int max_instructions = 1'000'000;                ///< VM instructions the chunk may run
};

/// Whether load_cluster_names_file reads `path` as Lua: its name ends in ".lua".
[[nodiscard]] bool is_lua_names_file(std::string_view path);

/// Runs a clustername.lua chunk in the sandbox and checks the globals it set.
/// `chunk_name` is the name Lua's own messages would carry (the file's name); the loader
/// takes the line out of them and reports it in its own style.
[[nodiscard]] result<cluster_names, std::string> load_cluster_names_lua(std::string_view source,
                                                                        std::string_view chunk_name = "clustername.lua",
                                                                        const lua_names_limits& limits = {});

}  // namespace csk
