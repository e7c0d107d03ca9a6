// VARIANT 1 (kept for comparison; the product uses src/backend/cpu/dot_kernels.cpp).
// AVX2/FMA dot kernels: one weight row against a tile of NT activation rows (see
// dot_kernels.h). Integer kernels: weights as unsigned (or sign-folded) bytes times the int8
// activations with maddubs, int16 pairs widened by madd against the group scale.
// Scalar twin: ref::matmul (dequantize + double dot); tests bound the activation-quant error.
#include "variants/dot_kernels_v1.h"

#include <immintrin.h>

#include "backend/cpu/blocks.h"
#include "backend/cpu/simd.h"

namespace strata::backend::cpu::v1 {
namespace {

template <typename T>
inline const T* row_of(const void* x, size_t x_row_bytes, int t) {
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(x) + t * x_row_bytes);
}
inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ---- float weights (F32, F16, BF16) against f32 activations ----

struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float one(const float* p) { return *p; }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return simd::load_f16(p); }
  static float one(const uint16_t* p) { return simd::f16_to_f32(*p); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return simd::load_bf16(p); }
  static float one(const uint16_t* p) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(*p) << 16))); }
};

// Two accumulators per token (four when NT == 1) hide the FMA latency.
template <typename L, int NT>
void dot_float(const void* wv, const void* x, size_t xs, int64_t cols, float* y, int64_t ys) {
  constexpr int U = NT == 1 ? 4 : 2;
  const typename L::T* w = static_cast<const typename L::T*>(wv);
  __m256 acc[NT][U];
  for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 * U <= cols; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      const __m256 wv8 = L::load(w + i + 8 * u);
      for (int t = 0; t < NT; ++t) {
        acc[t][u] = _mm256_fmadd_ps(wv8, _mm256_loadu_ps(row_of<float>(x, xs, t) + i + 8 * u), acc[t][u]);
      }
    }
  }
  for (; i + 8 <= cols; i += 8) {
    const __m256 wv8 = L::load(w + i);
    for (int t = 0; t < NT; ++t) acc[t][0] = _mm256_fmadd_ps(wv8, _mm256_loadu_ps(row_of<float>(x, xs, t) + i), acc[t][0]);
  }
  for (int t = 0; t < NT; ++t) {
    for (int u = 1; u < U; ++u) acc[t][0] = _mm256_add_ps(acc[t][0], acc[t][u]);
    float s = simd::hsum(acc[t][0]);
    for (int64_t j = i; j < cols; ++j) s += L::one(w + j) * row_of<float>(x, xs, t)[j];
    y[t * ys] = s;
  }
}

// ---- 32-element formats against ActQ8_0 ----

// Signed weights wq (32 int8) . activations xq: sign folded into x so maddubs sees |w|.
inline __m256i dot_i8(__m256i aw, __m256i wq, __m256i xq) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, wq)), _mm256_set1_epi16(1));
}

struct DecodeQ8_0 {
  using B = WQ8_0;
  static __m256i q(const B& b) { return loadu(b.qs); }
};
struct DecodeQ4_0 {
  using B = WQ4_0;
  static __m256i q(const B& b) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m256i n = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(n, _mm256_set1_epi8(8));
  }
};

template <typename D, int NT>
void dot_q32(const void* wv, const void* x, size_t xs, int64_t cols, float* y, int64_t ys) {
  constexpr int U = NT == 1 ? 2 : 1;
  const typename D::B* w = static_cast<const typename D::B*>(wv);
  const int64_t nb = cols / kQK;
  __m256 acc[NT][U];
  for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + U <= nb; b += U) {
    for (int u = 0; u < U; ++u) {
      const __m256i wq = D::q(w[b + u]);
      const __m256i aw = _mm256_sign_epi8(wq, wq);
      const float dw = simd::f16_to_f32(w[b + u].d);
      for (int t = 0; t < NT; ++t) {
        const ActQ8_0& xb = row_of<ActQ8_0>(x, xs, t)[b + u];
        const __m256 p = _mm256_cvtepi32_ps(dot_i8(aw, wq, loadu(xb.qs)));
        acc[t][u] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * xb.d), acc[t][u]);
      }
    }
  }
  for (; b < nb; ++b) {
    const __m256i wq = D::q(w[b]);
    const __m256i aw = _mm256_sign_epi8(wq, wq);
    const float dw = simd::f16_to_f32(w[b].d);
    for (int t = 0; t < NT; ++t) {
      const ActQ8_0& xb = row_of<ActQ8_0>(x, xs, t)[b];
      const __m256 p = _mm256_cvtepi32_ps(dot_i8(aw, wq, loadu(xb.qs)));
      acc[t][0] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * xb.d), acc[t][0]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    for (int u = 1; u < U; ++u) acc[t][0] = _mm256_add_ps(acc[t][0], acc[t][u]);
    y[t * ys] = simd::hsum(acc[t][0]);
  }
}

// ---- K-quants against ActQ8K ----

// Q4_K / Q5_K: sum_g d*sc_g*(q . x)_g - dmin * sum_g m_g * bsum_g; Q5_K adds the fifth bit.
template <bool kFive, int NT>
void dot_q45k(const void* wv, const void* x, size_t xs, int64_t cols, float* y, int64_t ys) {
  using B = std::conditional_t<kFive, WQ5_K, WQ4_K>;
  const B* w = static_cast<const B*>(wv);
  const int64_t nb = cols / kQKK;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const B& wb = w[b];
    uint8_t sc[8], mn[8];
    unpack_k4_scales(wb.scales, sc, mn);
    const float d = simd::f16_to_f32(wb.d), dmin = simd::f16_to_f32(wb.dmin);
    __m256i iacc[NT];
    for (int t = 0; t < NT; ++t) iacc[t] = _mm256_setzero_si256();
    __m256i qh;
    if constexpr (kFive) qh = loadu(wb.qh);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(wb.qs + 32 * c);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFive) {
        const __m256i b0 = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
        const __m256i b1 = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1)));
        const __m256i h16 = _mm256_set1_epi8(16);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), h16));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), h16));
      }
      const __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
      for (int t = 0; t < NT; ++t) {
        const int8_t* xq = row_of<ActQ8K>(x, xs, t)[b].qs + 64 * c;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(xq)), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu(xq + 32)), s1);
        iacc[t] = _mm256_add_epi32(iacc[t], _mm256_add_epi32(p0, p1));
      }
    }
    const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m_j for bsums 2j, 2j+1
    for (int t = 0; t < NT; ++t) {
      const ActQ8K& xb = row_of<ActQ8K>(x, xs, t)[b];
      const __m256i mins = _mm256_madd_epi16(m16, loadu(xb.bsums));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t]), _mm256_set1_ps(d * xb.d), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * xb.d), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ys] = simd::hsum(acc[t]);
}

// Q6_K: d * sum_g sc_g * (q . x)_g - 32 d * sum_g sc_g * bsum_g, q in 0..63.
template <int NT>
void dot_q6k(const void* wv, const void* x, size_t xs, int64_t cols, float* y, int64_t ys) {
  const WQ6_K* w = static_cast<const WQ6_K*>(wv);
  const int64_t nb = cols / kQKK;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const WQ6_K& wb = w[b];
    __m256i iacc[NT];
    for (int t = 0; t < NT; ++t) iacc[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = loadu(wb.ql + 64 * h), ql1 = loadu(wb.ql + 64 * h + 32);
      const __m256i qhv = loadu(wb.qh + 32 * h);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 4), m30));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 2), m30));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qhv, m30));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(qhv, 2), m30));
      for (int s = 0; s < 4; ++s) {
        const int g = 8 * h + 2 * s;
        const __m256i sv = _mm256_set_m128i(_mm_set1_epi16(wb.scales[g + 1]), _mm_set1_epi16(wb.scales[g]));
        for (int t = 0; t < NT; ++t) {
          const int8_t* xq = row_of<ActQ8K>(x, xs, t)[b].qs + 128 * h + 32 * s;
          iacc[t] = _mm256_add_epi32(iacc[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[s], loadu(xq)), sv));
        }
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
    const float d = simd::f16_to_f32(wb.d);
    for (int t = 0; t < NT; ++t) {
      const ActQ8K& xb = row_of<ActQ8K>(x, xs, t)[b];
      const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(xb.bsums)), 5);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iacc[t], corr)),
                               _mm256_set1_ps(d * xb.d), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ys] = simd::hsum(acc[t]);
}

// nt (run-time) -> NT (compile-time) for each kernel family.
template <template <int> class K>
void tile(const void* w, const void* x, size_t xs, int nt, int64_t cols, float* y, int64_t ys) {
  switch (nt) {
    case 1: K<1>::run(w, x, xs, cols, y, ys); return;
    case 2: K<2>::run(w, x, xs, cols, y, ys); return;
    case 3: K<3>::run(w, x, xs, cols, y, ys); return;
    default: K<4>::run(w, x, xs, cols, y, ys); return;
  }
}
static_assert(kMaxTile == 4);

#define STRATA_KERNEL(name, expr)                                                       \
  template <int NT>                                                                     \
  struct name {                                                                         \
    static void run(const void* w, const void* x, size_t xs, int64_t c, float* y, int64_t ys) { \
      expr(w, x, xs, c, y, ys);                                                         \
    }                                                                                   \
  };
STRATA_KERNEL(KF32, (dot_float<LoadF32, NT>))
STRATA_KERNEL(KF16, (dot_float<LoadF16, NT>))
STRATA_KERNEL(KBF16, (dot_float<LoadBF16, NT>))
STRATA_KERNEL(KQ8_0, (dot_q32<DecodeQ8_0, NT>))
STRATA_KERNEL(KQ4_0, (dot_q32<DecodeQ4_0, NT>))
STRATA_KERNEL(KQ4_K, (dot_q45k<false, NT>))
STRATA_KERNEL(KQ5_K, (dot_q45k<true, NT>))
STRATA_KERNEL(KQ6_K, dot_q6k<NT>)
#undef STRATA_KERNEL

}  // namespace

DotKernelV1 dot_kernel(DType type) {
  switch (type) {
    case DType::kF32: return {ActFormat::kF32, tile<KF32>};
    case DType::kF16: return {ActFormat::kF32, tile<KF16>};
    case DType::kBF16: return {ActFormat::kF32, tile<KBF16>};
    case DType::kQ8_0: return {ActFormat::kQ8_0, tile<KQ8_0>};
    case DType::kQ4_0: return {ActFormat::kQ8_0, tile<KQ4_0>};
    case DType::kQ4_K: return {ActFormat::kQ8K, tile<KQ4_K>};
    case DType::kQ5_K: return {ActFormat::kQ8K, tile<KQ5_K>};
    case DType::kQ6_K: return {ActFormat::kQ8K, tile<KQ6_K>};
    default: return {};
  }
}

}  // namespace strata::backend::cpu::v1
