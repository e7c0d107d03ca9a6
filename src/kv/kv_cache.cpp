// KvCache: admission, allocation, commits and tier moves over the pool, index and tiers.
#include "kv/kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "core/log.h"

namespace strata::kv {

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::kDevice:
      return "device";
    case Tier::kHost:
      return "host";
    case Tier::kSsd:
      return "ssd";
  }
  return "?";
}

int32_t PrefixMatch::tokens_in(Tier tier) const {
  int32_t n = 0;
  for (const PrefixBlock& b : blocks) n += b.tier == tier ? b.num_tokens : 0;
  return n;
}

KvCache::KvCache(KvCacheOptions options)
    : opt_(std::move(options)),
      codec_(opt_.lower_tier_int8 ? BlockCodec::kInt8 : BlockCodec::kRaw) {}

// The SSD store goes first: its I/O threads may still be writing from device blocks.
KvCache::~KvCache() { ssd_.reset(); }

Result<std::unique_ptr<KvCache>> KvCache::create(KvCacheOptions options) {
  STRATA_RETURN_IF_ERROR(options.layout.validate());
  if (options.device_blocks <= 0) {
    return error(ErrorCode::kInvalidArgument, "the device KV tier needs at least one block");
  }
  std::unique_ptr<KvCache> c(new KvCache(std::move(options)));
  const KvLayout& l = c->opt_.layout;
  if (!codec_supports(c->codec_, l)) {
    return error(ErrorCode::kInvalidArgument,
                 fmt::format("int8 lower-tier storage needs F16, BF16 or F32 KV, not {}",
                             dtype_name(l.dtype)));
  }
  auto device_alloc = c->opt_.device_memory ? c->opt_.device_memory : allocate_host_memory;
  STRATA_ASSIGN_OR_RETURN(auto dmem, device_alloc(l.block_bytes() * c->opt_.device_blocks));
  c->device_ = std::make_unique<BlockPool>(c->opt_.device_blocks, l.block_bytes(), std::move(dmem),
                                           c->opt_.shared_min_uses);
  c->device_key_.resize(static_cast<size_t>(c->opt_.device_blocks));
  c->io_pins_.assign(static_cast<size_t>(c->opt_.device_blocks), 0);
  size_t slot_bytes = (encoded_block_bytes(l, c->codec_) + 63) & ~size_t{63};
  int64_t host_slots = static_cast<int64_t>(c->opt_.host_bytes / slot_bytes);
  if (host_slots > 0) {
    auto host_alloc = c->opt_.host_memory ? c->opt_.host_memory : allocate_host_memory;
    STRATA_ASSIGN_OR_RETURN(auto hmem, host_alloc(slot_bytes * host_slots));
    c->host_ = std::make_unique<BlockPool>(static_cast<int32_t>(host_slots), slot_bytes,
                                           std::move(hmem), c->opt_.shared_min_uses);
    c->host_key_.resize(static_cast<size_t>(host_slots));
  }
  if (!c->opt_.ssd_dir.empty()) {
    SsdStoreOptions so;
    so.dir = c->opt_.ssd_dir;
    so.budget_bytes = c->opt_.ssd_bytes;
    so.fingerprint = c->opt_.fingerprint;
    so.layout = l;
    so.codec = c->codec_;
    so.num_io_threads = c->opt_.num_io_threads;
    so.fsync = c->opt_.ssd_fsync;
    so.writer = c->opt_.ssd_writer;
    so.max_queued_writes = static_cast<size_t>(std::max(1, c->opt_.ssd_max_inflight_writes));
    STRATA_ASSIGN_OR_RETURN(c->ssd_, SsdStore::open(std::move(so)));
  }
  return c;
}

uint8_t* KvCache::k_ptr(BlockId b, int32_t layer) {
  return device_->data(b) + static_cast<size_t>(layer) * 2 * opt_.layout.layer_bytes();
}
uint8_t* KvCache::v_ptr(BlockId b, int32_t layer) {
  return k_ptr(b, layer) + opt_.layout.layer_bytes();
}
uint8_t* KvCache::state_ptr(BlockId b) { return device_->data(b) + opt_.layout.state_offset(); }

KvCache::Sequence& KvCache::seq_ref(SeqId seq) {
  auto it = seqs_.find(static_cast<int64_t>(seq));
  STRATA_CHECK_MSG(it != seqs_.end(), "unknown or freed sequence");
  return it->second;
}
const KvCache::Sequence& KvCache::seq_ref(SeqId seq) const {
  auto it = seqs_.find(static_cast<int64_t>(seq));
  STRATA_CHECK_MSG(it != seqs_.end(), "unknown or freed sequence");
  return it->second;
}

PrefixMatch KvCache::lookup(std::span<const int32_t> tokens, const ExtraKey& extra,
                            int32_t max_tokens) const {
  const int32_t bt = opt_.layout.block_tokens;
  size_t limit =
      max_tokens < 0 ? tokens.size() : std::min(tokens.size(), static_cast<size_t>(max_tokens));
  PrefixMatch m;
  BlockKey parent = chain_root(opt_.fingerprint, extra);
  size_t pos = 0;
  while (pos + bt <= limit) {  // full blocks, by hash
    BlockKey key = block_key(opt_.fingerprint, parent, tokens.subspan(pos, bt), extra);
    const IndexEntry* e = index_.find(key);
    Tier tier;
    if (e != nullptr && e->device_idx >= 0) {
      tier = Tier::kDevice;
    } else if (e != nullptr && e->host_idx >= 0) {
      tier = Tier::kHost;
    } else if (ssd_ && ssd_->contains(key)) {
      tier = Tier::kSsd;
    } else {
      break;
    }
    m.blocks.push_back({key, tier, bt});
    parent = key;
    pos += bt;
  }
  // The next block: a resident child of `parent` sharing the most leading tokens (a partial
  // tail of a finished request, or a block that diverges later). KV of a token depends only
  // on the tokens before it, so its first n tokens are valid here. A recurrent state is only
  // valid at the child's own end, so layouts with state take it whole or not at all.
  std::span<const int32_t> rest = tokens.subspan(pos, limit - pos);
  const PrefixBlock* best = nullptr;
  PrefixBlock cand{};
  for (const BlockKey& child : index_.children(parent)) {
    if (rest.empty()) break;
    const IndexEntry* e = index_.find(child);
    if (e == nullptr || !e->resident()) continue;
    size_t n = 0;
    size_t cap = std::min(rest.size(), e->tokens.size());
    while (n < cap && e->tokens[n] == rest[n]) ++n;
    if (opt_.layout.state_bytes > 0 && n != e->tokens.size()) continue;
    if (n > 0 && (best == nullptr || static_cast<int32_t>(n) > cand.num_tokens)) {
      cand = {child, e->device_idx >= 0 ? Tier::kDevice : Tier::kHost, static_cast<int32_t>(n)};
      best = &cand;
    }
  }
  if (best != nullptr) {
    m.blocks.push_back(cand);
    pos += static_cast<size_t>(cand.num_tokens);
  }
  m.num_tokens = static_cast<int32_t>(pos);
  return m;
}

void KvCache::index_device_block(BlockId b, const BlockKey& key, const BlockKey& parent,
                                 int32_t depth, std::span<const int32_t> tokens) {
  IndexEntry& e = index_.insert(key, parent, depth, tokens);
  if (e.device_idx >= 0) return;  // another block holds the same content; ours stays private
  e.device_idx = idx(b);
  device_key_[idx(b)] = key;
  device_->set_cached(b, true, depth);
}

// Take the matched block `pb` into the sequence as its next block; false when the device
// tier has no block left for it (the match is cut there). Device and host blocks of the
// match were acquired by add_sequence, so taking a block cannot evict them.
bool KvCache::admit_block(Sequence& s, SeqId id, const PrefixBlock& pb,
                          std::span<const int32_t> prompt) {
  const int32_t bt = opt_.layout.block_tokens;
  const int32_t i = static_cast<int32_t>(s.blocks.size());
  const bool full = pb.num_tokens == bt;
  std::span<const int32_t> toks = prompt.subspan(static_cast<size_t>(i) * bt, pb.num_tokens);
  const BlockKey parent = i == 0 ? s.root : s.keys[i - 1];
  IndexEntry* e = index_.find(pb.key);
  BlockId b;
  if (pb.tier == Tier::kDevice && full) {
    b = BlockId{e->device_idx};  // add_sequence's pin becomes the sequence's reference
  } else {
    std::optional<BlockId> nb = take_device_block();
    if (!nb) return false;
    b = *nb;
    if (pb.tier == Tier::kDevice) {  // a partial hit: copy, never write into a shared block
      std::memcpy(device_->data(b), device_->data(BlockId{e->device_idx}),
                  opt_.layout.block_bytes());
    } else if (pb.tier == Tier::kHost) {
      decode_block(opt_.layout, codec_, host_->data(BlockId{e->host_idx}), device_->data(b));
      totals_.host_blocks_read++;
      totals_.host_bytes_read += encoded_block_bytes(opt_.layout, codec_);
      if (full) index_device_block(b, pb.key, parent, i, toks);
    } else {
      uint64_t ticket = ssd_->submit_read(pb.key, device_->data(b));  // read in place
      pending_[ticket] = PendingRead{id, i};
      s.num_pending++;
    }
  }
  s.blocks.push_back(b);
  if (full) s.keys.push_back(pb.key);
  s.source.push_back(pb.tier);
  s.tokens.insert(s.tokens.end(), toks.begin(), toks.end());
  s.num_cached += pb.num_tokens;
  return true;
}

SeqId KvCache::add_sequence(std::span<const int32_t> prompt, const ExtraKey& extra,
                            int32_t max_cached_tokens) {
  if (max_cached_tokens < 0)
    max_cached_tokens = std::max<int32_t>(0, static_cast<int32_t>(prompt.size()) - 1);
  reap_writes();
  const SeqId id{next_seq_++};
  Sequence& s = seqs_[static_cast<int64_t>(id)];
  s.extra = extra;
  s.root = chain_root(opt_.fingerprint, extra);
  s.prompt_tokens = static_cast<int32_t>(prompt.size());
  PrefixMatch m = lookup(prompt, extra, max_cached_tokens);
  // Pin the RAM-tier blocks of the match while device blocks are taken for the others.
  for (const PrefixBlock& pb : m.blocks) {
    const IndexEntry* e = index_.find(pb.key);
    if (pb.tier == Tier::kDevice) device_->acquire(BlockId{e->device_idx});
    if (pb.tier == Tier::kHost) host_->acquire(BlockId{e->host_idx});
  }
  size_t admitted = 0;
  while (admitted < m.blocks.size() && admit_block(s, id, m.blocks[admitted], prompt)) ++admitted;
  const uint64_t tick = ++tick_;
  for (size_t k = 0; k < m.blocks.size(); ++k) {
    const PrefixBlock& pb = m.blocks[k];
    const IndexEntry* e = index_.find(pb.key);
    bool kept =
        k < admitted && pb.tier == Tier::kDevice && pb.num_tokens == opt_.layout.block_tokens;
    if (pb.tier == Tier::kDevice && !kept) device_->release(BlockId{e->device_idx}, tick);
    if (pb.tier == Tier::kHost) host_->release(BlockId{e->host_idx}, tick);
  }
  return id;
}

bool KvCache::is_ready(SeqId seq) const { return seq_ref(seq).num_pending == 0; }

void KvCache::set_on_io_done(std::function<void()> fn) {
  if (ssd_) ssd_->set_on_read_done(std::move(fn));
}

// Cut the sequence's cached prefix before block `block_idx` (only before it has computed
// anything): later blocks are released and their reads forgotten.
void KvCache::truncate(Sequence& s, int32_t block_idx) {
  const int32_t bt = opt_.layout.block_tokens;
  STRATA_CHECK(static_cast<int32_t>(s.tokens.size()) == s.num_cached);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (&seq_ref(it->second.seq) == &s && it->second.block_idx >= block_idx) {
      // The I/O thread may still be reading into the block: pinned until the read is done.
      const BlockId b = s.blocks[it->second.block_idx];
      device_->acquire(b, /*count_use=*/false);
      io_pins_[idx(b)]++;
      orphan_reads_[it->first] = b;
      s.num_pending--;
      totals_.ssd_reads_wasted++;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  const uint64_t tick = ++tick_;
  for (size_t k = static_cast<size_t>(block_idx); k < s.blocks.size(); ++k)
    device_->release(s.blocks[k], tick);
  s.blocks.resize(std::min<size_t>(s.blocks.size(), block_idx));
  s.keys.resize(std::min<size_t>(s.keys.size(), block_idx));
  s.source.resize(std::min<size_t>(s.source.size(), block_idx));
  s.num_cached = std::min(s.num_cached, block_idx * bt);
  s.tokens.resize(static_cast<size_t>(s.num_cached));
}

void KvCache::abandon_pending(SeqId seq) {
  Sequence& s = seq_ref(seq);
  int32_t first = -1;
  for (const auto& [ticket, pr] : pending_) {
    if (pr.seq == seq && (first < 0 || pr.block_idx < first)) first = pr.block_idx;
  }
  if (first >= 0) truncate(s, first);
}

int32_t KvCache::num_tokens(SeqId seq) const {
  return static_cast<int32_t>(seq_ref(seq).tokens.size());
}
int32_t KvCache::num_cached_tokens(SeqId seq) const { return seq_ref(seq).num_cached; }
std::span<const BlockId> KvCache::block_table(SeqId seq) const { return seq_ref(seq).blocks; }

Alloc KvCache::allocate(SeqId seq, int32_t num_new_tokens) {
  Sequence& s = seq_ref(seq);
  STRATA_CHECK_MSG(s.num_pending == 0, "allocate() before the sequence is ready");
  reap_writes();
  const int64_t bt = opt_.layout.block_tokens;
  int64_t want = (static_cast<int64_t>(s.tokens.size()) + num_new_tokens + bt - 1) / bt;
  int64_t need = want - static_cast<int64_t>(s.blocks.size());
  if (need <= 0) return Alloc::kOk;
  if (need > device_->num_free()) return Alloc::kNoRoom;
  for (int64_t k = 0; k < need; ++k) s.blocks.push_back(*take_device_block());
  return Alloc::kOk;
}

void KvCache::on_block_full(Sequence& s, int32_t block_idx) {
  const int32_t bt = opt_.layout.block_tokens;
  STRATA_CHECK(static_cast<int32_t>(s.keys.size()) == block_idx);
  const BlockKey parent = block_idx == 0 ? s.root : s.keys[block_idx - 1];
  std::span<const int32_t> toks(s.tokens.data() + static_cast<size_t>(block_idx) * bt, bt);
  const BlockKey key = block_key(opt_.fingerprint, parent, toks, s.extra);
  s.keys.push_back(key);
  BlockId b = s.blocks[block_idx];
  index_device_block(b, key, parent, block_idx, toks);
  if (ssd_ && !ssd_->contains(key)) {
    if (write_backlog_.size() >= static_cast<size_t>(opt_.ssd_backlog_blocks)) {
      write_backlog_.pop_front();
      totals_.ssd_writes_skipped++;
    }
    write_backlog_.push_back(key);
    pump_writes();
  }
}

void KvCache::commit(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = seq_ref(seq);
  STRATA_CHECK_MSG(s.num_pending == 0, "commit() before the sequence is ready");
  const size_t bt = static_cast<size_t>(opt_.layout.block_tokens);
  for (int32_t t : tokens) {
    size_t pos = s.tokens.size();
    STRATA_CHECK_MSG(pos < s.blocks.size() * bt, "commit() past the allocated blocks");
    s.tokens.push_back(t);
    if ((pos + 1) % bt == 0) on_block_full(s, static_cast<int32_t>(pos / bt));
  }
}

void KvCache::free(SeqId seq) {
  Sequence& s = seq_ref(seq);
  abandon_pending(seq);
  const size_t bt = static_cast<size_t>(opt_.layout.block_tokens);
  const size_t n = s.tokens.size();
  if (n % bt != 0) {  // the partial tail stays findable by its tokens while resident
    const int32_t i = static_cast<int32_t>(n / bt);
    std::span<const int32_t> toks(s.tokens.data() + i * bt, n % bt);
    const BlockKey parent = i == 0 ? s.root : s.keys[i - 1];
    index_device_block(s.blocks[i], block_key(opt_.fingerprint, parent, toks, s.extra), parent, i,
                       toks);
  }
  const uint64_t tick = ++tick_;  // one tick for the chain: tails go before parents
  for (BlockId b : s.blocks) device_->release(b, tick);
  RequestStats r = compute_stats(s);
  totals_.tokens.prompt_tokens += r.prompt_tokens;
  totals_.tokens.tokens_from_device += r.tokens_from_device;
  totals_.tokens.tokens_from_host += r.tokens_from_host;
  totals_.tokens.tokens_from_ssd += r.tokens_from_ssd;
  totals_.tokens.tokens_computed += r.tokens_computed;
  totals_.num_sequences++;
  seqs_.erase(static_cast<int64_t>(seq));
}

RequestStats KvCache::compute_stats(const Sequence& s) const {
  const int32_t bt = opt_.layout.block_tokens;
  RequestStats r;
  r.prompt_tokens = s.prompt_tokens;
  for (size_t k = 0; k < s.source.size(); ++k) {
    int64_t n = std::min<int64_t>(bt, s.num_cached - static_cast<int64_t>(k) * bt);
    if (n <= 0) break;
    int64_t* dst = s.source[k] == Tier::kDevice ? &r.tokens_from_device
                   : s.source[k] == Tier::kHost ? &r.tokens_from_host
                                                : &r.tokens_from_ssd;
    *dst += n;
  }
  r.tokens_computed = std::max<int64_t>(
      0, std::min<int64_t>(static_cast<int64_t>(s.tokens.size()), s.prompt_tokens) - s.num_cached);
  return r;
}

RequestStats KvCache::sequence_stats(SeqId seq) const { return compute_stats(seq_ref(seq)); }

CacheStats KvCache::stats() const {
  CacheStats c = totals_;
  // Every host write fills a free slot with a cached block and only eviction empties one.
  c.host_bytes_used = static_cast<uint64_t>(totals_.host_blocks_written - totals_.host_blocks_evicted) *
                      encoded_block_bytes(opt_.layout, codec_);
  if (ssd_) c.ssd = ssd_->stats();
  return c;
}

void KvCache::check_invariants() const {
  device_->check_invariants();
  if (host_) host_->check_invariants();
  int32_t cached_device = 0;
  int32_t cached_host = 0;
  for (const auto& [key, e] : index_.entries()) {
    STRATA_CHECK_MSG(e.resident(), "an index entry lives in no RAM tier");
    if (e.device_idx >= 0) {
      STRATA_CHECK(device_key_[e.device_idx] == key && device_->is_cached(BlockId{e.device_idx}));
      ++cached_device;
    }
    if (e.host_idx >= 0) {
      STRATA_CHECK(host_key_[e.host_idx] == key && host_->is_cached(BlockId{e.host_idx}));
      ++cached_host;
    }
  }
  for (int32_t b = 0; b < device_->num_blocks(); ++b)
    cached_device -= device_->is_cached(BlockId{b});
  STRATA_CHECK_MSG(cached_device == 0, "device blocks marked cached but not indexed");
  if (host_) {
    for (int32_t b = 0; b < host_->num_blocks(); ++b) {
      cached_host -= host_->is_cached(BlockId{b});
      STRATA_CHECK(host_->ref_count(BlockId{b}) == 0);  // host slots are pinned only inside a call
    }
    STRATA_CHECK(cached_host == 0);
  }
  // Every reference to a device block is a sequence's block table entry.
  std::vector<int32_t> refs(static_cast<size_t>(device_->num_blocks()), 0);
  for (const auto& [id, s] : seqs_) {
    for (BlockId b : s.blocks) refs[idx(b)]++;
    STRATA_CHECK(s.tokens.size() <=
                 s.blocks.size() * static_cast<size_t>(opt_.layout.block_tokens));
    STRATA_CHECK(s.keys.size() == s.tokens.size() / static_cast<size_t>(opt_.layout.block_tokens));
  }
  for (int32_t b = 0; b < device_->num_blocks(); ++b) {
    STRATA_CHECK_MSG(refs[b] + io_pins_[b] == device_->ref_count(BlockId{b}),
                     "a device block's references != its users + its I/O pins");
  }
}

}  // namespace strata::kv
