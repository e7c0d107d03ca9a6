// Gated DeltaNet ops on the GPU: causal conv + SiLU, the gated delta rule, sigmoid gates.
// Semantics: backend.h; scalar twins: backend/cpu/deltanet_ref.cpp. The segments arrive as a
// DnPlan (kernels.h): chains of segments, each chain one sequence's stretch of rows whose
// state goes from one segment to the next.
//
// gated_delta_rule v1: the recurrent form, token by token, in one CTA per (chain, value head,
// 4 * CPW value columns). Column j of a head's state S [dk, dv] evolves on its own given q and
// k (S[:, j] <- d S[:, j] + k b (v_j - d S[:, j].k); o_j = S[:, j].q), so a CTA keeps its
// columns in registers for the whole chain: a warp holds CPW columns, its lanes split the dk
// rows in 32 / CPW groups (lane = CPW * group + column) and the two dot products over rows
// are shuffles. Decode: CPW = 8 (4 row groups); prefill: CPW = 4 (8 row groups, twice the
// CTAs, half the serial work a token). Prefill (v2) also normalises q, k and computes the
// gates of all rows in one parallel pass first, so that staging a chunk is plain loads
// (v1 staged them inside the kernel: ~8 dependent global round trips a chunk). q, k (L2-normalised), the decay and b of up to kChunk tokens are staged in shared
// memory together, so the token loop runs without block barriers.
#include <cstdlib>

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

constexpr int kConvThreads = 128;
constexpr int kMaxConvKernel = 8;
constexpr int kDeltaWarps = 4;
// Steps of more rows than this (prefill) take 4 columns a warp (8 row groups): twice the CTAs
// and half the serial work per token; decode keeps 8 (32-byte rows of the state per load).
constexpr int64_t kDeltaNarrowMinRows = 64;

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// out[r, c] = silu(sum_j w[c, j] xs[r + j, c]), xs = the chain's initial conv state, then
// its rows. A thread per (row, channel); the initial state is only read here.
__global__ void conv_out_kernel(const float* x, int64_t channels, const float* w, int kernel,
                                DnPlan plan, float* out) {
  pdl_begin();
  const int64_t r = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const int ci = plan.row_chain[r];
  if (ci < 0) return;
  const DnChain ch = plan.chains[ci];
  const float* init = plan.segs[ch.seg_begin].state_in;
  const int hist = kernel - 1;
  float acc = 0.0f;
  for (int j = 0; j < kernel; ++j) {
    const int64_t src = r - hist + j;
    float v;
    if (src >= ch.row_begin) {
      v = x[src * channels + c];
    } else {
      const int64_t idx = src - ch.row_begin + hist;  // in [0, hist)
      v = init != nullptr ? init[idx * channels + c] : 0.0f;
    }
    acc += w[c * kernel + j] * v;
  }
  out[r * channels + c] = silu(acc);
}

// Each segment's conv state: the last kernel-1 inputs up to its end. A thread per (chain,
// channel) reads the chain's initial state first, then writes the segments in order, so a
// state written in place (state_in == state_out) or reused within the chain comes out right.
__global__ void conv_state_kernel(const float* x, int64_t channels, int kernel, DnPlan plan) {
  pdl_begin();
  const int ci = static_cast<int>(blockIdx.x);
  if (ci >= *plan.num_chains) return;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const DnChain ch = plan.chains[ci];
  const int hist = kernel - 1;
  const float* init = plan.segs[ch.seg_begin].state_in;
  float h0[kMaxConvKernel - 1];
#pragma unroll
  for (int i = 0; i < kMaxConvKernel - 1; ++i)
    h0[i] = i < hist && init != nullptr ? init[i * channels + c] : 0.0f;
  for (int s = ch.seg_begin; s < ch.seg_end; ++s) {
    const DnSeg seg = plan.segs[s];
    const int64_t end = seg.row_begin + seg.num_rows - ch.row_begin;  // rows of the chain so far
#pragma unroll
    for (int i = 0; i < kMaxConvKernel - 1; ++i) {
      if (i >= hist) break;
      const int64_t src = end - hist + i;
      float v = 0.0f;
      if (src >= 0) {
        v = x[(ch.row_begin + src) * channels + c];
      } else {
#pragma unroll
        for (int m = 0; m < kMaxConvKernel - 1; ++m)
          if (m == src + hist) v = h0[m];  // a register, not local memory
      }
      seg.state_out[i * channels + c] = v;
    }
  }
}

// Few rows (decode): a thread per (chain, channel) walks the chain's rows with the window in
// registers, writing each output and, at each segment's end, its state; one launch.
constexpr int64_t kConvFusedMaxRows = 16;
__global__ void conv_fused_kernel(const float* x, int64_t channels, const float* w, int kernel,
                                  DnPlan plan, float* out) {
  pdl_begin();
  const int ci = static_cast<int>(blockIdx.x);
  if (ci >= *plan.num_chains) return;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const DnChain ch = plan.chains[ci];
  const int hist = kernel - 1;
  const float* init = plan.segs[ch.seg_begin].state_in;
  float win[kMaxConvKernel], wt[kMaxConvKernel];
#pragma unroll
  for (int i = 0; i < kMaxConvKernel; ++i) {
    win[i] = i < hist && init != nullptr ? init[i * channels + c] : 0.0f;
    wt[i] = i < kernel ? w[c * kernel + i] : 0.0f;
  }
  for (int s = ch.seg_begin; s < ch.seg_end; ++s) {
    const DnSeg seg = plan.segs[s];
    for (int64_t r = seg.row_begin; r < seg.row_begin + seg.num_rows; ++r) {
      const float xv = x[r * channels + c];
      float acc = 0.0f;
#pragma unroll
      for (int j = 0; j < kMaxConvKernel; ++j) {
        if (j < hist) acc += wt[j] * win[j];
        else if (j == hist) acc += wt[j] * xv;
      }
      out[r * channels + c] = silu(acc);
#pragma unroll
      for (int j = 0; j < kMaxConvKernel - 1; ++j) {
        if (j + 1 < hist) win[j] = win[j + 1];
        else if (j + 1 == hist) win[j] = xv;
      }
    }
#pragma unroll
    for (int i = 0; i < kMaxConvKernel - 1; ++i)
      if (i < hist) seg.state_out[i * channels + c] = win[i];
  }
}

// CPW columns a warp, its lanes in 32 / CPW row groups of R rows each.
template <int R, int CPW>
struct DeltaTile {
  static constexpr int kGroups = 32 / CPW;
  static constexpr int kDk = kGroups * R;               // rows of S a CTA holds (>= dk)
  static constexpr int kCols = CPW * kDeltaWarps;       // columns a CTA
  static constexpr int kChunk = kDk <= 128 ? 32 : 16;   // tokens staged at once
};

// Prefill: each row's q and k of every key head L2-normalised (q also scaled by 1/sqrt(dk)),
// as prep [row][key head][q dk, k dk], and each value head's (decay, b) as gates [row][head],
// in one parallel pass, so that the recurrent kernel stages chunks with plain loads. The same
// arithmetic as the in-kernel staging.
__global__ void delta_prep_kernel(const float* qkv, const float* alpha, const float* beta,
                                  const float* dt_bias, const float* a, DeltaNetShape sh,
                                  const int32_t* row_chain, float* prep, float2* gates) {
  pdl_begin();
  const int64_t row = blockIdx.x;
  if (row_chain[row] < 0) return;
  const int dk = sh.head_k_dim, hk = sh.num_k_heads, hv = sh.num_v_heads;
  const int64_t key_dim = static_cast<int64_t>(hk) * dk;
  const int64_t row_len = 2 * key_dim + static_cast<int64_t>(hv) * sh.head_v_dim;
  const float* src = qkv + row * row_len;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const float qscale = 1.0f / sqrtf(static_cast<float>(dk));
  for (int kh = warp; kh < hk; kh += static_cast<int>(blockDim.x) / 32) {
    float qq = 0.0f, kk = 0.0f;
    for (int i = lane; i < dk; i += 32) {
      const float qv = src[kh * dk + i], kv = src[key_dim + kh * dk + i];
      qq += qv * qv;
      kk += kv * kv;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      qq += __shfl_xor_sync(0xffffffffu, qq, o);
      kk += __shfl_xor_sync(0xffffffffu, kk, o);
    }
    const float qs = qscale / sqrtf(qq + 1e-6f), ks = 1.0f / sqrtf(kk + 1e-6f);
    float* p = prep + (row * hk + kh) * 2 * dk;
    for (int i = lane; i < dk; i += 32) {
      p[i] = src[kh * dk + i] * qs;
      p[dk + i] = src[key_dim + kh * dk + i] * ks;
    }
  }
  for (int h = static_cast<int>(threadIdx.x); h < hv; h += static_cast<int>(blockDim.x)) {
    const float xg = alpha[row * hv + h] + dt_bias[h];
    const float sp = xg > 20.0f ? xg : log1pf(expf(xg));
    gates[row * hv + h] = make_float2(expf(a[h] * sp), 1.0f / (1.0f + expf(-beta[row * hv + h])));
  }
}

// One CTA per (chain, value head, 32 value columns): see the file comment. prep/gates: as
// delta_prep_kernel wrote them, or null (staging normalises q, k itself).
template <int R, int CPW>
__global__ void __launch_bounds__(32 * kDeltaWarps)
    delta_rule_kernel(const float* qkv, const float* alpha, const float* beta,
                      const float* dt_bias, const float* a, DeltaNetShape sh, DnPlan plan,
                      const float* prep, const float2* gates, float* out) {
  pdl_begin();
  using Tile = DeltaTile<R, CPW>;
  constexpr int kDk = Tile::kDk, kChunk = Tile::kChunk, kG = Tile::kGroups, kCols = Tile::kCols;
  __shared__ float q_sm[kChunk][kDk], k_sm[kChunk][kDk];
  __shared__ float v_sm[kChunk][kCols], dec_sm[kChunk], b_sm[kChunk];
  const int ci = static_cast<int>(blockIdx.x);
  if (ci >= *plan.num_chains) return;
  const int h = static_cast<int>(blockIdx.y);
  const int dk = sh.head_k_dim, dv = sh.head_v_dim, hv = sh.num_v_heads;
  const int kh = h % sh.num_k_heads;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int group = lane / CPW, jc = warp * CPW + lane % CPW;
  const int j0 = static_cast<int>(blockIdx.z) * kCols, j = j0 + jc;
  const int64_t key_dim = static_cast<int64_t>(sh.num_k_heads) * dk;
  const int64_t row_len = 2 * key_dim + static_cast<int64_t>(hv) * dv;
  const size_t head_off = static_cast<size_t>(h) * dk * dv;
  const DnChain ch = plan.chains[ci];
  // This thread's part of S: rows group + kG i of column j.
  float s[R];
  {
    const float* init = plan.segs[ch.seg_begin].state_in;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int row = group + kG * i;
      s[i] = init != nullptr && row < dk && j < dv ? init[head_off + static_cast<size_t>(row) * dv + j] : 0.0f;
    }
  }
  const float qscale = 1.0f / sqrtf(static_cast<float>(dk));
  const float a_h = a[h], dt_h = dt_bias[h];
  for (int si = ch.seg_begin; si < ch.seg_end; ++si) {
    const DnSeg seg = plan.segs[si];
    for (int64_t t0 = 0; t0 < seg.num_rows; t0 += kChunk) {
      const int len = static_cast<int>(seg.num_rows - t0 < kChunk ? seg.num_rows - t0 : kChunk);
      __syncthreads();  // the previous chunk has been read
      if (prep != nullptr) {
        // Independent loads, all threads: q and k rows, v columns, gates.
        for (int idx = static_cast<int>(threadIdx.x); idx < len * kDk; idx += 32 * kDeltaWarps) {
          const int t = idx / kDk, i = idx % kDk;
          const float* p = prep + ((seg.row_begin + t0 + t) * sh.num_k_heads + kh) * 2 * dk;
          q_sm[t][i] = i < dk ? p[i] : 0.0f;
          k_sm[t][i] = i < dk ? p[dk + i] : 0.0f;
        }
        for (int idx = static_cast<int>(threadIdx.x); idx < len * kCols; idx += 32 * kDeltaWarps) {
          const int t = idx / kCols, c = idx % kCols;
          const int64_t row = seg.row_begin + t0 + t;
          v_sm[t][c] = j0 + c < dv ? qkv[row * row_len + 2 * key_dim + static_cast<int64_t>(h) * dv + j0 + c] : 0.0f;
        }
        for (int t = static_cast<int>(threadIdx.x); t < len; t += 32 * kDeltaWarps) {
          const float2 g = gates[(seg.row_begin + t0 + t) * hv + h];
          dec_sm[t] = g.x;
          b_sm[t] = g.y;
        }
      }
      for (int t = warp; prep == nullptr && t < len; t += kDeltaWarps) {
        const int64_t row = seg.row_begin + t0 + t;
        const float* src = qkv + row * row_len;
        float qq = 0.0f, kk = 0.0f;
        for (int i = lane; i < kDk; i += 32) {
          const float qv = i < dk ? src[kh * dk + i] : 0.0f;
          const float kv = i < dk ? src[key_dim + kh * dk + i] : 0.0f;
          q_sm[t][i] = qv;
          k_sm[t][i] = kv;
          qq += qv * qv;
          kk += kv * kv;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
          qq += __shfl_xor_sync(0xffffffffu, qq, o);
          kk += __shfl_xor_sync(0xffffffffu, kk, o);
        }
        const float qs = qscale / sqrtf(qq + 1e-6f), ks = 1.0f / sqrtf(kk + 1e-6f);
        for (int i = lane; i < kDk; i += 32) {  // the same elements this lane wrote
          q_sm[t][i] *= qs;
          k_sm[t][i] *= ks;
        }
        if (lane < kCols) v_sm[t][lane] = j0 + lane < dv ? src[2 * key_dim + static_cast<int64_t>(h) * dv + j0 + lane] : 0.0f;
        if (lane == 0) {
          const float xg = alpha[row * hv + h] + dt_h;
          const float sp = xg > 20.0f ? xg : log1pf(expf(xg));
          dec_sm[t] = expf(a_h * sp);
          b_sm[t] = 1.0f / (1.0f + expf(-beta[row * hv + h]));
        }
      }
      __syncthreads();
      for (int t = 0; t < len; ++t) {
        const float* qt = q_sm[t];
        const float* kt = k_sm[t];
        const float d = dec_sm[t];
        // S^T k over this thread's rows (two accumulators), then over the 4 row groups.
        float p0 = 0.0f, p1 = 0.0f;
#pragma unroll
        for (int i = 0; i < R; i += 2) {
          p0 += s[i] * kt[group + kG * i];
          if (i + 1 < R) p1 += s[i + 1] * kt[group + kG * (i + 1)];
        }
        float sk = p0 + p1;
#pragma unroll
        for (int m = CPW; m < 32; m <<= 1) sk += __shfl_xor_sync(0xffffffffu, sk, m);
        const float delta = b_sm[t] * (v_sm[t][jc] - d * sk);
        float o0 = 0.0f, o1 = 0.0f;
#pragma unroll
        for (int i = 0; i < R; i += 2) {
          s[i] = s[i] * d + kt[group + kG * i] * delta;
          o0 += s[i] * qt[group + kG * i];
          if (i + 1 < R) {
            s[i + 1] = s[i + 1] * d + kt[group + kG * (i + 1)] * delta;
            o1 += s[i + 1] * qt[group + kG * (i + 1)];
          }
        }
        float o = o0 + o1;
#pragma unroll
        for (int m = CPW; m < 32; m <<= 1) o += __shfl_xor_sync(0xffffffffu, o, m);
        if (group == 0 && j < dv) out[((seg.row_begin + t0 + t) * hv + h) * dv + j] = o;
      }
    }
    if (seg.state_out != nullptr) {
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const int row = group + kG * i;
        if (row < dk && j < dv) seg.state_out[head_off + static_cast<size_t>(row) * dv + j] = s[i];
      }
    }
  }
}

__global__ void sigmoid_mul_kernel(float* x, const float* gate, int64_t n, int64_t dim,
                                   int64_t gate_dim) {
  pdl_begin();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * dim) return;
  const int64_t t = idx / dim, i = idx % dim;
  const float g = gate[t * gate_dim + (gate_dim == 1 ? 0 : i)];
  x[idx] *= 1.0f / (1.0f + expf(-g));
}

__global__ void gated_add_kernel(float* y, float* x, const float* gate, int64_t count,
                                 int64_t gate_every) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i / gate_every];
  float v = x[i];
  v *= 1.0f / (1.0f + expf(-g));
  x[i] = v;
  y[i] += v;
}

template <int R, int CPW>
void launch_delta(const float* qkv, const float* alpha, const float* beta, const float* dt_bias,
                  const float* a, const DeltaNetShape& sh, const DnPlan& plan, const float* prep,
                  const float2* gates, float* out, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(plan.max_chains), static_cast<unsigned>(sh.num_v_heads),
                  static_cast<unsigned>((sh.head_v_dim + DeltaTile<R, CPW>::kCols - 1) /
                                        DeltaTile<R, CPW>::kCols));
  launch_kernel(delta_rule_kernel<R, CPW>, grid, 32 * kDeltaWarps, 0, s, qkv, alpha, beta, dt_bias,
                a, sh, plan, prep, gates, out);
}

}  // namespace

void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
              const DnPlan& plan, float* out, cudaStream_t s) {
  STRATA_CHECK_MSG(kernel >= 1 && kernel <= kMaxConvKernel, "ssm_conv: kernel size over 8");
  if (plan.max_chains == 0 || channels == 0) return;
  const auto cblocks = static_cast<unsigned>((channels + kConvThreads - 1) / kConvThreads);
  if (plan.rows <= kConvFusedMaxRows) {
    launch_kernel(conv_fused_kernel, dim3(static_cast<unsigned>(plan.max_chains), cblocks),
                  kConvThreads, 0, s, x, channels, weight, kernel, plan, out);
    return;
  }
  if (plan.rows > 0) {
    launch_kernel(conv_out_kernel, dim3(static_cast<unsigned>(plan.rows), cblocks), kConvThreads, 0,
                  s, x, channels, weight, kernel, plan, out);
  }
  if (kernel > 1) {
    launch_kernel(conv_state_kernel, dim3(static_cast<unsigned>(plan.max_chains), cblocks),
                  kConvThreads, 0, s, x, channels, kernel, plan);
  }
}

size_t gated_delta_rule_scratch_floats(const DeltaNetShape& sh, const DnPlan& plan) {
  if (plan.rows <= kDeltaNarrowMinRows) return 0;
  return static_cast<size_t>(plan.rows) *
         (2 * static_cast<size_t>(sh.num_k_heads) * sh.head_k_dim + 2 * static_cast<size_t>(sh.num_v_heads));
}

void gated_delta_rule(const float* qkv, const float* alpha, const float* beta,
                      const float* dt_bias, const float* a, const DeltaNetShape& sh,
                      const DnPlan& plan, float* scratch, float* out, cudaStream_t s) {
  STRATA_CHECK(sh.num_v_heads % sh.num_k_heads == 0);
  STRATA_CHECK_MSG(sh.head_k_dim <= 256, "gated_delta_rule: head_k_dim over 256");
  if (plan.max_chains == 0) return;
  const int dk = sh.head_k_dim;
  // STRATA_CUDA_DELTA_CPW=8 or 4 forces the layout, STRATA_CUDA_DELTA_PREP=0 the in-kernel
  // staging (benchmarks).
  static const int forced = std::getenv("STRATA_CUDA_DELTA_CPW") ? std::atoi(std::getenv("STRATA_CUDA_DELTA_CPW")) : 0;
  static const bool no_prep = std::getenv("STRATA_CUDA_DELTA_PREP") != nullptr &&
                              std::atoi(std::getenv("STRATA_CUDA_DELTA_PREP")) == 0;
  const bool narrow = forced == 4 || (forced != 8 && plan.rows > kDeltaNarrowMinRows);
  const float* prep = nullptr;
  const float2* gates = nullptr;
  if (scratch != nullptr && !no_prep && plan.rows > kDeltaNarrowMinRows) {
    float2* g = reinterpret_cast<float2*>(
        scratch + static_cast<size_t>(plan.rows) * 2 * sh.num_k_heads * sh.head_k_dim);
    launch_kernel(delta_prep_kernel, static_cast<unsigned>(plan.rows), 128, 0, s, qkv, alpha, beta,
                  dt_bias, a, sh, plan.row_chain, scratch, g);
    prep = scratch;
    gates = g;
  }
  if (narrow) {  // 8 row groups of R
    if (dk <= 32) launch_delta<4, 4>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
    else if (dk <= 64) launch_delta<8, 4>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
    else if (dk <= 128) launch_delta<16, 4>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
    else launch_delta<32, 4>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
    return;
  }
  if (dk <= 32) launch_delta<8, 8>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
  else if (dk <= 64) launch_delta<16, 8>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
  else if (dk <= 128) launch_delta<32, 8>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
  else launch_delta<64, 8>(qkv, alpha, beta, dt_bias, a, sh, plan, prep, gates, out, s);
}

void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim,
                 cudaStream_t s) {
  const int64_t count = n * dim;
  if (count == 0) return;
  launch_kernel(sigmoid_mul_kernel, static_cast<unsigned>((count + 255) / 256), 256, 0, s, x, gate,
                n, dim, gate_dim);
}

}  // namespace strata::backend::cuda

namespace strata::backend::cuda {

void gated_add(float* y, float* x, const float* gate, int64_t count, int64_t gate_every,
               cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(gated_add_kernel, static_cast<unsigned>((count + 255) / 256), 256, 0, s, y, x, gate,
                count, gate_every);
}

}  // namespace strata::backend::cuda
