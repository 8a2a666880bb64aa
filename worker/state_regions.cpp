#include "worker/state_regions.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/base/dir_lock.hpp"
#include "common/log/log.hpp"
#include "worker/supervisor_link.hpp"

namespace csk {
namespace {

const char* const part_names[3] = {"journal", "slot0", "slot1"};

std::string errno_text(const std::string& what) {
  return what + ": " + std::error_code(errno, std::generic_category()).message();
}

// A store id as a file name: [A-Za-z0-9._-] as they are, anything else %XX (so "." and
// ".." cannot be produced: a leading '.' is encoded too).
std::string file_name_of(const std::string& id) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                       c == '-' || (c == '.' && i > 0);
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string held_name(const std::string& id, int part) { return "state:" + id + ":" + part_names[part]; }

}  // namespace

entity::journal_options journal_options_from(const node_config& cfg) {
  entity::journal_options o;
  o.ring_bytes = std::uint64_t{cfg.journal.size_mb} << 20;
  o.checkpoint_percent = cfg.journal.checkpoint_percent;
  o.checkpoint_growth_percent = cfg.journal.checkpoint_growth_percent;
  o.checkpoint_min_bytes = std::uint64_t{cfg.journal.checkpoint_min_mb} << 20;
  o.checkpoint_interval = std::chrono::milliseconds(std::uint64_t{cfg.journal.checkpoint_interval_s} * 1000);
  o.checkpoint_page = cfg.journal.checkpoint_page;
  o.checkpoint_pause = std::chrono::milliseconds(cfg.journal.checkpoint_pause_ms);
  o.fsync = cfg.persist.fsync == "always" ? entity::fsync_policy::always
            : cfg.persist.fsync == "no"   ? entity::fsync_policy::no
                                          : entity::fsync_policy::everysec;
  return o;
}

bool state_regions::wanted(const node_config& cfg, bool supervised) {
  return cfg.journal.enabled && (supervised || !cfg.persist.dir.empty());
}

state_regions::state_regions(const node_config& cfg, std::map<std::string, unique_fd> inherited, supervisor_link* link)
    : options_(journal_options_from(cfg)),
      dir_(cfg.persist.dir),
      link_(link),
      takeover_(link != nullptr && link->takeover()),
      inherited_(std::move(inherited)) {
  if (auto it = inherited_.find("state:lock"); it != inherited_.end()) {
    lock_ = std::move(it->second);
    inherited_.erase(it);
  }
}

result<void, std::string> state_regions::lock_dir() {
  if (dir_.empty() || lock_) return {};
  auto l = lock_directory(dir_, std::chrono::milliseconds(0));
  if (!l) return unexpected(l.error());
  lock_ = std::move(*l);
  return {};
}

result<entity::region_files, std::string> state_regions::open(const std::string& store_id) {
  if (store_id.empty() || store_id.size() > 200) return unexpected(std::string("store ids for a journal are 1..200 bytes"));
  std::lock_guard lock(mu_);
  return dir_.empty() ? open_memory(store_id) : open_files(store_id);
}

result<entity::region_files, std::string> state_regions::open_files(const std::string& store_id) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return unexpected(dir_ + ": cannot create: " + ec.message());
  entity::region_files f;
  f.on_disk = true;
  f.where = dir_;
  bool created = false;
  for (int i = 0; i < 3; ++i) {
    const std::string path = (std::filesystem::path(dir_) / (file_name_of(store_id) + "." + part_names[i])).string();
    created = created || !std::filesystem::exists(path, ec);
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return unexpected(errno_text(path));
    (i == 0 ? f.journal : f.slots[static_cast<std::size_t>(i - 1)]) = std::move(fd);
  }
  if (created) {  // the new names must survive a power cut too
    unique_fd d(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d) (void)::fsync(d.get());
  }
  return f;
}

result<entity::region_files, std::string> state_regions::open_memory(const std::string& store_id) {
  entity::region_files f;
  f.where = "memory held by the supervisor";
  int found = 0;
  for (int i = 0; i < 3; ++i) found += inherited_.count(held_name(store_id, i)) != 0 ? 1 : 0;
  if (found == 3) {
    f.journal = std::move(inherited_[held_name(store_id, 0)]);
    f.slots[0] = std::move(inherited_[held_name(store_id, 1)]);
    f.slots[1] = std::move(inherited_[held_name(store_id, 2)]);
    for (int i = 0; i < 3; ++i) inherited_.erase(held_name(store_id, i));
    return f;
  }
  if (found != 0) return unexpected("the supervisor holds only part of store '" + store_id + "''s state");
  if (link_ == nullptr) return unexpected(std::string("no supervisor to hold the journal in memory"));
  std::vector<std::string> names;
  int fds[3] = {-1, -1, -1};
  for (int i = 0; i < 3; ++i) {
    unique_fd fd(::memfd_create(("csk:" + store_id + ":" + part_names[i]).c_str(), MFD_CLOEXEC));
    if (!fd) return unexpected(errno_text("memfd_create"));
    fds[i] = fd.get();
    names.push_back(held_name(store_id, i));
    (i == 0 ? f.journal : f.slots[static_cast<std::size_t>(i - 1)]) = std::move(fd);
  }
  // Held by the supervisor before the store writes a byte: once sendmsg returns, the fds
  // are in its socket's queue and outlive this process.
  if (auto r = link_->send(channel::keep{names}, fds); !r) {
    return unexpected("the supervisor cannot be given store '" + store_id + "''s journal: " + r.error());
  }
  return f;
}

void state_regions::unreadable(const std::string& why) {
  std::lock_guard lock(mu_);
  if (unreadable_.empty()) unreadable_ = why;
}

std::string state_regions::unreadable_reason() const {
  std::lock_guard lock(mu_);
  return unreadable_;
}

std::vector<std::string> state_regions::unclaimed() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, fd] : inherited_) out.push_back(name);
  return out;
}

}  // namespace csk
