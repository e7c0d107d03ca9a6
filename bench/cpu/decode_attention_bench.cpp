// Decode attention as a decode step meets it: one query a sequence, Qwen3-0.6B's shape (16
// query heads, 8 KV heads of 128, F16 K/V in blocks of 64), 28 layers each with K/V of its
// own, 64 MB of other reads (by the pool) between two calls so that the K/V come from DRAM;
// two threads.
// Time a call (us) by key count, for the per-head items and the key-chunk path.
// Usage: cpu_decode_attention_bench [--threads 2] [--rounds 5] [--keys N] [--cached 1] [--long 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/ref_ops.h"
#include "core/huge_pages.h"
#include "core/rng.h"
#include "core/thread_pool.h"

int main(int argc, char** argv) {
  using namespace strata;
  using namespace strata::backend;
  int threads = 2, rounds = 5;
  int64_t only_keys = 0;  // --keys N: that key count alone (profiling)
  bool cached = false;    // --cached 1: no reads between calls (K/V in cache)
  bool long_ctx = false;  // --long 1: 1024, 4096 and 16384 keys instead (8 layers)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--keys")
      only_keys = std::atoll(argv[i + 1]);
    else if (a == "--cached")
      cached = std::atoi(argv[i + 1]) != 0;
    else if (a == "--long")
      long_ctx = std::atoi(argv[i + 1]) != 0;
  }
  const int heads = 16, kvh = 8, hd = 128, bt = 64;
  const int layers = long_ctx ? 8 : 28;
  const int64_t max_len = long_ctx ? 16384 : 256;
  ThreadPool pool(threads);
  const int nb = static_cast<int>((max_len + bt - 1) / bt);
  std::vector<PagedKv> kvs(layers);
  // K/V memory in 2 MB pages, as the engine's block pool maps it (kv/block_pool.cpp): in 4 KB
  // pages every other key starts a page, and the reads here ran ~30% slower
  const size_t kv_bytes = row_bytes(DType::kF16, hd) * bt * kvh * static_cast<size_t>(nb);
  auto* arena = static_cast<uint8_t*>(map_huge_pages(2 * layers * kv_bytes, false));
  std::vector<int32_t> table(nb);
  std::iota(table.begin(), table.end(), 0);
  Rng rng(1);
  std::vector<float> k(max_len * kvh * hd), v(k.size()), q(heads * hd), out(q.size());
  for (float& x : k) x = rng.normal();
  for (float& x : v) x = rng.normal();
  for (float& x : q) x = rng.normal();
  std::vector<int32_t> slots(max_len);
  for (int64_t p = 0; p < max_len; ++p) slots[p] = table[p / bt] * bt + p % bt;
  for (int l = 0; l < layers; ++l) {
    PagedKv& kv = kvs[l];
    kv.type = DType::kF16;
    kv.block_tokens = bt;
    kv.num_kv_heads = kvh;
    kv.head_dim = hd;
    kv.block_stride_bytes = row_bytes(kv.type, hd) * bt * kvh;
    kv.k = arena + 2 * static_cast<size_t>(l) * kv_bytes;
    kv.v = arena + (2 * static_cast<size_t>(l) + 1) * kv_bytes;
    cpu::ref::kv_store(kv, k.data(), v.data(), max_len, slots.data());
  }
  std::vector<float> other(size_t{16} << 20, 1.0f);  // 64 MB
  volatile float sink = 0;
  // (read by the pool's threads: a worker left alone for milliseconds goes to sleep, and
  // waking it would be timed as the call's)
  const auto evict = [&] {
    pool.parallel_for(static_cast<int64_t>(other.size()), 4096, [&](int, int64_t b, int64_t e) {
      float s = 0;
      for (int64_t i = b; i < e; i += 16) s += other[static_cast<size_t>(i)];
      sink = sink + s;
    });
  };
  const std::vector<int64_t> lens = long_ctx ? std::vector<int64_t>{1024, 4096, 16384}
                                             : std::vector<int64_t>{16, 32, 64, 100, 128, 200};
  for (const int64_t kv_len : lens) {
    if (only_keys > 0 && kv_len != only_keys) continue;
    // the two paths alternated call by call
    double total[2] = {0, 0};
    int n[2] = {0, 0};
    for (int r = 0; r < rounds; ++r) {
      for (int l = 0; l < layers; ++l) {
        const int m = (l + r) % 2;
        cpu::set_long_decode_min_keys(m == 1 ? 16 : int64_t{1} << 30);
        if (!cached) evict();
        const SeqAttention s{0, 1, kv_len, table.data()};
        const auto t0 = std::chrono::steady_clock::now();
        cpu::attention(pool, q.data(), heads, kvs[l], std::span<const SeqAttention>(&s, 1), 0.088f,
                       out.data());
        total[m] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ++n[m];
      }
    }
    const double bytes = 2.0 * static_cast<double>(kv_len) * kvh * hd * 2;  // K and V, f16
    std::printf(
        "keys %5lld: per-head items %8.2f us a call (%5.1f GB/s), key chunks (from 16 keys) %8.2f "
        "(%5.1f GB/s)\n",
        static_cast<long long>(kv_len), total[0] / n[0] * 1e6, bytes / (total[0] / n[0]) / 1e9,
        total[1] / n[1] * 1e6, bytes / (total[1] / n[1]) / 1e9);
  }
  cpu::set_long_decode_min_keys(1024);
  return 0;
}
