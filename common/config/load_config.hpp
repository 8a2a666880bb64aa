#pragma once
// Loading a node_config from YAML. yaml-cpp stays inside load_config.cpp: callers see
// plain structs or one error string.
//
// Errors list every problem found, one per line, in line order, each with its YAML
// path and line: `runtime.threads (line 3): must be between 1 and 256 ...`,
// `runtime.thread (line 3): unknown key`, `services[1].type (line 9): required`.
// Unknown keys and wrong types are errors, never silently defaulted.
//
// Service args: null -> nil, true/false -> boolean, integers that fit int64 -> integer,
// other numbers -> real, other scalars -> string (YAML 1.2 core schema; quoted scalars
// and !!str always stay strings), sequences -> array part, maps -> hash part (keys
// converted the same way; nil/NaN and duplicate keys are errors). Limits: nesting
// max_arg_depth, and 100000 values in all args together (bounds YAML alias expansion).
//
// Threads: both functions are pure (no globals, no logging); call from any thread.

#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/config/config.hpp"

namespace csk {

/// Deepest nesting of sequences/maps inside one service arg (skynet.pack packs 33).
inline constexpr int max_arg_depth = 32;

/// Reads and loads a YAML file; a file that cannot be read gives one error line.
[[nodiscard]] result<node_config, std::string> load_config_file(const std::string& path);

/// Loads YAML text. An empty document gives all defaults.
[[nodiscard]] result<node_config, std::string> load_config_string(std::string_view yaml);

}  // namespace csk
