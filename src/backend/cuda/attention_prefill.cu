// Prefill attention on tensor cores (v3), flash-attention 2 style with mma.sync m16n8k16.
// One CTA of W warps per (16*W rows, KV head): a row is (query position, query head of the KV
// group), so the group's heads share each K/V tile. Each warp owns 16 rows; S = Q K^T, the
// online softmax (log2 domain) and the output O stay in registers; P goes from the S
// accumulators straight into A fragments. K/V tiles of 64 keys are double-buffered in shared
// memory, loaded with cp.async through the paged block table (F16/BF16; Q8_0 is decoded by
// ordinary loads). MMA inputs are f16 for F16 K/V, else bf16 (Q8_0 too); f32 accumulation.
// Precision: Q, K, V and P rounded to the input type (bf16 2^-9): ~1e-3 relative on the output.
// The previous version (WMMA, CTA per head, softmax in shared memory) is
// bench/cuda/variants/attention_prefill_v2.cu.
#include <cuda_fp16.h>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "core/check.h"

namespace strata::backend::cuda {
namespace {

constexpr int kTK = 64;  // keys a tile
constexpr float kLog2e = 1.4426950408889634f;
int g_warps = 8;  // warps (x 16 rows) a CTA: run 9 measured 8 (249 us) over 4 (289 us)

template <bool kHalf>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (kHalf) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 b = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&b);
  }
}

// c[4] += a[4] (16x16 row) . b[2] (16x8 col)
template <bool kHalf>
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  if constexpr (kHalf) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
// 16 bytes global -> shared, zero-filled when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int HD, int W>
struct Smem {
  static constexpr int kLd = HD + 8;  // 2-byte elements a row: 16 bytes of padding, so the 8
                                      // rows of an ldmatrix fall in distinct banks
  static constexpr size_t kTile = sizeof(uint16_t) * kTK * kLd;  // one K or V tile
  static constexpr size_t kQ = 0;                                 // [16*W][kLd]
  static constexpr size_t kKv = sizeof(uint16_t) * 16 * W * kLd;  // [2 stages][K, V]
  static constexpr size_t kBytes = kKv + 4 * kTile;
};

// Keys [k0, k0 + kTK) of head kvh into sk/sv ([kTK][kLd]); keys >= kend read as zeros.
template <DType T, int HD, int W>
__device__ __forceinline__ void load_kv_tile(const PagedKv& kv, const int32_t* table,
                                             size_t row_bytes, int kvh, int64_t k0, int64_t kend,
                                             uint16_t* sk, uint16_t* sv, int tid) {
  constexpr int kLd = Smem<HD, W>::kLd, kChunks = HD / 8;  // 8 elements (16 bytes) a chunk
  const auto* kb = static_cast<const uint8_t*>(kv.k);
  const auto* vb = static_cast<const uint8_t*>(kv.v);
#pragma unroll
  for (int i = 0; i < kTK * kChunks / (32 * W); ++i) {
    const int e = tid + i * 32 * W;
    const int j = e / kChunks, c = e % kChunks;
    const int64_t key = k0 + j;
    const bool valid = key < kend;
    size_t base = 0;
    if (valid) {
      base = static_cast<size_t>(table[key / kv.block_tokens]) * kv.block_stride_bytes +
             kv_row_offset(kv, key % kv.block_tokens, kvh, row_bytes);
    }
    if constexpr (T == DType::kF16 || T == DType::kBF16) {
      cp_async16(sk + j * kLd + c * 8, kb + base + c * 16, valid);
      cp_async16(sv + j * kLd + c * 8, vb + base + c * 16, valid);
    } else {  // Q8_0: block c / 4 (34 bytes: f16 d, 32 int8), its 8 codes from 2 + 8 * (c % 4)
      uint32_t kw[4] = {0, 0, 0, 0}, vw[4] = {0, 0, 0, 0};
      if (valid) {
        const size_t off = base + 34 * (c / 4);
        const uint8_t* kp = kb + off;
        const uint8_t* vp = vb + off;
        const float kd = h2f(*reinterpret_cast<const uint16_t*>(kp));
        const float vd = h2f(*reinterpret_cast<const uint16_t*>(vp));
        const auto* kc = reinterpret_cast<const uint16_t*>(kp + 2 + 8 * (c % 4));
        const auto* vc = reinterpret_cast<const uint16_t*>(vp + 2 + 8 * (c % 4));
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const uint16_t ku = kc[i], vu = vc[i];
          kw[i] = pack2<false>(kd * static_cast<int8_t>(ku & 0xff), kd * static_cast<int8_t>(ku >> 8));
          vw[i] = pack2<false>(vd * static_cast<int8_t>(vu & 0xff), vd * static_cast<int8_t>(vu >> 8));
        }
      }
      *reinterpret_cast<uint4*>(sk + j * kLd + c * 8) = make_uint4(kw[0], kw[1], kw[2], kw[3]);
      *reinterpret_cast<uint4*>(sv + j * kLd + c * 8) = make_uint4(vw[0], vw[1], vw[2], vw[3]);
    }
  }
}

struct PrefillGeom {
  int group;      // query heads a KV head
  int positions;  // query positions a CTA: (16 * W) / group
};

template <DType T, int HD, int W>
__global__ void __launch_bounds__(32 * W, 8 / W)
    attn_prefill_kernel(PagedKv kv, AttnArgs a, size_t row_bytes, PrefillGeom geo) {
  pdl_begin();
  constexpr bool kHalf = T == DType::kF16;
  using L = Smem<HD, W>;
  constexpr int kLd = L::kLd;
  extern __shared__ __align__(128) uint8_t smem[];
  auto* sq = reinterpret_cast<uint16_t*>(smem + L::kQ);
  auto* skv = reinterpret_cast<uint16_t*>(smem + L::kKv);  // stage s: K at 2s, V at 2s + 1

  // Heaviest tiles (last rows: most keys) first.
  const int2 tile = a.tiles[a.num_tiles - 1 - static_cast<int64_t>(blockIdx.x)];
  const int kvh = static_cast<int>(blockIdx.y);
  const AttnSeq sqd = a.seqs[tile.x];
  const int64_t row0 = tile.y;
  const int64_t row_end = min(row0 + geo.positions, sqd.q_begin + sqd.q_count);
  const int64_t first_pos = sqd.kv_len - sqd.q_count - sqd.q_begin;  // pos = first_pos + row
  const int64_t kend = first_pos + row_end;                          // keys [0, kend)
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int32_t* table = a.tables + sqd.table_offset;
  const int num_tiles = static_cast<int>((kend + kTK - 1) / kTK);

  load_kv_tile<T, HD, W>(kv, table, row_bytes, kvh, 0, kend, skv, skv + kTK * kLd, tid);
  cp_async_commit();

  // Q rows (scaled by scale * log2 e, for exp2) -> shared -> A fragments in registers.
  const float qscale = a.scale * kLog2e;
#pragma unroll 4
  for (int i = 0; i < HD / 8; ++i) {
    const int e = (tid + i * 32 * W) * 4;
    const int r = e / HD, d = e % HD;
    const int pl = r / geo.group, hg = r % geo.group;
    const int64_t row = row0 + pl;
    float4 v = make_float4(0, 0, 0, 0);
    if (pl < geo.positions && row < row_end) {
      v = *reinterpret_cast<const float4*>(
          a.q + (row * a.num_heads + kvh * geo.group + hg) * HD + d);
    }
    *reinterpret_cast<uint2*>(sq + r * kLd + d) =
        make_uint2(pack2<kHalf>(v.x * qscale, v.y * qscale), pack2<kHalf>(v.z * qscale, v.w * qscale));
  }
  __syncthreads();
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    ldsm_x4(qf[kk], sq + (warp * 16 + lane % 8 + (lane / 8) % 2 * 8) * kLd + kk * 16 + lane / 16 * 8);
  }

  // This thread's two rows: g and g + 8 of the warp's 16; lim = last visible key (-1: none).
  const int g = lane / 4, t4 = lane % 4;
  int64_t lim[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = warp * 16 + g + 8 * h;
    const int pl = r / geo.group;
    lim[h] = pl < geo.positions && row0 + pl < row_end ? first_pos + row0 + pl : -1;
  }
  const int64_t min_lim = first_pos + row0;  // fewest keys any row of the CTA sees
  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int it = 0; it < num_tiles; ++it) {
    if (it + 1 < num_tiles) {
      uint16_t* nk = skv + 2 * ((it + 1) % 2) * kTK * kLd;
      load_kv_tile<T, HD, W>(kv, table, row_bytes, kvh, static_cast<int64_t>(it + 1) * kTK, kend,
                             nk, nk + kTK * kLd, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* sk = skv + 2 * (it % 2) * kTK * kLd;
    const uint16_t* sv = sk + kTK * kLd;
    const int64_t k0 = static_cast<int64_t>(it) * kTK;

    // S [16 rows, 64 keys] = Q K^T: n-tiles of 8 keys, two per ldmatrix.x4.
    float s[kTK / 8][4];
#pragma unroll
    for (int i = 0; i < kTK / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kTK / 16; ++np) {
        uint32_t b[4];
        ldsm_x4(b, sk + (np * 16 + lane / 16 * 8 + lane % 8) * kLd + kk * 16 + (lane / 8) % 2 * 8);
        mma16816<kHalf>(s[2 * np], qf[kk], b[0], b[1]);
        mma16816<kHalf>(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }
    // Causal mask (and keys past kend) only where the tile reaches past some row's last key.
    if (k0 + kTK - 1 > min_lim) {
#pragma unroll
      for (int i = 0; i < kTK / 8; ++i) {
        const int64_t key = k0 + i * 8 + 2 * t4;
        if (key > lim[0]) s[i][0] = -INFINITY;
        if (key + 1 > lim[0]) s[i][1] = -INFINITY;
        if (key > lim[1]) s[i][2] = -INFINITY;
        if (key + 1 > lim[1]) s[i][3] = -INFINITY;
      }
    }
    // Online softmax; a row is spread over the 4 threads of a quad.
    float corr[2], mu[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = m[h];
#pragma unroll
      for (int i = 0; i < kTK / 8; ++i) mx = fmaxf(mx, fmaxf(s[i][2 * h], s[i][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mu[h] = mx == -INFINITY ? 0.0f : mx;  // a row with no visible key yet: p = 0, no NaN
      corr[h] = exp2f(m[h] - mu[h]);
      m[h] = mx;
    }
    float ls[2] = {0.0f, 0.0f};
    uint32_t pa[kTK / 16][4];  // P as A fragments, k-step j = keys 16j..16j+15
#pragma unroll
    for (int i = 0; i < kTK / 8; ++i) {
      const float p0 = exp2f(s[i][0] - mu[0]), p1 = exp2f(s[i][1] - mu[0]);
      const float p2 = exp2f(s[i][2] - mu[1]), p3 = exp2f(s[i][3] - mu[1]);
      ls[0] += p0 + p1;
      ls[1] += p2 + p3;
      pa[i / 2][(i % 2) * 2] = pack2<kHalf>(p0, p1);
      pa[i / 2][(i % 2) * 2 + 1] = pack2<kHalf>(p2, p3);
    }
    l[0] = l[0] * corr[0] + ls[0];
    l[1] = l[1] * corr[1] + ls[1];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
      o[i][0] *= corr[0];
      o[i][1] *= corr[0];
      o[i][2] *= corr[1];
      o[i][3] *= corr[1];
    }
    // O += P V: V tiles through ldmatrix.trans, two 8-dim n-tiles per x4.
#pragma unroll
    for (int j = 0; j < kTK / 16; ++j) {
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldsm_x4_t(b, sv + (j * 16 + (lane / 8) % 2 * 8 + lane % 8) * kLd + dp * 16 + lane / 16 * 8);
        mma16816<kHalf>(o[2 * dp], pa[j], b[0], b[1]);
        mma16816<kHalf>(o[2 * dp + 1], pa[j], b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's load overwrites this stage
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (lim[h] < 0) continue;
    const int r = warp * 16 + g + 8 * h;
    const int64_t row = row0 + r / geo.group;
    const float inv = 1.0f / sum;
    float* out = a.out + (row * a.num_heads + kvh * geo.group + r % geo.group) * HD + 2 * t4;
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
      *reinterpret_cast<float2*>(out + i * 8) = make_float2(o[i][2 * h] * inv, o[i][2 * h + 1] * inv);
    }
  }
}

template <DType T, int HD, int W>
void launch_prefill(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  using L = Smem<HD, W>;
  static bool configured = false;
  if (!configured) {
    STRATA_CUDA_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<T, HD, W>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(L::kBytes)));
    configured = true;
  }
  PrefillGeom geo;
  geo.group = a.num_heads / kv.num_kv_heads;
  geo.positions = 16 * W / geo.group;
  const dim3 grid(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(kv.num_kv_heads));
  launch_kernel(attn_prefill_kernel<T, HD, W>, grid, 32 * W, L::kBytes, s, kv, a,
                row_bytes(kv.type, kv.head_dim), geo);
}

template <DType T, int HD>
void launch_prefill_w(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  if (g_warps == 8)
    launch_prefill<T, HD, 8>(kv, a, s);
  else
    launch_prefill<T, HD, 4>(kv, a, s);
}

template <DType T>
void launch_prefill_t(const PagedKv& kv, const AttnArgs& a, cudaStream_t s) {
  if (kv.head_dim == 64)
    launch_prefill_w<T, 64>(kv, a, s);
  else if (kv.head_dim == 128)
    launch_prefill_w<T, 128>(kv, a, s);
  else
    launch_prefill_w<T, 256>(kv, a, s);
}

}  // namespace

void set_attention_prefill_warps(int warps) { g_warps = warps == 4 ? 4 : 8; }

int attention_tile_rows(const PagedKv& kv, int num_heads) {
  const int group = num_heads / kv.num_kv_heads;
  return group >= 1 && group <= 16 * g_warps ? 16 * g_warps / group : 1;
}

bool attention_uses_tiles(const PagedKv& kv, int num_heads, int64_t max_q_count) {
  const int group = num_heads / kv.num_kv_heads;
  return max_q_count >= 16 && (kv.head_dim == 64 || kv.head_dim == 128 || kv.head_dim == 256) &&
         kv.type != DType::kF32 && (kv.type != DType::kQ8_0 || kv.head_dim % 32 == 0) &&
         group >= 1 && group <= 16 * g_warps && num_heads % kv.num_kv_heads == 0;
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
