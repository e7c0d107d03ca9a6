// Decode fusions of one token (cuda_backend_ops.cpp holds the ops back until these can run
// them in one launch): the residual of a layer with all its terms, then the next RMSNorm and
// its int8 copy; and the Gated DeltaNet output's gated RMSNorm with its int8 copy.
// Semantics: the unfused ops of backend.h in the order the decoder issues them.
#include "backend/cuda/gemv_q8.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/reduce.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float4 fma4(float a, float4 x, float4 y) {
  return make_float4(fmaf(a, x.x, y.x), fmaf(a, x.y, y.y), fmaf(a, x.z, y.z), fmaf(a, x.w, y.w));
}

// Elements e .. e + 3 of a 32-element block, held by lane group of 8 (lanes 8g .. 8g + 7 hold
// the block in order): the block's int8 copy as q8_store_lane writes it.
__device__ __forceinline__ void q8_store4(float4 v, int e, const Q8Buf& q) {
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const int q0 = max(-127, min(127, __float2int_rn(v.x * id)));
  const int q1 = max(-127, min(127, __float2int_rn(v.y * id)));
  const int q2 = max(-127, min(127, __float2int_rn(v.z * id)));
  const int q3 = max(-127, min(127, __float2int_rn(v.w * id)));
  *reinterpret_cast<uint32_t*>(q.xq + e) = (static_cast<uint32_t>(q0) & 0xffu) |
                                           ((static_cast<uint32_t>(q1) & 0xffu) << 8) |
                                           ((static_cast<uint32_t>(q2) & 0xffu) << 16) |
                                           (static_cast<uint32_t>(q3) << 24);
  int s = q0 + q1 + q2 + q3;
  s += __shfl_xor_sync(0xffffffffu, s, 1);
  s += __shfl_xor_sync(0xffffffffu, s, 2);  // sums within each 16 elements
  const int b = e / 32, pos = (e % 32) / 4;
  if (pos == 0) q.xd[b] = d;
  if (pos % 4 == 0) q.xs[2 * b + pos / 4] = s;
}

// One CTA, V float4 a thread (dim = 4 V blockDim.x). The gate's dot first (its x may be out,
// which is written only after the second reduction), then the terms in the decoder's order:
// y + gated + sum_j fw[j] fo[j] (gated_add, then weighted_sum and add).
template <int V>
__global__ void __launch_bounds__(1024)
    residual_norm_kernel(float* y, ResidualTerms t, const float* weight, int dim, float eps,
                         float* out, Q8Buf q8, bool with_q8, bool early) {
  pdl_begin_small(early);
  __shared__ float smem[32];
  const int nt = static_cast<int>(blockDim.x), tid = static_cast<int>(threadIdx.x);
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  // Every load first, in one round (v2: the gate's reduction, a barrier, came between the
  // gate's loads and the rest, and the norm weight waited for the second reduction).
  float4 ya[V], pa[V], gx[V], acc[V], wn[V];
  float d = 0.0f;
#pragma unroll
  for (int c = 0; c < V; ++c) {
    const int e = 4 * (tid + c * nt);
    ya[c] = ld4(y + e);
    pa[c] = t.plain != nullptr ? ld4(t.plain + e) : zero;
    gx[c] = t.gated != nullptr ? ld4(t.gated + e) : zero;
    wn[c] = weight != nullptr ? ld4(weight + e) : zero;
    if (t.gate_w != nullptr) {
      const float4 a = ld4(t.gate_w + e), b = ld4(t.gate_x + e);
      d += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
    }
    acc[c] = zero;
#pragma unroll 8
    for (int j = 0; j < t.k; ++j) acc[c] = fma4(t.fw[j], ld4(t.fo + static_cast<int64_t>(j) * dim + e), acc[c]);
  }
  float sg = 1.0f;
  if (t.gated != nullptr) {
    float g;
    if (t.gate_w != nullptr) {
      g = block_sum(d, smem);
      if (tid == 0 && t.gate_out != nullptr) *t.gate_out = g;
    } else {
      g = *t.gate;
    }
    sg = 1.0f / (1.0f + expf(-g));
  }
  const bool terms = t.plain != nullptr || t.gated != nullptr || t.k > 0;
  float4 v[V];
  float ss = 0.0f;
#pragma unroll
  for (int c = 0; c < V; ++c) {
    const int e = 4 * (tid + c * nt);
    float4 a = ya[c];
    if (t.plain != nullptr) a = make_float4(a.x + pa[c].x, a.y + pa[c].y, a.z + pa[c].z, a.w + pa[c].w);
    if (t.gated != nullptr) {
      const float4 g4 = make_float4(gx[c].x * sg, gx[c].y * sg, gx[c].z * sg, gx[c].w * sg);
      st4(t.gated + e, g4);
      a = make_float4(a.x + g4.x, a.y + g4.y, a.z + g4.z, a.w + g4.w);
    }
    if (t.k > 0) {
      if (t.fo_out != nullptr && (weight == nullptr || t.fo_out != out)) st4(t.fo_out + e, acc[c]);
      a = make_float4(a.x + acc[c].x, a.y + acc[c].y, a.z + acc[c].z, a.w + acc[c].w);
    }
    if (terms) st4(y + e, a);
    v[c] = a;
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
  }
  if (weight == nullptr) return;
  const float inv = rsqrtf(block_sum(ss, smem) / static_cast<float>(dim) + eps);
#pragma unroll
  for (int c = 0; c < V; ++c) {
    const int e = 4 * (tid + c * nt);
    const float4 w = wn[c];
    const float4 o = make_float4(v[c].x * inv * w.x, v[c].y * inv * w.y, v[c].z * inv * w.z,
                                 v[c].w * inv * w.w);
    st4(out + e, o);
    if (with_q8) q8_store4(o, e, q8);
  }
}

// A warp per row of dim <= kHeadChainMaxDim (dim % 32 == 0): out = rms_norm(x) * w * silu(z),
// each block of 32 quantized as q8_store_lane does (rows are contiguous: block = row * dim/32 + j).
constexpr int kGatedNormWarps = 4;
__global__ void __launch_bounds__(32 * kGatedNormWarps)
    gated_norm_q8_kernel(const float* x, const float* w, const float* z, int64_t rows, int dim,
                         float eps, float* out, Q8Buf q8) {
  pdl_begin();
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kGatedNormWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const int per = dim / 32;
  // x, z and w in one round of loads.
  float v[kHeadChainMaxDim / 32], zv[kHeadChainMaxDim / 32], wv[kHeadChainMaxDim / 32];
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kHeadChainMaxDim / 32; ++j) {
    const bool in = j < per;
    v[j] = in ? x[r * dim + lane + 32 * j] : 0.0f;
    zv[j] = in ? z[r * dim + lane + 32 * j] : 0.0f;
    wv[j] = in ? w[lane + 32 * j] : 0.0f;
    ss += v[j] * v[j];
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
#pragma unroll
  for (int j = 0; j < kHeadChainMaxDim / 32; ++j) {
    if (j >= per) break;
    const int64_t i = r * dim + lane + 32 * j;
    const float g = zv[j];
    const float o = g / (1.0f + expf(-g)) * (v[j] * inv * wv[j]);
    out[i] = o;
    q8_store_lane(o, i / 32, lane, q8.xq, q8.xd, q8.xs);
  }
}

// A warp per 32 elements: sigmoid_mul_kernel's arithmetic, then q8_store_lane.
__global__ void sigmoid_mul_q8_kernel(float* x, const float* gate, int64_t dim, Q8Buf q8) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= dim) return;  // dim % 32 == 0: whole warps
  const float v = x[i] * (1.0f / (1.0f + expf(-gate[i])));
  x[i] = v;
  q8_store_lane(v, i / 32, static_cast<int>(i % 32), q8.xq, q8.xd, q8.xs);
}

}  // namespace

void sigmoid_mul_q8(float* x, const float* gate, int64_t dim, const Q8Buf& q8, cudaStream_t s) {
  STRATA_CHECK(dim % 32 == 0);
  if (dim == 0) return;
  launch_kernel(sigmoid_mul_q8_kernel, static_cast<unsigned>((dim + 127) / 128), 128, 0, s, x, gate,
                dim, q8);
}

bool residual_norm_supported(int64_t dim) { return dim % 128 == 0 && dim > 0 && dim <= 8192; }

void residual_norm(float* y, const ResidualTerms& t, const float* weight, int64_t dim, float eps,
                   float* out, const Q8Buf* q8, cudaStream_t s) {
  STRATA_CHECK(residual_norm_supported(dim));
  STRATA_CHECK(t.gated == nullptr || t.gate != nullptr || (t.gate_w != nullptr && t.gate_x != nullptr));
  const Q8Buf b = q8 != nullptr ? *q8 : Q8Buf{};
  const int d = static_cast<int>(dim);
  if (dim <= 4096)
    launch_kernel(residual_norm_kernel<1>, 1, d / 4, 0, s, y, t, weight, d, eps, out, b,
                  q8 != nullptr, pdl_early());
  else
    launch_kernel(residual_norm_kernel<2>, 1, d / 8, 0, s, y, t, weight, d, eps, out, b,
                  q8 != nullptr, pdl_early());
}

void gated_norm_q8(const float* x, const float* w, const float* z, int64_t rows, int dim,
                   float eps, float* out, const Q8Buf& q8, cudaStream_t s) {
  STRATA_CHECK(dim % 32 == 0 && dim <= kHeadChainMaxDim);
  if (rows == 0) return;
  launch_kernel(gated_norm_q8_kernel,
                static_cast<unsigned>((rows + kGatedNormWarps - 1) / kGatedNormWarps),
                32 * kGatedNormWarps, 0, s, x, w, z, rows, dim, eps, out, q8);
}

}  // namespace strata::backend::cuda
