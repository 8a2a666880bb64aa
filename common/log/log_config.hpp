#pragma once
// What the config file says about logging. Kept apart from log.hpp so that reading
// configuration (the supervisor, tools) does not pull in spdlog.

#include <string>

namespace csk {

struct log_config {
  std::string level = "info";  ///< trace, debug, info, warn, error, critical, off
  std::string file;            ///< empty = stderr; load_config_file makes it relative to the config's directory
  bool color = false;          ///< colour the level on stderr, only when it is a terminal
};

}  // namespace csk
