#include "common/log/log.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace csk {

namespace detail {

// Keeps formatted lines in memory; wakes waiters on every line. base_sink holds
// mutex_ around sink_it_, so text_ is guarded by mutex_.
class capture_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

  bool wait_for(std::string_view needle, std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, deadline,
                        [&] { return text_.find(needle) != std::string::npos; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    text_.append(buf.data(), buf.size());
    cv_.notify_all();
  }
  void flush_() override {}

 private:
  std::string text_;
  std::condition_variable cv_;
};

}  // namespace detail

namespace {

// The one place the line pattern is built. Role and generation are baked in as text;
// %P is the pid at the time of the line (correct across fork).
std::string make_pattern(std::string_view role, int generation) {
  std::string escaped;
  for (char c : role) {
    if (c == '%') escaped += '%';
    escaped += c;
  }
  return fmt::format("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [%P {}.{}] [%n] %v", escaped, generation);
}

std::shared_ptr<spdlog::sinks::sink> make_main_sink(const log_config& config) {
  if (!config.file.empty()) {
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(config.file);
  }
  if (config.color) {
    return std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
  }
  return std::make_shared<spdlog::sinks::stderr_sink_mt>();
}

// Invariant: loggers_ and fan_out_ are built once and never replaced; only the
// fan-out's sinks, the loggers' levels and the pattern change. mu_ serialises
// init_logging and capture attach/detach (not logging itself).
struct log_state {
  std::array<std::shared_ptr<spdlog::logger>, logger_names.size()> loggers_;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> fan_out_;
  std::mutex mu_;
  std::shared_ptr<spdlog::sinks::sink> main_sink_;
  std::vector<std::shared_ptr<spdlog::sinks::sink>> captures_;
  std::string pattern_;

  log_state() : fan_out_(std::make_shared<spdlog::sinks::dist_sink_mt>()) {
    for (std::size_t i = 0; i < logger_names.size(); ++i) {
      loggers_[i] = std::make_shared<spdlog::logger>(std::string(logger_names[i]), fan_out_);
    }
    apply(make_main_sink(log_config{}), make_pattern("unset", 0), spdlog::level::info, false);
  }

  // Caller holds mu_ (or is the constructor).
  void apply(std::shared_ptr<spdlog::sinks::sink> main_sink, std::string pattern,
             spdlog::level::level_enum level, bool to_file) {
    main_sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
    for (auto& c : captures_) c->set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
    main_sink_ = std::move(main_sink);
    pattern_ = std::move(pattern);
    refresh_sinks();
    for (auto& l : loggers_) {
      l->set_level(level);
      // stderr sinks flush every line themselves; a file is flushed per line so a
      // crash loses nothing.
      l->flush_on(to_file ? spdlog::level::trace : spdlog::level::off);
    }
  }

  // Caller holds mu_ (or is the constructor).
  void refresh_sinks() {
    std::vector<std::shared_ptr<spdlog::sinks::sink>> sinks{main_sink_};
    sinks.insert(sinks.end(), captures_.begin(), captures_.end());
    fan_out_->set_sinks(std::move(sinks));
  }
};

// Built on first use (thread-safe static init) and never destroyed, so code running
// in static destructors can still log.
log_state& state() {
  static auto* s = new log_state();
  return *s;
}

}  // namespace

spdlog::level::level_enum parse_level(std::string_view text, bool& ok) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> levels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  };
  for (const auto& [name, level] : levels) {
    if (name == text) {
      ok = true;
      return level;
    }
  }
  ok = false;
  return spdlog::level::info;
}

void init_logging(const log_config& config, std::string_view process_role, int generation) {
  bool ok = false;
  const auto level = parse_level(config.level, ok);
  if (!ok) throw std::invalid_argument("unknown log level: " + config.level);
  auto main_sink = make_main_sink(config);
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mu_);
  s.apply(std::move(main_sink), make_pattern(process_role, generation), level,
          !config.file.empty());
}

std::shared_ptr<spdlog::logger> logger(std::string_view name) {
  auto& s = state();
  for (std::size_t i = 0; i < logger_names.size(); ++i) {
    if (logger_names[i] == name) return s.loggers_[i];
  }
  throw std::invalid_argument("unknown logger name: " + std::string(name));
}

std::string format_handle(std::uint32_t handle) { return fmt::format(":{:08x}", handle); }

capture_logs::capture_logs() : sink_(std::make_shared<detail::capture_sink>()) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mu_);
  sink_->set_formatter(std::make_unique<spdlog::pattern_formatter>(s.pattern_));
  s.captures_.push_back(sink_);
  s.refresh_sinks();
}

capture_logs::~capture_logs() {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mu_);
  std::erase(s.captures_, sink_);
  s.refresh_sinks();
}

std::string capture_logs::text() const { return sink_->text(); }

bool capture_logs::wait_for(std::string_view needle, std::chrono::milliseconds deadline) const {
  return sink_->wait_for(needle, deadline);
}

}  // namespace csk
