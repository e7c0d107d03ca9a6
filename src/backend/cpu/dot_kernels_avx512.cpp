// Dot kernels for CPUs with AVX-512 (F, BW, VL, VNNI), such as Zen 4/5: 512-bit one-token
// kernels for the K-quants that decode is made of (Q4_K, Q6_K); tiles of several tokens use
// the kernel templates of dot_kernels_impl.h built with EVEX vpdpwssd on 256-bit registers. One token is decode, where a 256-bit Q4_K kernel runs out of instructions before a
// core runs out of memory bandwidth (bench/cpu/NOTES.md): a 512-bit register unpacks and
// multiplies two 32-element groups per instruction. This file alone is compiled with the
// AVX-512 flags; dot_kernel() calls into it only when the CPU reports them.
#include <immintrin.h>

namespace strata::backend::cpu {
namespace {

struct Avx512Isa {
  static __m256i madd_acc(__m256i acc, __m256i p16, __m256i s16) { return _mm256_dpwssd_epi32(acc, p16, s16); }
  static __m256i dot_u8i8(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
};

}  // namespace
}  // namespace strata::backend::cpu

#define STRATA_DOT_ISA Avx512Isa
#include "backend/cpu/dot_kernels_impl.h"

namespace strata::backend::cpu {
namespace {

// Two 32-byte halves from p and p + gap into one 512-bit register.
inline __m512i load_pair(const void* p, int gap) {
  const auto* b = static_cast<const uint8_t*>(p);
  return _mm512_inserti64x4(_mm512_castsi256_si512(loadu(b)), loadu(b + gap), 1);
}

// int16 lanes 0-15 = v[i], 16-31 = v[j] of the 16 int16 in `v` (a 512-bit register whose low
// 256 bits hold them).
inline __m512i two_scales(__m512i v, int i, int j) {
  return _mm512_permutexvar_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<int16_t>(i))),
                                                     _mm256_set1_epi16(static_cast<int16_t>(j)), 1),
                                  v);
}

inline __m256i fold(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

// Q4_K, one weight row against one token. Register p (p = 0, 1) holds qs[64p .. 64p + 63]:
// its low nibbles are elements 128p + 0..31 (group 4p) and 128p + 64..95 (group 4p + 2), its
// high nibbles 128p + 32..63 (4p + 1) and 128p + 96..127 (4p + 3).
void q4k_row(const Args& a) {
  const int64_t nb = a.cols / kQKK;
  const auto* w = static_cast<const BlockQ4_K*>(a.w);
  const auto* x = static_cast<const ActQ8K*>(a.x);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4_K& wb = w[b];
    const ActQ8K& xb = x[b];
    const __m128i scm = k4_scales_mins(wb.scales);
    const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scm));  // sc0..7 (m0..7 above, unused)
    const __m128i m8 = _mm_srli_si128(scm, 8);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m_j for bsums 2j, 2j+1
    __m512i iacc = _mm512_setzero_si512();
    for (int p = 0; p < 2; ++p) {
      const __m512i q = _mm512_loadu_si512(wb.qs + 64 * p);
      const __m512i lo = _mm512_and_si512(q, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      const int8_t* xq = xb.qs + 128 * p;
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(lo, load_pair(xq, 64)), two_scales(sc16, 4 * p, 4 * p + 2));
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(hi, load_pair(xq + 32, 64)),
                                 two_scales(sc16, 4 * p + 1, 4 * p + 3));
    }
    const __m256i mins = _mm256_madd_epi16(m16, loadu(xb.bsums));
    const float d = simd::f16_to_f32(wb.d) * xb.d, dmin = simd::f16_to_f32(wb.dmin) * xb.d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(iacc)), _mm256_set1_ps(d), acc);
    acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin), acc);
  }
  a.y[0] = simd::hsum(acc);
}

// Q6_K, one weight row against one token. The two 128-element halves side by side: register
// s (s = 0..3) holds elements 32s + 0..31 (groups 2s, 2s + 1) and 128 + 32s + 0..31 (groups
// 8 + 2s, 9 + 2s); q in 0..63, the -32 offset applied through the group sums.
void q6k_row(const Args& a) {
  const int64_t nb = a.cols / kQKK;
  const auto* w = static_cast<const BlockQ6_K*>(a.w);
  const auto* x = static_cast<const ActQ8K*>(a.x);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K& wb = w[b];
    const ActQ8K& xb = x[b];
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
    const __m512i sc16 = _mm512_castsi256_si512(sc);
    const __m512i ql0 = load_pair(wb.ql, 64), ql1 = load_pair(wb.ql + 32, 64);
    const __m512i qh = _mm512_loadu_si512(wb.qh);
    __m512i q[4];
    q[0] = _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
    q[1] = _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
    q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), m4), _mm512_and_si512(qh, m30));
    q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), m4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
    __m512i iacc = _mm512_setzero_si512();
    for (int s = 0; s < 4; ++s) {
      // int16 lanes 0-7: group 2s, 8-15: 2s + 1, 16-23: 8 + 2s, 24-31: 9 + 2s
      const __m512i idx = _mm512_set_epi16(9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s,
                                            9 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s,
                                            8 + 2 * s, 8 + 2 * s, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1,
                                            2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s,
                                            2 * s, 2 * s);
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(q[s], load_pair(xb.qs + 32 * s, 128)),
                                 _mm512_permutexvar_epi16(idx, sc16));
    }
    const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc, loadu(xb.bsums)), 5);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(fold(iacc), corr)),
                          _mm256_set1_ps(simd::f16_to_f32(wb.d) * xb.d), acc);
  }
  a.y[0] = simd::hsum(acc);
}

// One token: the 512-bit row kernel, row by row (one sequential stream); tiles of several
// tokens: the 256-bit register-blocked kernels.
template <void (*Row)(const Args&), template <int, int> class K>
void tile512(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt, int64_t cols, float* y, int64_t ys) {
  if (nt != 1) {
    tile<K>(w, ws, nr, x, xs, nt, cols, y, ys);
    return;
  }
  Args a{w, ws, x, xs, cols, y, ys};
  for (int r = 0; r < nr; ++r) {
    a.w = static_cast<const uint8_t*>(w) + r * ws;
    a.y = y + r;
    Row(a);
  }
}

}  // namespace

DotKernel dot_kernel_avx512(DType type) {
  switch (type) {
    case DType::kQ4_K: return {ActFormat::kQ8K, tile512<q4k_row, KQ4_K>};
    case DType::kQ6_K: return {ActFormat::kQ8K, tile512<q6k_row, KQ6_K>};
    default: return {};  // the VNNI or AVX2 build
  }
}

}  // namespace strata::backend::cpu
