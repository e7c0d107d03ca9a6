// Variant v2b of the prefill attention (kept for bench/cuda/NOTES.md): WMMA, CTA per (64 rows,
// head), softmax and output rows in shared memory. The product version (v3, mma.sync with the
// accumulators in registers, K/V tiles shared by a KV group) is src/backend/cuda/attention_prefill.cu.
// Prefill attention on tensor cores (bf16 WMMA, f32 accumulation), flash-attention style:
// one CTA of 4 warps per (64 query rows of one sequence, head); each warp owns 16 rows.
// Per 64-key tile: S = Q K^T (WMMA) -> online softmax in shared memory (f32) -> P (bf16)
// -> P V (WMMA) added into the f32 output rows rescaled by the running max. WMMA hides the
// accumulator layout, so the output lives in shared memory, not in fragments.
// Precision: Q, K, V and P rounded to bf16 (2^-9): ~1e-3 relative on the output.
#include <mma.h>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/kernels.h"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

using namespace nvcuda;
constexpr int kTQ = 64, kTK = 64, kThreads = 128;

template <DType T>
__device__ __forceinline__ float kv_value(const uint8_t* row, int d) {
  if constexpr (T == DType::kF32) return reinterpret_cast<const float*>(row)[d];
  if constexpr (T == DType::kF16) return h2f(reinterpret_cast<const uint16_t*>(row)[d]);
  if constexpr (T == DType::kBF16) return bf2f(reinterpret_cast<const uint16_t*>(row)[d]);
  const uint8_t* b = row + 34 * (d / 32);  // Q8_0
  return h2f(*reinterpret_cast<const uint16_t*>(b)) *
         static_cast<float>(static_cast<int8_t>(b[2 + d % 32]));
}

template <int HD>
struct Smem {
  static constexpr int kLdh = HD + 8;   // bf16 rows of Q, K, V
  static constexpr int kLdo = HD + 4;   // f32 output rows and warp scratch
  static constexpr int kLdp = kTK + 8;  // bf16 P rows
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(__nv_bfloat16) * kTQ * kLdh;
  static constexpr size_t kV = kK + sizeof(__nv_bfloat16) * kTK * kLdh;
  static constexpr size_t kO = kV + sizeof(__nv_bfloat16) * kTK * kLdh;
  static constexpr size_t kS = kO + sizeof(float) * kTQ * kLdo;  // per warp [16][kLdo] f32
  static constexpr size_t kP = kS + sizeof(float) * kTQ * kLdo;  // per warp [16][kLdp] bf16
  static constexpr size_t kRow = kP + sizeof(__nv_bfloat16) * kTQ * kLdp;  // m, l, corr [64] each
  static constexpr size_t kBytes = kRow + sizeof(float) * 3 * kTQ;
};

template <DType T, int HD>
__global__ void __launch_bounds__(kThreads)
    attn_prefill_kernel(PagedKv kv, AttnArgs a, size_t row_bytes) {
  using L = Smem<HD>;
  extern __shared__ __align__(128) uint8_t smem[];
  auto* sq = reinterpret_cast<__nv_bfloat16*>(smem + L::kQ);
  auto* sk = reinterpret_cast<__nv_bfloat16*>(smem + L::kK);
  auto* sv = reinterpret_cast<__nv_bfloat16*>(smem + L::kV);
  auto* so = reinterpret_cast<float*>(smem + L::kO);
  auto* ss_all = reinterpret_cast<float*>(smem + L::kS);
  auto* sp_all = reinterpret_cast<__nv_bfloat16*>(smem + L::kP);
  auto* sm = reinterpret_cast<float*>(smem + L::kRow);
  float* sl = sm + kTQ;
  float* sc = sl + kTQ;

  const int2 tile = a.tiles[blockIdx.x];  // (sequence, first row)
  const int head = static_cast<int>(blockIdx.y);
  const AttnSeq sqd = a.seqs[tile.x];
  const int64_t row0 = tile.y;
  const int64_t row_end = min(row0 + kTQ, sqd.q_begin + sqd.q_count);
  const int64_t first_pos = sqd.kv_len - sqd.q_count - sqd.q_begin;  // pos = first_pos + row
  const int64_t kend = first_pos + row_end;                          // keys [0, kend)
  const int kvh = head / (a.num_heads / kv.num_kv_heads);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int32_t* table = a.tables + sqd.table_offset;

  for (int e = tid; e < kTQ * HD; e += kThreads) {
    const int r = e / HD, d = e % HD;
    const int64_t row = row0 + r;
    const float v = row < row_end ? a.q[(row * a.num_heads + head) * HD + d] * a.scale : 0.0f;
    sq[r * L::kLdh + d] = __float2bfloat16_rn(v);
    so[r * L::kLdo + d] = 0.0f;
  }
  if (tid < kTQ) {
    sm[tid] = -INFINITY;
    sl[tid] = 0.0f;
  }
  float* ss = ss_all + warp * 16 * L::kLdo;
  __nv_bfloat16* sp = sp_all + warp * 16 * L::kLdp;

  for (int64_t k0 = 0; k0 < kend; k0 += kTK) {
    __syncthreads();
    if constexpr (T == DType::kF16 || T == DType::kBF16) {
      // 8 elements (16 bytes) a thread at a time.
      for (int e = tid * 8; e < kTK * HD; e += kThreads * 8) {
        const int j = e / HD, d = e % HD;
        const int64_t key = k0 + j;
        uint4 ku = make_uint4(0, 0, 0, 0), vu = make_uint4(0, 0, 0, 0);
        if (key < kend) {
          const size_t base =
              static_cast<size_t>(table[key / kv.block_tokens]) * kv.block_stride_bytes +
              (static_cast<size_t>(key % kv.block_tokens) * kv.num_kv_heads + kvh) * row_bytes +
              2 * d;
          ku = *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(kv.k) + base);
          vu = *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(kv.v) + base);
        }
        if constexpr (T == DType::kF16) {
          uint32_t* kw = reinterpret_cast<uint32_t*>(&ku);
          uint32_t* vw = reinterpret_cast<uint32_t*>(&vu);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float2 kf = __half22float2(*reinterpret_cast<const __half2*>(&kw[i]));
            const float2 vf = __half22float2(*reinterpret_cast<const __half2*>(&vw[i]));
            const __nv_bfloat162 kb = __floats2bfloat162_rn(kf.x, kf.y),
                                 vb = __floats2bfloat162_rn(vf.x, vf.y);
            kw[i] = *reinterpret_cast<const uint32_t*>(&kb);
            vw[i] = *reinterpret_cast<const uint32_t*>(&vb);
          }
        }
        *reinterpret_cast<uint4*>(sk + j * L::kLdh + d) = ku;
        *reinterpret_cast<uint4*>(sv + j * L::kLdh + d) = vu;
      }
    } else {
      for (int e = tid; e < kTK * HD; e += kThreads) {
        const int j = e / HD, d = e % HD;
        const int64_t key = k0 + j;
        float kx = 0.0f, vx = 0.0f;
        if (key < kend) {
          const size_t base =
              static_cast<size_t>(table[key / kv.block_tokens]) * kv.block_stride_bytes +
              (static_cast<size_t>(key % kv.block_tokens) * kv.num_kv_heads + kvh) * row_bytes;
          kx = kv_value<T>(static_cast<const uint8_t*>(kv.k) + base, d);
          vx = kv_value<T>(static_cast<const uint8_t*>(kv.v) + base, d);
        }
        sk[j * L::kLdh + d] = __float2bfloat16_rn(kx);
        sv[j * L::kLdh + d] = __float2bfloat16_rn(vx);
      }
    }
    __syncthreads();
    // S [16 rows, 64 keys] = Q_w . K^T
    for (int nt = 0; nt < kTK / 16; ++nt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::fill_fragment(c, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, sq + (warp * 16) * L::kLdh + kk * 16, L::kLdh);
        wmma::load_matrix_sync(fb, sk + (nt * 16) * L::kLdh + kk * 16, L::kLdh);
        wmma::mma_sync(c, fa, fb, c);
      }
      wmma::store_matrix_sync(ss + nt * 16, c, L::kLdo, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax: lanes 2r, 2r+1 share row r (32 keys each).
    {
      const int r = lane / 2, half = lane % 2;
      const int64_t row = row0 + warp * 16 + r;
      const int64_t pos = first_pos + row;  // last visible key of this row
      const bool valid = row < row_end;
      float mx = -INFINITY;
      for (int j = 32 * half; j < 32 * half + 32; ++j) {
        if (valid && k0 + j <= pos) mx = fmaxf(mx, ss[r * L::kLdo + j]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float m_old = sm[warp * 16 + r];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
      for (int j = 32 * half; j < 32 * half + 32; ++j) {
        float p = 0.0f;
        if (valid && k0 + j <= pos) p = expf(ss[r * L::kLdo + j] - m_new);
        sum += p;
        sp[r * L::kLdp + j] = __float2bfloat16_rn(p);
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      __syncwarp();
      if (half == 0) {
        const float corr = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        sc[warp * 16 + r] = corr;
        sl[warp * 16 + r] = sl[warp * 16 + r] * corr + sum;
        sm[warp * 16 + r] = m_new;
      }
    }
    __syncwarp();
    // O_w = O_w * corr + P . V
    for (int nt = 0; nt < HD / 16; ++nt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::fill_fragment(c, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kTK / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sp + kk * 16, L::kLdp);
        wmma::load_matrix_sync(fb, sv + (kk * 16) * L::kLdh + nt * 16, L::kLdh);
        wmma::mma_sync(c, fa, fb, c);
      }
      wmma::store_matrix_sync(ss + nt * 16, c, L::kLdo, wmma::mem_row_major);
    }
    __syncwarp();
    for (int e = lane; e < 16 * HD; e += 32) {
      const int r = e / HD, d = e % HD;
      float* o = so + (warp * 16 + r) * L::kLdo + d;
      *o = *o * sc[warp * 16 + r] + ss[r * L::kLdo + d];
    }
  }
  __syncthreads();
  for (int e = tid; e < kTQ * HD; e += kThreads) {
    const int r = e / HD, d = e % HD;
    const int64_t row = row0 + r;
    if (row < row_end) a.out[(row * a.num_heads + head) * HD + d] = so[r * L::kLdo + d] / sl[r];
  }
}

template <DType T, int HD>
void launch_prefill(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  using L = Smem<HD>;
  static bool configured = false;
  if (!configured) {
    STRATA_CUDA_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<T, HD>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(L::kBytes)));
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(a.num_heads));
  attn_prefill_kernel<T, HD>
      <<<grid, kThreads, L::kBytes, s>>>(kv, a, row_bytes(kv.type, kv.head_dim));
  STRATA_CUDA_LAUNCH_CHECK();
}

template <DType T>
void launch_prefill_t(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  if (kv.head_dim == 64)
    launch_prefill<T, 64>(kv, a, s);
  else
    launch_prefill<T, 128>(kv, a, s);
}

}  // namespace

int attention_tile_rows() { return kTQ; }

bool attention_uses_tiles(const PagedKv& kv, int64_t max_q_count) {
  return max_q_count >= 16 && (kv.head_dim == 64 || kv.head_dim == 128) && kv.type != DType::kF32 &&
         (kv.type != DType::kQ8_0 || kv.head_dim % 32 == 0);
}

void attention_prefill(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  if (a.num_tiles == 0) return;
  switch (kv.type) {
    case DType::kF16:
      launch_prefill_t<DType::kF16>(kv, a, s);
      break;
    case DType::kBF16:
      launch_prefill_t<DType::kBF16>(kv, a, s);
      break;
    case DType::kQ8_0:
      launch_prefill_t<DType::kQ8_0>(kv, a, s);
      break;
    default:
      STRATA_CHECK_MSG(false, "tiled attention: unsupported K/V type");
  }
}

}  // namespace strata::backend::cuda
