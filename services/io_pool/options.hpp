#pragma once
// Reading a pooled service's spawn options (the table of named keys both the redis and the
// mysql service take). Errors are std::invalid_argument with the service's prefix and the
// key: "redis: unknown option 'prot' (known: ...)", "mysql: option 'port' must be an
// integer from 1 to 65535, got "x"". Pure; no thread rules.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/actor/message.hpp"
#include "common/wire/lua_value.hpp"

namespace csk::io_pool {

/// "unix:/path" when `unix_path` is set, else "host:port" (for messages).
std::string where(const std::string& host, int port, const std::string& unix_path);

/// The options table of a spawn: args[0], or nil (every default) when there is none.
/// Throws for more than one argument.
lua_value spawn_options(std::string_view service, const actor::values& args);

class option_reader {
 public:
  /// Checks `v`: nil (every key keeps its default), or a table of named keys, each one of
  /// `known` (listed in that order in the error). `v` and `known` must outlive the reader.
  option_reader(std::string_view service, const lua_value& v, std::span<const std::string_view> known);

  /// The string at `key`, if there is one.
  void read(std::string_view key, std::string& out) const;
  /// The integer from lo to hi at `key`, if there is one (a real with an integer value
  /// counts).
  void read(std::string_view key, int& out, std::int64_t lo, std::int64_t hi) const;
  /// The whole milliseconds from lo to hi at `key`, if there is one.
  void read(std::string_view key, std::chrono::milliseconds& out, std::int64_t lo, std::int64_t hi) const;
  /// Throws unless there is an address: a host, or a unix socket path.
  void need_address(const std::string& host, const std::string& unix_path) const;

 private:
  [[noreturn]] void bad(std::string_view key, std::string_view want, const lua_value& got) const;
  std::int64_t integer(std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t dflt) const;

  std::string service_;
  const lua_table* table_ = nullptr;  // nullptr: no table, every key absent
};

}  // namespace csk::io_pool
