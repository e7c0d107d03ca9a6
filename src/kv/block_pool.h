// A fixed pool of KV blocks in one RAM tier (the device tier of the CPU backend, or the host
// tier): the memory, a reference count per block, and the free list in eviction order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "core/status.h"

namespace strata::kv {

enum class BlockId : int32_t {};
inline int32_t idx(BlockId b) { return static_cast<int32_t>(b); }

// Memory for a pool: one contiguous range. Plain aligned RAM here; the CUDA backend will
// provide pinned host memory (host tier) or device memory (device tier) behind the same type.
class BlockMemory {
 public:
  virtual ~BlockMemory() = default;
  virtual uint8_t* data() = 0;
  virtual size_t bytes() const = 0;
};
// Page-aligned, zero-filled RAM; kResourceExhausted when the allocation fails.
Result<std::unique_ptr<BlockMemory>> allocate_host_memory(size_t bytes);

// Eviction order of free blocks (reference count 0), first victim first:
//   1. blocks holding nothing cached (never committed, or dropped from the index);
//   2. cached blocks used by fewer than `shared_min_uses` sequences;
//   3. cached blocks used by many sequences (system prompts, tool lists) go last.
// Inside a class: least recently released first; at the same release tick (a request frees
// its chain at once), deeper blocks (tails) before their parents.
class BlockPool {
 public:
  BlockPool(int32_t num_blocks, size_t block_bytes, std::unique_ptr<BlockMemory> memory,
            int32_t shared_min_uses = 4);

  int32_t num_blocks() const { return static_cast<int32_t>(meta_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  size_t block_bytes() const { return block_bytes_; }
  uint8_t* data(BlockId b) { return base_ + static_cast<size_t>(idx(b)) * block_bytes_; }
  const uint8_t* data(BlockId b) const {
    return base_ + static_cast<size_t>(idx(b)) * block_bytes_;
  }
  uint8_t* base() { return base_; }

  // The next victim in eviction order, or nullopt when every block is referenced.
  std::optional<BlockId> peek_victim() const;
  // Take a free block for new content: reference 1, uses 1, not cached. The caller has
  // already moved or dropped what the block held.
  void take(BlockId b);
  // One more reference (a sequence reusing a cached block, or an I/O pin: count_use false);
  // a free block leaves the free list.
  void acquire(BlockId b, bool count_use = true);
  // One reference less, last used at `tick`; at zero the block joins the free list.
  void release(BlockId b, uint64_t tick);
  // Mark whether the block's content is findable (in the index), and its chain depth.
  void set_cached(BlockId b, bool cached, int32_t depth);

  int32_t ref_count(BlockId b) const { return meta_[idx(b)].ref; }
  bool is_cached(BlockId b) const { return meta_[idx(b)].cached; }
  uint64_t last_use(BlockId b) const { return meta_[idx(b)].last_use; }

  // Aborts (STRATA_CHECK) when the free list and the reference counts disagree.
  void check_invariants() const;

 private:
  struct Meta {
    int32_t ref = 0;
    int32_t depth = 0;
    int32_t num_uses = 0;
    bool cached = false;
    uint64_t last_use = 0;
  };
  // (class, last use, -depth, id): the set's first element is the next victim.
  using EvictKey = std::tuple<int, uint64_t, int32_t, int32_t>;
  EvictKey evict_key(int32_t i) const;
  void unlink_free(int32_t i);
  void link_free(int32_t i);

  std::unique_ptr<BlockMemory> memory_;
  uint8_t* base_;
  size_t block_bytes_;
  int32_t shared_min_uses_;
  std::vector<Meta> meta_;
  std::set<EvictKey> free_;
};

}  // namespace strata::kv
