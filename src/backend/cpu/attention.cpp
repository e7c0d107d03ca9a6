// Fast paged attention (variant 2; variant 1 in bench/cpu/variants) and KV store (see
// attention.h). Prefill: per KV block, decode K and V to f32, transpose K, scores for 4 rows x
// 16 keys per register block, online softmax per row, then O += P V for 4 rows x 16 dims.
// Decode (<= 4 query rows per item): K/V read in their stored type, no f32 block copies.
#include "backend/cpu/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/attention_avx512.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/simd.h"
#include "core/check.h"
#include "core/fp16.h"

namespace strata::backend::cpu {
namespace {

// Queries of one sequence per work item: each KV block an item sees is decoded to f32 (and K
// transposed) once for all of them. 16: 10% slower prefill than 32; 64 (with the 512-bit
// blocks): cpu_attention_bench's last 512 of 2048 51.7 -> 42.2 ms (F16), strata bench prefill
// of 8192 tokens 157 / 166 -> 179 / 171 tok/s, 512 and 2048 within their spread.
constexpr int kQueryTile = 64;
std::atomic<bool> g_prefill_attention_avx512{true};  // set_prefill_attention_avx512

// Scores S[r][j] = q_r . k_j for a block of RB rows x 16 keys: kT is the key block transposed,
// [head_dim][kt_stride] f32, so each step broadcasts one q element against 16 keys.
template <int RB>
void scores_block(const float* q, int hd, const float* kT, int kt_stride, int j0, float* s, int s_stride) {
  __m256 acc[RB][2];
  for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    const __m256 k0 = _mm256_loadu_ps(kT + d * kt_stride + j0), k1 = _mm256_loadu_ps(kT + d * kt_stride + j0 + 8);
    for (int r = 0; r < RB; ++r) {
      const __m256 qv = _mm256_broadcast_ss(q + r * hd + d);
      acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    _mm256_storeu_ps(s + r * s_stride + j0, acc[r][0]);
    _mm256_storeu_ps(s + r * s_stride + j0 + 8, acc[r][1]);
  }
}

// O[r][d0..d0+16) = O * corr[r] + sum_j P[r][j] V[j][d0..d0+16) for RB rows.
template <int RB>
void pv_block(const float* p, int p_stride, const float* v, int hd, int nj, int d0, const float* corr, float* o) {
  __m256 acc[RB][2];
  for (int r = 0; r < RB; ++r) {
    const __m256 c = _mm256_set1_ps(corr[r]);
    acc[r][0] = _mm256_mul_ps(_mm256_loadu_ps(o + r * hd + d0), c);
    acc[r][1] = _mm256_mul_ps(_mm256_loadu_ps(o + r * hd + d0 + 8), c);
  }
  for (int j = 0; j < nj; ++j) {
    const __m256 v0 = _mm256_loadu_ps(v + j * hd + d0), v1 = _mm256_loadu_ps(v + j * hd + d0 + 8);
    for (int r = 0; r < RB; ++r) {
      const __m256 pv = _mm256_broadcast_ss(p + r * p_stride + j);
      acc[r][0] = _mm256_fmadd_ps(pv, v0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(pv, v1, acc[r][1]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    _mm256_storeu_ps(o + r * hd + d0, acc[r][0]);
    _mm256_storeu_ps(o + r * hd + d0 + 8, acc[r][1]);
  }
}

// Few rows (decode): s[j] = q . k_j straight from the row-major K block, no transpose.
void scores_direct(const float* q, int hd, const float* k, int nj, float* s) {
  for (int j = 0; j < nj; ++j) {
    const float* kr = k + j * hd;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= hd; d += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kr + d), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(kr + d + 8), a1);
    }
    float a = simd::hsum(_mm256_add_ps(a0, a1));
    for (; d < hd; ++d) a += q[d] * kr[d];
    s[j] = a;
  }
}

// Scalar fallbacks for head_dim not a multiple of 16.
void scores_scalar(const float* q, int hd, const float* kT, int kt_stride, int nj, float* s) {
  for (int j = 0; j < nj; ++j) {
    float a = 0;
    for (int d = 0; d < hd; ++d) a += q[d] * kT[d * kt_stride + j];
    s[j] = a;
  }
}
void pv_scalar(const float* p, const float* v, int hd, int nj, float corr, float* o) {
  for (int d = 0; d < hd; ++d) {
    float a = o[d] * corr;
    for (int j = 0; j < nj; ++j) a += p[j] * v[j * hd + d];
    o[d] = a;
  }
}

struct Item {
  int32_t seq;
  int32_t kv_head;
  int64_t q0, q1;  // query indices within the sequence
};

struct ItemScratch {
  std::vector<float> qs, acc, m, l, corr, kt, ktmp, vt, p;
};

// K block rows [nj, hd] -> kT [hd, kt_stride], keys nj..kt_stride zero.
void transpose_keys(const float* k, int nj, int hd, float* kT, int kt_stride) {
  for (int d = 0; d < hd; ++d) {
    float* dst = kT + d * kt_stride;
    for (int j = 0; j < nj; ++j) dst[j] = k[j * hd + d];
    for (int j = nj; j < kt_stride; ++j) dst[j] = 0.0f;
  }
}

// dst[c][r] = src[r][c] for an 8x8 tile.
inline void transpose8x8(const float* src, int src_stride, float* dst, int dst_stride) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  const __m256 s0 = _mm256_shuffle_ps(t[0], t[2], 0x44), s1 = _mm256_shuffle_ps(t[0], t[2], 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t[1], t[3], 0x44), s3 = _mm256_shuffle_ps(t[1], t[3], 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t[4], t[6], 0x44), s5 = _mm256_shuffle_ps(t[4], t[6], 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t[5], t[7], 0x44), s7 = _mm256_shuffle_ps(t[5], t[7], 0xEE);
  _mm256_storeu_ps(dst + 0 * dst_stride, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * dst_stride, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * dst_stride, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * dst_stride, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// As transpose_keys for hd % 8 == 0 and kt_stride % 8 == 0; k has rows up to nj rounded up
// to 8 (the extra rows zero).
void transpose_keys8(const float* k, int nj, int hd, float* kT, int kt_stride) {
  const int nj8 = (nj + 7) & ~7;
  for (int j0 = 0; j0 < nj8; j0 += 8)
    for (int d0 = 0; d0 < hd; d0 += 8) transpose8x8(k + j0 * hd + d0, hd, kT + d0 * kt_stride + j0, kt_stride);
  for (int d = 0; d < hd; ++d)
    for (int j = nj8; j < kt_stride; ++j) kT[d * kt_stride + j] = 0.0f;
}

void run_item(const Item& it, const float* q, int num_heads, const PagedKv& kv,
              const SeqAttention& s, float scale, float* out, ItemScratch& sc) {
  const int group = num_heads / kv.num_kv_heads, hd = kv.head_dim, bt = kv.block_tokens;
  const int nq = static_cast<int>(it.q1 - it.q0), rows = nq * group;
  const int bt_pad = (bt + 15) & ~15;  // keys per block, padded for the 16-key score blocks
  const bool vec = hd % 16 == 0;
  // 8 rows at a time in 512-bit form where the AVX-512 kernels are on (attention_avx512.cpp)
  const bool wide = hd % 32 == 0 && avx512_kernels_enabled() &&
                    g_prefill_attention_avx512.load(std::memory_order_relaxed);
  const size_t rb = row_bytes(kv.type, hd);
  sc.qs.resize(static_cast<size_t>(rows) * hd);
  sc.acc.assign(static_cast<size_t>(rows) * hd, 0.0f);
  sc.m.assign(rows, -INFINITY);
  sc.l.assign(rows, 0.0f);
  sc.corr.resize(rows);
  sc.ktmp.resize(static_cast<size_t>(bt_pad) * hd);
  sc.kt.resize(static_cast<size_t>(bt_pad) * hd);
  sc.vt.resize(static_cast<size_t>(bt) * hd);
  sc.p.resize(static_cast<size_t>(rows) * bt_pad);
  // row r = query i * group + head-in-group; q pre-scaled
  for (int i = 0; i < nq; ++i) {
    for (int gh = 0; gh < group; ++gh) {
      const float* src = q + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
      float* dst = sc.qs.data() + (i * group + gh) * hd;
      for (int d = 0; d < hd; ++d) dst[d] = src[d] * scale;
    }
  }
  const int64_t pos0 = s.kv_len - s.q_count + it.q0;  // position of the tile's first query
  const int64_t last = pos0 + nq - 1;                 // last visible key of the tile
  for (int64_t p0 = 0; p0 <= last; p0 += bt) {
    const int nj = static_cast<int>(std::min<int64_t>(bt, last + 1 - p0));
    const int nj16 = (nj + 15) & ~15;
    const int64_t block = s.block_table[p0 / bt];
    const uint8_t* kb = static_cast<const uint8_t*>(kv.k) + static_cast<size_t>(block) * kv.block_stride_bytes;
    const uint8_t* vb = static_cast<const uint8_t*>(kv.v) + static_cast<size_t>(block) * kv.block_stride_bytes;
    for (int j = 0; j < nj; ++j) {
      const size_t at = kv_row_offset(kv, j, it.kv_head, rb);
      kv_decode_row_fast(kv.type, kb + at, sc.ktmp.data() + j * hd, hd);
      kv_decode_row_fast(kv.type, vb + at, sc.vt.data() + j * hd, hd);
    }
    // scores of all rows of the item against the block
    float* const P = sc.p.data();
    int r = 0;
    if (rows < 4) {  // decode: a transpose would cost more than it saves
      for (; r < rows; ++r) scores_direct(sc.qs.data() + r * hd, hd, sc.ktmp.data(), nj, P + r * bt_pad);
    } else if (vec) {
      std::fill(sc.ktmp.begin() + static_cast<size_t>(nj) * hd, sc.ktmp.begin() + static_cast<size_t>((nj + 7) & ~7) * hd, 0.0f);
      transpose_keys8(sc.ktmp.data(), nj, hd, sc.kt.data(), bt_pad);
      for (; wide && r + 8 <= rows; r += 8)
        prefill_scores8_avx512(sc.qs.data() + r * hd, hd, sc.kt.data(), bt_pad, nj16,
                               P + r * bt_pad, bt_pad);
      for (; r + 4 <= rows; r += 4)
        for (int j0 = 0; j0 < nj; j0 += 16) scores_block<4>(sc.qs.data() + r * hd, hd, sc.kt.data(), bt_pad, j0, P + r * bt_pad, bt_pad);
      for (; r < rows; ++r)
        for (int j0 = 0; j0 < nj; j0 += 16) scores_block<1>(sc.qs.data() + r * hd, hd, sc.kt.data(), bt_pad, j0, P + r * bt_pad, bt_pad);
    } else {
      transpose_keys(sc.ktmp.data(), nj, hd, sc.kt.data(), bt_pad);
      for (; r < rows; ++r) scores_scalar(sc.qs.data() + r * hd, hd, sc.kt.data(), bt_pad, nj, P + r * bt_pad);
    }
    // causal mask, online softmax: p <- exp(s - m_new), running sum, rescale factor
    for (r = 0; r < rows; ++r) {
      const int64_t qpos = pos0 + r / group;
      const int vis = static_cast<int>(std::clamp<int64_t>(qpos + 1 - p0, 0, nj));  // keys j < vis
      float* p = P + r * bt_pad;
      if (vis == 0) {
        for (int j = 0; j < nj16; ++j) p[j] = 0.0f;
        sc.corr[r] = 1.0f;
        continue;
      }
      for (int j = vis; j < nj16; ++j) p[j] = -INFINITY;
      __m256 mx8 = _mm256_set1_ps(sc.m[r]);
      for (int j = 0; j < nj16; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(p + j));
      const float mx = simd::hmax(mx8);
      const __m256 mv = _mm256_set1_ps(mx);
      __m256 sum = _mm256_setzero_ps();
      for (int j = 0; j < nj16; j += 8) {
        const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(p + j), mv));
        _mm256_storeu_ps(p + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      const float corr = sc.m[r] == -INFINITY ? 0.0f : std::exp(sc.m[r] - mx);
      sc.l[r] = sc.l[r] * corr + simd::hsum(sum);
      sc.m[r] = mx;
      sc.corr[r] = corr;
    }
    // O = O * corr + P V
    r = 0;
    if (vec) {
      for (; wide && r + 8 <= rows; r += 8)
        prefill_pv8_avx512(P + r * bt_pad, bt_pad, sc.vt.data(), hd, nj, sc.corr.data() + r,
                           sc.acc.data() + r * hd);
      for (; r + 4 <= rows; r += 4)
        for (int d0 = 0; d0 < hd; d0 += 16) pv_block<4>(P + r * bt_pad, bt_pad, sc.vt.data(), hd, nj, d0, sc.corr.data() + r, sc.acc.data() + r * hd);
      for (; r < rows; ++r)
        for (int d0 = 0; d0 < hd; d0 += 16) pv_block<1>(P + r * bt_pad, bt_pad, sc.vt.data(), hd, nj, d0, sc.corr.data() + r, sc.acc.data() + r * hd);
    } else {
      for (; r < rows; ++r) pv_scalar(P + r * bt_pad, sc.vt.data(), hd, nj, sc.corr[r], sc.acc.data() + r * hd);
    }
  }
  for (int r = 0; r < rows; ++r) {
    const int i = r / group, gh = r % group;
    float* o = out + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
    const float inv = 1.0f / sc.l[r];
    for (int d = 0; d < hd; ++d) o[d] = sc.acc[r * hd + d] * inv;
  }
}

// Elements d..d+8 of one K/V row (d a multiple of 8) to f32, for each stored type.
struct LoadF16x8 {
  static __m256 load(const uint8_t* row, int d) { return simd::load_f16(reinterpret_cast<const uint16_t*>(row) + d); }
};
struct LoadBF16x8 {
  static __m256 load(const uint8_t* row, int d) { return simd::load_bf16(reinterpret_cast<const uint16_t*>(row) + d); }
};
struct LoadQ8_0x8 {  // blocks of 34 bytes: fp16 d, 32 int8
  static __m256 load(const uint8_t* row, int d) {
    const uint8_t* blk = row + (d / 32) * 34;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + d % 32)));
    return _mm256_mul_ps(_mm256_set1_ps(simd::f16_to_f32(h)), _mm256_cvtepi32_ps(q));
  }
};

std::atomic<bool> g_decode_attention_avx512{true};  // set_decode_attention_avx512
std::atomic<bool> g_long_decode{true};              // set_long_decode_attention
std::atomic<bool> g_decode_attention_runs{true};    // set_decode_attention_runs

// One KV head's block rows for R query rows (qs [R][hd], scaled), K/V row j at k / v + j * rb:
// P[r * p_stride + j] = q_r . K_j, requesting each K row 4 keys ahead and this key's V row for
// head_pv after (the rows are often in DRAM after a token's weight stream). wide: the 512-bit
// loops (attention_avx512.cpp). Shared by the decode items and the long path's chunks.
template <class L, int R>
void head_scores(bool wide, const float* qs, int hd, const uint8_t* k, const uint8_t* v, size_t rb,
                 int nj, float* P, int p_stride) {
  if (wide) {
    decode_scores_f16_avx512(R, qs, hd, k, v, rb, rb, nj, P, p_stride);
    return;
  }
  for (int j = 0; j < nj; ++j) {
    const uint8_t* kr = k + j * rb;
    for (size_t o = 0; o < rb; o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(kr + 4 * rb + o), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + j * rb + o), _MM_HINT_T0);
    }
    __m256 a[R][2];
    for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
      const __m256 k0 = L::load(kr, d), k1 = L::load(kr, d + 8);
      for (int r = 0; r < R; ++r) {
        a[r][0] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(qs + r * hd + d), a[r][0]);
        a[r][1] = _mm256_fmadd_ps(k1, _mm256_loadu_ps(qs + r * hd + d + 8), a[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) P[r * p_stride + j] = simd::hsum(_mm256_add_ps(a[r][0], a[r][1]));
  }
}

// acc[r * acc_stride + d] = acc[...] * corr[r] (corr null: 1) + sum_j P[r * p_stride + j] V_j[d].
template <class L, int R>
void head_pv(bool wide, const float* P, int p_stride, const uint8_t* v, size_t rb, int nj, int hd,
             const float* corr, float* acc, size_t acc_stride) {
  if (wide) {
    decode_pv_f16_avx512(R, P, p_stride, v, rb, nj, hd, corr, acc, acc_stride);
    return;
  }
  for (int d0 = 0; d0 < hd; d0 += 16) {
    __m256 o[R][2];
    for (int r = 0; r < R; ++r) {
      const __m256 c = _mm256_set1_ps(corr != nullptr ? corr[r] : 1.0f);
      o[r][0] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * acc_stride + d0), c);
      o[r][1] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * acc_stride + d0 + 8), c);
    }
    for (int j = 0; j < nj; ++j) {
      const uint8_t* vr = v + j * rb;
      const __m256 v0 = L::load(vr, d0), v1 = L::load(vr, d0 + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 pv = _mm256_broadcast_ss(P + r * p_stride + j);
        o[r][0] = _mm256_fmadd_ps(pv, v0, o[r][0]);
        o[r][1] = _mm256_fmadd_ps(pv, v1, o[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_ps(acc + r * acc_stride + d0, o[r][0]);
      _mm256_storeu_ps(acc + r * acc_stride + d0 + 8, o[r][1]);
    }
  }
}

// Decode (at most 4 query rows per item): no f32 copies of the blocks; each
// K row is converted once and dotted with every row's q, each V row converted once per 16-dim
// slice and accumulated into every row's output in registers. head_dim % 16 == 0.
template <class L, int R>
void run_item_f16_small(const Item& it, const float* q, int num_heads, const PagedKv& kv,
                        const SeqAttention& s, float scale, float* out, ItemScratch& sc) {
  const int group = num_heads / kv.num_kv_heads, hd = kv.head_dim, bt = kv.block_tokens;
  const int bt_pad = (bt + 15) & ~15;
  const size_t rb = row_bytes(kv.type, hd);  // a head's rows of a block: one run (kv_row_offset)
  sc.qs.resize(static_cast<size_t>(R) * hd);
  sc.acc.assign(static_cast<size_t>(R) * hd, 0.0f);
  sc.p.resize(static_cast<size_t>(R) * bt_pad);
  float m[R], l[R], corr[R];
  for (int r = 0; r < R; ++r) {
    const int i = r / group, gh = r % group;
    const float* src = q + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
    for (int d = 0; d < hd; ++d) sc.qs[r * hd + d] = src[d] * scale;
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  const float* qs = sc.qs.data();
  float* P = sc.p.data();
  // F16 K/V on a CPU with AVX-512: the 512-bit inner loops (attention_avx512.cpp).
  const bool wide = std::is_same_v<L, LoadF16x8> && avx512_kernels_enabled() &&
                    g_decode_attention_avx512.load(std::memory_order_relaxed);
  const int64_t pos0 = s.kv_len - s.q_count + it.q0;
  const int64_t last = pos0 + (R - 1) / group;
  for (int64_t p0 = 0; p0 <= last; p0 += bt) {
    const int nj = static_cast<int>(std::min<int64_t>(bt, last + 1 - p0));
    const int nj16 = (nj + 15) & ~15;
    const int64_t block = s.block_table[p0 / bt];
    const size_t head_off =
        static_cast<size_t>(block) * kv.block_stride_bytes + kv_row_offset(kv, 0, it.kv_head, rb);
    const uint8_t* kb = static_cast<const uint8_t*>(kv.k) + head_off;
    const uint8_t* vb = static_cast<const uint8_t*>(kv.v) + head_off;
    head_scores<L, R>(wide, qs, hd, kb, vb, rb, nj, P, bt_pad);
    for (int r = 0; r < R; ++r) {
      const int vis = static_cast<int>(std::clamp<int64_t>(pos0 + r / group + 1 - p0, 0, nj));
      float* p = P + r * bt_pad;
      if (vis == 0) {
        for (int j = 0; j < nj16; ++j) p[j] = 0.0f;
        corr[r] = 1.0f;
        continue;
      }
      for (int j = vis; j < nj16; ++j) p[j] = -INFINITY;
      __m256 mx8 = _mm256_set1_ps(m[r]);
      for (int j = 0; j < nj16; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(p + j));
      const float mx = simd::hmax(mx8);
      const __m256 mv = _mm256_set1_ps(mx);
      __m256 sum = _mm256_setzero_ps();
      for (int j = 0; j < nj16; j += 8) {
        const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(p + j), mv));
        _mm256_storeu_ps(p + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      corr[r] = m[r] == -INFINITY ? 0.0f : std::exp(m[r] - mx);
      l[r] = l[r] * corr[r] + simd::hsum(sum);
      m[r] = mx;
    }
    head_pv<L, R>(wide, P, bt_pad, vb, rb, nj, hd, corr, sc.acc.data(), static_cast<size_t>(hd));
  }
  for (int r = 0; r < R; ++r) {
    const int i = r / group, gh = r % group;
    float* dst = out + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
    const float inv = 1.0f / l[r];
    for (int d = 0; d < hd; ++d) dst[d] = sc.acc[r * hd + d] * inv;
  }
}

// f(L{}) with the row loader of a K/V type the decode loops read in place (F16, BF16, Q8_0);
// false for the others (F32: its blocks need no conversion, run_item takes them).
template <class F>
bool with_kv_loader(DType type, F&& f) {
  switch (type) {
    case DType::kF16:
      f(LoadF16x8{});
      return true;
    case DType::kBF16:
      f(LoadBF16x8{});
      return true;
    case DType::kQ8_0:
      f(LoadQ8_0x8{});
      return true;
    default:
      return false;
  }
}

// ---- Long decode: one query a sequence, many keys (split-K over key chunks) ----
// run_item_f16_small walks one KV head's rows of a whole sequence on one thread, a block's
// rows of the head one contiguous run (kv_row_offset). Here a work item is a chunk of whole
// KV blocks of one sequence for every head: the scores pass reads a block's K as one stream,
// head after head, while V's rows are requested, and the chunks' partial softmax states are
// merged at the end. With the blocks heads major the per-head items stream too, and win below
// ~1024 keys (no merge); from there the chunks' longer streams win (two threads, Qwen3-0.6B's
// attention: 1024 / 4096 / 16384 keys 130 / 525 / 2070 us as items, 137 / 429 / 1559 as chunks;
// bench/cpu/NOTES.md, round 12). From this kv_len on (one query).
std::atomic<int64_t> g_long_decode_keys{1024};
constexpr int kLongChunkBlocks = 4;        // blocks a chunk, at least
constexpr int64_t kLongMaxChunks = 8;      // chunks a sequence, at most
constexpr int64_t kLongMinChunks = 4;  // and at least, where it has as many blocks (short contexts)

struct LongChunk {
  int32_t seq;
  int64_t b0, b1;  // blocks [b0, b1) of the sequence
  size_t state;    // its partial state: [kv heads][group] x (m, l, acc[head_dim]) at this float
};

// Partial state of rows (h, r) over the chunk's keys: m, l, then acc[hd] (not normalised).
template <class L, int G>
void long_chunk(const LongChunk& c, const float* q, int num_heads, const PagedKv& kv,
                const SeqAttention& s, float scale, float* state, std::vector<float>& buf) {
  const int kvh = kv.num_kv_heads, hd = kv.head_dim, bt = kv.block_tokens;
  const int bt_pad = (bt + 7) & ~7;
  const size_t rb = row_bytes(kv.type, hd);
  const int rows = kvh * G;
  buf.resize(static_cast<size_t>(rows) * (hd + bt_pad));
  float* qs = buf.data();                                     // [rows][hd], scaled
  float* P = buf.data() + static_cast<size_t>(rows) * hd;     // [rows][bt_pad]
  const float* q0 = q + s.q_begin * num_heads * hd;           // the sequence's one query row
  for (int i = 0; i < rows * hd; ++i) qs[i] = q0[i] * scale;  // row h * G + g = query head
  const size_t st = 2 + static_cast<size_t>(hd);
  // F16 K/V on a CPU with AVX-512: the 512-bit loops (attention_avx512.cpp)
  const bool wide = std::is_same_v<L, LoadF16x8> && avx512_kernels_enabled() &&
                    g_decode_attention_avx512.load(std::memory_order_relaxed);
  for (int r = 0; r < rows; ++r) {
    state[r * st] = -INFINITY;
    state[r * st + 1] = 0.0f;
    std::fill_n(state + r * st + 2, hd, 0.0f);
  }
  // Block by block. The heads' K rows of a block lie head after head (kv_row_offset), so the
  // scores pass, head by head, reads the block's K as one stream while each head's V rows are
  // requested; the P V pass then reads V head by head (in cache by then).
  for (int64_t b = c.b0; b < c.b1; ++b) {
    const int nj = static_cast<int>(std::min<int64_t>(bt, s.kv_len - b * bt));
    const size_t base = static_cast<size_t>(s.block_table[b]) * kv.block_stride_bytes;
    const auto* kb = static_cast<const uint8_t*>(kv.k) + base;
    const auto* vb = static_cast<const uint8_t*>(kv.v) + base;
    for (int h = 0; h < kvh; ++h) {
      const uint8_t* kh = kb + kv_row_offset(kv, 0, h, rb);
      const uint8_t* vh = vb + kv_row_offset(kv, 0, h, rb);
      const float* qh = qs + static_cast<size_t>(h) * G * hd;
      float* ph = P + static_cast<size_t>(h) * G * bt_pad;
      head_scores<L, G>(wide, qh, hd, kh, vh, rb, nj, ph, bt_pad);
    }
    // online softmax per row (every key of the chunk is visible to the sequence's last query)
    for (int r = 0; r < rows; ++r) {
      float* p = P + r * bt_pad;
      for (int j = nj; j < bt_pad; ++j) p[j] = -INFINITY;
      __m256 mx8 = _mm256_set1_ps(state[r * st]);
      for (int j = 0; j < bt_pad; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(p + j));
      const float mx = simd::hmax(mx8);
      __m256 sum = _mm256_setzero_ps();
      for (int j = 0; j < bt_pad; j += 8) {
        const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(p + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      const float corr = state[r * st] == -INFINITY ? 0.0f : std::exp(state[r * st] - mx);
      state[r * st] = mx;
      state[r * st + 1] = state[r * st + 1] * corr + simd::hsum(sum);
      float* acc = state + r * st + 2;
      const __m256 c8 = _mm256_set1_ps(corr);
      for (int d = 0; d < hd; d += 8)
        _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), c8));
    }
    // acc += P V, head by head, 16 dimensions at a time over the block's keys
    for (int h = 0; h < kvh; ++h) {
      const uint8_t* vh = vb + kv_row_offset(kv, 0, h, rb);
      const float* ph = P + static_cast<size_t>(h) * G * bt_pad;
      float* sh = state + static_cast<size_t>(h) * G * st;
      head_pv<L, G>(wide, ph, bt_pad, vh, rb, nj, hd, nullptr, sh + 2, st);
    }
  }
}

// Whether a sequence takes the long decode path (then all of its heads do).
bool long_decode(const SeqAttention& s, int num_heads, const PagedKv& kv) {
  const int group = num_heads / kv.num_kv_heads;
  // Groups of 8 (Qwen3-30B-A3B, Qwen3.5) have no fused decode item (run_item_fused: <= 4
  // rows): their chunks start at 128 keys, as before the blocks were heads major.
  const int64_t from = g_long_decode_keys.load(std::memory_order_relaxed);
  return g_long_decode.load(std::memory_order_relaxed) && s.q_count == 1 &&
         s.kv_len >= (group > 4 ? std::min<int64_t>(from, 128) : from) && kv.head_dim % 16 == 0 &&
         (group == 1 || group == 2 || group == 4 || group == 8) &&
         (kv.type == DType::kF16 || kv.type == DType::kBF16 || kv.type == DType::kQ8_0);
}

void run_long_chunk(const LongChunk& c, const float* q, int num_heads, const PagedKv& kv,
                    const SeqAttention& s, float scale, float* state, std::vector<float>& buf) {
  with_kv_loader(kv.type, [&]<class L>(L) {
    with_rows(num_heads / kv.num_kv_heads,
              [&](auto g) { long_chunk<L, g>(c, q, num_heads, kv, s, scale, state, buf); });
  });
}

// out rows of the sequence from its chunks' states (first at `first`, n of them).
void merge_long(const float* states, size_t first, int n, int num_heads, int hd,
                const SeqAttention& s, float* out) {
  const size_t st = 2 + static_cast<size_t>(hd), per_chunk = static_cast<size_t>(num_heads) * st;
  for (int r = 0; r < num_heads; ++r) {
    float mx = -INFINITY;
    for (int c = 0; c < n; ++c) mx = std::max(mx, states[first + c * per_chunk + r * st]);
    float* o = out + (s.q_begin * num_heads + r) * hd;
    std::fill_n(o, hd, 0.0f);
    float l = 0.0f;
    for (int c = 0; c < n; ++c) {
      const float* sc = states + first + c * per_chunk + r * st;
      if (sc[0] == -INFINITY) continue;
      const float w = std::exp(sc[0] - mx);
      l += sc[1] * w;
      for (int d = 0; d < hd; ++d) o[d] += sc[2 + d] * w;
    }
    const float inv = 1.0f / l;
    for (int d = 0; d < hd; ++d) o[d] *= inv;
  }
}

// The fused decode path where it applies (not F32 K/V: its blocks need no conversion);
// false: use run_item.
bool run_item_fused(const Item& it, const float* q, int num_heads, const PagedKv& kv,
                    const SeqAttention& s, float scale, float* out, ItemScratch& sc) {
  const int rows = static_cast<int>(it.q1 - it.q0) * (num_heads / kv.num_kv_heads);
  if (kv.head_dim % 16 != 0 || rows > 4) return false;
  return with_kv_loader(kv.type, [&]<class L>(L) {
    with_rows(rows,
              [&](auto r) { run_item_f16_small<L, r>(it, q, num_heads, kv, s, scale, out, sc); });
  });
}

}  // namespace

void kv_decode_row_fast(DType type, const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  switch (type) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, simd::load_f16(s + i));
      for (; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, simd::load_bf16(s + i));
      for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kQ8_0: {
      const uint8_t* in = static_cast<const uint8_t*>(src);
      for (int64_t b = 0; b < n / 32; ++b, in += 34) {
        uint16_t dh;
        std::memcpy(&dh, in, 2);
        const __m256 d = _mm256_set1_ps(fp16_to_f32(dh));
        for (int k = 0; k < 32; k += 8) {
          const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 2 + k)));
          _mm256_storeu_ps(dst + b * 32 + k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
        }
      }
      return;
    }
    default: STRATA_CHECK_MSG(false, "attention: unsupported KV type");
  }
}

void kv_encode_row_fast(DType type, const float* src, void* dst, int64_t n) {
  int64_t i = 0;
  switch (type) {
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
      }
      for (; i < n; ++i) d[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (; i + 8 <= n; i += 8) {
        // round to nearest even on the upper 16 bits (NaN payloads aside)
        __m256i x = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
        x = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
        const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), packed);
      }
      for (; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    default: ref::kv_encode_row(type, src, dst, n); return;  // F32 (a copy), Q8_0 (rare: one row per token)
  }
}

void kv_store(ThreadPool& pool, const PagedKv& kv, const float* k, const float* v, int64_t n,
              const int32_t* slots) {
  STRATA_CHECK(ref::kv_type_supported(kv.type));
  STRATA_CHECK(kv.type != DType::kQ8_0 || kv.head_dim % 32 == 0);
  const size_t rb = row_bytes(kv.type, kv.head_dim);
  const auto body = [&](int, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int32_t block = slots[t] / kv.block_tokens, off = slots[t] % kv.block_tokens;
      for (int h = 0; h < kv.num_kv_heads; ++h) {
        const size_t at =
            static_cast<size_t>(block) * kv.block_stride_bytes + kv_row_offset(kv, off, h, rb);
        const int64_t src = (t * kv.num_kv_heads + h) * kv.head_dim;
        kv_encode_row_fast(kv.type, k + src, static_cast<uint8_t*>(kv.k) + at, kv.head_dim);
        kv_encode_row_fast(kv.type, v + src, static_cast<uint8_t*>(kv.v) + at, kv.head_dim);
      }
    }
  };
  if (n >= 16) {
    pool.parallel_for(n, 8, body);
  } else {
    body(0, 0, n);
  }
}

void set_decode_attention_avx512(bool on) { g_decode_attention_avx512.store(on); }
void set_prefill_attention_avx512(bool on) { g_prefill_attention_avx512.store(on); }

void attention(ThreadPool& pool, const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out) {
  STRATA_CHECK(num_heads % kv.num_kv_heads == 0);
  STRATA_CHECK(ref::kv_type_supported(kv.type));
  STRATA_CHECK(kv.type != DType::kQ8_0 || kv.head_dim % 32 == 0);
  std::vector<Item> items;
  // Long decodes: chunks of whole blocks, at least kLongChunkBlocks, at most kLongMaxChunks.
  std::vector<LongChunk> chunks;
  std::vector<std::pair<size_t, int>> long_seqs;  // (first chunk, chunks) of each long decode
  const size_t st = 2 + static_cast<size_t>(kv.head_dim),
               per_chunk = static_cast<size_t>(num_heads) * st;
  for (size_t si = 0; si < seqs.size(); ++si) {
    STRATA_CHECK(seqs[si].q_count <= seqs[si].kv_len);
    if (long_decode(seqs[si], num_heads, kv)) {
      const int64_t nb = (seqs[si].kv_len + kv.block_tokens - 1) / kv.block_tokens;
      // (not by thread count: the result is the same on any number of threads)
      const int64_t n = std::clamp<int64_t>(nb / kLongChunkBlocks,
                                            std::min<int64_t>(nb, kLongMinChunks), kLongMaxChunks);
      long_seqs.push_back({chunks.size(), static_cast<int>(n)});
      for (int64_t c = 0; c < n; ++c)
        chunks.push_back(
            {static_cast<int32_t>(si), nb * c / n, nb * (c + 1) / n, chunks.size() * per_chunk});
      continue;
    }
    for (int64_t q0 = 0; q0 < seqs[si].q_count; q0 += kQueryTile) {
      for (int g = 0; g < kv.num_kv_heads; ++g) {
        items.push_back({static_cast<int32_t>(si), g, q0, std::min(seqs[si].q_count, q0 + kQueryTile)});
      }
    }
  }
  // Largest items first (later query tiles see more keys), handed out dynamically.
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    return seqs[a.seq].kv_len - seqs[a.seq].q_count + a.q1 > seqs[b.seq].kv_len - seqs[b.seq].q_count + b.q1;
  });
  // Chunk states, reused across this thread's calls (every chunk writes its whole state
  // first); the pool's threads reach them through `states`, not through the thread_local.
  thread_local std::vector<float> state_buf;
  state_buf.resize(chunks.size() * per_chunk);
  float* const states = state_buf.data();
  // Work unit u: long-decode chunk u, then item u - chunks.size().
  const auto run_unit = [&](size_t u, ItemScratch& scratch) {
    if (u < chunks.size()) {
      const LongChunk& c = chunks[u];
      run_long_chunk(c, q, num_heads, kv, seqs[c.seq], scale, states + c.state, scratch.p);
      return;
    }
    const Item& it = items[u - chunks.size()];
    const SeqAttention& sq = seqs[it.seq];
    if (!run_item_fused(it, q, num_heads, kv, sq, scale, out, scratch))
      run_item(it, q, num_heads, kv, sq, scale, out, scratch);
  };
  const size_t units = chunks.size() + items.size();
  const bool decode =
      std::all_of(seqs.begin(), seqs.end(), [](const SeqAttention& sq) { return sq.q_count == 1; });
  if (decode && g_decode_attention_runs.load(std::memory_order_relaxed)) {
    // Decode: units of like size, a few per thread: the pool's runs, where a thread takes
    // its units with no line shared with the other threads until it steals. Handing them out
    // through one shared counter cost a line crossing between cores per unit (~250 ns where
    // the two vCPUs sit on different CCDs; bench/cpu/NOTES.md, round 7).
    pool.parallel_for(static_cast<int64_t>(units), 1, [&](int, int64_t b, int64_t e) {
      thread_local ItemScratch scratch;
      for (int64_t u = b; u < e; ++u) run_unit(static_cast<size_t>(u), scratch);
    });
  } else {
    std::atomic<size_t> next{0};
    pool.run_on_all([&](int) {
      thread_local ItemScratch scratch;
      for (size_t u = next.fetch_add(1); u < units; u = next.fetch_add(1)) run_unit(u, scratch);
    });
  }
  for (const auto& [first, n] : long_seqs) {
    const SeqAttention& sq = seqs[chunks[first].seq];
    merge_long(states, chunks[first].state, n, num_heads, kv.head_dim, sq, out);
  }
}

void set_long_decode_attention(bool on) { g_long_decode.store(on); }
void set_decode_attention_runs(bool on) { g_decode_attention_runs.store(on); }
void set_long_decode_min_keys(int64_t keys) { g_long_decode_keys.store(keys); }

}  // namespace strata::backend::cpu
