// See attention_avx512.h. 512-bit vectors: one VCVTPH2PS turns 16 fp16 of a K or V row into
// f32, half the conversions and FMAs of the AVX2 loops (attention.cpp) a key. Everything but
// the entry points is in an anonymous namespace (no inline function of another file is
// compiled here with AVX-512).
#include "backend/cpu/attention_avx512.h"

#include <immintrin.h>

namespace strata::backend::cpu {
namespace {

inline __m512 load16(const uint8_t* row, int d) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
}

// p[r * p_stride] = q_r . row for R query rows hd apart, two FMA chains a row.
template <int R>
__attribute__((always_inline)) inline void dot_rows(const uint8_t* row, const float* q, int hd,
                                                    float* p, int p_stride) {
  __m512 a[R][2];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = _mm512_setzero_ps();
  int d = 0;
  for (; d + 32 <= hd; d += 32) {
    const __m512 k0 = load16(row, d), k1 = load16(row, d + 16);
    for (int r = 0; r < R; ++r) {
      a[r][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(q + r * hd + d), a[r][0]);
      a[r][1] = _mm512_fmadd_ps(k1, _mm512_loadu_ps(q + r * hd + d + 16), a[r][1]);
    }
  }
  if (d < hd) {  // a 16-value tail
    const __m512 k0 = load16(row, d);
    for (int r = 0; r < R; ++r)
      a[r][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(q + r * hd + d), a[r][0]);
  }
  for (int r = 0; r < R; ++r)
    p[r * p_stride] = _mm512_reduce_add_ps(_mm512_add_ps(a[r][0], a[r][1]));
}

// acc[r * acc_stride + d] = acc[...] * corr[r] (corr null: 1) + sum_j p[r * p_stride + j] V_j[d]
// for R rows, V_j at v + j * key_stride: 32 dimensions at a time (two FMA chains a row), 16
// for a head_dim tail.
template <int R>
__attribute__((always_inline)) inline void pv_rows(const float* p, int p_stride, const uint8_t* v,
                                                   size_t key_stride, int nj, int hd,
                                                   const float* corr, float* acc,
                                                   size_t acc_stride) {
  const auto scale = [&](int r) { return _mm512_set1_ps(corr != nullptr ? corr[r] : 1.0f); };
  int d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) {
    __m512 o[R][2];
    for (int r = 0; r < R; ++r) {
      o[r][0] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * acc_stride + d0), scale(r));
      o[r][1] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * acc_stride + d0 + 16), scale(r));
    }
    for (int j = 0; j < nj; ++j) {
      const uint8_t* vr = v + j * key_stride;
      const __m512 v0 = load16(vr, d0), v1 = load16(vr, d0 + 16);
      for (int r = 0; r < R; ++r) {
        const __m512 pj = _mm512_set1_ps(p[r * p_stride + j]);
        o[r][0] = _mm512_fmadd_ps(pj, v0, o[r][0]);
        o[r][1] = _mm512_fmadd_ps(pj, v1, o[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(acc + r * acc_stride + d0, o[r][0]);
      _mm512_storeu_ps(acc + r * acc_stride + d0 + 16, o[r][1]);
    }
  }
  if (d0 < hd) {
    __m512 o[R];
    for (int r = 0; r < R; ++r)
      o[r] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * acc_stride + d0), scale(r));
    for (int j = 0; j < nj; ++j) {
      const __m512 vv = load16(v + j * key_stride, d0);
      for (int r = 0; r < R; ++r)
        o[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * p_stride + j]), vv, o[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(acc + r * acc_stride + d0, o[r]);
  }
}

}  // namespace

void decode_scores_f16_avx512(int rows, const float* qs, int hd, const uint8_t* k, const uint8_t* v,
                              size_t key_stride, size_t row_bytes, int nj, float* p, int p_stride) {
  with_rows(rows, [&](auto r) {
    for (int j = 0; j < nj; ++j) {
      const uint8_t* kr = k + j * key_stride;
      for (size_t o = 0; o < row_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(kr + 4 * key_stride + o), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(v + j * key_stride + o), _MM_HINT_T0);
      }
      dot_rows<r>(kr, qs, hd, p + j, p_stride);
    }
  });
}

void decode_pv_f16_avx512(int rows, const float* p, int p_stride, const uint8_t* v,
                          size_t key_stride, int nj, int hd, const float* corr, float* acc,
                          size_t acc_stride) {
  with_rows(rows,
            [&](auto r) { pv_rows<r>(p, p_stride, v, key_stride, nj, hd, corr, acc, acc_stride); });
}

// ---- Prefill items: 8 query rows, f32 blocks (the K block transposed) ----

namespace {
// s[r][j0 + j] = q_r . kT[:, j0 + j] for 8 rows and NK = 16 or 32 keys: each step broadcasts
// one q element of a row (folded into the FMA) against the keys' column of kT; the sum over d
// runs in order, as the AVX2 scores_block's (the same floats).
template <int NK>
__attribute__((always_inline)) inline void scores8(const float* q, int hd, const float* kT,
                                                   int kt_stride, int j0, float* s, int s_stride) {
  constexpr int V = NK / 16;
  __m512 acc[8][V];
  for (int r = 0; r < 8; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m512 k[V];
    for (int v = 0; v < V; ++v) k[v] = _mm512_loadu_ps(kT + d * kt_stride + j0 + 16 * v);
    for (int r = 0; r < 8; ++r) {
      const __m512 qv = _mm512_set1_ps(q[r * hd + d]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(qv, k[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 8; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(s + r * s_stride + j0 + 16 * v, acc[r][v]);
}
}  // namespace

void prefill_scores8_avx512(const float* q, int hd, const float* kT, int kt_stride, int nk,
                            float* s, int s_stride) {
  int j0 = 0;
  for (; j0 + 32 <= nk; j0 += 32) scores8<32>(q, hd, kT, kt_stride, j0, s, s_stride);
  if (j0 < nk) scores8<16>(q, hd, kT, kt_stride, j0, s, s_stride);
}

void prefill_pv8_avx512(const float* p, int p_stride, const float* v, int hd, int nj,
                        const float* corr, float* o) {
  for (int d0 = 0; d0 < hd; d0 += 32) {
    __m512 acc[8][2];
    for (int r = 0; r < 8; ++r) {
      const __m512 c = _mm512_set1_ps(corr[r]);
      acc[r][0] = _mm512_mul_ps(_mm512_loadu_ps(o + r * hd + d0), c);
      acc[r][1] = _mm512_mul_ps(_mm512_loadu_ps(o + r * hd + d0 + 16), c);
    }
    for (int j = 0; j < nj; ++j) {
      const __m512 v0 = _mm512_loadu_ps(v + j * hd + d0),
                   v1 = _mm512_loadu_ps(v + j * hd + d0 + 16);
      for (int r = 0; r < 8; ++r) {
        const __m512 pj = _mm512_set1_ps(p[r * p_stride + j]);
        acc[r][0] = _mm512_fmadd_ps(pj, v0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(pj, v1, acc[r][1]);
      }
    }
    for (int r = 0; r < 8; ++r) {
      _mm512_storeu_ps(o + r * hd + d0, acc[r][0]);
      _mm512_storeu_ps(o + r * hd + d0 + 16, acc[r][1]);
    }
  }
}

}  // namespace strata::backend::cpu
