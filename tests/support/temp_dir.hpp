#pragma once
// A fresh directory per test, removed afterwards (header-only, for any test target).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace csk::test {

class temp_dir_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("csk_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

}  // namespace csk::test
