#include "common/base/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <thread>

namespace csk {

result<unique_fd, std::string> lock_directory(const std::string& dir, std::chrono::milliseconds wait) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return unexpected(dir + ": cannot create: " + ec.message());
  const std::string path = (std::filesystem::path(dir) / "LOCK").string();
  unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return unexpected(path + ": " + std::error_code(errno, std::generic_category()).message());
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return unexpected(path + ": flock: " + std::error_code(errno, std::generic_category()).message());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return unexpected(dir + " is in use by another node (" + path +
                        " is locked; a worker of a supervisor that died may still be stopping)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace csk
