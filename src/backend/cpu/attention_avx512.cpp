// See attention_avx512.h. 512-bit vectors: one VCVTPH2PS turns 16 fp16 of a K or V row into
// f32, half the conversions and FMAs of the AVX2 loops (attention.cpp) a key. Everything but
// the two entry points is in an anonymous namespace (no inline function of another file is
// compiled here with AVX-512).
#include "backend/cpu/attention_avx512.h"

#include <immintrin.h>

namespace strata::backend::cpu {
namespace {

inline __m512 load16(const uint8_t* row, int d) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
}

template <int R>
void scores(const float* qs, int hd, const uint8_t* k, const uint8_t* v, size_t key_stride,
            size_t row_bytes, int nj, float* p, int p_stride) {
  for (int j = 0; j < nj; ++j) {
    const uint8_t* kr = k + j * key_stride;
    for (size_t o = 0; o < row_bytes; o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(kr + 4 * key_stride + o), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v + j * key_stride + o), _MM_HINT_T0);
    }
    __m512 a[R][2];
    for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= hd; d += 32) {  // two chains a row
      const __m512 k0 = load16(kr, d), k1 = load16(kr, d + 16);
      for (int r = 0; r < R; ++r) {
        a[r][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(qs + r * hd + d), a[r][0]);
        a[r][1] = _mm512_fmadd_ps(k1, _mm512_loadu_ps(qs + r * hd + d + 16), a[r][1]);
      }
    }
    if (d < hd) {
      const __m512 k0 = load16(kr, d);
      for (int r = 0; r < R; ++r)
        a[r][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(qs + r * hd + d), a[r][0]);
    }
    for (int r = 0; r < R; ++r)
      p[r * p_stride + j] = _mm512_reduce_add_ps(_mm512_add_ps(a[r][0], a[r][1]));
  }
}

// 32 dimensions at a time (two FMA chains a row; 16 for a head_dim tail).
template <int R>
void pv(const float* p, int p_stride, const uint8_t* v, size_t key_stride, int nj, int hd,
        const float* corr, float* acc) {
  int d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) {
    __m512 o[R][2];
    for (int r = 0; r < R; ++r) {
      const __m512 c = _mm512_set1_ps(corr[r]);
      o[r][0] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * hd + d0), c);
      o[r][1] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * hd + d0 + 16), c);
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
      _mm512_storeu_ps(acc + r * hd + d0, o[r][0]);
      _mm512_storeu_ps(acc + r * hd + d0 + 16, o[r][1]);
    }
  }
  if (d0 < hd) {
    __m512 o[R];
    for (int r = 0; r < R; ++r)
      o[r] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * hd + d0), _mm512_set1_ps(corr[r]));
    for (int j = 0; j < nj; ++j) {
      const __m512 vv = load16(v + j * key_stride, d0);
      for (int r = 0; r < R; ++r)
        o[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * p_stride + j]), vv, o[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(acc + r * hd + d0, o[r]);
  }
}

// The long decode path's block (attention.cpp, long_chunk): every KV head's G rows.
template <int G>
void long_scores(int kvh, const float* qs, int hd, const uint8_t* k, const uint8_t* v,
                 size_t key_stride, size_t row_bytes, int nj, float* p, int p_stride) {
  for (int j = 0; j < nj; ++j) {
    const uint8_t* kr = k + j * key_stride;
    // The K rows of a block are one contiguous stream the hardware prefetchers follow
    // (requesting them 2 keys ahead as well: 3.2 instead of 2.6 ms at 16k keys); V's rows,
    // read by the pass after, are requested here.
    for (size_t o = 0; o < key_stride; o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(v + j * key_stride + o), _MM_HINT_T0);
    for (int h = 0; h < kvh; ++h) {
      const uint8_t* row = kr + h * row_bytes;
      const float* qh = qs + h * G * hd;
      __m512 a[G][2];
      for (int g = 0; g < G; ++g) a[g][0] = a[g][1] = _mm512_setzero_ps();
      int d = 0;
      for (; d + 32 <= hd; d += 32) {
        const __m512 k0 = load16(row, d), k1 = load16(row, d + 16);
        for (int g = 0; g < G; ++g) {
          a[g][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(qh + g * hd + d), a[g][0]);
          a[g][1] = _mm512_fmadd_ps(k1, _mm512_loadu_ps(qh + g * hd + d + 16), a[g][1]);
        }
      }
      if (d < hd) {
        const __m512 k0 = load16(row, d);
        for (int g = 0; g < G; ++g)
          a[g][0] = _mm512_fmadd_ps(k0, _mm512_loadu_ps(qh + g * hd + d), a[g][0]);
      }
      for (int g = 0; g < G; ++g)
        p[(h * G + g) * p_stride + j] = _mm512_reduce_add_ps(_mm512_add_ps(a[g][0], a[g][1]));
    }
  }
}

template <int G>
void long_pv(int kvh, const float* p, int p_stride, const uint8_t* v, size_t key_stride,
             size_t row_bytes, int nj, int hd, float* acc, size_t acc_stride) {
  for (int h = 0; h < kvh; ++h) {
    const float* ph = p + h * G * p_stride;
    float* ah = acc + h * G * acc_stride;
    int d0 = 0;
    for (; d0 + 32 <= hd; d0 += 32) {  // two FMA chains a row
      __m512 o[G][2];
      for (int g = 0; g < G; ++g) {
        o[g][0] = _mm512_loadu_ps(ah + g * acc_stride + d0);
        o[g][1] = _mm512_loadu_ps(ah + g * acc_stride + d0 + 16);
      }
      for (int j = 0; j < nj; ++j) {
        const uint8_t* vr = v + j * key_stride + h * row_bytes;
        const __m512 v0 = load16(vr, d0), v1 = load16(vr, d0 + 16);
        for (int g = 0; g < G; ++g) {
          const __m512 pj = _mm512_set1_ps(ph[g * p_stride + j]);
          o[g][0] = _mm512_fmadd_ps(pj, v0, o[g][0]);
          o[g][1] = _mm512_fmadd_ps(pj, v1, o[g][1]);
        }
      }
      for (int g = 0; g < G; ++g) {
        _mm512_storeu_ps(ah + g * acc_stride + d0, o[g][0]);
        _mm512_storeu_ps(ah + g * acc_stride + d0 + 16, o[g][1]);
      }
    }
    if (d0 < hd) {
      __m512 o[G];
      for (int g = 0; g < G; ++g) o[g] = _mm512_loadu_ps(ah + g * acc_stride + d0);
      for (int j = 0; j < nj; ++j) {
        const __m512 vv = load16(v + j * key_stride + h * row_bytes, d0);
        for (int g = 0; g < G; ++g)
          o[g] = _mm512_fmadd_ps(_mm512_set1_ps(ph[g * p_stride + j]), vv, o[g]);
      }
      for (int g = 0; g < G; ++g) _mm512_storeu_ps(ah + g * acc_stride + d0, o[g]);
    }
  }
}

}  // namespace

void decode_scores_f16_avx512(int rows, const float* qs, int hd, const uint8_t* k, const uint8_t* v,
                              size_t key_stride, size_t row_bytes, int nj, float* p, int p_stride) {
  switch (rows) {
    case 1:
      scores<1>(qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    case 2:
      scores<2>(qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    case 3:
      scores<3>(qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    default:
      scores<4>(qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
  }
}

void decode_pv_f16_avx512(int rows, const float* p, int p_stride, const uint8_t* v,
                          size_t key_stride, int nj, int hd, const float* corr, float* acc) {
  switch (rows) {
    case 1:
      pv<1>(p, p_stride, v, key_stride, nj, hd, corr, acc);
      return;
    case 2:
      pv<2>(p, p_stride, v, key_stride, nj, hd, corr, acc);
      return;
    case 3:
      pv<3>(p, p_stride, v, key_stride, nj, hd, corr, acc);
      return;
    default:
      pv<4>(p, p_stride, v, key_stride, nj, hd, corr, acc);
      return;
  }
}

void long_scores_f16_avx512(int group, int kvh, const float* qs, int hd, const uint8_t* k,
                            const uint8_t* v, size_t key_stride, size_t row_bytes, int nj, float* p,
                            int p_stride) {
  switch (group) {
    case 1:
      long_scores<1>(kvh, qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    case 2:
      long_scores<2>(kvh, qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    case 4:
      long_scores<4>(kvh, qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
    default:
      long_scores<8>(kvh, qs, hd, k, v, key_stride, row_bytes, nj, p, p_stride);
      return;
  }
}

void long_pv_f16_avx512(int group, int kvh, const float* p, int p_stride, const uint8_t* v,
                        size_t key_stride, size_t row_bytes, int nj, int hd, float* acc,
                        size_t acc_stride) {
  switch (group) {
    case 1:
      long_pv<1>(kvh, p, p_stride, v, key_stride, row_bytes, nj, hd, acc, acc_stride);
      return;
    case 2:
      long_pv<2>(kvh, p, p_stride, v, key_stride, row_bytes, nj, hd, acc, acc_stride);
      return;
    case 4:
      long_pv<4>(kvh, p, p_stride, v, key_stride, row_bytes, nj, hd, acc, acc_stride);
      return;
    default:
      long_pv<8>(kvh, p, p_stride, v, key_stride, row_bytes, nj, hd, acc, acc_stride);
      return;
  }
}

}  // namespace strata::backend::cpu
