// Paged attention and kv_store against the reference (naive softmax in double): several
// sequences of different lengths, kv_len not a multiple of block_tokens, shuffled block ids,
// chunked prefill (q_count > 1) and decode (q_count = 1), GQA ratios 1, 2, 4, every KV type.
#include "backend/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"

namespace strata::backend::cpu {
namespace {

using testing::kF32Eps;

struct KvPool {
  std::vector<uint8_t> k, v;
  PagedKv kv;
};

KvPool make_pool(DType type, int block_tokens, int num_kv_heads, int head_dim, int num_blocks) {
  KvPool p;
  p.kv.type = type;
  p.kv.block_tokens = block_tokens;
  p.kv.num_kv_heads = num_kv_heads;
  p.kv.head_dim = head_dim;
  // padded stride: blocks need not be packed
  p.kv.block_stride_bytes = row_bytes(type, head_dim) * block_tokens * num_kv_heads + 64;
  p.k.assign(p.kv.block_stride_bytes * num_blocks, 0xCD);
  p.v.assign(p.k.size(), 0xCD);
  p.kv.k = p.k.data();
  p.kv.v = p.v.data();
  return p;
}

TEST(CpuKvStore, MatchesReferenceBitForBit) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    Rng rng(11);
    const int bt = 5, kvh = 3, hd = 64, nb = 7;
    KvPool a = make_pool(type, bt, kvh, hd, nb), b = make_pool(type, bt, kvh, hd, nb);
    const int64_t n = 19;
    const std::vector<float> k = testing::normal(rng, n * kvh * hd), v = testing::normal(rng, n * kvh * hd);
    std::vector<int32_t> slots(nb * bt);
    std::iota(slots.begin(), slots.end(), 0);
    for (size_t i = slots.size() - 1; i > 0; --i) std::swap(slots[i], slots[rng.below(static_cast<uint32_t>(i + 1))]);
    ref::kv_store(a.kv, k.data(), v.data(), n, slots.data());
    CpuBackend(2).kv_store(b.kv, k.data(), v.data(), n, slots.data());
    EXPECT_EQ(a.k, b.k) << dtype_name(type);
    EXPECT_EQ(a.v, b.v) << dtype_name(type);
  }
}

struct SeqSpec {
  int64_t kv_len, q_count;
};

const std::vector<SeqSpec> kMixedSpecs = {{37, 37}, {50, 13}, {21, 1}, {3, 2}, {64, 1}};

void check_attention(DType type, int ratio, int head_dim, int block_tokens, uint64_t seed,
                     const std::vector<SeqSpec>& specs = kMixedSpecs, int kvh = 2) {
  Rng rng(seed);
  const int heads = kvh * ratio;
  int total_blocks = 0;
  for (const SeqSpec& s : specs) total_blocks += static_cast<int>((s.kv_len + block_tokens - 1) / block_tokens);
  total_blocks += 3;  // unused blocks in the pool
  KvPool pool = make_pool(type, block_tokens, kvh, head_dim, total_blocks);
  std::vector<int32_t> ids(total_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  for (int i = total_blocks - 1; i > 0; --i) std::swap(ids[i], ids[rng.below(i + 1)]);

  std::vector<std::vector<int32_t>> tables;
  std::vector<SeqAttention> seqs;
  int next_block = 0;
  int64_t q_rows = 0;
  for (const SeqSpec& s : specs) {
    const int nb = static_cast<int>((s.kv_len + block_tokens - 1) / block_tokens);
    tables.emplace_back(ids.begin() + next_block, ids.begin() + next_block + nb);
    next_block += nb;
    // this sequence's K/V for every position, stored through its block table
    std::vector<int32_t> slots(s.kv_len);
    for (int64_t p = 0; p < s.kv_len; ++p) slots[p] = tables.back()[p / block_tokens] * block_tokens + p % block_tokens;
    const auto k = testing::normal(rng, s.kv_len * kvh * head_dim), v = testing::normal(rng, s.kv_len * kvh * head_dim);
    ref::kv_store(pool.kv, k.data(), v.data(), s.kv_len, slots.data());
    q_rows += s.q_count;
  }
  int64_t q_begin = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    seqs.push_back({q_begin, specs[i].q_count, specs[i].kv_len, tables[i].data()});
    q_begin += specs[i].q_count;
  }
  const std::vector<float> q = testing::normal(rng, q_rows * heads * head_dim, 2.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> o_ref(q.size()), o1(q.size()), o2(q.size());
  ref::attention(q.data(), heads, pool.kv, seqs, scale, o_ref.data());
  CpuBackend(1).attention(q.data(), heads, pool.kv, seqs, scale, o1.data());
  CpuBackend(2).attention(q.data(), heads, pool.kv, seqs, scale, o2.data());
  // The 512-bit prefill blocks (where the AVX-512 kernels are on) sum in the AVX2 blocks'
  // order: the same floats.
  std::vector<float> o3(q.size());
  set_prefill_attention_avx512(false);
  CpuBackend(1).attention(q.data(), heads, pool.kv, seqs, scale, o3.data());
  set_prefill_attention_avx512(true);
  // Decode steps' units through one shared counter instead of the pool's runs: the same floats.
  std::vector<float> o4(q.size());
  set_decode_attention_runs(false);
  CpuBackend(2).attention(q.data(), heads, pool.kv, seqs, scale, o4.data());
  set_decode_attention_runs(true);
  // Scores carry f32 roundoff <= (head_dim/8 + 8) 2 eps sum|q||k| scale <= ... |q|_2 |k|_2
  // scale; softmax turns a score error ds into a relative weight error <= 2 ds; outputs are
  // convex combinations of rows with |v| <= vmax; plus exp's ~2e-7 and the f32 sums.
  double qn = 0, kn = 0, vmax = 0;
  for (int64_t r = 0; r < q_rows * heads; ++r) {
    double s2 = 0;
    for (int d = 0; d < head_dim; ++d) s2 += static_cast<double>(q[r * head_dim + d]) * q[r * head_dim + d];
    qn = std::max(qn, std::sqrt(s2));
  }
  std::vector<float> row(head_dim);
  const size_t rb = row_bytes(type, head_dim);
  for (const SeqAttention& s : seqs) {
    for (int64_t p = 0; p < s.kv_len; ++p) {
      for (int h = 0; h < kvh; ++h) {
        ref::kv_decode_row(type, ref::kv_row(pool.kv.v, pool.kv, s.block_table, p, h, rb), row.data(), head_dim);
        for (float x : row) vmax = std::max(vmax, static_cast<double>(std::fabs(x)));
        ref::kv_decode_row(type, ref::kv_row(pool.kv.k, pool.kv, s.block_table, p, h, rb), row.data(), head_dim);
        double s2 = 0;
        for (float x : row) s2 += static_cast<double>(x) * x;
        kn = std::max(kn, std::sqrt(s2));
      }
    }
  }
  const double ds = (head_dim / 8.0 + 8) * 2 * kF32Eps * qn * kn * scale;
  const double tol = vmax * (4 * ds + 1e-6 + (64 + head_dim) * 2 * kF32Eps);
  for (size_t i = 0; i < q.size(); ++i) {
    ASSERT_NEAR(o1[i], o_ref[i], tol) << dtype_name(type) << " ratio " << ratio << " hd " << head_dim
                                      << " bt " << block_tokens << " at " << i;
    ASSERT_EQ(o1[i], o2[i]) << "threaded differs";
    ASSERT_EQ(o1[i], o3[i]) << "the 512-bit prefill blocks differ from the AVX2 ones";
    ASSERT_EQ(o1[i], o4[i]) << "decode units by a shared counter differ";
  }
}

TEST(CpuAttention, MatchesNaiveSoftmax) {
  // The AVX-512 decode loops (F16 K/V, where the CPU has AVX-512) and the AVX2 ones.
  const bool saved = avx512_kernels_enabled();
  for (bool wide : {true, false}) {
    set_avx512_kernels(wide);
    uint64_t seed = 1000;
    for (DType type : {DType::kF16, DType::kBF16, DType::kF32, DType::kQ8_0}) {
      for (int ratio : {1, 2, 4}) {
        check_attention(type, ratio, 64, 16, ++seed);
        check_attention(type, ratio, 64, 5, ++seed);
        if (type != DType::kQ8_0)
          check_attention(type, ratio, 48, 9, ++seed);  // a 16-dim tail (512-bit loops)
        if (type != DType::kQ8_0) check_attention(type, ratio, 20, 7, ++seed);
      }
    }
  }
  set_avx512_kernels(saved);
}

// One-query sequences of 128 keys or more take the long decode path (chunks of blocks for all
// heads, merged); beside them short decodes (under the threshold) and a prefill tile.
TEST(CpuAttention, LongDecodeMatchesNaiveSoftmax) {
  const std::vector<SeqSpec> specs = {{1500, 1}, {30, 1},  {1024, 1}, {1100, 3}, {4096, 1},
                                      {127, 1},  {128, 1}, {200, 1},  {520, 1}};
  const bool saved = avx512_kernels_enabled();
  for (bool wide : {true, false}) {  // F16: the 512-bit loops where the CPU has them, and AVX2
    set_avx512_kernels(wide);
    uint64_t seed = 2000;
    for (DType type : {DType::kF16, DType::kBF16, DType::kQ8_0}) {
      for (int ratio : {1, 2, 4, 8}) check_attention(type, ratio, 64, 64, ++seed, specs);
    }
    check_attention(DType::kF16, 3, 64, 64, ++seed, specs);   // group 3: the per-head items
    check_attention(DType::kF16, 2, 128, 16, ++seed, specs);  // many small blocks
    check_attention(DType::kF16, 2, 48, 64, ++seed, specs);   // a 16-value tail
    // A decode-only step (every sequence one query): its units go out as the pool's runs.
    const std::vector<SeqSpec> decode = {{1500, 1}, {30, 1}, {127, 1}, {128, 1}, {520, 1}, {7, 1}};
    check_attention(DType::kF16, 2, 64, 64, ++seed, decode);
    check_attention(DType::kQ8_0, 4, 64, 16, ++seed, decode);
    check_attention(DType::kF16, 2, 64, 16, ++seed, {{90, 1}});  // one short sequence: two items
    // 8 KV heads (Qwen3-0.6B, Llama 3): a block's rows of a head one run; the chunks from 128
    // keys too, so that both paths see 200-key and 4100-key sequences
    const std::vector<SeqSpec> eight = {{1500, 1}, {200, 1}, {4100, 1}, {64, 1}};
    for (int64_t from : {1024, 128}) {
      set_long_decode_min_keys(from);
      check_attention(DType::kF16, 2, 128, 64, ++seed, eight, 8);
      check_attention(DType::kQ8_0, 4, 64, 16, ++seed, eight, 8);
    }
    set_long_decode_min_keys(1024);
  }
  set_avx512_kernels(saved);
}

}  // namespace
}  // namespace strata::backend::cpu
