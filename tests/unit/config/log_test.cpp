#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "common/log/log.hpp"

namespace csk::test {
namespace {

using namespace std::chrono_literals;

std::string pid_text() { return std::to_string(::getpid()); }

log_config at_level(std::string level) {
  log_config c;
  c.level = std::move(level);
  return c;
}

log_config to_file(std::string file) {
  log_config c;
  c.file = std::move(file);
  return c;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A fresh directory per test, removed afterwards.
class temp_dir {
 public:
  temp_dir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("csk_log_test_" + pid_text() + "_" + info->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Every test starts and ends with the default stderr setup, so no file stays open.
class Log : public ::testing::Test {
 protected:
  void SetUp() override { init_logging(log_config{}, "test"); }
  void TearDown() override { init_logging(log_config{}, "test"); }
};

TEST(LogLevel, ParsesEveryName) {
  const std::pair<const char*, spdlog::level::level_enum> cases[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  };
  for (const auto& [text, level] : cases) {
    bool ok = false;
    EXPECT_EQ(parse_level(text, ok), level) << text;
    EXPECT_TRUE(ok) << text;
  }
}

TEST(LogLevel, RejectsOtherSpellings) {
  for (const char* text : {"", "warning", "err", "INFO", "Info", "verbose", "info "}) {
    bool ok = true;
    EXPECT_EQ(parse_level(text, ok), spdlog::level::info) << text;
    EXPECT_FALSE(ok) << '"' << text << '"';
  }
}

TEST(LogHandle, FormatsLikeSkynet) {
  EXPECT_EQ(format_handle(0), ":00000000");
  EXPECT_EQ(format_handle(10), ":0000000a");
  EXPECT_EQ(format_handle(0x01000002), ":01000002");
  EXPECT_EQ(format_handle(0xffffffff), ":ffffffff");
}

TEST_F(Log, UnknownLoggerNameThrows) {
  EXPECT_THROW((void)logger("nope"), std::invalid_argument);
  EXPECT_THROW((void)logger(""), std::invalid_argument);
  EXPECT_THROW((void)logger("Actor"), std::invalid_argument);
}

TEST_F(Log, LoggerTableIsWriteOnce) {
  auto before = logger("net");
  ASSERT_NE(before, nullptr);
  init_logging(at_level("debug"), "worker", 4);
  EXPECT_EQ(logger("net"), before);
  EXPECT_EQ(before->level(), spdlog::level::debug);
  for (auto name : logger_names) {
    EXPECT_EQ(logger(name)->name(), name);
  }
}

TEST_F(Log, CaptureSeesEveryNamedLoggerWithPattern) {
  init_logging(log_config{}, "worker", 3);
  capture_logs cap;
  for (auto name : logger_names) logger(name)->info("hello from {}", name);

  const std::string text = cap.text();
  for (auto name : logger_names) {
    const std::regex line(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[info\] \[)" + pid_text() +
                          R"( worker\.3\] \[)" + std::string(name) + R"(\] hello from )" +
                          std::string(name) + "\n");
    EXPECT_TRUE(std::regex_search(text, line)) << name << " missing in:\n" << text;
  }
}

TEST_F(Log, LevelFiltersCapturedLines) {
  init_logging(at_level("warn"), "worker");
  capture_logs cap;
  logger("actor")->info("quiet line");
  logger("actor")->warn("loud line");
  const std::string text = cap.text();
  EXPECT_NE(text.find("[warning] [" + pid_text() + " worker.0] [actor] loud line"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("quiet line"), std::string::npos) << text;
}

TEST_F(Log, WaitForSeesLineFromAnotherThread) {
  capture_logs cap;
  std::thread t([] { logger("cluster")->info("from another thread"); });
  EXPECT_TRUE(cap.wait_for("[cluster] from another thread", 10s));
  t.join();
}

TEST_F(Log, WaitForReturnsFalseAtDeadline) {
  capture_logs cap;
  logger("net")->info("something else");
  EXPECT_FALSE(cap.wait_for("never logged", 20ms));
}

TEST_F(Log, SeveralCapturesEachSeeLines) {
  capture_logs outer;
  {
    capture_logs inner;
    logger("service")->info("both");
    EXPECT_NE(inner.text().find("both"), std::string::npos);
  }
  logger("service")->info("outer only");
  EXPECT_NE(outer.text().find("both"), std::string::npos);
  EXPECT_NE(outer.text().find("outer only"), std::string::npos);
}

TEST_F(Log, FileSinkWritesToFile) {
  temp_dir dir;
  const auto file = dir.path() / "node.log";
  init_logging(to_file(file.string()), "supervisor", 1);
  logger("supervisor")->info("to the file");
  const std::string text = read_file(file);
  EXPECT_NE(text.find("[info] [" + pid_text() + " supervisor.1] [supervisor] to the file\n"),
            std::string::npos)
      << text;
  init_logging(log_config{}, "test");  // closes the file before temp_dir removes it
}

TEST_F(Log, ReinitReplacesSinks) {
  temp_dir dir;
  const auto first = dir.path() / "first.log";
  const auto second = dir.path() / "second.log";
  init_logging(to_file(first.string()), "worker", 1);
  logger("handover")->info("line one");
  init_logging(to_file(second.string()), "worker", 2);
  logger("handover")->info("line two");
  init_logging(log_config{}, "test");

  const std::string one = read_file(first);
  const std::string two = read_file(second);
  EXPECT_NE(one.find("worker.1] [handover] line one"), std::string::npos) << one;
  EXPECT_EQ(one.find("line two"), std::string::npos) << one;
  EXPECT_NE(two.find("worker.2] [handover] line two"), std::string::npos) << two;
  EXPECT_EQ(two.find("line one"), std::string::npos) << two;
}

TEST_F(Log, ReinitKeepsLiveCapturesWithNewPattern) {
  capture_logs cap;
  init_logging(log_config{}, "worker", 1);
  logger("config")->info("first generation");
  init_logging(log_config{}, "worker", 2);
  logger("config")->info("second generation");
  const std::string text = cap.text();
  EXPECT_NE(text.find("worker.1] [config] first generation"), std::string::npos) << text;
  EXPECT_NE(text.find("worker.2] [config] second generation"), std::string::npos) << text;
}

TEST_F(Log, BadInitKeepsPreviousSetup) {
  temp_dir dir;
  init_logging(log_config{}, "worker", 7);
  capture_logs cap;
  EXPECT_THROW(init_logging(at_level("verbose"), "other"), std::invalid_argument);
  {
    std::ofstream(dir.path() / "plain_file") << "x";
    const auto impossible = dir.path() / "plain_file" / "node.log";  // parent is a file
    EXPECT_THROW(init_logging(to_file(impossible.string()), "other"), spdlog::spdlog_ex);
  }
  logger("net")->info("still here");
  EXPECT_NE(cap.text().find("worker.7] [net] still here"), std::string::npos) << cap.text();
}

TEST_F(Log, PercentInRoleIsPrintedLiterally) {
  init_logging(log_config{}, "odd%vrole", 5);
  capture_logs cap;
  logger("actor")->info("x");
  EXPECT_NE(cap.text().find(" odd%vrole.5] [actor] x"), std::string::npos) << cap.text();
}

}  // namespace
}  // namespace csk::test
