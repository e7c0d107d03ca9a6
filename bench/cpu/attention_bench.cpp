// Paged attention variants side by side (single thread, process CPU time, best of several):
// variant 1 (bench/cpu/variants/attention_v1.cpp) against the product's (attention.cpp), at
// Qwen3-0.6B's shape: 16 query heads, 8 KV heads, head_dim 128, F16 KV in blocks of 64.
// Cases: prefill of 512 tokens (causal; and its last 512 after 1536), decode of 1 token after
// 1024, 23 and 16383; also without the long decode path (per-head items), and without the
// AVX-512 loops (decode and prefill) as well.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/ref_ops.h"
#include "core/rng.h"
#include "variants/attention_v1.h"

namespace {

double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main() {
  using namespace strata;
  using namespace strata::backend;
  const int heads = 16, kvh = 8, hd = 128, bt = 64;
  ThreadPool pool(1);
  for (DType type : {DType::kF16, DType::kQ8_0}) {
    for (auto [kv_len, q_count] :
         {std::pair<int64_t, int64_t>{512, 512}, {2048, 512}, {1025, 1}, {24, 1}, {16384, 1}}) {
      const int nb = static_cast<int>((kv_len + bt - 1) / bt);
      PagedKv kv;
      kv.type = type;
      kv.block_tokens = bt;
      kv.num_kv_heads = kvh;
      kv.head_dim = hd;
      kv.block_stride_bytes = row_bytes(type, hd) * bt * kvh;
      std::vector<uint8_t> kb(kv.block_stride_bytes * nb), vb(kb.size());
      kv.k = kb.data();
      kv.v = vb.data();
      std::vector<int32_t> table(nb), slots(kv_len);
      std::iota(table.begin(), table.end(), 0);
      std::reverse(table.begin(), table.end());
      for (int64_t p = 0; p < kv_len; ++p) slots[p] = table[p / bt] * bt + p % bt;
      Rng rng(1);
      std::vector<float> k(kv_len * kvh * hd), v(k.size()), q(q_count * heads * hd), o1(q.size()), o2(q.size());
      for (float& x : k) x = rng.normal();
      for (float& x : v) x = rng.normal();
      for (float& x : q) x = rng.normal();
      cpu::ref::kv_store(kv, k.data(), v.data(), kv_len, slots.data());
      const SeqAttention seq{0, q_count, kv_len, table.data()};
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      // v1; the product's; without the long decode path (per-head items); without AVX-512 either
      double b1 = 1e9, b2 = 1e9, b3 = 1e9, b4 = 1e9;
      const int reps = q_count > 1 ? 3 : 50;
      for (int rep = 0; rep < reps; ++rep) {
        double t0 = cpu_s();
        cpu::v1::attention(pool, q.data(), heads, kv, {&seq, 1}, scale, o1.data());
        b1 = std::min(b1, cpu_s() - t0);
        t0 = cpu_s();
        cpu::attention(pool, q.data(), heads, kv, {&seq, 1}, scale, o2.data());
        b2 = std::min(b2, cpu_s() - t0);
        cpu::set_long_decode_attention(false);
        t0 = cpu_s();
        cpu::attention(pool, q.data(), heads, kv, {&seq, 1}, scale, o2.data());
        b3 = std::min(b3, cpu_s() - t0);
        cpu::set_decode_attention_avx512(false);
        cpu::set_prefill_attention_avx512(false);
        t0 = cpu_s();
        cpu::attention(pool, q.data(), heads, kv, {&seq, 1}, scale, o2.data());
        b4 = std::min(b4, cpu_s() - t0);
        cpu::set_decode_attention_avx512(true);
        cpu::set_prefill_attention_avx512(true);
        cpu::set_long_decode_attention(true);
      }
      double diff = 0;
      for (size_t i = 0; i < o1.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(o1[i] - o2[i])));
      // causal FLOPs: 4 * hd per (query head, visible key)
      double pairs = 0;
      for (int64_t i = 0; i < q_count; ++i) pairs += static_cast<double>(kv_len - q_count + i + 1);
      const double flops = 4.0 * hd * heads * pairs;
      std::printf(
          "%-4s kv %5lld q %4lld:  v1 %9.1f us (%5.1f GFLOP/s)   v2 %9.1f us (%5.1f GFLOP/s)   "
          "per-head items %9.1f us   and AVX2 %9.1f us   max diff %.1e\n",
          dtype_name(type), static_cast<long long>(kv_len), static_cast<long long>(q_count),
          b1 * 1e6, flops / b1 / 1e9, b2 * 1e6, flops / b2 / 1e9, b3 * 1e6, b4 * 1e6, diff);
    }
  }
}
