#pragma once
// csk::entity::store_journal: one entity store's journal and checkpoints, on files it maps
// (the layout is journal_format.hpp; what is kept where and what each fault loses is
// docs/durability.md).
//
// The files are memfds the supervisor holds (a worker's death loses nothing: the pages
// belong to the supervisor's descriptors as much as to the worker's), or regular files
// in persist.dir (which also survive the supervisor and, per the fsync policy, the
// machine). The journal file is mapped shared and records are written into the mapping:
// an append is a memcpy and a checksum, plus msync for fsync: always.
//
// The life of one:
//   open()      maps the files; formats an empty region; refuses one of another store or
//               type, or one it cannot read
//   replay()    the checkpoint's pages, then every record of the chain, to callbacks;
//               remembers where the chain ends (recovery; also after an upgrade rolled
//               back, when the other worker wrote meanwhile)
//   start_writing()            a new epoch; appends go after the chain
//   continue_after_predecessor()  the same without replay: the new worker of an upgrade
//               at its commit, whose store already holds this state (the pre-copy)
//   append()    one record; `full` when the ring has no room (the caller checkpoints)
//   begin_checkpoint / add_page / commit_checkpoint / abort_checkpoint
//               a fuzzy checkpoint written page by page while appends go on; its commit
//               drops the records before it
//
// Thread rules: one thread at a time (the store's service) for everything but stats(),
// which anyone may read, and the process's fsync thread (everysec), which only msyncs.
// One writer per region across processes: the supervisor and the upgrade make sure of
// that (docs/durability.md, "one writer"); writer_current() tells a writer whether
// another one started since.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/base/bytes.hpp"
#include "common/base/result.hpp"
#include "common/base/unique_fd.hpp"
#include "services/entity/journal_format.hpp"
#include "services/entity/snapshot.hpp"

namespace csk::entity {

/// persist.fsync: when what is written to a file reaches the disk.
enum class fsync_policy : std::uint8_t {
  always,    ///< every record before its reply (msync): a machine crash loses nothing acknowledged
  everysec,  ///< a process thread msyncs every journal once a second: up to ~2 s lost
  no,        ///< the kernel writes back when it likes (typically within 30 s)
};
const char* fsync_policy_name(fsync_policy p) noexcept;

/// The `journal:` and `persist:` sections, as a store needs them.
struct journal_options {
  std::uint64_t ring_bytes = std::uint64_t{64} << 20;  ///< a new region's ring
  /// A background checkpoint starts when the ring is this full (percent of its bytes).
  unsigned checkpoint_percent = 50;
  /// ... or when the records since the last checkpoint take this percent of the last
  /// checkpoint's bytes, and at least checkpoint_min_bytes (Redis' auto-aof-rewrite-percentage
  /// and -min-size): bounds a recovery's replay by the size of the state, not of the ring.
  /// 0: only by checkpoint_percent.
  unsigned checkpoint_growth_percent = 100;
  std::uint64_t checkpoint_min_bytes = std::uint64_t{4} << 20;
  /// ... or when this long passed since the last one and something changed (0: never).
  std::chrono::milliseconds checkpoint_interval{0};
  std::size_t checkpoint_page = 2000;  ///< entities per checkpoint page (one page per store turn)
  /// Between two pages of a background checkpoint (0: the next page is the store's next
  /// message): spreads a large store's checkpoint over time.
  std::chrono::milliseconds checkpoint_pause{0};
  fsync_policy fsync = fsync_policy::everysec;  ///< on-disk regions only
};

/// The files of one store's state. Ownership passes to journal::open.
struct region_files {
  unique_fd journal;                 ///< header page + ring
  std::array<unique_fd, 2> slots;    ///< checkpoint slots 0 and 1
  bool on_disk = false;              ///< regular files: the fsync policy applies
  std::string where;                 ///< for logs: "memory (held by the supervisor)", a directory
};

/// What one store's journal is doing, for /metrics, /status and `cppskynet status`.
/// Written by the store's service thread; read by anyone.
struct journal_stats {
  std::atomic<std::uint64_t> entities{0};             ///< in the store (after its last message)
  std::atomic<std::uint64_t> ring_bytes{0};
  std::atomic<std::uint64_t> used_bytes{0};           ///< ring bytes holding records after the checkpoint
  std::atomic<std::uint64_t> records{0};              ///< appended by this process
  std::atomic<std::uint64_t> record_bytes{0};         ///< their ring bytes
  std::atomic<std::uint64_t> records_since_checkpoint{0};
  std::atomic<std::uint64_t> checkpoints{0};          ///< committed in this region (all processes)
  std::atomic<std::uint64_t> forced_checkpoints{0};   ///< by this process, because the ring was full
  std::atomic<std::uint64_t> checkpoint_bytes{0};     ///< of the current checkpoint
  std::atomic<std::int64_t> last_checkpoint_unix_ms{0};  ///< 0: none yet
  std::atomic<std::uint64_t> last_checkpoint_us{0};   ///< how long the last one took (by this process)
  std::atomic<bool> checkpointing{false};
  std::atomic<std::uint64_t> syncs{0};                ///< msync/fdatasync calls (on-disk regions)
  // The last recovery (replay) of this process.
  std::atomic<bool> recovered{false};
  std::atomic<std::uint64_t> recovered_entities{0};
  std::atomic<std::uint64_t> recovered_pages{0};
  std::atomic<std::uint64_t> recovered_records{0};
  std::atomic<std::uint64_t> recovery_us{0};
  std::atomic<bool> recovery_stopped_at_bad_record{false};

  void set_note(std::string s) {
    std::lock_guard lock(mu_);
    note_ = std::move(s);
  }
  std::string note() const {
    std::lock_guard lock(mu_);
    return note_;
  }

 private:
  mutable std::mutex mu_;
  std::string note_;  ///< what the last recovery said about the end of its chain ("" = clean)
};

class store_journal {
 public:
  /// Maps `files`. A region with no superblock yet (new files) is formatted with
  /// `o.ring_bytes`; an existing one must be of this store id, type and key kind.
  static result<std::unique_ptr<store_journal>, std::string> open(region_files files, const std::string& store_id,
                                                             const type_desc& type, const journal_options& o);
  ~store_journal();
  store_journal(const store_journal&) = delete;
  store_journal& operator=(const store_journal&) = delete;

  // -- recovery -------------------------------------------------------------------

  struct replayed {
    std::uint64_t pages = 0, records = 0;
    std::int64_t last_clock_ms = 0;  ///< the entity clock of the newest state read (a page's or record's header)
    bool other_boot = false;  ///< written under another kernel boot (persist, after a reboot)
    bool bad = false;         ///< ended before the writer's tail: acknowledged records after it are lost
    std::string note;         ///< why and where the chain ended, when it is worth saying
  };
  using page_fn = std::function<result<void, std::string>(bytes_view page)>;
  using record_fn = std::function<result<void, std::string>(const journal::record&)>;
  /// The checkpoint's pages, then each record of the chain (delta and clear), in order.
  /// An error from a callback, or a checkpoint that does not read, ends it with that
  /// error: the state cannot be recovered by this binary.
  result<replayed, std::string> replay(const page_fn& on_page, const record_fn& on_record);

  // -- writing --------------------------------------------------------------------

  /// Becomes the writer after replay(): a new epoch in the superblock, appends after
  /// the chain's end.
  result<void, std::string> start_writing();
  /// Becomes the writer of a region whose last writer (the old worker of an upgrade)
  /// stopped writing and whose state this store already holds: the chain ends where its
  /// tail hint says (checked; read from the records when the hint is stale).
  result<void, std::string> continue_after_predecessor();
  /// False once another process started writing this region (its epoch is newer).
  bool writer_current() const;
  bool writing() const noexcept { return writing_; }
  /// open() made this region (it held nothing): the store must checkpoint what it holds.
  bool fresh() const noexcept { return fresh_; }
  const journal_options& options() const noexcept { return o_; }
  /// Stops writing (the store is sealed for an upgrade): nothing is appended until one of
  /// the start functions runs again. Abandons a checkpoint in progress.
  void stop_writing();

  enum class append_status : std::uint8_t { ok, full };
  /// One record, durable per the fsync policy when this returns ok. `full`: the ring has
  /// no room for it (nothing written): checkpoint, then append again.
  append_status append(journal::record_kind kind, bytes_view payload);
  /// A record of this many payload bytes can never fit (the caller checkpoints instead).
  bool too_large(std::size_t payload) const noexcept;
  /// A background checkpoint is due (the ring past checkpoint_percent, or the interval).
  bool checkpoint_due(std::chrono::steady_clock::time_point now) const noexcept;

  // -- checkpoints ----------------------------------------------------------------

  /// Starts a checkpoint of the state as it is now: it will cover every record appended
  /// so far. `clock_ms`: the entity clock (for operators and timers after a reboot).
  result<void, std::string> begin_checkpoint(std::int64_t clock_ms);
  bool checkpointing() const noexcept { return checkpointing_; }
  /// One page (an entity snapshot of kind page) of the checkpoint in progress.
  result<void, std::string> add_page(bytes_view page);
  /// The checkpoint is complete: it becomes the current one and the records before it are
  /// dropped (their ring bytes are free again).
  result<void, std::string> commit_checkpoint();
  void abort_checkpoint() noexcept;

  const std::shared_ptr<journal_stats>& stats() const noexcept { return stats_; }
  std::uint64_t ring_size() const noexcept { return ring_size_; }
  std::uint64_t used() const noexcept { return used_; }
  std::uint64_t next_seq() const noexcept { return next_seq_; }
  const std::string& where() const noexcept { return files_.where; }

 private:
  store_journal(region_files files, journal_options o);
  result<void, std::string> map_and_check(const std::string& store_id, const type_desc& type);
  result<void, std::string> write_superblock(journal::superblock sb);
  void write_hint() noexcept;
  void sync_range(std::uint64_t offset, std::uint64_t len) noexcept;  // file offsets
  void populate(std::uint64_t ring_offset, std::uint64_t len, bool for_write) noexcept;
  void populate_ahead(std::uint64_t pos, std::uint64_t size) noexcept;
  bytes_view ring() const noexcept;
  std::uint8_t* ring_data() noexcept;
  void publish() noexcept;  // stats

  region_files files_;
  journal_options o_;
  std::shared_ptr<journal_stats> stats_;
  std::uint8_t* map_ = nullptr;
  std::size_t map_len_ = 0;
  std::uint64_t ring_size_ = 0;
  journal::superblock sb_;  ///< the current superblock as this process last read or wrote it
  int sb_copy_ = 0;         ///< which copy holds it
  // The writer's position (valid after replay or a start function).
  std::uint64_t tail_ = 0, used_ = 0, next_seq_ = 1;
  std::uint32_t epoch_ = 0;
  std::uint64_t ahead_from_ = 0, ahead_to_ = 0;  ///< ring bytes the writer mapped ahead
  bool writing_ = false;
  bool fresh_ = false;
  bool registered_ = false;  ///< with the process's everysec fsync thread
  std::function<void()> sync_job_;  ///< what that thread runs for this journal
  // A checkpoint in progress.
  bool checkpointing_ = false;
  std::uint8_t ck_slot_ = 0;
  std::uint64_t ck_head_ = 0, ck_seq_ = 1, ck_used_ = 0, ck_pages_ = 0, ck_bytes_ = 0;
  std::int64_t ck_clock_ = 0;
  std::chrono::steady_clock::time_point ck_started_{}, last_checkpoint_ = std::chrono::steady_clock::now();
  byte_buffer frame_;
};

/// This kernel's boot id (/proc/sys/kernel/random/boot_id), zeros if unknown.
const journal::boot_id& current_boot_id();

}  // namespace csk::entity
