// The prefix index of the RAM tiers: block key -> where the block lives (device block, host
// slot), its parent, depth and token ids. The SSD tier keeps its own index (ssd_store.h).
// Children are listed per parent so a lookup can reuse a partial block (the unfinished tail
// of an earlier request) or the first tokens of a block that diverges later.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_key.h"

namespace strata::kv {

struct IndexEntry {
  BlockKey parent;
  int32_t depth = 0;            // block index in its chain (0 = first block)
  std::vector<int32_t> tokens;  // [1..block_tokens] i32; fewer than block_tokens: partial
  int32_t device_idx = -1;      // device-tier block, or -1
  int32_t host_idx = -1;        // host-tier slot, or -1
  bool resident() const { return device_idx >= 0 || host_idx >= 0; }
};

class PrefixIndex {
 public:
  IndexEntry* find(const BlockKey& key);
  const IndexEntry* find(const BlockKey& key) const;
  // The entry for `key`, created (not resident yet) if missing.
  IndexEntry& insert(const BlockKey& key, const BlockKey& parent, int32_t depth,
                     std::span<const int32_t> tokens);
  // Drop `key` if it lives in no RAM tier any more.
  void erase_if_not_resident(const BlockKey& key);
  // Keys of the entries whose parent is `parent` (zero: first blocks).
  std::span<const BlockKey> children(const BlockKey& parent) const;
  size_t size() const { return entries_.size(); }
  const std::unordered_map<BlockKey, IndexEntry, Key128Hash>& entries() const { return entries_; }

 private:
  std::unordered_map<BlockKey, IndexEntry, Key128Hash> entries_;
  std::unordered_map<BlockKey, std::vector<BlockKey>, Key128Hash> children_;
};

}  // namespace strata::kv
