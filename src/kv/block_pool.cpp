// BlockPool: reference counts and the eviction-ordered free list.
#include "kv/block_pool.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "core/huge_pages.h"

namespace strata::kv {

namespace {
// Anonymous mapping: zero-filled and committed page by page as blocks are first written, so
// a large tier costs nothing at start (a memset here took seconds for a few GiB).
class AlignedMemory final : public BlockMemory {
 public:
  AlignedMemory(uint8_t* p, size_t n) : p_(p), n_(n) {}
  ~AlignedMemory() override { munmap(p_, n_); }
  uint8_t* data() override { return p_; }
  size_t bytes() const override { return n_; }

 private:
  uint8_t* p_;
  size_t n_;
};
}  // namespace

Result<std::unique_ptr<BlockMemory>> allocate_host_memory(size_t bytes) {
  size_t rounded = (bytes + 4095) & ~size_t{4095};
  if (rounded == 0) rounded = 4096;
  // In 2 MB pages where the kernel gives them: attention streams K/V rows as decode streams
  // weights (core/huge_pages.h); pages are still committed only as blocks are first written.
  void* p = map_huge_pages(rounded, /*noreserve=*/true);
  if (p == MAP_FAILED) {
    return error(
        ErrorCode::kResourceExhausted,
        fmt::format("cannot allocate {} MiB for KV blocks; lower the tier's size", rounded >> 20));
  }
  return std::unique_ptr<BlockMemory>(new AlignedMemory(static_cast<uint8_t*>(p), rounded));
}

BlockPool::BlockPool(int32_t num_blocks, size_t block_bytes, std::unique_ptr<BlockMemory> memory,
                     int32_t shared_min_uses)
    : memory_(std::move(memory)),
      base_(memory_ ? memory_->data() : nullptr),
      block_bytes_(block_bytes),
      shared_min_uses_(shared_min_uses),
      meta_(static_cast<size_t>(num_blocks)) {
  STRATA_CHECK(num_blocks >= 0);
  STRATA_CHECK(num_blocks == 0 || (memory_ && memory_->bytes() >= num_blocks * block_bytes));
  for (int32_t i = 0; i < num_blocks; ++i) link_free(i);
}

BlockPool::EvictKey BlockPool::evict_key(int32_t i) const {
  const Meta& m = meta_[i];
  int cls = !m.cached ? 0 : (m.num_uses < shared_min_uses_ ? 1 : 2);
  return {cls, m.last_use, -m.depth, i};
}

void BlockPool::unlink_free(int32_t i) {
  size_t n = free_.erase(evict_key(i));
  STRATA_CHECK(n == 1);
}

void BlockPool::link_free(int32_t i) {
  bool inserted = free_.insert(evict_key(i)).second;
  STRATA_CHECK(inserted);
}

std::optional<BlockId> BlockPool::peek_victim() const {
  if (free_.empty()) return std::nullopt;
  return BlockId{std::get<3>(*free_.begin())};
}

void BlockPool::take(BlockId b) {
  int32_t i = idx(b);
  STRATA_CHECK(meta_[i].ref == 0);
  unlink_free(i);
  meta_[i] = Meta{};
  meta_[i].ref = 1;
  meta_[i].num_uses = 1;
}

void BlockPool::acquire(BlockId b, bool count_use) {
  int32_t i = idx(b);
  if (meta_[i].ref == 0) unlink_free(i);
  meta_[i].ref++;
  if (count_use) meta_[i].num_uses++;
}

void BlockPool::release(BlockId b, uint64_t tick) {
  int32_t i = idx(b);
  STRATA_CHECK(meta_[i].ref > 0);
  meta_[i].last_use = tick;
  if (--meta_[i].ref == 0) link_free(i);
}

void BlockPool::set_cached(BlockId b, bool cached, int32_t depth) {
  int32_t i = idx(b);
  bool in_free = meta_[i].ref == 0;
  if (in_free) unlink_free(i);
  meta_[i].cached = cached;
  meta_[i].depth = depth;
  if (in_free) link_free(i);
}

void BlockPool::check_invariants() const {
  size_t num_zero = 0;
  for (int32_t i = 0; i < num_blocks(); ++i) {
    const Meta& m = meta_[i];
    STRATA_CHECK(m.ref >= 0);
    bool listed = free_.count(evict_key(i)) == 1;
    STRATA_CHECK_MSG(listed == (m.ref == 0), "a block is free iff its reference count is 0");
    if (m.ref == 0) ++num_zero;
  }
  STRATA_CHECK(num_zero == free_.size());
  // The set is ordered by construction; check that its keys name distinct, valid blocks.
  int32_t prev = -1;
  std::vector<bool> seen(meta_.size(), false);
  for (const EvictKey& k : free_) {
    int32_t i = std::get<3>(k);
    STRATA_CHECK(i >= 0 && i < num_blocks() && !seen[i]);
    seen[i] = true;
    prev = i;
  }
  (void)prev;
}

}  // namespace strata::kv
