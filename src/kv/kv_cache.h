// KvCache: the one interface the scheduler uses for KV memory (lookup, add a sequence,
// allocate, commit, free, stats). Behind it: the device-tier block pool, the prefix index, the
// host RAM tier and the SSD tier. Owned by the engine thread (not thread-safe); only the SSD
// tier's I/O threads run beside it and report through poll().
//
// Block size. A block is the unit of a prefix hit and of an SSD record. Smaller blocks reuse
// more of a prompt that diverges mid-block; larger blocks make fewer, larger files. For
// Qwen3-0.6B-shaped KV (28 layers x 8 kv heads x 128 x K,V x f16 = 114688 B/token) kv_bench on
// the 2-core EPYC VM (virtio disk, medians of 3) restored 16- to 256-token blocks (1.8 to 29 MB
// records) at 1.0-1.7 GB/s with no trend beyond the run-to-run spread, at or above a plain
// read() of the same files: per-record costs (open, checksum, rename) do not decide it. Hit
// granularity and file count do: at 64 tokens a hit is accurate to 64 tokens (and the resident
// partial tail of a finished request is reused too), a 100 GB budget is ~14k records (10k
// re-index in 0.3-0.7 s cold), and a lookup costs ~0.2-0.3 us per block. Default: 64.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kv/block_codec.h"
#include "kv/block_key.h"
#include "kv/block_pool.h"
#include "kv/layout.h"
#include "kv/prefix_index.h"
#include "kv/ssd_store.h"

namespace strata::kv {

enum class Tier : uint8_t { kDevice = 0, kHost = 1, kSsd = 2 };
const char* tier_name(Tier tier);

enum class SeqId : int64_t {};
enum class Alloc { kOk, kNoRoom };  // "no room" is a value the scheduler handles (preempt)

struct KvCacheOptions {
  KvLayout layout;
  Fingerprint fingerprint;       // make_fingerprint(weights, tokenizer, layout)
  int32_t device_blocks = 0;     // device-tier size in blocks
  uint64_t host_bytes = 0;       // host RAM tier budget; 0: no host tier
  std::string ssd_dir;           // cache directory; empty: no SSD tier
  uint64_t ssd_bytes = 0;        // SSD tier budget for this model
  bool lower_tier_int8 = false;  // store host/SSD blocks as per-row absmax int8 (lossy)
  int32_t shared_min_uses = 4;   // a block used by this many sequences is evicted last
  int num_io_threads = 2;
  bool ssd_fsync = true;
  // Write-behind: full blocks wait in a backlog (keys only) and are written straight from
  // their device block, which stays pinned (not evictable) while its write is in flight.
  int32_t ssd_max_inflight_writes = 32;
  int32_t ssd_backlog_blocks = 4096;         // beyond this the oldest pending write is skipped
  std::shared_ptr<RecordWriter> ssd_writer;  // tests inject faults here; null: real files
  // Memory for the tiers; null: aligned RAM. (CUDA: device memory / pinned host memory.)
  std::function<Result<std::unique_ptr<BlockMemory>>(size_t)> device_memory;
  std::function<Result<std::unique_ptr<BlockMemory>>(size_t)> host_memory;
};

// One block of a prefix match.
struct PrefixBlock {
  BlockKey key;
  Tier tier;
  int32_t num_tokens;  // tokens reused from it: block_tokens, or fewer for the last block
};
struct PrefixMatch {
  std::vector<PrefixBlock> blocks;
  int32_t num_tokens = 0;  // matched prompt tokens
  int32_t tokens_in(Tier tier) const;
};

struct RequestStats {
  int64_t prompt_tokens = 0;
  int64_t tokens_from_device = 0;
  int64_t tokens_from_host = 0;
  int64_t tokens_from_ssd = 0;
  int64_t tokens_computed = 0;  // prompt tokens committed after the cached prefix
  int64_t cached_tokens() const { return tokens_from_device + tokens_from_host + tokens_from_ssd; }
  // Prompt tokens served from cache / prompt tokens (0 for an empty prompt).
  double efficiency() const {
    return prompt_tokens > 0
               ? static_cast<double>(cached_tokens()) / static_cast<double>(prompt_tokens)
               : 0.0;
  }
};

struct CacheStats {
  RequestStats tokens;        // summed over finished sequences
  int64_t num_sequences = 0;  // finished
  int64_t device_blocks_evicted = 0;
  int64_t host_blocks_written = 0;  // demoted from the device tier
  uint64_t host_bytes_written = 0;
  int64_t host_blocks_read = 0;  // promoted to the device tier
  uint64_t host_bytes_read = 0;
  int64_t host_blocks_evicted = 0;
  uint64_t host_bytes_used = 0;  // the host tier's cached blocks now (encoded bytes)
  int64_t ssd_reads_wasted = 0;    // prefetches whose sequence gave up or left
  int64_t ssd_writes_skipped = 0;  // full blocks evicted or pushed out of the backlog unwritten
  SsdStats ssd;                    // written, read, evicted, dropped, failures
};

class KvCache {
 public:
  static Result<std::unique_ptr<KvCache>> create(KvCacheOptions options);
  ~KvCache();

  const KvLayout& layout() const { return opt_.layout; }
  // Device-tier addresses (layout.h, BlockStrides): K of `layer` in block b is
  // [num_kv_heads, block_tokens, head_dim] of layout.dtype at k_ptr(b, layer).
  BlockStrides strides() const { return block_strides(opt_.layout); }
  uint8_t* device_base() { return device_->base(); }
  uint8_t* k_ptr(BlockId b, int32_t layer);
  uint8_t* v_ptr(BlockId b, int32_t layer);
  uint8_t* state_ptr(BlockId b);  // [state_bytes] u8: the state as of the block's last token

  // The longest cached prefix of tokens[0, max_tokens) over all tiers (max_tokens < 0: all).
  // Read-only; add_sequence() acts on it.
  PrefixMatch lookup(std::span<const int32_t> tokens, const ExtraKey& extra,
                     int32_t max_tokens = -1) const;

  // Start a sequence for `prompt`: reuse the longest cached prefix of its first
  // max_cached_tokens tokens (< 0: all but the last prompt token, which must be computed to
  // get logits). Device hits are shared, host hits are copied up now, SSD hits are read
  // asynchronously: until is_ready() the sequence must not be allocated, committed or run.
  // Never fails for room: the cached prefix is cut where the device tier is full.
  SeqId add_sequence(std::span<const int32_t> prompt, const ExtraKey& extra,
                     int32_t max_cached_tokens = -1);
  bool is_ready(SeqId seq) const;
  // Apply finished SSD reads; returns the sequences that became ready. A failed or corrupt
  // read cuts that sequence's cached prefix before the block (it recomputes from there).
  // Also unpins blocks whose write-behind finished and queues more: call it every step.
  std::vector<SeqId> poll();
  // Called on an I/O thread when a read finishes (to wake the engine's queue); may be null.
  void set_on_io_done(std::function<void()> fn);
  // Stop waiting: cut the cached prefix at the first block still being read (recompute it).
  void abandon_pending(SeqId seq);

  // Tokens with KV in the block table (cached prefix + committed since).
  int32_t num_tokens(SeqId seq) const;
  int32_t num_cached_tokens(SeqId seq) const;
  std::span<const BlockId> block_table(SeqId seq) const;
  // Room for num_new_tokens more tokens: all the blocks or none. Blocks pinned by SSD reads or
  // writes in flight are not free, so kNoRoom can pass by itself after poll().
  [[nodiscard]] Alloc allocate(SeqId seq, int32_t num_new_tokens);
  // The caller has written K/V of these next tokens into the block table (and, with a state
  // layout, the state as of the last token of each block they reach, at state_ptr()).
  // Full blocks enter the prefix index and are written behind to SSD.
  void commit(SeqId seq, std::span<const int32_t> tokens);
  // Finish: the partial tail block stays findable while resident; blocks join the free list.
  void free(SeqId seq);

  RequestStats sequence_stats(SeqId seq) const;
  CacheStats stats() const;
  int32_t num_free_blocks() const { return device_->num_free(); }
  void flush();  // wait for the SSD writes queued so far (tests, shutdown)
  void check_invariants() const;

 private:
  struct Sequence {
    ExtraKey extra;
    BlockKey root;  // chain_root(fingerprint, extra)
    int32_t prompt_tokens = 0;
    int32_t num_cached = 0;
    int32_t num_pending = 0;      // SSD reads in flight
    std::vector<int32_t> tokens;  // tokens with KV (committed or cached)
    std::vector<BlockId> blocks;  // block table
    std::vector<BlockKey> keys;   // keys of its full blocks, in order
    std::vector<Tier> source;     // tier each cached block came from
  };
  struct PendingRead {
    SeqId seq;
    int32_t block_idx;
  };

  explicit KvCache(KvCacheOptions options);
  Sequence& seq_ref(SeqId seq);
  const Sequence& seq_ref(SeqId seq) const;
  std::optional<BlockId> take_device_block();
  std::optional<int32_t> take_host_slot();
  void evict_device(BlockId b);
  void evict_host(int32_t slot);
  void index_device_block(BlockId b, const BlockKey& key, const BlockKey& parent, int32_t depth,
                          std::span<const int32_t> tokens);
  bool admit_block(Sequence& s, SeqId id, const PrefixBlock& pb, std::span<const int32_t> prompt);
  void on_block_full(Sequence& s, int32_t block_idx);
  void truncate(Sequence& s, int32_t block_idx);
  void reap_writes();  // unpin blocks whose SSD write finished, then pump_writes()
  void pump_writes();  // queue backlog blocks still resident, up to the in-flight limit
  RequestStats compute_stats(const Sequence& s) const;

  KvCacheOptions opt_;
  BlockCodec codec_;
  std::unique_ptr<BlockPool> device_;
  std::unique_ptr<BlockPool> host_;  // null without a host tier
  std::unique_ptr<SsdStore> ssd_;    // null without an SSD tier
  PrefixIndex index_;
  std::vector<BlockKey> device_key_;  // key of each cached device block
  std::vector<BlockKey> host_key_;    // key of each cached host slot
  std::unordered_map<int64_t, Sequence> seqs_;
  std::unordered_map<uint64_t, PendingRead> pending_;
  std::vector<int32_t> io_pins_;  // per device block: SSD writes reading it, reads filling it
  std::unordered_map<uint64_t, BlockId> orphan_reads_;  // reads nobody waits for any more
  std::deque<BlockKey> write_backlog_;                  // full blocks to write behind, oldest first
  int32_t writes_in_flight_ = 0;
  int64_t next_seq_ = 1;
  uint64_t tick_ = 1;
  CacheStats totals_;
};

}  // namespace strata::kv
