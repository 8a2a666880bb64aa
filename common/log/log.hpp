#pragma once
// csk::log: the process's fixed set of named spdlog loggers.
//
// Every logger writes through one shared fan-out sink: the main sink (stderr or a
// file) plus any live capture_logs. Every line has the same pattern, set in one place:
//   [2026-11-25 12:00:00.123] [info] [1234 worker.0] [actor] message
// (time with ms, level, pid, process role and generation, logger name).
//
// The logger table is written once, on first use, and its loggers are never replaced:
// a shared_ptr taken before init_logging stays valid and follows later
// re-initialisations. Library code never uses spdlog's default logger.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/log/log_config.hpp"

#include <spdlog/logger.h>

namespace csk {


/// The named loggers, in table order.
inline constexpr std::array<std::string_view, 7> logger_names = {
    "actor", "net", "cluster", "service", "config", "supervisor", "handover"};

/// Sets level, sink and pattern for every named logger. `process_role` ("worker",
/// "supervisor") and `generation` go in every line. Before the first call, loggers log
/// at info to stderr with role "unset".
/// Throws std::invalid_argument on an unknown level and spdlog::spdlog_ex when the file
/// cannot be opened; in both cases the previous setup stays in place.
/// Threads: call from main before other threads start. Calling it again replaces the
/// main sink and the pattern (tests do that); lines logged concurrently go to the old
/// or the new sink, never to neither.
void init_logging(const log_config& config, std::string_view process_role, int generation = 0);

/// One of the named loggers. Throws std::invalid_argument for a name not in
/// logger_names: names are constants in the code, so a miss is a programming error.
/// Threads: safe to call from any thread, before or after init_logging.
std::shared_ptr<spdlog::logger> logger(std::string_view name);

/// A handle printed the way skynet prints it: ":0000000a".
std::string format_handle(std::uint32_t handle);

/// Parses trace/debug/info/warn/error/critical/off (exact, lower case). On failure sets
/// `ok` to false and returns info.
spdlog::level::level_enum parse_level(std::string_view text, bool& ok);

namespace detail {
class capture_sink;
}

/// Test helper: while alive, every named logger also writes its formatted lines
/// (same pattern, same level filter) into memory. Several may be alive at once.
/// Threads: construct and destroy on one thread; text() and wait_for() may be called
/// from any thread while loggers are used concurrently.
class capture_logs {
 public:
  capture_logs();
  ~capture_logs();
  capture_logs(const capture_logs&) = delete;
  capture_logs& operator=(const capture_logs&) = delete;

  /// Everything captured so far.
  std::string text() const;

  /// Waits until the captured text contains `needle` or `deadline` passes; woken by
  /// each captured line. Returns whether the needle was found.
  bool wait_for(std::string_view needle, std::chrono::milliseconds deadline) const;

 private:
  std::shared_ptr<detail::capture_sink> sink_;
};

}  // namespace csk
