// Activation quantization for the integer dot kernels: per block d = amax / 127 and
// q = round-to-nearest-even(x * 127 / amax), AVX2 with a scalar twin that must agree exactly.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/simd.h"
#include "core/check.h"

namespace strata::backend::cpu {
namespace {

// 32 floats -> 32 int8 = round(x * id), in order.
inline void quantize32(const float* x, __m256 id, int8_t* out) {
  const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  const __m256i ab = _mm256_packs_epi32(a, b);  // lanes interleaved by 128-bit halves
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i q = _mm256_packs_epi16(ab, cd);
  const __m256i fixed = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), fixed);
}

inline float absmax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  return simd::hmax(m);
}

void quantize_q8_0(const float* x, int64_t cols, ActQ8_0* out) {
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float amax = absmax(x + b * kQK, kQK);
    out[b].d = amax / 127.0f;
    quantize32(x + b * kQK, _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f), out[b].qs);
  }
}

void quantize_q8k(const float* x, int64_t cols, ActQ8K* out) {
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    const float* xb = x + b * kQKK;
    const float amax = absmax(xb, kQKK);
    out[b].d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
    for (int i = 0; i < kQKK; i += 32) quantize32(xb + i, id, out[b].qs + i);
    for (int g = 0; g < kQKK / 16; ++g) {
      // sum of 16 int8 via widening: cheap next to the dot products that use it
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(out[b].qs + 16 * g));
      const __m256i w = _mm256_cvtepi8_epi16(q);
      const __m256i s = _mm256_madd_epi16(w, _mm256_set1_epi16(1));
      out[b].bsums[g] = static_cast<int16_t>(simd::hsum_i32(s));
    }
  }
}

void quantize_scalar(const float* x, int n, float* d, int8_t* q) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  *d = amax / 127.0f;
  const float id = amax != 0 ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
}

}  // namespace

size_t act_row_bytes(ActFormat act, int64_t cols) {
  switch (act) {
    case ActFormat::kF32: return static_cast<size_t>(cols) * sizeof(float);
    case ActFormat::kQ8_0: return static_cast<size_t>(cols / kQK) * sizeof(ActQ8_0);
    case ActFormat::kQ8K: return static_cast<size_t>(cols / kQKK) * sizeof(ActQ8K);
  }
  return 0;
}

void quantize_act_row(ActFormat act, const float* x, int64_t cols, void* dst) {
  switch (act) {
    case ActFormat::kF32: std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float)); return;
    case ActFormat::kQ8_0:
      STRATA_CHECK(cols % kQK == 0);
      quantize_q8_0(x, cols, static_cast<ActQ8_0*>(dst));
      return;
    case ActFormat::kQ8K:
      STRATA_CHECK(cols % kQKK == 0);
      quantize_q8k(x, cols, static_cast<ActQ8K*>(dst));
      return;
  }
}

void quantize_act_row_scalar(ActFormat act, const float* x, int64_t cols, void* dst) {
  switch (act) {
    case ActFormat::kF32: std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float)); return;
    case ActFormat::kQ8_0: {
      ActQ8_0* out = static_cast<ActQ8_0*>(dst);
      for (int64_t b = 0; b < cols / kQK; ++b) quantize_scalar(x + b * kQK, kQK, &out[b].d, out[b].qs);
      return;
    }
    case ActFormat::kQ8K: {
      ActQ8K* out = static_cast<ActQ8K*>(dst);
      for (int64_t b = 0; b < cols / kQKK; ++b) {
        quantize_scalar(x + b * kQKK, kQKK, &out[b].d, out[b].qs);
        for (int g = 0; g < kQKK / 16; ++g) {
          int s = 0;
          for (int i = 0; i < 16; ++i) s += out[b].qs[16 * g + i];
          out[b].bsums[g] = static_cast<int16_t>(s);
        }
      }
      return;
    }
  }
}

}  // namespace strata::backend::cpu
