// The SSD tier: a cache directory of block records (ssd_record.h) with a hard byte budget,
// write-behind and read-ahead on its own I/O threads, and a re-index at open that drops
// foreign, stale, truncated and corrupt records. Thread-safe: the engine thread submits and
// polls; the I/O threads write, read, verify and evict.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "kv/block_codec.h"
#include "kv/block_key.h"
#include "kv/layout.h"
#include "kv/ssd_record.h"

namespace strata::kv {

// The one place records reach the disk, so tests can inject faults (ENOSPC, EIO).
class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  // Write the concatenation of `parts` to dir/name crash-safely: a temporary name in the same
  // directory, fsync (if asked), then rename. A full disk is kResourceExhausted; any other
  // failure kIo. Leaves no temporary file behind on failure.
  virtual Status write(const std::string& dir, const std::string& name,
                       std::span<const std::span<const uint8_t>> parts, bool fsync) = 0;
};
std::shared_ptr<RecordWriter> make_file_record_writer();

struct SsdStoreOptions {
  std::string dir;            // the cache directory; records go to <dir>/<fingerprint hex>/
  uint64_t budget_bytes = 0;  // hard limit on this model's records (file sizes, 4 KiB rounded)
  Fingerprint fingerprint;
  KvLayout layout;
  BlockCodec codec = BlockCodec::kRaw;
  int num_io_threads = 2;
  size_t max_queued_writes = 64;         // beyond this, a write is dropped (the caller never waits)
  bool fsync = true;                     // fsync each record before its rename
  std::shared_ptr<RecordWriter> writer;  // null: make_file_record_writer()
};

struct SsdWrite {
  BlockKey key;
  BlockKey parent;
  int32_t depth = 0;
  std::vector<int32_t> tokens;  // [block_tokens] i32
  // Either the payload, already encoded ([encoded_block_bytes] in the store's codec)...
  std::vector<uint8_t> payload;
  // ...or a RAM-tier block ([layout.block_bytes()], layout.h) that the I/O thread encodes or
  // writes as it is. It must stay unchanged until take_completed_writes() returns `cookie`.
  const uint8_t* block = nullptr;
  uint64_t cookie = 0;
};

struct SsdReadDone {
  uint64_t ticket = 0;
  BlockKey key;
  Status status;               // kNotFound (evicted/deleted), kCorrupt (dropped), kIo
  std::vector<uint8_t> bytes;  // the whole record; the payload starts at payload_offset
  size_t payload_offset = 0;
  size_t payload_bytes = 0;
  std::span<const uint8_t> payload() const {
    return std::span<const uint8_t>(bytes).subspan(payload_offset, payload_bytes);
  }
};

struct SsdStats {
  int64_t num_records = 0;
  uint64_t used_bytes = 0;
  int64_t blocks_written = 0;
  uint64_t bytes_written = 0;
  int64_t blocks_read = 0;
  uint64_t bytes_read = 0;
  int64_t blocks_evicted = 0;
  uint64_t bytes_evicted = 0;
  int64_t writes_dropped = 0;   // queue full, over budget, or writing stopped
  int64_t read_failures = 0;    // missing or corrupt at read time (never served)
  int64_t dropped_at_open = 0;  // foreign, stale, truncated or corrupt records deleted at open
  int64_t indexed_at_open = 0;
  double open_seconds = 0;
  bool writes_stopped = false;  // after a full disk or an I/O error
};

class SsdStore {
 public:
  static Result<std::unique_ptr<SsdStore>> open(SsdStoreOptions options);
  ~SsdStore();  // finishes queued writes and reads
  SsdStore(const SsdStore&) = delete;
  SsdStore& operator=(const SsdStore&) = delete;

  // Is a verified-at-open or written record for `key` present? (A later read still checks.)
  bool contains(const BlockKey& key) const;
  // Queue a write; returns false (and counts a drop) if it is not queued: already present or
  // queued, queue full, larger than the budget, or writing stopped.
  bool submit_write(SsdWrite write);
  // Queue a read (ahead of writes); the result comes from take_completed_reads(). With a
  // `block` ([layout.block_bytes()], layout.h) the I/O thread reads the record's KV and state
  // straight into it (decoding int8 there too) and the result carries no bytes; the block must
  // stay allocated and untouched until the result is taken. After a failed read its contents
  // are unspecified (and never to be served).
  uint64_t submit_read(const BlockKey& key, uint8_t* block = nullptr);
  std::vector<SsdReadDone> take_completed_reads();
  // Cookies of queued writes with a `block` that are finished (written or dropped): their
  // blocks may change again.
  std::vector<uint64_t> take_completed_writes();
  // Called on an I/O thread after each finished read (e.g. to wake the engine's queue).
  void set_on_read_done(std::function<void()> fn);

  void flush();  // wait until every queued write is on disk (or dropped)
  SsdStats stats() const;
  std::string record_path(const BlockKey& key) const;
  const std::string& directory() const { return dir_; }
  std::vector<BlockKey> keys() const;

 private:
  struct Rec {
    uint64_t bytes;
    int64_t last_use;  // seconds since the epoch (file mtime at open)
    int32_t depth;
    uint64_t use_seq;  // order of use inside this process (0 for records found at open)
  };
  // LRU order: oldest second first; inside a second (a chain is written or read within one)
  // deeper blocks first, then least recently used first.
  using LruKey = std::tuple<int64_t, int32_t, uint64_t, uint64_t, uint64_t>;
  static LruKey lru_key(const BlockKey& k, const Rec& r) {
    return {r.last_use, -r.depth, r.use_seq, k.hi, k.lo};
  }

  explicit SsdStore(SsdStoreOptions options);
  Status reindex();
  void io_loop();
  void do_write(SsdWrite& w);
  void do_read(uint64_t ticket, const BlockKey& key, uint8_t* block);
  Status read_into_block(const std::string& path, const BlockKey& key, uint8_t* block,
                         uint64_t* file_bytes);
  Status check_info(const RecordInfo& info, const BlockKey& key) const;
  // Under mu_: evict LRU records until `need` more bytes fit; false if they cannot.
  bool reserve_locked(uint64_t need, std::vector<std::string>* unlink_paths);
  void erase_locked(const BlockKey& key, bool evicted);
  void insert_locked(const BlockKey& key, Rec rec);

  SsdStoreOptions opt_;
  std::string dir_;
  uint64_t record_bytes_;  // 4 KiB-rounded file size of one full record

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::unordered_map<BlockKey, Rec, Key128Hash> index_;
  std::set<LruKey> lru_;
  std::unordered_set<BlockKey, Key128Hash> queued_;  // writes queued or in flight
  std::deque<SsdWrite> writes_;
  struct ReadJob {
    uint64_t ticket;
    BlockKey key;
    uint8_t* block;
  };
  std::deque<ReadJob> reads_;
  std::vector<SsdReadDone> done_;
  std::vector<uint64_t> writes_done_;
  std::function<void()> on_read_done_;
  uint64_t reserved_bytes_ = 0;
  int writes_in_flight_ = 0;
  uint64_t next_ticket_ = 1;
  uint64_t next_use_seq_ = 1;
  bool stop_ = false;
  SsdStats stats_;
  std::vector<std::thread> threads_;
};

}  // namespace strata::kv
