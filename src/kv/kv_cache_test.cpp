// KvCache: prefix reuse (full, partial, diverging), tiers (demotion, promotion, SSD restore),
// failures (corrupt SSD block, abandoned reads, no room), state blobs, random operations.
#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/fp16.h"
#include "kv/kv_test_util.h"

namespace strata::kv {
namespace {

using testing::kv_value;
using testing::TempDir;
using testing::tiny_layout;

KvCacheOptions make_options(KvLayout layout, int32_t device_blocks) {
  KvCacheOptions o;
  o.layout = layout;
  o.fingerprint = make_fingerprint("w", "t", layout);
  o.device_blocks = device_blocks;
  o.ssd_fsync = false;
  return o;
}

uint8_t state_byte(int pos, int32_t token, int i) {
  return static_cast<uint8_t>(pos * 13 + token * 7 + i);
}

// The "model": writes K/V of tokens at the sequence's next positions (and, for layouts with
// state, the state as of each block's last written token), then commits them.
void run_tokens(KvCache& c, SeqId s, std::span<const int32_t> toks) {
  ASSERT_EQ(c.allocate(s, static_cast<int32_t>(toks.size())), Alloc::kOk);
  const KvLayout& l = c.layout();
  const BlockStrides st = c.strides();
  const int pos0 = c.num_tokens(s);
  for (size_t i = 0; i < toks.size(); ++i) {
    int pos = pos0 + static_cast<int>(i);
    BlockId b = c.block_table(s)[pos / l.block_tokens];
    int t = pos % l.block_tokens;
    for (int layer = 0; layer < l.num_layers; ++layer) {
      for (int kv = 0; kv < 2; ++kv) {
        uint8_t* base =
            (kv == 0 ? c.k_ptr(b, layer) : c.v_ptr(b, layer)) + t * st.token_stride_bytes;
        for (int h = 0; h < l.num_kv_heads; ++h) {
          auto* row = reinterpret_cast<uint16_t*>(base + h * st.head_stride_bytes);
          for (int d = 0; d < l.head_dim; ++d)
            row[d] = f32_to_fp16(kv_value(layer, kv, pos, toks[i], h, d));
        }
      }
    }
    for (int k = 0; k < l.state_bytes; ++k) c.state_ptr(b)[k] = state_byte(pos, toks[i], k);
  }
  c.commit(s, toks);
}

// Does the sequence's KV for positions [0, n) hold what the model wrote for `tokens`?
::testing::AssertionResult kv_matches(KvCache& c, SeqId s, std::span<const int32_t> tokens, int n,
                                      float tol = 0.f) {
  const KvLayout& l = c.layout();
  const BlockStrides st = c.strides();
  for (int pos = 0; pos < n; ++pos) {
    BlockId b = c.block_table(s)[pos / l.block_tokens];
    int t = pos % l.block_tokens;
    for (int layer = 0; layer < l.num_layers; ++layer) {
      for (int kv = 0; kv < 2; ++kv) {
        uint8_t* base =
            (kv == 0 ? c.k_ptr(b, layer) : c.v_ptr(b, layer)) + t * st.token_stride_bytes;
        for (int h = 0; h < l.num_kv_heads; ++h) {
          auto* row = reinterpret_cast<uint16_t*>(base + h * st.head_stride_bytes);
          for (int d = 0; d < l.head_dim; ++d) {
            float want = fp16_to_f32(f32_to_fp16(kv_value(layer, kv, pos, tokens[pos], h, d)));
            float got = fp16_to_f32(row[d]);
            if (std::fabs(got - want) > tol) {
              return ::testing::AssertionFailure()
                     << "pos " << pos << " layer " << layer << " kv " << kv << " head " << h
                     << " dim " << d << ": " << got << " != " << want;
            }
          }
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

void wait_ready(KvCache& c, SeqId s) {
  for (int i = 0; i < 5000 && !c.is_ready(s); ++i) {
    c.poll();
    if (!c.is_ready(s)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(c.is_ready(s));
}

std::vector<int32_t> iota_tokens(int n, int32_t start = 100) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = start + i;
  return t;
}

// A finished request's prompt + output.
void run_request(KvCache& c, std::span<const int32_t> toks) {
  SeqId s = c.add_sequence(toks, {}, 0);
  run_tokens(c, s, toks);
  c.free(s);
}

TEST(KvCache, ReusesFullBlocksAndThePartialTail) {
  auto c = KvCache::create(make_options(tiny_layout(), 16)).value();
  std::vector<int32_t> a = iota_tokens(10);  // 2 full blocks + 2 tokens
  run_request(*c, a);
  std::vector<int32_t> b = a;
  for (int32_t t : {7, 8, 9, 10, 11}) b.push_back(t);
  PrefixMatch m = c->lookup(b, {});
  EXPECT_EQ(m.num_tokens, 10);
  ASSERT_EQ(m.blocks.size(), 3u);
  EXPECT_EQ(m.blocks[2].num_tokens, 2);
  SeqId s = c->add_sequence(b, {});
  EXPECT_EQ(c->num_cached_tokens(s), 10);
  EXPECT_TRUE(kv_matches(*c, s, b, 10));
  // The reused tail block is a private copy: the sequence writes into it freely.
  EXPECT_NE(c->block_table(s)[2], c->block_table(s)[1]);
  run_tokens(*c, s, std::span<const int32_t>(b).subspan(10));
  EXPECT_TRUE(kv_matches(*c, s, b, 15));
  RequestStats r = c->sequence_stats(s);
  EXPECT_EQ(r.prompt_tokens, 15);
  EXPECT_EQ(r.tokens_from_device, 10);
  EXPECT_EQ(r.tokens_computed, 5);
  c->free(s);
  c->check_invariants();
  EXPECT_DOUBLE_EQ(c->stats().tokens.efficiency(), 10.0 / 25.0);
  // The whole prompt cached: one token is left to compute (its logits are needed).
  SeqId s2 = c->add_sequence(b, {});
  EXPECT_EQ(c->num_cached_tokens(s2), 14);
  c->free(s2);
  c->check_invariants();
}

TEST(KvCache, DivergingBlockReusesItsCommonTokens) {
  auto c = KvCache::create(make_options(tiny_layout(), 16)).value();
  std::vector<int32_t> a = iota_tokens(12);
  run_request(*c, a);
  std::vector<int32_t> b(a.begin(), a.begin() + 6);  // diverges at position 6 (block 1)
  for (int32_t t : {1, 2, 3, 4, 5, 6}) b.push_back(t);
  SeqId s = c->add_sequence(b, {});
  EXPECT_EQ(c->num_cached_tokens(s), 6);
  EXPECT_TRUE(kv_matches(*c, s, b, 6));
  run_tokens(*c, s, std::span<const int32_t>(b).subspan(6));
  EXPECT_TRUE(kv_matches(*c, s, b, 12));
  c->free(s);
  // The original chain is untouched by the copy-on-reuse.
  SeqId s3 = c->add_sequence(a, {}, 12);
  EXPECT_EQ(c->num_cached_tokens(s3), 12);
  EXPECT_TRUE(kv_matches(*c, s3, a, 12));
  c->free(s3);
  c->check_invariants();
}

TEST(KvCache, ExtraKeysAndFingerprintsIsolate) {
  auto c = KvCache::create(make_options(tiny_layout(), 16)).value();
  std::vector<int32_t> a = iota_tokens(11);
  SeqId s = c->add_sequence(a, make_extra_key("tenant-1"), 0);
  run_tokens(*c, s, a);
  c->free(s);
  EXPECT_EQ(c->lookup(a, make_extra_key("tenant-1")).num_tokens, 11);
  EXPECT_EQ(c->lookup(a, make_extra_key("tenant-2")).num_tokens, 0);  // not even the tail
  EXPECT_EQ(c->lookup(a, {}).num_tokens, 0);
  EXPECT_NE(make_fingerprint("w", "t", tiny_layout()),
            make_fingerprint("w", "t", tiny_layout(0, 8)));
  EXPECT_NE(make_fingerprint("w", "t", tiny_layout()), make_fingerprint("w2", "t", tiny_layout()));
}

TEST(KvCache, NoRoomIsAValue) {
  auto c = KvCache::create(make_options(tiny_layout(), 4)).value();
  std::vector<int32_t> a = iota_tokens(16);
  SeqId s = c->add_sequence(a, {}, 0);
  EXPECT_EQ(c->allocate(s, 17), Alloc::kNoRoom);
  EXPECT_EQ(c->block_table(s).size(), 0u);  // all or nothing
  EXPECT_EQ(c->allocate(s, 16), Alloc::kOk);
  SeqId s2 = c->add_sequence(iota_tokens(3, 900), {}, 0);
  EXPECT_EQ(c->allocate(s2, 1), Alloc::kNoRoom);
  c->free(s);
  EXPECT_EQ(c->allocate(s2, 1), Alloc::kOk);
  c->free(s2);
  c->check_invariants();
}

TEST(KvCache, EvictsLeastRecentlyUsedTailsFirst) {
  auto c = KvCache::create(make_options(tiny_layout(), 6)).value();
  std::vector<int32_t> a = iota_tokens(12, 100);
  std::vector<int32_t> b = iota_tokens(12, 500);
  run_request(*c, a);  // older
  run_request(*c, b);
  SeqId s = c->add_sequence(iota_tokens(4, 900), {}, 0);
  ASSERT_EQ(c->allocate(s, 4), Alloc::kOk);  // takes a's tail
  EXPECT_EQ(c->lookup(a, {}).num_tokens, 8);
  EXPECT_EQ(c->lookup(b, {}).num_tokens, 12);
  ASSERT_EQ(c->allocate(s, 12), Alloc::kOk);  // then a's middle, then a's head
  EXPECT_EQ(c->lookup(a, {}).num_tokens, 0);
  EXPECT_EQ(c->lookup(b, {}).num_tokens, 12);
  EXPECT_EQ(c->stats().device_blocks_evicted, 3);
  c->free(s);
  c->check_invariants();
}

void demote_promote(bool int8) {
  KvCacheOptions o = make_options(tiny_layout(), 4);
  o.host_bytes = 8 * 4096;
  o.lower_tier_int8 = int8;
  auto c = KvCache::create(o).value();
  std::vector<int32_t> a = iota_tokens(12, 100);
  run_request(*c, a);
  run_request(*c, iota_tokens(16, 500));  // pushes a down to the host tier
  PrefixMatch m = c->lookup(a, {}, 12);
  EXPECT_EQ(m.num_tokens, 12);
  EXPECT_EQ(m.tokens_in(Tier::kHost), 12);
  EXPECT_GE(c->stats().host_blocks_written, 3);
  // what /metrics reports as the host tier's bytes: a's 3 blocks, the only ones demoted
  const uint64_t block_bytes = encoded_block_bytes(c->layout(), int8 ? BlockCodec::kInt8 : BlockCodec::kRaw);
  EXPECT_EQ(c->stats().host_blocks_written, 3);
  EXPECT_EQ(c->stats().host_bytes_used, 3 * block_bytes);
  SeqId s = c->add_sequence(a, {}, 12);
  EXPECT_EQ(c->num_cached_tokens(s), 12);
  EXPECT_TRUE(kv_matches(*c, s, a, 12, int8 ? 4.2f / 254.f * 1.01f + 0.01f : 0.f));
  EXPECT_EQ(c->sequence_stats(s).tokens_from_host, 12);
  EXPECT_EQ(c->stats().host_blocks_read, 3);
  c->free(s);
  EXPECT_EQ(c->lookup(a, {}, 12).tokens_in(Tier::kDevice), 12);  // promoted
  c->check_invariants();
}
TEST(KvCache, DemotesToHostAndPromotesBack) { demote_promote(false); }
TEST(KvCache, DemotesToHostAndPromotesBackInt8) { demote_promote(true); }

void restore_from_ssd(bool int8) {
  TempDir tmp;
  KvCacheOptions o = make_options(tiny_layout(), 16);
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 1 << 20;
  o.lower_tier_int8 = int8;
  const float tol = int8 ? 4.2f / 254.f * 1.01f + 0.01f : 0.f;
  std::vector<int32_t> a = iota_tokens(14);
  {
    auto c = KvCache::create(o).value();
    run_request(*c, a);
    c->flush();
    EXPECT_EQ(c->stats().ssd.blocks_written, 3);  // full blocks only
  }
  auto c = KvCache::create(o).value();
  PrefixMatch m = c->lookup(a, {});
  EXPECT_EQ(m.num_tokens, 12);
  EXPECT_EQ(m.tokens_in(Tier::kSsd), 12);
  SeqId s = c->add_sequence(a, {});
  EXPECT_EQ(c->num_cached_tokens(s), 12);
  wait_ready(*c, s);
  EXPECT_EQ(c->num_cached_tokens(s), 12);
  EXPECT_TRUE(kv_matches(*c, s, a, 12, tol));
  run_tokens(*c, s, std::span<const int32_t>(a).subspan(12));
  EXPECT_TRUE(kv_matches(*c, s, a, 14, tol));
  EXPECT_EQ(c->sequence_stats(s).tokens_from_ssd, 12);
  EXPECT_EQ(c->sequence_stats(s).tokens_computed, 2);
  c->free(s);
  EXPECT_EQ(c->stats().ssd.blocks_read, 3);
  EXPECT_EQ(c->lookup(a, {}).tokens_in(Tier::kDevice), 14);  // now resident, tail included
  c->check_invariants();
}
TEST(KvCache, RestoresFromSsdAfterRestart) { restore_from_ssd(false); }
TEST(KvCache, RestoresFromSsdAfterRestartInt8) { restore_from_ssd(true); }

TEST(KvCache, CorruptSsdBlockIsRecomputedNotServed) {
  TempDir tmp;
  KvCacheOptions o = make_options(tiny_layout(), 16);
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 1 << 20;
  std::vector<int32_t> a = iota_tokens(17);
  std::string victim;
  {
    auto c = KvCache::create(o).value();
    run_request(*c, a);
    c->flush();
    std::vector<BlockKey> keys = full_block_keys(o.fingerprint, 4, a, {});
    victim = tmp.path + "/" + o.fingerprint.to_hex() + "/" + keys[2].to_hex() + ".kvb";
  }
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x7f');
  }
  auto c = KvCache::create(o).value();
  SeqId s = c->add_sequence(a, {});
  EXPECT_EQ(c->num_cached_tokens(s), 16);
  wait_ready(*c, s);
  EXPECT_EQ(c->num_cached_tokens(s), 8);  // cut before the corrupt block
  EXPECT_TRUE(kv_matches(*c, s, a, 8));
  run_tokens(*c, s, std::span<const int32_t>(a).subspan(8));
  EXPECT_TRUE(kv_matches(*c, s, a, 17));
  c->free(s);
  EXPECT_EQ(c->stats().ssd.read_failures, 1);
  c->check_invariants();
}

TEST(KvCache, AbandonedReadsAreRecomputed) {
  TempDir tmp;
  KvCacheOptions o = make_options(tiny_layout(), 16);
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 1 << 20;
  std::vector<int32_t> a = iota_tokens(13);
  {
    auto c = KvCache::create(o).value();
    run_request(*c, a);
    c->flush();
  }
  auto c = KvCache::create(o).value();
  SeqId s = c->add_sequence(a, {});
  c->abandon_pending(s);  // e.g. the scheduler decided not to wait
  EXPECT_TRUE(c->is_ready(s));
  int32_t cached = c->num_cached_tokens(s);
  EXPECT_LE(cached, 12);
  run_tokens(*c, s, std::span<const int32_t>(a).subspan(cached));
  EXPECT_TRUE(kv_matches(*c, s, a, 13));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  c->poll();  // late completions are ignored
  EXPECT_TRUE(kv_matches(*c, s, a, 13));
  c->free(s);
  c->check_invariants();
}

TEST(KvCache, StateBlobTravelsWithItsBlock) {
  TempDir tmp;
  KvCacheOptions o = make_options(tiny_layout(/*state_bytes=*/40), 4);
  o.host_bytes = 1 << 20;
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 1 << 20;
  std::vector<int32_t> a = iota_tokens(10);
  auto check_state = [&](KvCache& c, SeqId s, int block, int last_pos) {
    for (int k = 0; k < 40; ++k) {
      ASSERT_EQ(c.state_ptr(c.block_table(s)[block])[k], state_byte(last_pos, a[last_pos], k))
          << block;
    }
  };
  {
    auto c = KvCache::create(o).value();
    run_request(*c, a);
    // A partial match cannot rewind a recurrent state: only whole blocks (or the whole tail).
    std::vector<int32_t> b(a.begin(), a.begin() + 9);
    b.push_back(77);
    EXPECT_EQ(c->lookup(b, {}, 10).num_tokens, 8);
    EXPECT_EQ(c->lookup(a, {}, 10).num_tokens, 10);
    SeqId s = c->add_sequence(a, {}, 10);
    check_state(*c, s, 0, 3);
    check_state(*c, s, 1, 7);
    check_state(*c, s, 2, 9);
    c->free(s);
    c->flush();                             // write-behind pins a's blocks until they are on SSD
    run_request(*c, iota_tokens(16, 500));  // a's blocks go to the host tier
    c->flush();  // (the device tier is 4 blocks, all pinned by write-behind until now)
    SeqId s2 = c->add_sequence(a, {}, 10);
    EXPECT_EQ(c->sequence_stats(s2).tokens_from_host, 10);
    check_state(*c, s2, 1, 7);
    check_state(*c, s2, 2, 9);
    c->free(s2);
    c->flush();
  }
  auto c = KvCache::create(o).value();  // from SSD
  SeqId s = c->add_sequence(a, {}, 10);
  wait_ready(*c, s);
  EXPECT_EQ(c->num_cached_tokens(s), 8);
  check_state(*c, s, 0, 3);
  check_state(*c, s, 1, 7);
  c->free(s);
}

// Fails every write after `ok_writes`, like a disk that fills up.
class FullDiskWriter final : public RecordWriter {
 public:
  explicit FullDiskWriter(int ok_writes) : left_(ok_writes) {}
  Status write(const std::string& dir, const std::string& name,
               std::span<const std::span<const uint8_t>> parts, bool fsync) override {
    if (left_-- <= 0) return error(ErrorCode::kResourceExhausted, "write: No space left on device");
    return real_->write(dir, name, parts, fsync);
  }

 private:
  std::atomic<int> left_;
  std::shared_ptr<RecordWriter> real_ = make_file_record_writer();
};

TEST(KvCache, FullDiskStopsWriteBehindServingGoesOn) {
  TempDir tmp;
  KvCacheOptions o = make_options(tiny_layout(), 32);
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 1 << 20;
  o.ssd_writer = std::make_shared<FullDiskWriter>(2);
  auto c = KvCache::create(o).value();
  std::vector<int32_t> a = iota_tokens(24);
  run_request(*c, a);
  c->flush();
  CacheStats st = c->stats();
  EXPECT_TRUE(st.ssd.writes_stopped);
  EXPECT_EQ(st.ssd.blocks_written, 2);
  // Still serving: from the device tier, and new requests run.
  SeqId s = c->add_sequence(a, {});
  EXPECT_EQ(c->num_cached_tokens(s), 23);
  EXPECT_TRUE(kv_matches(*c, s, a, 23));
  run_tokens(*c, s, std::span<const int32_t>(a).subspan(23));
  c->free(s);
  run_request(*c, iota_tokens(30, 700));
  c->flush();
  EXPECT_EQ(c->stats().ssd.blocks_written, 2);
  c->check_invariants();
}

// Random requests over a few shared prefixes: after every operation the invariants hold and
// every cached prefix holds exactly what was computed for it.
TEST(KvCache, RandomOperationsKeepInvariantsAndContent) {
  TempDir tmp;
  std::mt19937 rng(42);
  KvCacheOptions o = make_options(tiny_layout(), 24);
  o.host_bytes = 16 * 4096;
  o.ssd_dir = tmp.path;
  o.ssd_bytes = 40 * 4096;
  o.shared_min_uses = 3;
  auto c = KvCache::create(o).value();
  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 4; ++i) prefixes.push_back(testing::random_tokens(rng, 4 + rng() % 14, 20));
  struct Live {
    SeqId id;
    std::vector<int32_t> toks;
  };
  std::vector<Live> live;
  int64_t served = 0;
  for (int op = 0; op < 600; ++op) {
    int kind = static_cast<int>(rng() % 10);
    if (kind < 4 && live.size() < 3) {
      std::vector<int32_t> t = prefixes[rng() % prefixes.size()];
      std::vector<int32_t> tail = testing::random_tokens(rng, 1 + rng() % 10, 20);
      t.insert(t.end(), tail.begin(), tail.end());
      SeqId s = c->add_sequence(t, {});
      if (rng() % 4 == 0) c->abandon_pending(s);
      wait_ready(*c, s);
      int32_t n = c->num_cached_tokens(s);
      served += n;
      ASSERT_TRUE(kv_matches(*c, s, t, n)) << "op " << op;
      int32_t want = static_cast<int32_t>(t.size()) - n;
      if (c->allocate(s, want) == Alloc::kNoRoom) {
        c->free(s);  // preempted before it ran
      } else {
        run_tokens(*c, s, std::span<const int32_t>(t).subspan(n));
        live.push_back({s, t});
      }
    } else if (kind < 7 && !live.empty()) {
      Live& l = live[rng() % live.size()];
      std::vector<int32_t> more = testing::random_tokens(rng, 1 + rng() % 5, 20);
      if (c->allocate(l.id, static_cast<int32_t>(more.size())) == Alloc::kOk) {
        run_tokens(*c, l.id, more);
        l.toks.insert(l.toks.end(), more.begin(), more.end());
      }
      ASSERT_TRUE(kv_matches(*c, l.id, l.toks, static_cast<int>(l.toks.size())));
    } else if (!live.empty()) {
      size_t k = rng() % live.size();
      c->free(live[k].id);
      live.erase(live.begin() + static_cast<ptrdiff_t>(k));
    }
    c->check_invariants();
  }
  for (Live& l : live) c->free(l.id);
  c->check_invariants();
  CacheStats st = c->stats();
  EXPECT_GT(served, 0);
  EXPECT_GT(st.tokens.tokens_from_device, 0);
  EXPECT_GT(st.device_blocks_evicted, 0);
  EXPECT_LE(st.ssd.used_bytes, 40u * 4096);
}

}  // namespace
}  // namespace strata::kv
