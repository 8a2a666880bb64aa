#include "worker/message_log.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/wire/seri.hpp"

namespace csk::console {
namespace {

std::uint32_t centiseconds_since(std::chrono::steady_clock::time_point started) {
  const auto d = std::chrono::steady_clock::now() - started;
  return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 10);
}

// One service's open file. Written by the service's owner thread only (the runtime never
// runs two turns of a service at once); closed when the last observer copy goes.
class log_file {
 public:
  log_file(std::FILE* f, std::chrono::steady_clock::time_point started) : f_(f), started_(started) {}
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;
  ~log_file() {
    std::fprintf(f_, "close time: %u\n", centiseconds_since(started_));
    std::fclose(f_);
  }
  void write(const actor::message& m) {
    const std::string line =
        message_log_line(m.source, skynet_ptype(m.type), m.session, centiseconds_since(started_), message_payload(m));
    std::fwrite(line.data(), 1, line.size(), f_);
    std::fflush(f_);
  }

 private:
  std::FILE* f_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

int skynet_ptype(actor::msg_type t) {
  switch (t) {
    case actor::msg_type::send:
    case actor::msg_type::call:
      return 10;
    case actor::msg_type::error:
      return 7;
    case actor::msg_type::response:
    case actor::msg_type::timer:
      return 1;
  }
  return 0;
}

std::string message_log_line(actor::handle_t source, int ptype, actor::session_t session, std::uint32_t centiseconds,
                             bytes_view payload) {
  char head[64];
  const int n = std::snprintf(head, sizeof head, ":%08x %d %d %u ", source, ptype, static_cast<int>(session), centiseconds);
  std::string out(head, static_cast<std::size_t>(n));
  static constexpr char digits[] = "0123456789abcdef";
  out.reserve(out.size() + payload.size() * 2 + 1);
  for (const std::uint8_t b : payload) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  out.push_back('\n');
  return out;
}

byte_buffer message_payload(const actor::message& m) {
  switch (m.type) {
    case actor::msg_type::error:
      return byte_buffer(m.error.begin(), m.error.end());
    case actor::msg_type::timer:
      return {};
    default: {
      auto packed = seri::pack(m.args);
      return packed ? std::move(*packed) : byte_buffer{};  // (what a peer sent was packable)
    }
  }
}

result<std::shared_ptr<const actor::runtime::message_log>, std::string> open_message_log(
    const std::string& dir, actor::handle_t h, std::chrono::steady_clock::time_point started) {
  char name[16];
  std::snprintf(name, sizeof name, "/%08x.log", h);
  const std::string path = dir + name;
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (f == nullptr) return unexpected("cannot open " + path + ": " + std::strerror(errno));  // NOLINT(concurrency-mt-unsafe)
  const std::time_t now = std::time(nullptr);
  char when[64] = "?\n";
  std::tm tm{};
  if (localtime_r(&now, &tm) != nullptr) std::strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y\n", &tm);  // ctime's form
  std::fprintf(f, "open time: %u %s", centiseconds_since(started), when);
  std::fflush(f);
  auto file = std::make_shared<log_file>(f, started);
  return std::make_shared<const actor::runtime::message_log>(
      [file](actor::handle_t, const actor::message& m) { file->write(m); });
}

}  // namespace csk::console
