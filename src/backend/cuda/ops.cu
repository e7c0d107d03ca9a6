// Small CUDA ops: RMSNorm, RoPE, SwiGLU, add, MoE router top-k, weighted sum, K/V stores.
// Semantics: backend.h; scalar twins: backend/cpu/ref_ops.cpp.
#include <algorithm>
#include <cfloat>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/reduce.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

unsigned blocks_for(int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

// One CTA per row. kAdd: the row is add_y + add_x, stored back to add_y first (the residual
// add); kQ8: the output (one row) is also quantized to int8 for the products that read it.
// Each thread handles the same elements in both passes, so out may alias x or add_x.
template <bool kAdd, bool kQ8>
__global__ void rms_norm_kernel(float* add_y, const float* add_x, const float* x,
                                const float* weight, int64_t dim, float eps, float* out,
                                Q8Buf q8) {
  pdl_begin();
  __shared__ float smem[32];
  const int64_t off = static_cast<int64_t>(blockIdx.x) * dim;
  const float* xr = kAdd ? add_y + off : x + off;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v;
    if constexpr (kAdd) {
      v = add_y[off + i] + add_x[off + i];
      add_y[off + i] = v;
    } else {
      v = xr[i];
    }
    ss += v * v;
  }
  const float total = block_sum(ss, smem);
  const float inv = rsqrtf(total / static_cast<float>(dim) + eps);
  float* o = out + off;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = xr[i] * inv * weight[i];
    o[i] = v;
    if constexpr (kQ8) q8_store_lane(v, i / 32, static_cast<int>(i % 32), q8.xq, q8.xd, q8.xs);
  }
}

// Rotates pair i of head vector v by position pos. The angle pos * freq (up to ~1e6 rad) is
// formed and reduced to turns in double, then taken by sincospif on [-1, 1]: float accuracy at
// any position, without the double sincos (a long latency chain in every decode step).
__device__ __forceinline__ void rotate_pair(float* v, const RopeArgs& a, int32_t pos, int i) {
  const double turns = static_cast<double>(pos) * static_cast<double>(a.freqs[i]) *
                       0.15915494309189533577;  // 1 / (2 pi)
  float sn, cs;
  sincospif(static_cast<float>(2.0 * (turns - rint(turns))), &sn, &cs);
  const float c = cs * a.mscale, s = sn * a.mscale;
  const int ia = a.mode_neox ? i : 2 * i, ib = a.mode_neox ? i + a.half : 2 * i + 1;
  const float va = v[ia], vb = v[ib];
  v[ia] = va * c - vb * s;
  v[ib] = va * s + vb * c;
}

// One thread per (token, head, pair).
__global__ void rope_kernel(float* x, int64_t n, int num_heads, int head_dim,
                            const int32_t* positions, RopeArgs a) {
  pdl_begin();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * num_heads * a.half) return;
  const int i = static_cast<int>(idx % a.half);
  const int64_t th = idx / a.half;  // token * num_heads + head
  const int64_t t = th / num_heads;
  float* v = x + th * head_dim;
  rotate_pair(v, a, positions[t], i);
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t count, float* out) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  out[i] = g / (1.0f + expf(-g)) * up[i];
}

// One token: the output also quantized to int8 (a warp per 32 elements; dim % 32 == 0).
__global__ void swiglu_q8_kernel(const float* gate, const float* up, int64_t dim, float* out,
                                 Q8Buf q8, bool early) {
  pdl_begin_small(early);
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= dim) return;
  const float g = gate[i];
  const float v = g / (1.0f + expf(-g)) * up[i];
  out[i] = v;
  q8_store_lane(v, i / 32, static_cast<int>(i % 32), q8.xq, q8.xd, q8.xs);
}

__global__ void add_kernel(float* y, const float* x, int64_t count) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) y[i] += x[i];
}

constexpr int kMaxTopK = 64;

// One thread per token: softmax over experts, then k rounds of "largest not yet taken"
// (ties to the lower id, as the reference's partial_sort comparator).
__global__ void topk_kernel(const float* logits, int64_t n, int num_experts, int k,
                            bool renormalize, int32_t* ids, float* weights) {
  pdl_begin();
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const float* l = logits + t * num_experts;
  float mx = -FLT_MAX;
  for (int e = 0; e < num_experts; ++e) mx = fmaxf(mx, l[e]);
  double sum = 0;
  for (int e = 0; e < num_experts; ++e) sum += exp(static_cast<double>(l[e]) - mx);
  int chosen[kMaxTopK];
  double p[kMaxTopK];
  double ksum = 0;
  for (int s = 0; s < k; ++s) {
    int best = -1;
    double bp = -1;
    for (int e = 0; e < num_experts; ++e) {
      bool taken = false;
      for (int j = 0; j < s; ++j) taken |= chosen[j] == e;
      if (taken) continue;
      const double pe = exp(static_cast<double>(l[e]) - mx) / sum;
      if (pe > bp) {
        bp = pe;
        best = e;
      }
    }
    chosen[s] = best;
    p[s] = bp;
    ksum += bp;
  }
  for (int s = 0; s < k; ++s) {
    ids[t * k + s] = chosen[s];
    weights[t * k + s] = static_cast<float>(renormalize ? p[s] / ksum : p[s]);
  }
}

// v2: one warp per token, each lane holding experts lane + 32 i (up to 256 experts): the
// softmax denominator in double, then k rounds of a warp argmax (largest, ties to the lower
// id, as the reference). v1 (topk_kernel above, kept for > 256 experts or k > 32) ran one
// thread per token and recomputed 128 double exps per round: ~150 us a layer for 128 experts.
// v4: a lane's logits in one round of loads; the rounds over the float logits (exp is
// increasing: the same order) as two warp reductions (redux.sync: the largest key, then the
// lowest id holding it), and the k probabilities computed after the rounds, one a lane.
constexpr int kTopkPerLane = 8;
__device__ __forceinline__ unsigned float_key(float f) {  // unsigned order = float order
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(unsigned k) {
  return __uint_as_float((k & 0x80000000u) != 0 ? (k & 0x7fffffffu) : ~k);
}
__global__ void topk_warp_kernel(const float* logits, int64_t n, int num_experts, int k,
                                 bool renormalize, int32_t* ids, float* weights) {
  pdl_begin();
  const int64_t t = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (t >= n) return;
  const float* l = logits + t * num_experts;
  float lv[kTopkPerLane];
#pragma unroll
  for (int i = 0; i < kTopkPerLane; ++i) {
    const int e = lane + 32 * i;
    lv[i] = e < num_experts ? l[e] : -INFINITY;
  }
  float mx = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kTopkPerLane; ++i) mx = fmaxf(mx, lv[i]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  double sum = 0;
#pragma unroll
  for (int i = 0; i < kTopkPerLane; ++i)
    if (lane + 32 * i < num_experts) sum += exp(static_cast<double>(lv[i]) - mx);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  float my_l = 0.0f;  // lane s: the s-th chosen logit and id
  int my_id = 0;
  for (int s = 0; s < k; ++s) {
    float bv = -INFINITY;
    int bi = 0;
#pragma unroll
    for (int i = 0; i < kTopkPerLane; ++i) {
      if (lv[i] > bv) {
        bv = lv[i];
        bi = i;
      }
    }
    const unsigned kmax = __reduce_max_sync(0xffffffffu, float_key(bv));
    const unsigned cand = float_key(bv) == kmax ? static_cast<unsigned>(lane + 32 * bi) : 0xffffffffu;
    const int best = static_cast<int>(__reduce_min_sync(0xffffffffu, cand));
#pragma unroll
    for (int i = 0; i < kTopkPerLane; ++i)
      if (lane + 32 * i == best) lv[i] = -INFINITY;  // taken
    if (lane == s) {
      my_l = key_float(kmax);
      my_id = best;
    }
  }
  const double p = lane < k ? exp(static_cast<double>(my_l) - mx) / sum : 0.0;
  double ksum = p;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ksum += __shfl_xor_sync(0xffffffffu, ksum, o);
  if (lane < k) {
    ids[t * k + lane] = my_id;
    weights[t * k + lane] = static_cast<float>(renormalize ? p / ksum : p);
  }
}

// Greedy sampling on the device: each row's first largest value as one 64-bit key (the
// float's order key above, NaN lowest; then the complement of the index, so that ties go to
// the lower index), reduced by warps, then across the CTA, then across CTAs with atomicMax
// into keys[row] (zeroed first).
__global__ void __launch_bounds__(256) argmax_rows_kernel(const float* x, int64_t cols,
                                                          unsigned long long* keys) {
  pdl_begin();
  __shared__ unsigned long long part[8];
  const float* row = x + static_cast<int64_t>(blockIdx.y) * cols;
  unsigned long long best = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < cols;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = row[i];
    const unsigned k = isnan(v) ? 0u : float_key(v);
    best = max(best, (static_cast<unsigned long long>(k) << 32) | (0xffffffffu - static_cast<unsigned>(i)));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) best = max(best, __shfl_xor_sync(0xffffffffu, best, o));
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0) part[warp] = best;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w) best = max(best, part[w]);
  atomicMax(keys + blockIdx.y, best);
}

__global__ void weighted_sum_kernel(const float* x, const float* w, int64_t n, int k, int64_t dim,
                                    float* out) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * dim) return;
  const int64_t t = i / dim, d = i % dim;
  float acc = 0;
  for (int s = 0; s < k; ++s) acc += w[t * k + s] * x[(t * k + s) * dim + d];
  out[i] = acc;
}

// One CTA (32 threads) per (token, kv head, K or V): a row of head_dim values.
__global__ void kv_store_kernel(PagedKv kv, const float* k, const float* v, const int32_t* slots,
                                size_t row_bytes) {
  pdl_begin();
  const int64_t t = blockIdx.x;
  const int head = static_cast<int>(blockIdx.y);
  const bool is_v = blockIdx.z == 1;
  const float* src = (is_v ? v : k) + (t * kv.num_kv_heads + head) * kv.head_dim;
  const int64_t slot = slots[t];
  const int64_t block = slot / kv.block_tokens, off = slot % kv.block_tokens;
  uint8_t* dst = static_cast<uint8_t*>(is_v ? kv.v : kv.k) +
                 static_cast<size_t>(block) * kv.block_stride_bytes +
                 kv_row_offset(kv, off, head, row_bytes);
  const int lane = threadIdx.x;
  switch (kv.type) {
    case DType::kF32:
      for (int i = lane; i < kv.head_dim; i += 32) reinterpret_cast<float*>(dst)[i] = src[i];
      break;
    case DType::kF16:
      for (int i = lane; i < kv.head_dim; i += 32)
        reinterpret_cast<__half*>(dst)[i] = __float2half_rn(src[i]);
      break;
    case DType::kBF16:
      for (int i = lane; i < kv.head_dim; i += 32)
        reinterpret_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(src[i]);
      break;
    default: {  // Q8_0: d = amax / 127 (fp16), q = round-half-even(x / d), as ref::kv_encode_row
      for (int b = 0; b < kv.head_dim / 32; ++b) {
        const float x = src[32 * b + lane];
        float amax = fabsf(x);
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* blk = dst + 34 * b;
        if (lane == 0) *reinterpret_cast<__half*>(blk) = __float2half_rn(d);
        blk[2 + lane] = static_cast<uint8_t>(static_cast<int8_t>(rintf(x * id)));
      }
    }
  }
}

// Per-head chain (decode v5, bench/cuda/NOTES.md): q/k head RMSNorm, RoPE and the K/V store
// of one step in one launch, a warp per head row. The row sits in registers as elements
// lane + 32 j and in shared memory for the rotation's pairs. Same arithmetic as
// rms_norm_kernel, rope_kernel and kv_store_kernel.
constexpr int kHeadChainWarps = 4;

__global__ void __launch_bounds__(32 * kHeadChainWarps) head_chain_kernel(HeadChainArgs a) {
  pdl_begin_small(a.early);
  __shared__ float rows[kHeadChainWarps][kHeadChainMaxDim];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  int64_t r = static_cast<int64_t>(blockIdx.x) * kHeadChainWarps + warp;
  const bool second = a.count > 1 && r >= a.op[0].rows;
  const HeadRowOp& op = second ? a.op[1] : a.op[0];
  if (second) r -= a.op[0].rows;
  if (r >= op.rows) return;
  const int dim = a.dim, per = dim / 32;
  float* x = op.x + r * dim;
  // Every load first, in one round (the compiler keeps loads after the stores to x that might
  // alias them): the row, the norm weight, the position, and for K rows the slot and V row.
  const bool stores_kv = a.store && (second ? 2 : 1) == a.count;  // K is the last op
  const int32_t pos = op.pos != nullptr ? op.pos[r / op.heads] : 0;
  const int64_t slot = stores_kv ? a.slots[r / a.kv.num_kv_heads] : 0;
  float v[kHeadChainMaxDim / 32], nw[kHeadChainMaxDim / 32], vv[kHeadChainMaxDim / 32];
#pragma unroll
  for (int j = 0; j < kHeadChainMaxDim / 32; ++j) {
    const int i = lane + 32 * j;
    v[j] = j < per ? x[i] : 0.0f;
    nw[j] = j < per && op.norm_w != nullptr ? op.norm_w[i] : 0.0f;
    vv[j] = j < per && stores_kv ? a.v[r * dim + i] : 0.0f;
  }
  if (op.norm_w != nullptr) {
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < kHeadChainMaxDim / 32; ++j) ss += v[j] * v[j];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / static_cast<float>(dim) + op.eps);
#pragma unroll
    for (int j = 0; j < kHeadChainMaxDim / 32; ++j)
      if (j < per) v[j] = v[j] * inv * nw[j];
  }
  float* sh = rows[warp];
  if (op.pos != nullptr) {
    const RopeArgs& ra = second ? a.rope[1] : a.rope[0];
#pragma unroll
    for (int j = 0; j < kHeadChainMaxDim / 32; ++j)
      if (j < per) sh[lane + 32 * j] = v[j];
    __syncwarp();
    for (int i = lane; i < ra.half; i += 32) rotate_pair(sh, ra, pos, i);
    __syncwarp();
#pragma unroll
    for (int j = 0; j < kHeadChainMaxDim / 32; ++j)
      if (j < per) v[j] = sh[lane + 32 * j];
  }
#pragma unroll
  for (int j = 0; j < kHeadChainMaxDim / 32; ++j)
    if (j < per) x[lane + 32 * j] = v[j];
  if (!stores_kv) return;
  // K row r (token r / kv heads, head r % kv heads) and its V row into the slot of the token.
  const PagedKv& kv = a.kv;
  const int head = static_cast<int>(r % kv.num_kv_heads);
  const size_t off = static_cast<size_t>(slot / kv.block_tokens) * kv.block_stride_bytes +
                     kv_row_offset(kv, slot % kv.block_tokens, head, a.row_bytes);
  for (int which = 0; which < 2; ++which) {
    uint8_t* dst = static_cast<uint8_t*>(which == 0 ? kv.k : kv.v) + off;
#pragma unroll
    for (int j = 0; j < kHeadChainMaxDim / 32; ++j) {
      if (j >= per) break;
      const int i = lane + 32 * j;
      const float val = which == 0 ? v[j] : vv[j];
      switch (kv.type) {
        case DType::kF32:
          reinterpret_cast<float*>(dst)[i] = val;
          break;
        case DType::kF16:
          reinterpret_cast<__half*>(dst)[i] = __float2half_rn(val);
          break;
        case DType::kBF16:
          reinterpret_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(val);
          break;
        default: {  // Q8_0, block j = elements 32 j + lane (as kv_store_kernel)
          float amax = fabsf(val);
          for (int o = 16; o > 0; o >>= 1)
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
          const float d = amax / 127.0f;
          const float id = d != 0 ? 1.0f / d : 0.0f;
          uint8_t* blk = dst + 34 * j;
          if (lane == 0) *reinterpret_cast<__half*>(blk) = __float2half_rn(d);
          blk[2 + lane] = static_cast<uint8_t>(static_cast<int8_t>(rintf(val * id)));
        }
      }
    }
  }
}

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* out,
              cudaStream_t s) {
  rms_norm_fused(nullptr, nullptr, x, weight, n, dim, eps, out, nullptr, s);
}

void rms_norm_fused(float* add_y, const float* add_x, const float* x, const float* weight,
                    int64_t n, int64_t dim, float eps, float* out, const Q8Buf* q8,
                    cudaStream_t s) {
  if (n == 0) return;
  STRATA_CHECK(q8 == nullptr || (n == 1 && dim % 32 == 0));
  const int threads = dim >= 1024 ? 512 : dim >= 256 ? 128 : 32;
  const Q8Buf b = q8 != nullptr ? *q8 : Q8Buf{};
  const auto grid = static_cast<unsigned>(n);
  if (add_y != nullptr && q8 != nullptr)
    launch_kernel(rms_norm_kernel<true, true>, grid, threads, 0, s, add_y, add_x, x, weight, dim,
                  eps, out, b);
  else if (add_y != nullptr)
    launch_kernel(rms_norm_kernel<true, false>, grid, threads, 0, s, add_y, add_x, x, weight, dim,
                  eps, out, b);
  else if (q8 != nullptr)
    launch_kernel(rms_norm_kernel<false, true>, grid, threads, 0, s, add_y, add_x, x, weight, dim,
                  eps, out, b);
  else
    launch_kernel(rms_norm_kernel<false, false>, grid, threads, 0, s, add_y, add_x, x, weight, dim,
                  eps, out, b);
}

void swiglu_q8(const float* gate, const float* up, int64_t dim, float* out, const Q8Buf& q8,
               cudaStream_t s) {
  STRATA_CHECK(dim % 32 == 0);
  if (dim == 0) return;
  launch_kernel(swiglu_q8_kernel, blocks_for(dim, 256), 256, 0, s, gate, up, dim, out, q8,
                pdl_early());
}

void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
          const RopeArgs& args, cudaStream_t s) {
  const int64_t total = n * num_heads * args.half;
  if (total == 0) return;
  launch_kernel(rope_kernel, blocks_for(total, 256), 256, 0, s, x, n, num_heads, head_dim,
                positions, args);
}

void swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(swiglu_kernel, blocks_for(count, 256), 256, 0, s, gate, up, count, out);
}

void add(float* y, const float* x, int64_t count, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(add_kernel, blocks_for(count, 256), 256, 0, s, y, x, count);
}

void topk_softmax(const float* logits, int64_t n, int num_experts, int k, bool renormalize,
                  int32_t* ids, float* weights, cudaStream_t s) {
  STRATA_CHECK(k >= 1 && k <= num_experts && k <= kMaxTopK);
  if (n == 0) return;
  if (num_experts <= 32 * kTopkPerLane && k <= 32)
    launch_kernel(topk_warp_kernel, blocks_for(n * 32, 128), 128, 0, s, logits, n, num_experts, k,
                  renormalize, ids, weights);
  else
    launch_kernel(topk_kernel, blocks_for(n, 64), 64, 0, s, logits, n, num_experts, k, renormalize,
                  ids, weights);
}

void argmax_rows(const float* x, int64_t rows, int64_t cols, unsigned long long* keys, cudaStream_t s) {
  STRATA_CHECK(cols > 0 && cols < (int64_t{1} << 32) && rows <= 65535);
  if (rows == 0) return;
  STRATA_CUDA_CHECK(cudaMemsetAsync(keys, 0, static_cast<size_t>(rows) * sizeof(unsigned long long), s));
  const auto ctas = static_cast<unsigned>(std::min<int64_t>(132, (cols + 1023) / 1024));
  launch_kernel(argmax_rows_kernel, dim3(ctas, static_cast<unsigned>(rows)), 256, 0, s, x, cols,
                keys);
}

void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim, float* out,
                  cudaStream_t s) {
  if (n * dim == 0) return;
  launch_kernel(weighted_sum_kernel, blocks_for(n * dim, 256), 256, 0, s, x, weights, n, k, dim,
                out);
}

void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n, const int32_t* slots,
              cudaStream_t s) {
  STRATA_CHECK(kv.type == DType::kF32 || kv.type == DType::kF16 || kv.type == DType::kBF16 ||
               (kv.type == DType::kQ8_0 && kv.head_dim % 32 == 0));
  if (n == 0) return;
  const size_t rb = row_bytes(kv.type, kv.head_dim);
  launch_kernel(kv_store_kernel,
                dim3(static_cast<unsigned>(n), static_cast<unsigned>(kv.num_kv_heads), 2), 32, 0, s,
                kv, k, v, slots, rb);
}

void head_chain(const HeadChainArgs& a, cudaStream_t s) {
  STRATA_CHECK(a.count >= 1 && a.count <= 2 && a.dim % 32 == 0 && a.dim <= kHeadChainMaxDim);
  const int64_t rows = a.op[0].rows + (a.count > 1 ? a.op[1].rows : 0);
  if (rows == 0) return;
  HeadChainArgs b = a;
  b.early = pdl_early();
  launch_kernel(head_chain_kernel,
                static_cast<unsigned>((rows + kHeadChainWarps - 1) / kHeadChainWarps),
                32 * kHeadChainWarps, 0, s, b);
}

}  // namespace strata::backend::cuda
