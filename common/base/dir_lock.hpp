#pragma once
// One node per persist.dir: an exclusive flock on DIR/LOCK, held as long as any process
// holds the returned descriptor's open file (the supervisor passes it on to its workers,
// so a worker still stopping after its supervisor died keeps the directory locked until it
// exits).

#include <chrono>
#include <string>

#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"

namespace csk {

/// Creates `dir` (and its parents) if needed and takes the lock, waiting up to `wait` for
/// another holder to go. The error says who may hold it.
result<unique_fd, std::string> lock_directory(const std::string& dir, std::chrono::milliseconds wait);

}  // namespace csk
