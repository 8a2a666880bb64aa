#include "services/entity/journal.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

namespace csk::entity {
namespace {

using steady = std::chrono::steady_clock;

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::error_code(errno, std::generic_category()).message();
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool zero_boot(const journal::boot_id& b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t c) { return c == 0; });
}

// The newest state a page or delta says it was written at (its header's clock), or 0.
std::int64_t clock_of(bytes_view snapshot) {
  auto h = read_header(snapshot, nullptr, false);
  return h ? h->clock_ms : 0;
}

// The process's everysec fsync thread: once a second, msync of every registered
// journal's mapping. It runs while at least one journal is registered.
class syncer {
 public:
  static syncer& get() {
    static syncer* s = new syncer;  // never destroyed: a journal may unregister during static destruction
    return *s;
  }
  void add(std::function<void()>* sync) {
    std::lock_guard lock(mu_);
    jobs_.insert(sync);
    if (!thread_.joinable()) {
      stop_ = false;
      thread_ = std::thread([this] { run(); });
    }
  }
  void remove(std::function<void()>* sync) {
    std::thread done;
    {
      std::lock_guard lock(mu_);
      jobs_.erase(sync);
      if (jobs_.empty() && thread_.joinable()) {
        stop_ = true;
        cv_.notify_all();
        done = std::move(thread_);
      }
    }
    if (done.joinable()) done.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
      if (stop_) break;
      for (auto* job : jobs_) (*job)();  // under mu_: a journal cannot unmap meanwhile
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::function<void()>*> jobs_;
  std::thread thread_;
  bool stop_ = false;
};

}  // namespace

const char* fsync_policy_name(fsync_policy p) noexcept {
  switch (p) {
    case fsync_policy::always: return "always";
    case fsync_policy::everysec: return "everysec";
    case fsync_policy::no: return "no";
  }
  return "?";
}

const journal::boot_id& current_boot_id() {
  static const journal::boot_id id = [] {
    journal::boot_id b{};
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string text;
    std::getline(in, text);
    std::size_t n = 0;
    int half = -1;
    for (char c : text) {
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) continue;
      if (half < 0) {
        half = v;
      } else if (n < b.size()) {
        b[n++] = static_cast<std::uint8_t>(half * 16 + v);
        half = -1;
      }
    }
    return b;
  }();
  return id;
}

store_journal::store_journal(region_files files, journal_options o)
    : files_(std::move(files)), o_(o), stats_(std::make_shared<journal_stats>()) {}

store_journal::~store_journal() {
  stop_writing();
  if (map_ != nullptr) {
    if (files_.on_disk && o_.fsync != fsync_policy::no) (void)::msync(map_, map_len_, MS_SYNC);
    ::munmap(map_, map_len_);
  }
}

result<std::unique_ptr<store_journal>, std::string> store_journal::open(region_files files, const std::string& store_id,
                                                                        const type_desc& type,
                                                                        const journal_options& o) {
  if (!files.journal || !files.slots[0] || !files.slots[1]) {
    return unexpected(std::string("entity journal: a region needs its journal file and two slot files"));
  }
  std::unique_ptr<store_journal> j(new store_journal(std::move(files), o));
  if (auto r = j->map_and_check(store_id, type); !r) return unexpected(r.error());
  return j;
}

result<void, std::string> store_journal::map_and_check(const std::string& store_id, const type_desc& type) {
  const std::string who = "entity '" + store_id + "' journal (" + files_.where + ")";
  struct stat st {};
  if (::fstat(files_.journal.get(), &st) != 0) return unexpected(who + ": " + errno_text("fstat"));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const auto map = [&](std::uint64_t len) -> result<void, std::string> {
    void* p = ::mmap(nullptr, static_cast<std::size_t>(len), PROT_READ | PROT_WRITE, MAP_SHARED, files_.journal.get(), 0);
    if (p == MAP_FAILED) return unexpected(who + ": " + errno_text("mmap"));
    map_ = static_cast<std::uint8_t*>(p);
    map_len_ = static_cast<std::size_t>(len);
    return {};
  };
  std::optional<journal::current_superblock> cur;
  if (size >= journal::header_page_size) {
    if (auto m = map(journal::header_page_size); !m) return m;
    auto r = journal::read_superblocks(bytes_view(map_, journal::header_page_size));
    ::munmap(map_, map_len_);
    map_ = nullptr;
    if (!r) return unexpected(who + ": " + r.error());
    cur = std::move(*r);
  } else if (size != 0) {
    return unexpected(who + ": " + std::to_string(size) + " bytes, less than its header (truncated?)");
  }
  if (cur && cur->sb) {  // an existing region: this store's?
    const auto& sb = *cur->sb;
    if (sb.store_id != store_id) return unexpected(who + ": the region belongs to store '" + sb.store_id + "'");
    if (sb.type != type.name) {
      return unexpected(who + ": the region holds entity type '" + sb.type + "', this store is of type '" + type.name + "'");
    }
    if (sb.key != type.key) return unexpected(who + ": the region's keys are " + key_kind_name(sb.key) + "s");
    if (size < journal::header_page_size + sb.ring_size) {
      return unexpected(who + ": the file has " + std::to_string(size) + " bytes, its ring needs " +
                        std::to_string(journal::header_page_size + sb.ring_size));
    }
    ring_size_ = sb.ring_size;
    if (auto m = map(journal::header_page_size + ring_size_); !m) return m;
    sb_ = sb;
    sb_copy_ = cur->copy;
    return {};
  }
  // A new region: size it and write the first superblock.
  ring_size_ = std::clamp<std::uint64_t>(o_.ring_bytes / journal::record_align * journal::record_align,
                                         journal::min_ring_size, journal::max_ring_size);
  const auto len = journal::header_page_size + ring_size_;
  if (::ftruncate(files_.journal.get(), static_cast<off_t>(len)) != 0) return unexpected(who + ": " + errno_text("ftruncate"));
  if (files_.on_disk) {
    // Reserve the blocks: a write into a hole of a full disk would be SIGBUS, not an error.
    if (int e = ::posix_fallocate(files_.journal.get(), 0, static_cast<off_t>(len)); e != 0) {
      errno = e;
      return unexpected(who + ": " + errno_text("posix_fallocate"));
    }
  }
  if (auto m = map(len); !m) return m;
  journal::superblock sb;
  sb.ring_size = ring_size_;
  sb.key = type.key;
  sb.boot = current_boot_id();
  sb.store_id = store_id;
  sb.type = type.name;
  sb_ = sb;
  sb_copy_ = 1;  // so the first write goes to copy 0
  fresh_ = true;
  return write_superblock(sb);
}

bytes_view store_journal::ring() const noexcept {
  return bytes_view(map_ + journal::header_page_size, static_cast<std::size_t>(ring_size_));
}
std::uint8_t* store_journal::ring_data() noexcept { return map_ + journal::header_page_size; }

result<void, std::string> store_journal::write_superblock(journal::superblock sb) {
  sb.counter = sb_.counter + 1;
  const byte_buffer bytes = journal::encode_superblock(sb);
  if (bytes.size() > journal::superblock_space) return unexpected(std::string("entity journal: superblock too large"));
  const int copy = 1 - sb_copy_;
  std::uint8_t* at = map_ + journal::superblock_at[copy];
  std::memset(at, 0, journal::superblock_space);
  std::memcpy(at, bytes.data(), bytes.size());
  if (files_.on_disk) sync_range(0, journal::header_page_size);
  sb_ = std::move(sb);
  sb_copy_ = copy;
  return {};
}

void store_journal::write_hint() noexcept { journal::write_hint(map_, {epoch_, next_seq_, tail_, used_}); }

void store_journal::sync_range(std::uint64_t offset, std::uint64_t len) noexcept {
  const std::uint64_t page = 4096;
  const std::uint64_t from = offset / page * page;
  const std::uint64_t to = std::min<std::uint64_t>(map_len_, offset + len);
  if (to > from) (void)::msync(map_ + from, static_cast<std::size_t>(to - from), MS_SYNC);
  stats_->syncs.fetch_add(1, std::memory_order_relaxed);
}

// A first touch of each 4 KiB page of a fresh mapping is a page fault (microseconds each
// on a VM: a quarter of a record's cost). The writer maps the ring ahead of its tail in
// 1 MiB steps (one madvise per ~5000 records; cheap once the pages are mapped), the replay
// the records it is about to read in one call. Kernels before 5.14 refuse: harmless.
void store_journal::populate(std::uint64_t ring_offset, std::uint64_t len, bool for_write) noexcept {
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23;
#endif
  const std::uint64_t page = 4096;
  const std::uint64_t from = (journal::header_page_size + ring_offset) / page * page;
  const std::uint64_t to = std::min<std::uint64_t>(map_len_, journal::header_page_size + ring_offset + len);
  if (to <= from) return;
  (void)::madvise(map_ + from, static_cast<std::size_t>(to - from), for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

void store_journal::populate_ahead(std::uint64_t pos, std::uint64_t size) noexcept {
  if (pos >= ahead_from_ && pos + size <= ahead_to_) return;
  const std::uint64_t step = std::uint64_t{1} << 20;
  ahead_from_ = pos;
  ahead_to_ = std::min(ring_size_, std::max(pos + size, pos + step));
  populate(ahead_from_, ahead_to_ - ahead_from_, true);
}

void store_journal::publish() noexcept {
  auto& s = *stats_;
  s.ring_bytes.store(ring_size_, std::memory_order_relaxed);
  s.used_bytes.store(used_, std::memory_order_relaxed);
  s.records_since_checkpoint.store(next_seq_ - std::min(next_seq_, sb_.head_seq), std::memory_order_relaxed);
  s.checkpoints.store(sb_.checkpoints, std::memory_order_relaxed);
  s.checkpoint_bytes.store(sb_.checkpoint_bytes, std::memory_order_relaxed);
  s.last_checkpoint_unix_ms.store(sb_.checkpoint_unix_ms, std::memory_order_relaxed);
  s.checkpointing.store(checkpointing_, std::memory_order_relaxed);
}

// ------------------------------------------------------------------ recovery --

result<store_journal::replayed, std::string> store_journal::replay(const page_fn& on_page, const record_fn& on_record) {
  const auto started = steady::now();
  auto cur = journal::read_superblocks(bytes_view(map_, journal::header_page_size));
  if (!cur || !cur->sb) return unexpected("entity journal: superblock: " + (cur ? std::string("none") : cur.error()));
  sb_ = *cur->sb;
  sb_copy_ = cur->copy;
  replayed out;
  if (sb_.slot != journal::no_slot) {
    const int fd = files_.slots[sb_.slot].get();
    struct stat st {};
    if (::fstat(fd, &st) != 0) return unexpected("checkpoint slot " + std::to_string(sb_.slot) + ": " + errno_text("fstat"));
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return unexpected("checkpoint slot " + std::to_string(sb_.slot) + ": " + errno_text("mmap"));
    const bytes_view slot(static_cast<const std::uint8_t*>(p), size);
    auto r = journal::read_frames(slot, sb_.checkpoint_pages, sb_.checkpoint_bytes, [&](bytes_view page) {
      out.last_clock_ms = std::max(out.last_clock_ms, clock_of(page));
      ++out.pages;
      return on_page(page);
    });
    if (p != nullptr) ::munmap(p, size);
    if (!r) return unexpected("checkpoint (slot " + std::to_string(sb_.slot) + "): " + r.error());
  }
  if (const auto h = journal::read_hint(bytes_view(map_, journal::header_page_size)); h.tail < ring_size_ && sb_.head < ring_size_) {
    if (h.tail >= sb_.head) {
      populate(sb_.head, h.tail - sb_.head + journal::record_header_size, false);
    } else {
      populate(sb_.head, ring_size_ - sb_.head, false);
      populate(0, h.tail + journal::record_header_size, false);
    }
  }
  auto s = journal::scan(ring(), sb_.head, sb_.head_seq, [&](const journal::record& rec) -> result<void, std::string> {
    if (rec.kind == journal::record_kind::delta) out.last_clock_ms = std::max(out.last_clock_ms, clock_of(rec.payload));
    ++out.records;
    if (auto ok = on_record(rec); !ok) return unexpected("record " + std::to_string(rec.seq) + ": " + ok.error());
    return {};
  });
  if (!s) return unexpected(s.error());
  tail_ = s->tail;
  used_ = s->used;
  next_seq_ = s->next_seq;
  const journal::tail_hint hint = journal::read_hint(bytes_view(map_, journal::header_page_size));
  if (hint.next_seq > s->next_seq) {
    out.bad = true;
    out.note = "stopped at seq " + std::to_string(s->next_seq) + " (ring offset " + std::to_string(s->tail) + "): " +
               s->stop + "; the writer had reached seq " + std::to_string(hint.next_seq - 1) + ": records " +
               std::to_string(s->next_seq) + ".." + std::to_string(hint.next_seq - 1) + " are lost";
  }
  out.other_boot = !zero_boot(sb_.boot) && sb_.boot != current_boot_id();
  auto& st = *stats_;
  st.recovered.store(true);
  st.recovered_pages.store(out.pages);
  st.recovered_records.store(out.records);
  st.recovery_stopped_at_bad_record.store(out.bad);
  st.recovery_us.store(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - started).count()));
  st.set_note(out.note);
  publish();
  return out;
}

// ------------------------------------------------------------------- writing --

result<void, std::string> store_journal::start_writing() {
  journal::superblock sb = sb_;
  sb.epoch = sb_.epoch + 1;
  sb.boot = current_boot_id();
  if (auto r = write_superblock(std::move(sb)); !r) return r;
  epoch_ = static_cast<std::uint32_t>(sb_.epoch);
  writing_ = true;
  last_checkpoint_ = steady::now();
  write_hint();
  if (files_.on_disk && o_.fsync == fsync_policy::everysec && !registered_) {
    sync_job_ = [this] {
      (void)::msync(map_, map_len_, MS_SYNC);
      stats_->syncs.fetch_add(1, std::memory_order_relaxed);
    };
    syncer::get().add(&sync_job_);
    registered_ = true;
  }
  publish();
  return {};
}

result<void, std::string> store_journal::continue_after_predecessor() {
  auto cur = journal::read_superblocks(bytes_view(map_, journal::header_page_size));
  if (!cur || !cur->sb) return unexpected("entity journal: superblock: " + (cur ? std::string("none") : cur.error()));
  sb_ = *cur->sb;
  sb_copy_ = cur->copy;
  const journal::tail_hint h = journal::read_hint(bytes_view(map_, journal::header_page_size));
  const bool plausible = h.epoch == sb_.epoch && h.next_seq >= sb_.head_seq && h.tail < ring_size_ &&
                         h.tail % journal::record_align == 0 && h.used <= ring_size_;
  // The hint is the predecessor's last append; nothing may follow it.
  if (plausible && !journal::read_record(ring(), h.tail, h.next_seq, static_cast<std::uint32_t>(h.epoch))) {
    tail_ = h.tail;
    used_ = h.used;
    next_seq_ = h.next_seq;
  } else {
    auto s = journal::scan(ring(), sb_.head, sb_.head_seq, [](const journal::record&) -> result<void, std::string> { return {}; });
    if (!s) return unexpected(s.error());
    tail_ = s->tail;
    used_ = s->used;
    next_seq_ = s->next_seq;
  }
  return start_writing();
}

bool store_journal::writer_current() const {
  auto cur = journal::read_superblocks(bytes_view(map_, journal::header_page_size));
  return cur && cur->sb && cur->sb->epoch == epoch_;
}

void store_journal::stop_writing() {
  abort_checkpoint();
  writing_ = false;
  if (registered_) {
    syncer::get().remove(&sync_job_);
    registered_ = false;
  }
}

bool store_journal::too_large(std::size_t payload) const noexcept {
  return journal::record_size(payload) > ring_size_ / 2;
}

store_journal::append_status store_journal::append(journal::record_kind kind, bytes_view payload) {
  const std::size_t size = journal::record_size(payload.size());
  std::uint64_t pos = tail_, waste = 0;
  bool wrap = false;
  if (ring_size_ - pos < journal::record_header_size) {
    waste = ring_size_ - pos;
    pos = 0;
  } else if (ring_size_ - pos < size) {
    waste = ring_size_ - pos;
    wrap = true;
    pos = 0;
  }
  if (used_ + waste + size > ring_size_) return append_status::full;
  populate_ahead(pos, size);
  if (wrap) {
    journal::write_record(ring_data() + tail_, next_seq_++, epoch_, journal::record_kind::wrap, {});
    if (files_.on_disk && o_.fsync == fsync_policy::always) sync_range(journal::header_page_size + tail_, journal::record_header_size);
  }
  journal::write_record(ring_data() + pos, next_seq_++, epoch_, kind, payload);
  if (files_.on_disk && o_.fsync == fsync_policy::always) sync_range(journal::header_page_size + pos, size);
  tail_ = pos + size == ring_size_ ? 0 : pos + size;
  used_ += waste + size;
  write_hint();
  auto& s = *stats_;
  s.records.fetch_add(1, std::memory_order_relaxed);
  s.record_bytes.fetch_add(size, std::memory_order_relaxed);
  s.used_bytes.store(used_, std::memory_order_relaxed);
  s.records_since_checkpoint.store(next_seq_ - sb_.head_seq, std::memory_order_relaxed);
  return append_status::ok;
}

bool store_journal::checkpoint_due(steady::time_point now) const noexcept {
  if (!writing_ || checkpointing_) return false;
  if (used_ * 100 >= ring_size_ * o_.checkpoint_percent) return true;
  if (o_.checkpoint_growth_percent != 0 &&
      used_ >= std::max(o_.checkpoint_min_bytes, sb_.checkpoint_bytes * o_.checkpoint_growth_percent / 100)) {
    return true;
  }
  return o_.checkpoint_interval.count() > 0 && next_seq_ > sb_.head_seq && now - last_checkpoint_ >= o_.checkpoint_interval;
}

// --------------------------------------------------------------- checkpoints --

result<void, std::string> store_journal::begin_checkpoint(std::int64_t clock_ms) {
  if (!writing_) return unexpected(std::string("entity journal: a checkpoint needs the writer"));
  abort_checkpoint();
  ck_slot_ = sb_.slot == 0 ? 1 : 0;
  if (::ftruncate(files_.slots[ck_slot_].get(), 0) != 0) return unexpected("checkpoint slot: " + errno_text("ftruncate"));
  ck_head_ = tail_;
  ck_seq_ = next_seq_;
  ck_used_ = used_;
  ck_pages_ = ck_bytes_ = 0;
  ck_clock_ = clock_ms;
  ck_started_ = steady::now();
  checkpointing_ = true;
  stats_->checkpointing.store(true, std::memory_order_relaxed);
  return {};
}

result<void, std::string> store_journal::add_page(bytes_view page) {
  if (!checkpointing_) return unexpected(std::string("entity journal: no checkpoint in progress"));
  frame_.clear();
  journal::write_frame(frame_, page);
  const int fd = files_.slots[ck_slot_].get();
  std::size_t done = 0;
  while (done < frame_.size()) {
    const ssize_t n = ::pwrite(fd, frame_.data() + done, frame_.size() - done, static_cast<off_t>(ck_bytes_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = errno_text("checkpoint write");
      abort_checkpoint();
      return unexpected(why);
    }
    done += static_cast<std::size_t>(n);
  }
  ck_bytes_ += frame_.size();
  ++ck_pages_;
  return {};
}

result<void, std::string> store_journal::commit_checkpoint() {
  if (!checkpointing_) return unexpected(std::string("entity journal: no checkpoint in progress"));
  if (files_.on_disk) {
    if (::fdatasync(files_.slots[ck_slot_].get()) != 0) {
      const std::string why = errno_text("checkpoint fdatasync");
      abort_checkpoint();
      return unexpected(why);
    }
    stats_->syncs.fetch_add(1, std::memory_order_relaxed);
  }
  const std::uint8_t old_slot = sb_.slot;
  journal::superblock sb = sb_;
  sb.head = ck_head_;
  sb.head_seq = ck_seq_;
  sb.slot = ck_slot_;
  sb.checkpoint_pages = ck_pages_;
  sb.checkpoint_bytes = ck_bytes_;
  sb.checkpoint_clock_ms = ck_clock_;
  sb.checkpoint_unix_ms = unix_ms_now();
  sb.checkpoints = sb_.checkpoints + 1;
  sb.boot = current_boot_id();
  if (auto r = write_superblock(std::move(sb)); !r) {
    abort_checkpoint();
    return r;
  }
  used_ -= ck_used_;
  checkpointing_ = false;
  last_checkpoint_ = steady::now();
  // The old checkpoint is not needed any more (the superblock no longer names it).
  if (old_slot != journal::no_slot && old_slot != ck_slot_) (void)::ftruncate(files_.slots[old_slot].get(), 0);
  write_hint();
  stats_->last_checkpoint_us.store(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(last_checkpoint_ - ck_started_).count()));
  publish();
  return {};
}

void store_journal::abort_checkpoint() noexcept {
  checkpointing_ = false;
  stats_->checkpointing.store(false, std::memory_order_relaxed);
}

}  // namespace csk::entity
