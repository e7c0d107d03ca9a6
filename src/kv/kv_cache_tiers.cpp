// KvCache's tier moves: eviction and demotion to the host tier, SSD write-behind (pins,
// backlog) and SSD read completions.
#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "kv/kv_cache.h"

namespace strata::kv {

std::optional<BlockId> KvCache::take_device_block() {
  std::optional<BlockId> b = device_->peek_victim();
  if (!b) return std::nullopt;
  if (device_->is_cached(*b)) evict_device(*b);
  device_->take(*b);
  return b;
}

std::optional<int32_t> KvCache::take_host_slot() {
  std::optional<BlockId> s = host_->peek_victim();
  if (!s) return std::nullopt;
  if (host_->is_cached(*s)) evict_host(idx(*s));
  host_->take(*s);
  return idx(*s);
}

// A cached device block leaves the device tier: its bytes move down to the host tier (unless
// already there); its index entry goes when no RAM tier holds it (the SSD may still have it).
void KvCache::evict_device(BlockId b) {
  const BlockKey key = device_key_[idx(b)];
  IndexEntry* e = index_.find(key);
  STRATA_CHECK(e != nullptr && e->device_idx == idx(b));
  if (host_ && e->host_idx < 0) {
    if (std::optional<int32_t> slot = take_host_slot()) {
      encode_block(opt_.layout, codec_, device_->data(b), host_->data(BlockId{*slot}));
      e = index_.find(key);  // evict_host may have rehashed the map
      e->host_idx = *slot;
      host_key_[*slot] = key;
      host_->set_cached(BlockId{*slot}, true, e->depth);
      host_->release(BlockId{*slot}, device_->last_use(b));  // keeps its place in LRU order
      totals_.host_blocks_written++;
      totals_.host_bytes_written += encoded_block_bytes(opt_.layout, codec_);
    }
  }
  e->device_idx = -1;
  device_->set_cached(b, false, 0);
  totals_.device_blocks_evicted++;
  index_.erase_if_not_resident(key);
}

void KvCache::evict_host(int32_t slot) {
  const BlockKey key = host_key_[slot];
  IndexEntry* e = index_.find(key);
  STRATA_CHECK(e != nullptr && e->host_idx == slot);
  e->host_idx = -1;
  host_->set_cached(BlockId{slot}, false, 0);
  totals_.host_blocks_evicted++;
  index_.erase_if_not_resident(key);
}

void KvCache::pump_writes() {
  while (!write_backlog_.empty() && writes_in_flight_ < opt_.ssd_max_inflight_writes) {
    const BlockKey key = write_backlog_.front();
    write_backlog_.pop_front();
    const IndexEntry* e = index_.find(key);
    if (e == nullptr || e->device_idx < 0) {
      totals_.ssd_writes_skipped++;  // evicted before its turn
      continue;
    }
    if (ssd_->contains(key)) continue;
    const BlockId b{e->device_idx};
    SsdWrite w;
    w.key = key;
    w.parent = e->parent;
    w.depth = e->depth;
    w.tokens = e->tokens;
    w.block = device_->data(b);
    w.cookie = static_cast<uint64_t>(idx(b));
    device_->acquire(b, /*count_use=*/false);  // pinned until the write is done
    io_pins_[idx(b)]++;
    if (ssd_->submit_write(std::move(w))) {
      writes_in_flight_++;
    } else {  // already present or queued, or writing stopped: counted by the store
      io_pins_[idx(b)]--;
      device_->release(b, device_->last_use(b));
    }
  }
}

void KvCache::reap_writes() {
  if (!ssd_) return;
  for (uint64_t cookie : ssd_->take_completed_writes()) {
    const BlockId b{static_cast<int32_t>(cookie)};
    STRATA_CHECK(io_pins_[idx(b)] > 0);
    io_pins_[idx(b)]--;
    writes_in_flight_--;
    device_->release(b, device_->last_use(b));  // keeps its place in LRU order
  }
  pump_writes();
}

std::vector<SeqId> KvCache::poll() {
  std::vector<SeqId> ready;
  if (!ssd_) return ready;
  reap_writes();
  const int32_t bt = opt_.layout.block_tokens;
  for (SsdReadDone& done : ssd_->take_completed_reads()) {
    if (auto o = orphan_reads_.find(done.ticket); o != orphan_reads_.end()) {
      const BlockId b = o->second;  // its sequence stopped waiting: just unpin
      orphan_reads_.erase(o);
      io_pins_[idx(b)]--;
      device_->release(b, device_->last_use(b));
      continue;
    }
    auto it = pending_.find(done.ticket);
    STRATA_CHECK_MSG(it != pending_.end(), "an SSD read nobody asked for");
    PendingRead pr = it->second;
    pending_.erase(it);
    Sequence& s = seq_ref(pr.seq);
    s.num_pending--;
    if (done.status.is_ok()) {  // the I/O thread read (and verified) it in place
      const BlockKey parent = pr.block_idx == 0 ? s.root : s.keys[pr.block_idx - 1];
      std::span<const int32_t> toks(s.tokens.data() + static_cast<size_t>(pr.block_idx) * bt, bt);
      index_device_block(s.blocks[pr.block_idx], s.keys[pr.block_idx], parent, pr.block_idx, toks);
    } else {
      truncate(s, pr.block_idx);
    }
    if (s.num_pending == 0) ready.push_back(pr.seq);
  }
  return ready;
}

void KvCache::flush() {
  if (!ssd_) return;
  for (;;) {
    reap_writes();
    if (write_backlog_.empty() && writes_in_flight_ == 0) return;
    ssd_->flush();
  }
}

}  // namespace strata::kv
