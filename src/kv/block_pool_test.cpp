// BlockPool: invariants under random operations, eviction order, "no room" as a value.
#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <random>

namespace strata::kv {
namespace {

BlockPool make_pool(int32_t n, int32_t shared_min_uses = 4) {
  auto mem = allocate_host_memory(static_cast<size_t>(n) * 64);
  return BlockPool(n, 64, std::move(mem).value(), shared_min_uses);
}

// Drain the free list in eviction order.
std::vector<int32_t> eviction_order(BlockPool& pool) {
  std::vector<int32_t> order;
  while (auto b = pool.peek_victim()) {
    order.push_back(idx(*b));
    pool.take(*b);
  }
  return order;
}

TEST(BlockPool, RandomOperationsKeepInvariants) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 20; ++round) {
    BlockPool pool = make_pool(16);
    std::vector<int32_t> refs(16, 0);  // the model
    uint64_t tick = 0;
    for (int op = 0; op < 2000; ++op) {
      int32_t b = static_cast<int32_t>(rng() % 16);
      switch (rng() % 5) {
        case 0:
          if (auto v = pool.peek_victim()) {
            EXPECT_EQ(refs[idx(*v)], 0);
            pool.take(*v);
            refs[idx(*v)] = 1;
          } else {
            for (int32_t r : refs) EXPECT_GT(r, 0);  // no room only when all are in use
          }
          break;
        case 1:
          pool.acquire(BlockId{b});
          refs[b]++;
          break;
        case 2:
          if (refs[b] > 0) {
            pool.release(BlockId{b}, ++tick);
            refs[b]--;
          }
          break;
        default:
          pool.set_cached(BlockId{b}, rng() % 2 == 0, static_cast<int32_t>(rng() % 8));
          break;
      }
      pool.check_invariants();
      int32_t free_model = 0;
      for (int32_t i = 0; i < 16; ++i) {
        EXPECT_EQ(pool.ref_count(BlockId{i}), refs[i]);
        free_model += refs[i] == 0;
      }
      ASSERT_EQ(pool.num_free(), free_model);
    }
  }
}

TEST(BlockPool, NoRoomIsAValue) {
  BlockPool pool = make_pool(3);
  for (int i = 0; i < 3; ++i) pool.take(*pool.peek_victim());
  EXPECT_FALSE(pool.peek_victim().has_value());
  pool.release(BlockId{1}, 5);
  ASSERT_TRUE(pool.peek_victim().has_value());
  EXPECT_EQ(idx(*pool.peek_victim()), 1);
}

TEST(BlockPool, EvictionOrderLruTailsFirstSharedLast) {
  BlockPool pool = make_pool(8, /*shared_min_uses=*/3);
  for (int i = 0; i < 8; ++i) pool.take(BlockId{i});
  // Chain A = blocks 0,1,2 (depth 0..2) released together at tick 10.
  // Chain B = blocks 3,4 released at tick 5 (older).
  // Block 5: cached, depth 0, used by 3 sequences (shared), released at tick 1 (oldest).
  // Block 6: not cached (garbage), released at tick 20: first victim anyway.
  // Block 7: stays referenced: never a victim.
  for (int i = 0; i < 3; ++i) pool.set_cached(BlockId{i}, true, i);
  pool.set_cached(BlockId{3}, true, 0);
  pool.set_cached(BlockId{4}, true, 1);
  pool.set_cached(BlockId{5}, true, 0);
  pool.acquire(BlockId{5});
  pool.acquire(BlockId{5});
  for (int i = 0; i < 3; ++i) pool.release(BlockId{i}, 10);
  pool.release(BlockId{3}, 5);
  pool.release(BlockId{4}, 5);
  for (int k = 0; k < 3; ++k) pool.release(BlockId{5}, 1);
  pool.release(BlockId{6}, 20);
  pool.check_invariants();
  std::vector<int32_t> expect = {6, 4, 3, 2, 1, 0, 5};
  EXPECT_EQ(eviction_order(pool), expect);
}

TEST(BlockPool, ReacquiredBlockLeavesTheFreeList) {
  BlockPool pool = make_pool(2);
  pool.take(BlockId{0});
  pool.set_cached(BlockId{0}, true, 0);
  pool.release(BlockId{0}, 1);
  EXPECT_EQ(pool.num_free(), 2);
  pool.acquire(BlockId{0});  // a prefix hit
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(idx(*pool.peek_victim()), 1);
  pool.check_invariants();
}

}  // namespace
}  // namespace strata::kv
