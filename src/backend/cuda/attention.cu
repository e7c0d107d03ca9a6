// Paged attention: one CTA per (query row, head, key split); its 4 warps take keys in turn
// with an online softmax each, then merge. With several splits (decode: few rows, long
// contexts) a second kernel merges the splits (flash-decoding; the last CTA of a (row, head)
// merging them instead, without the launch, gave the same decode speed: run 47). Keys are read
// through the block tables; K/V in F32, F16, BF16 or Q8_0. Twin: ref::attention (naive, double).
#include <cfloat>
#include <cstdlib>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

constexpr int kAttnWarps = 4;
constexpr int kMaxHeadDim = 256;
constexpr int kKeysPerWarp = 4;
// Split-K while there are fewer CTAs than this: 8 for each of an H100's 132 SMs
// (STRATA_CUDA_ATTN_CTAS sets another target, for comparisons).
const int64_t kSplitCtas = [] {
  const char* v = std::getenv("STRATA_CUDA_ATTN_CTAS");
  const long n = v != nullptr ? std::atol(v) : 0;
  return n >= 32 ? static_cast<int64_t>(n) : int64_t{1056};
}();

template <DType T>
__device__ __forceinline__ float kv_elem(const uint8_t* row, int d) {
  if constexpr (T == DType::kF32) return reinterpret_cast<const float*>(row)[d];
  if constexpr (T == DType::kF16) return h2f(reinterpret_cast<const uint16_t*>(row)[d]);
  if constexpr (T == DType::kBF16) return bf2f(reinterpret_cast<const uint16_t*>(row)[d]);
  if constexpr (T == DType::kQ8_0) {
    const uint8_t* b = row + 34 * (d / 32);
    return h2f(*reinterpret_cast<const uint16_t*>(b)) *
           static_cast<float>(static_cast<int8_t>(b[2 + d % 32]));
  }
  return 0.0f;
}

struct Split {
  int splits;
};

// The splits' states of (row, head) merged into out (and its int8 copy), by one CTA of
// kAttnWarps * 32 threads. The partials were written by other CTAs: read through L2 (__ldcg).
__device__ void merge_splits(const AttnArgs& a, int64_t row, int head, int hd, int splits) {
  constexpr int kMaxSplits = kAttnWarps * 32;
  __shared__ float s_w[kMaxSplits], s_l[kMaxSplits], s_mx;
  auto part = [&](int s) {
    return a.partial + ((s * a.num_rows + row) * a.num_heads + head) * (hd + 2);
  };
  const int t = static_cast<int>(threadIdx.x);
  float m = -INFINITY;
  if (t < splits) {
    m = __ldcg(part(t) + hd);
    s_l[t] = __ldcg(part(t) + hd + 1);
  }
  // The largest state max: a warp reduction, then over the warps.
  float mx = m;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (t % 32 == 0) s_w[t / 32] = mx;
  __syncthreads();
  if (t == 0) {
    float v = s_w[0];
    for (int w = 1; w < kAttnWarps; ++w) v = fmaxf(v, s_w[w]);
    s_mx = v;
  }
  __syncthreads();
  if (t < splits) s_w[t] = m == -INFINITY ? 0.0f : expf(m - s_mx);
  __syncthreads();
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) total += s_l[s] * s_w[s];
  for (int d = t; d < hd; d += blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < splits; ++s) v += __ldcg(part(s) + d) * s_w[s];
    const int64_t i = (row * a.num_heads + head) * hd + d;
    a.out[i] = v / total;
    // hd % 32 == 0: whole warps over each block of 32 (the int8 copy of one token's output).
    if (a.q8.xq != nullptr) q8_store_lane(v / total, i / 32, d % 32, a.q8.xq, a.q8.xd, a.q8.xs);
  }
}

// Element d = 32 j + lane of the head vector lives in lane `lane`, register j.
template <DType T, int EPL>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attn_kernel(PagedKv kv, AttnArgs a, size_t row_bytes, Split sp) {
  pdl_begin();
  __shared__ float s_m[kAttnWarps], s_l[kAttnWarps];
  __shared__ float s_acc[kAttnWarps][EPL * 32];
  const int64_t row = blockIdx.x;
  const int head = static_cast<int>(blockIdx.y), split = static_cast<int>(blockIdx.z);
  const int si = a.row_seq[row];
  if (si < 0) return;
  const AttnSeq sq = a.seqs[si];
  const int64_t nkeys = sq.kv_len - sq.q_count + (row - sq.q_begin) + 1;
  // Each row's own keys cut into sp.splits equal parts (a step graph sizes the grid for the
  // longest context it may see; shorter rows just leave later splits empty).
  const int64_t per = (nkeys + sp.splits - 1) / sp.splits;
  const int64_t k0 = split * per, k1 = min(nkeys, k0 + per);
  const int kvh = head / (a.num_heads / kv.num_kv_heads);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int hd = kv.head_dim;
  float qv[EPL], acc[EPL];
  const float* q = a.q + (row * a.num_heads + head) * hd;
#pragma unroll
  for (int j = 0; j < EPL; ++j) {
    const int d = 32 * j + lane;
    qv[j] = d < hd ? q[d] * a.scale : 0.0f;
    acc[j] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int32_t* table = a.tables + sq.table_offset;
  // v2: each warp takes kKeysPerWarp consecutive keys at a time, K and V rows of all of them
  // loaded before the first use (v1 took one key at a time: a serial chain of load, dot,
  // shuffle reduction and exp per key, ~20 us a layer at 1024 keys).
  for (int64_t kb = k0 + warp * kKeysPerWarp; kb < k1; kb += kAttnWarps * kKeysPerWarp) {
    float s[kKeysPerWarp], vv[kKeysPerWarp][EPL];
#pragma unroll
    for (int u = 0; u < kKeysPerWarp; ++u) {
      const int64_t key = kb + u;
      s[u] = 0.0f;
#pragma unroll
      for (int j = 0; j < EPL; ++j) vv[u][j] = 0.0f;
      if (key < k1) {
        const size_t base =
            static_cast<size_t>(table[key / kv.block_tokens]) * kv.block_stride_bytes +
            kv_row_offset(kv, key % kv.block_tokens, kvh, row_bytes);
        const uint8_t* kr = static_cast<const uint8_t*>(kv.k) + base;
        const uint8_t* vr = static_cast<const uint8_t*>(kv.v) + base;
#pragma unroll
        for (int j = 0; j < EPL; ++j) {
          const int d = 32 * j + lane;
          if (d < hd) {
            s[u] += qv[j] * kv_elem<T>(kr, d);
            vv[u][j] = kv_elem<T>(vr, d);
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kKeysPerWarp; ++u) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
      if (kb + u >= k1) s[u] = -INFINITY;
    }
    float mn = m;
#pragma unroll
    for (int u = 0; u < kKeysPerWarp; ++u) mn = fmaxf(mn, s[u]);
    const float corr = expf(m - mn);
    float p[kKeysPerWarp];
    l *= corr;
#pragma unroll
    for (int u = 0; u < kKeysPerWarp; ++u) {
      p[u] = expf(s[u] - mn);
      l += p[u];
    }
#pragma unroll
    for (int j = 0; j < EPL; ++j) {
      float v = acc[j] * corr;
#pragma unroll
      for (int u = 0; u < kKeysPerWarp; ++u) v += p[u] * vv[u][j];
      acc[j] = v;
    }
    m = mn;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < EPL; ++j) s_acc[warp][32 * j + lane] = acc[j];
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) mx = fmaxf(mx, s_m[w]);
  float f[kAttnWarps];
  float total = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - mx);
    total += s_l[w] * f[w];
  }
  for (int d = static_cast<int>(threadIdx.x); d < hd; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) v += s_acc[w][d] * f[w];
    if (sp.splits == 1) {
      a.out[(row * a.num_heads + head) * hd + d] = v / total;
    } else {
      float* p = a.partial + ((split * a.num_rows + row) * a.num_heads + head) * (hd + 2);
      p[d] = v;
      if (d == 0) {
        p[hd] = mx;
        p[hd + 1] = total;
      }
    }
  }
}

__global__ void __launch_bounds__(kAttnWarps * 32)
    attn_merge_kernel(AttnArgs a, int hd, int splits, bool early) {
  pdl_begin_small(early);
  if (a.row_seq[blockIdx.x] >= 0)
    merge_splits(a, blockIdx.x, static_cast<int>(blockIdx.y), hd, splits);
}

Split choose_split(const PagedKv& kv, const AttnArgs& a, size_t partial_floats) {
  // Enough CTAs to fill the chip 8 times over (each CTA's warps walk their keys a few at a
  // time, latency-bound), at least 32 keys a split.
  const int64_t ctas = a.num_rows * a.num_heads;
  int64_t splits = std::max<int64_t>(1, (kSplitCtas + ctas - 1) / ctas);
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, (a.max_keys + 31) / 32));
  splits = std::min<int64_t>(splits, kAttnWarps * 32);  // the merge: a thread a split
  const size_t per_split = static_cast<size_t>(ctas) * (kv.head_dim + 2);
  if (partial_floats < per_split * static_cast<size_t>(splits)) splits = 1;
  return {static_cast<int>(splits)};
}

template <DType T>
void launch_attn(const PagedKv& kv, const AttnArgs& a, Split sp, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(a.num_rows), static_cast<unsigned>(a.num_heads),
                  static_cast<unsigned>(sp.splits));
  const size_t rb = row_bytes(kv.type, kv.head_dim);
  const int epl = (kv.head_dim + 31) / 32;
  if (epl <= 1)
    launch_kernel(attn_kernel<T, 1>, grid, kAttnWarps * 32, 0, s, kv, a, rb, sp);
  else if (epl <= 2)
    launch_kernel(attn_kernel<T, 2>, grid, kAttnWarps * 32, 0, s, kv, a, rb, sp);
  else if (epl <= 4)
    launch_kernel(attn_kernel<T, 4>, grid, kAttnWarps * 32, 0, s, kv, a, rb, sp);
  else
    launch_kernel(attn_kernel<T, 8>, grid, kAttnWarps * 32, 0, s, kv, a, rb, sp);
}

}  // namespace

size_t attention_partial_floats(const PagedKv& kv, const AttnArgs& a) {
  const Split sp = choose_split(kv, a, SIZE_MAX);
  return sp.splits == 1
             ? 0
             : static_cast<size_t>(sp.splits) * a.num_rows * a.num_heads * (kv.head_dim + 2);
}

bool attention(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  STRATA_CHECK(kv.head_dim <= kMaxHeadDim && a.num_heads % kv.num_kv_heads == 0);
  STRATA_CHECK(a.q8.xq == nullptr || (a.num_rows == 1 && kv.head_dim % 32 == 0));
  if (a.num_rows == 0 || a.max_keys == 0) return false;
  const Split sp = choose_split(kv, a, a.partial_floats);
  switch (kv.type) {
    case DType::kF32:
      launch_attn<DType::kF32>(kv, a, sp, s);
      break;
    case DType::kF16:
      launch_attn<DType::kF16>(kv, a, sp, s);
      break;
    case DType::kBF16:
      launch_attn<DType::kBF16>(kv, a, sp, s);
      break;
    case DType::kQ8_0:
      STRATA_CHECK(kv.head_dim % 32 == 0);
      launch_attn<DType::kQ8_0>(kv, a, sp, s);
      break;
    default:
      STRATA_CHECK_MSG(false, "K/V type not supported by the CUDA backend");
  }
  if (sp.splits > 1) {
    launch_kernel(attn_merge_kernel,
                  dim3(static_cast<unsigned>(a.num_rows), static_cast<unsigned>(a.num_heads)),
                  kAttnWarps * 32, 0, s, a, kv.head_dim, sp.splits, pdl_early());
    return a.q8.xq != nullptr;
  }
  return false;
}

}  // namespace strata::backend::cuda
