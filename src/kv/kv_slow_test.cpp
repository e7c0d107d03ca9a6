// Slow kv tests (label `slow`): re-indexing 10k records, a long random run with SSD I/O.
#include <gtest/gtest.h>

#include "kv/kv_test_util.h"
#include "kv/ssd_store.h"

namespace strata::kv {
namespace {

using testing::TempDir;

TEST(KvSlow, ReindexesTenThousandBlocksInUnderASecond) {
  TempDir tmp;
  KvLayout layout = testing::tiny_layout(0, 64);  // 64-token blocks: 256 bytes of token ids
  SsdStoreOptions o;
  o.dir = tmp.path;
  o.budget_bytes = uint64_t{1} << 34;
  o.fingerprint = make_fingerprint("w", "t", layout);
  o.layout = layout;
  o.fsync = false;
  o.max_queued_writes = 1 << 20;
  const int kBlocks = 10000;
  {
    auto s = SsdStore::open(o).value();
    std::vector<int32_t> toks(64);
    BlockKey parent = chain_root(o.fingerprint, {});
    for (int i = 0; i < kBlocks; ++i) {
      SsdWrite w;
      for (int k = 0; k < 64; ++k) toks[k] = i * 64 + k;
      w.key = block_key(o.fingerprint, parent, toks, {});
      w.parent = parent;
      w.depth = i;
      w.tokens = toks;
      w.payload.assign(encoded_block_bytes(layout, BlockCodec::kRaw), static_cast<uint8_t>(i));
      parent = w.key;
      ASSERT_TRUE(s->submit_write(std::move(w)));
    }
    s->flush();
    ASSERT_EQ(s->stats().num_records, kBlocks);
  }
  auto s = SsdStore::open(o).value();
  SsdStats st = s->stats();
  EXPECT_EQ(st.indexed_at_open, kBlocks);
  EXPECT_EQ(st.dropped_at_open, 0);
  EXPECT_LT(st.open_seconds, 1.0);
  std::printf("re-indexed %d records in %.3f s\n", kBlocks, st.open_seconds);
}

}  // namespace
}  // namespace strata::kv
