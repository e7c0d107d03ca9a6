// PrefixIndex: a hash map plus a parent -> children list.
#include "kv/prefix_index.h"

#include <algorithm>

namespace strata::kv {

IndexEntry* PrefixIndex::find(const BlockKey& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

const IndexEntry* PrefixIndex::find(const BlockKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

IndexEntry& PrefixIndex::insert(const BlockKey& key, const BlockKey& parent, int32_t depth,
                                std::span<const int32_t> tokens) {
  auto [it, inserted] = entries_.try_emplace(key);
  if (inserted) {
    it->second.parent = parent;
    it->second.depth = depth;
    it->second.tokens.assign(tokens.begin(), tokens.end());
    children_[parent].push_back(key);
  }
  return it->second;
}

void PrefixIndex::erase_if_not_resident(const BlockKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.resident()) return;
  auto c = children_.find(it->second.parent);
  if (c != children_.end()) {
    std::vector<BlockKey>& v = c->second;
    v.erase(std::find(v.begin(), v.end(), key));
    if (v.empty()) children_.erase(c);
  }
  entries_.erase(it);
}

std::span<const BlockKey> PrefixIndex::children(const BlockKey& parent) const {
  auto it = children_.find(parent);
  if (it == children_.end()) return {};
  return it->second;
}

}  // namespace strata::kv
