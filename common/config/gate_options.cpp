#include "common/config/gate_options.hpp"

namespace csk {

lua_table gate_options_table(const gate_config& g) {
  lua_table opts;
  opts.set("listen", g.listen)
      .set("max_connections", g.max_connections)
      .set("max_in_flight", g.max_in_flight)
      .set("max_outbound_kb", g.max_outbound_kb)
      .set("idle_timeout_ms", g.idle_timeout_ms)
      .set("max_message", g.max_message)
      .set("message_timeout_ms", g.message_timeout_ms);
  return opts;
}

}  // namespace csk
