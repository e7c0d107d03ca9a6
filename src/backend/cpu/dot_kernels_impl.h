// The dot kernels' templates (see dot_kernels.h), included by exactly two translation units:
// dot_kernels.cpp (AVX2) and dot_kernels_vnni.cpp (AVX-VNNI, compiled with -mavxvnni). The
// integer kernels take an Isa policy for the two steps VNNI fuses:
//   Isa::madd_acc(acc, p16, s16) = acc + madd(p16, s16)   (vpdpwssd)
//   Isa::dot_u8i8(u, s)          = madd(maddubs(u, s), 1) (vpdpbusd, no int16 saturation)
// The includer defines STRATA_DOT_ISA, a policy type in its own anonymous namespace; all of
// this has internal linkage, so each TU gets its own copies.
#pragma once

#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/simd.h"

#ifndef STRATA_DOT_ISA
#error "define STRATA_DOT_ISA (the Isa policy type) before including dot_kernels_impl.h"
#endif

namespace strata::backend::cpu {
namespace {

using ISA = STRATA_DOT_ISA;


template <typename T>
inline const T* row_of(const void* p, size_t row_bytes, int i) {
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(p) + i * row_bytes);
}
inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Everything a kernel needs besides its template arguments.
struct Args {
  const void* w;
  size_t ws;
  const void* x;
  size_t xs;
  int64_t cols;
  float* y;
  int64_t ys;
};

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
  static float one(const uint16_t* p) {
    const uint32_t u = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// NR x NT accumulators; U-fold unrolled so at least 8 FMA chains hide the FMA latency.
template <typename L, int NR, int NT>
void dot_float(const Args& a) {
  constexpr int U = NR * NT >= 8 ? 1 : 8 / (NR * NT);
  using T = typename L::T;
  __m256 acc[U][NR][NT];
  for (auto& u : acc)
    for (auto& r : u)
      for (auto& v : r) v = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 * U <= a.cols; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      __m256 xv[NT];
      for (int t = 0; t < NT; ++t) xv[t] = _mm256_loadu_ps(row_of<float>(a.x, a.xs, t) + i + 8 * u);
      for (int r = 0; r < NR; ++r) {
        const __m256 wv = L::load(row_of<T>(a.w, a.ws, r) + i + 8 * u);
        for (int t = 0; t < NT; ++t) acc[u][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[u][r][t]);
      }
    }
  }
  for (; i + 8 <= a.cols; i += 8) {
    for (int r = 0; r < NR; ++r) {
      const __m256 wv = L::load(row_of<T>(a.w, a.ws, r) + i);
      for (int t = 0; t < NT; ++t) acc[0][r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(row_of<float>(a.x, a.xs, t) + i), acc[0][r][t]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int t = 0; t < NT; ++t) {
      for (int u = 1; u < U; ++u) acc[0][r][t] = _mm256_add_ps(acc[0][r][t], acc[u][r][t]);
      float s = simd::hsum(acc[0][r][t]);
      for (int64_t j = i; j < a.cols; ++j) s += L::one(row_of<T>(a.w, a.ws, r) + j) * row_of<float>(a.x, a.xs, t)[j];
      a.y[t * a.ys + r] = s;
    }
  }
}

// ---- 32-element formats against ActQ8_0 ----

// Each 32-element format: q(b) = the 32 weights as signed int8 (in order), scale(b) = d.
inline __m256i nibbles32(const uint8_t* qs) {  // low nibbles = elements 0..15, high = 16..31
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}
inline float fp16_scale(uint16_t d) { return simd::f16_to_f32(d); }

struct DecodeQ8_0 {
  using B = BlockQ8_0;
  static __m256i q(const B& b) { return loadu(b.qs); }
  static float scale(const B& b) { return fp16_scale(b.d); }
};
struct DecodeQ4_0 {
  using B = BlockQ4_0;
  static __m256i q(const B& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); }
  static float scale(const B& b) { return fp16_scale(b.d); }
};
// Q5_0 / Q5_1 fifth bits: 0x10 in byte i iff bit i of qh (little-endian 32 bits). Each byte
// gets the qh byte holding its bit; OR-ing every other bit to 1 leaves all-ones iff it is set.
inline __m256i q5_high_bits(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(h)),
                                             _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                               0x0101010101010101, 0x0000000000000000));
  const __m256i bits = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                         _mm256_set1_epi64x(-1));
  return _mm256_and_si256(bits, _mm256_set1_epi8(16));
}
// q = nibble + 16 * bit i of qh - 16.
struct DecodeQ5_0 {
  using B = BlockQ5_0;
  static __m256i q(const B& b) {
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b.qs), q5_high_bits(b.qh)), _mm256_set1_epi8(16));
  }
  static float scale(const B& b) { return fp16_scale(b.d); }
};
// Non-linear 4-bit grids through a byte shuffle: IQ4_NL (values up to |127|) and MXFP4 (E2M1
// doubled, the half folded into the E8M0 scale).
inline __m256i lookup16(const int8_t* table, __m256i idx) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table));
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(t), idx);
}
struct DecodeIQ4_NL {
  using B = BlockIQ4_NL;
  static __m256i q(const B& b) { return lookup16(kIq4nlValues, nibbles32(b.qs)); }
  static float scale(const B& b) { return fp16_scale(b.d); }
};
struct DecodeMXFP4 {
  using B = BlockMXFP4;
  static __m256i q(const B& b) { return lookup16(kMxfp4Values, nibbles32(b.qs)); }
  static float scale(const B& b) {
    const uint32_t u = e8m0_to_f32_half_bits(b.e);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// sum_b dw_b * dx_b * (wq_b . xq_b); the sign of w folded into x so maddubs sees |w|.
template <class Isa, typename D, int NR, int NT>
void dot_q32(const Args& a) {
  using B = typename D::B;
  const int64_t nb = a.cols / kQK;
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i xq[NT];
    float dx[NT];
    for (int t = 0; t < NT; ++t) {
      const ActQ8_0& xb = row_of<ActQ8_0>(a.x, a.xs, t)[b];
      xq[t] = loadu(xb.qs);
      dx[t] = xb.d;
    }
    for (int r = 0; r < NR; ++r) {
      const B& wb = row_of<B>(a.w, a.ws, r)[b];
      const __m256i wq = D::q(wb);
      const __m256i aw = _mm256_sign_epi8(wq, wq);
      const float dw = D::scale(wb);
      for (int t = 0; t < NT; ++t) {
        const __m256i p = Isa::dot_u8i8(aw, _mm256_sign_epi8(xq[t], wq));
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// Q4_1 / Q5_1: x = d * q + m with q unsigned (0..15 / 0..31), so maddubs takes q as is:
// sum_b dx_b * (d_b * (q . xq)_b + m_b * sum(xq)_b).
struct DecodeQ4_1 {
  using B = BlockQ4_1;
  static __m256i q(const B& b) { return nibbles32(b.qs); }
  static float scale(const B& b) { return fp16_scale(b.d); }
  static float min(const B& b) { return fp16_scale(b.m); }
};
struct DecodeQ5_1 {
  using B = BlockQ5_1;
  static __m256i q(const B& b) { return _mm256_or_si256(nibbles32(b.qs), q5_high_bits(b.qh)); }
  static float scale(const B& b) { return fp16_scale(b.d); }
  static float min(const B& b) { return fp16_scale(b.m); }
};

template <class Isa, typename D, int NR, int NT>
void dot_q32_min(const Args& a) {
  using B = typename D::B;
  const int64_t nb = a.cols / kQK;
  const __m256i ones8 = _mm256_set1_epi8(1);
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i xq[NT];
    __m256 sx[NT];  // sum of the block's int8 activations, as float lanes
    float dx[NT];
    for (int t = 0; t < NT; ++t) {
      const ActQ8_0& xb = row_of<ActQ8_0>(a.x, a.xs, t)[b];
      xq[t] = loadu(xb.qs);
      sx[t] = _mm256_cvtepi32_ps(Isa::dot_u8i8(ones8, xq[t]));
      dx[t] = xb.d;
    }
    for (int r = 0; r < NR; ++r) {
      const B& wb = row_of<B>(a.w, a.ws, r)[b];
      const __m256i wq = D::q(wb);
      const float dw = D::scale(wb), mw = D::min(wb);
      for (int t = 0; t < NT; ++t) {
        const __m256 p = _mm256_cvtepi32_ps(Isa::dot_u8i8(wq, xq[t]));
        acc[r][t] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dx[t]), acc[r][t]);
        acc[r][t] = _mm256_fmadd_ps(sx[t], _mm256_set1_ps(mw * dx[t]), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// ---- K-quants against ActQ8K ----

// Q4_K/Q5_K 6-bit scales and mins of one super-block, unpacked in SSE registers (the 16-byte
// load reads 4 bytes past the 12 scale bytes, into the block's own qh/qs): bytes sc0..7, m0..7.
inline __m128i k4_scales_mins(const uint8_t* s) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));     // u0 u1 u2 -
  const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x3f));                   // sc_lo m_lo
  const __m128i u2 = _mm_shuffle_epi32(v, 0xAA);                              // u2 u2
  const __m128i nib = _mm_and_si128(_mm_srlv_epi32(u2, _mm_setr_epi32(0, 4, 0, 4)), _mm_set1_epi8(0x0f));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(v, 2), _mm_set1_epi8(0x30));  // bits 6-7 -> 4-5
  const __m128i hi = _mm_or_si128(nib, top);                                  // sc_hi m_hi
  return _mm_unpacklo_epi32(lo, hi);                                          // sc_lo sc_hi m_lo m_hi
}

// int16 lane pair (2j, 2j+1) of each 128-bit half, broadcast across the half: group j's scale.
inline __m256i bcast_scale(__m256i scales16, int j) {
  return _mm256_shuffle_epi8(scales16, _mm256_set1_epi16(static_cast<int16_t>((2 * j + 1) << 8 | 2 * j)));
}

// Q4_K / Q5_K: sum_g d*sc_g*(q . x)_g - dmin * sum_g m_g * bsum_g; Q5_K adds the fifth bit.
template <class Isa, bool kFive, int NR, int NT>
void dot_q45k(const Args& a) {
  using B = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  const int64_t nb = a.cols / kQKK;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < NR; ++r) {
      const B& wb = row_of<B>(a.w, a.ws, r)[b];
      const __m128i scm = k4_scales_mins(wb.scales);
      const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
      const __m128i m8 = _mm_srli_si128(scm, 8);
      const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m_j for bsums 2j, 2j+1
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
        const __m256i s0 = bcast_scale(sc16, 2 * c), s1 = bcast_scale(sc16, 2 * c + 1);
        for (int t = 0; t < NT; ++t) {
          const int8_t* xq = row_of<ActQ8K>(a.x, a.xs, t)[b].qs + 64 * c;
          iacc[t] = Isa::madd_acc(iacc[t], _mm256_maddubs_epi16(lo, loadu(xq)), s0);
          iacc[t] = Isa::madd_acc(iacc[t], _mm256_maddubs_epi16(hi, loadu(xq + 32)), s1);
        }
      }
      const float d = simd::f16_to_f32(wb.d), dmin = simd::f16_to_f32(wb.dmin);
      for (int t = 0; t < NT; ++t) {
        const ActQ8K& xb = row_of<ActQ8K>(a.x, a.xs, t)[b];
        const __m256i mins = _mm256_madd_epi16(m16, loadu(xb.bsums));
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t]), _mm256_set1_ps(d * xb.d), acc[r][t]);
        acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dmin * xb.d), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// Q6_K: d * sum_g sc_g * (q . x)_g - 32 d * sum_g sc_g * bsum_g, q in 0..63.
template <class Isa, int NR, int NT>
void dot_q6k(const Args& a) {
  const int64_t nb = a.cols / kQKK;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < NR; ++r) {
      const BlockQ6_K& wb = row_of<BlockQ6_K>(a.w, a.ws, r)[b];
      // scales as int16, both 128-bit halves holding groups 0-7 resp. 8-15 in turn
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
      __m256i iacc[NT];
      for (int t = 0; t < NT; ++t) iacc[t] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = loadu(wb.ql + 64 * h), ql1 = loadu(wb.ql + 64 * h + 32);
        const __m256i qhv = loadu(wb.qh + 32 * h);
        // the 8 scales of this half in both 128-bit lanes
        const __m256i sch = h == 0 ? _mm256_permute2x128_si256(sc16, sc16, 0x00) : _mm256_permute2x128_si256(sc16, sc16, 0x11);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 4), m30));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 2), m30));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qhv, m30));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qhv, 2), m30));
        for (int s = 0; s < 4; ++s) {
          // low 16 elements: group 2s of the half, high 16: group 2s + 1
          const __m256i sv = _mm256_shuffle_epi8(
              sch, _mm256_setr_epi8(4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1,
                                    4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1,
                                    4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2,
                                    4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3,
                                    4 * s + 2, 4 * s + 3));
          for (int t = 0; t < NT; ++t) {
            const int8_t* xq = row_of<ActQ8K>(a.x, a.xs, t)[b].qs + 128 * h + 32 * s;
            iacc[t] = Isa::madd_acc(iacc[t], _mm256_maddubs_epi16(q[s], loadu(xq)), sv);
          }
        }
      }
      const float d = simd::f16_to_f32(wb.d);
      for (int t = 0; t < NT; ++t) {
        const ActQ8K& xb = row_of<ActQ8K>(a.x, a.xs, t)[b];
        const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(xb.bsums)), 5);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iacc[t], corr)),
                                    _mm256_set1_ps(d * xb.d), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// Q2_K / Q3_K: 16 groups of 16, 2-bit q (bits 2s..2s+1 of qs[32h + l] for element
// 128h + 32s + l, group 8h + 2s + l/16). Q2_K: x = d*sc*q - dmin*m (4-bit sc, m); Q3_K:
// x = d*sc*(u - 4) with u = q + 4 * (bit 4h + s of hmask[l]) and 6-bit signed sc.
// Sum: d * sum_g sc_g (u . x)_g - [dmin * sum_g m_g bsum_g  |  4 d * sum_g sc_g bsum_g].
template <class Isa, bool kThree, int NR, int NT>
void dot_q23k(const Args& a) {
  using B = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  const int64_t nb = a.cols / kQKK;
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < NR; ++r) {
      const B& wb = row_of<B>(a.w, a.ws, r)[b];
      __m256i sc16, m16;  // 16 int16: group scales; Q2_K: group mins
      if constexpr (kThree) {
        alignas(16) int8_t sc[16];
        for (int g = 0; g < 16; ++g) sc[g] = static_cast<int8_t>(q3_k_scale(g, wb.scales));
        sc16 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(sc)));
      } else {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales));
        sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
      }
      __m256i iacc[NT];
      for (int t = 0; t < NT; ++t) iacc[t] = _mm256_setzero_si256();
      __m256i hm;
      if constexpr (kThree) hm = loadu(wb.hmask);
      for (int h = 0; h < 2; ++h) {
        const __m256i qv = loadu(wb.qs + 32 * h);
        const __m256i sch = h == 0 ? _mm256_permute2x128_si256(sc16, sc16, 0x00) : _mm256_permute2x128_si256(sc16, sc16, 0x11);
        for (int s = 0; s < 4; ++s) {
          __m256i u = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * s), m3);
          if constexpr (kThree) {
            const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (4 * h + s)));
            u = _mm256_or_si256(u, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), _mm256_set1_epi8(4)));
          }
          const __m256i sv = _mm256_shuffle_epi8(
              sch, _mm256_setr_epi8(4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1,
                                    4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1, 4 * s, 4 * s + 1,
                                    4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2,
                                    4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3, 4 * s + 2, 4 * s + 3,
                                    4 * s + 2, 4 * s + 3));
          for (int t = 0; t < NT; ++t) {
            const int8_t* xq = row_of<ActQ8K>(a.x, a.xs, t)[b].qs + 128 * h + 32 * s;
            iacc[t] = Isa::madd_acc(iacc[t], _mm256_maddubs_epi16(u, loadu(xq)), sv);
          }
        }
      }
      const float d = fp16_scale(wb.d);
      for (int t = 0; t < NT; ++t) {
        const ActQ8K& xb = row_of<ActQ8K>(a.x, a.xs, t)[b];
        if constexpr (kThree) {
          const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(xb.bsums)), 2);
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iacc[t], corr)), _mm256_set1_ps(d * xb.d),
                                      acc[r][t]);
        } else {
          const __m256i mins = _mm256_madd_epi16(m16, loadu(xb.bsums));
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t]), _mm256_set1_ps(d * xb.d), acc[r][t]);
          acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(fp16_scale(wb.dmin) * xb.d), acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// IQ4_XS: d * sum_g (ls_g - 32) * (grid[q] . x)_g over 8 groups of 32; grid values signed, so
// the sign is folded into x as for Q8_0.
template <class Isa, int NR, int NT>
void dot_iq4xs(const Args& a) {
  const int64_t nb = a.cols / kQKK;
  __m256 acc[NR][NT];
  for (auto& r : acc)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < NR; ++r) {
      const BlockIQ4_XS& wb = row_of<BlockIQ4_XS>(a.w, a.ws, r)[b];
      __m256i iacc[NT];
      for (int t = 0; t < NT; ++t) iacc[t] = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        const __m256i q = lookup16(kIq4nlValues, nibbles32(wb.qs + 16 * g));
        const __m256i aq = _mm256_sign_epi8(q, q);
        const __m256i sc = _mm256_set1_epi16(static_cast<int16_t>(iq4_xs_scale(g, wb)));
        for (int t = 0; t < NT; ++t) {
          const __m256i xq = loadu(row_of<ActQ8K>(a.x, a.xs, t)[b].qs + 32 * g);
          iacc[t] = Isa::madd_acc(iacc[t], _mm256_maddubs_epi16(aq, _mm256_sign_epi8(xq, q)), sc);
        }
      }
      const float d = fp16_scale(wb.d);
      for (int t = 0; t < NT; ++t) {
        const float dx = row_of<ActQ8K>(a.x, a.xs, t)[b].d;
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t]), _mm256_set1_ps(d * dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) a.y[t * a.ys + r] = simd::hsum(acc[r][t]);
}

// Run-time (nr, nt) -> compile-time register blocks of kTileRows rows. One token (decode):
// one row at a time, so the weights are read as one sequential stream: interleaving 4 rows
// (4 streams 34 bytes a step) drops DRAM throughput from ~30 to ~12 GB/s on one Zen 5 core
// (bench/cpu/NOTES.md).
constexpr int kTileRows = 1;

template <template <int, int> class K, int NR>
void rows_of(Args a, int nt) {
  switch (nt) {
    case 1: K<NR, 1>::run(a); return;
    case 2: K<NR, 2>::run(a); return;
    case 3: K<NR, 3>::run(a); return;
    default: K<NR, 4>::run(a); return;
  }
}

template <template <int, int> class K>
void tile(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt, int64_t cols, float* y,
          int64_t ys) {
  Args a{w, ws, x, xs, cols, y, ys};
  int r = 0;
  for (; r + kTileRows <= nr; r += kTileRows) {
    a.w = static_cast<const uint8_t*>(w) + r * ws;
    a.y = y + r;
    rows_of<K, kTileRows>(a, nt);
  }
  for (; r < nr; ++r) {
    a.w = static_cast<const uint8_t*>(w) + r * ws;
    a.y = y + r;
    rows_of<K, 1>(a, nt);
  }
}
static_assert(kMaxTile == 4);

#define STRATA_KERNEL(name, expr)               \
  template <int NR, int NT>                     \
  struct name {                                 \
    static void run(const Args& a) { expr(a); } \
  };
STRATA_KERNEL(KF32, (dot_float<LoadF32, NR, NT>))
STRATA_KERNEL(KF16, (dot_float<LoadF16, NR, NT>))
STRATA_KERNEL(KBF16, (dot_float<LoadBF16, NR, NT>))
STRATA_KERNEL(KQ8_0, (dot_q32<ISA, DecodeQ8_0, NR, NT>))
STRATA_KERNEL(KQ4_0, (dot_q32<ISA, DecodeQ4_0, NR, NT>))
STRATA_KERNEL(KQ5_0, (dot_q32<ISA, DecodeQ5_0, NR, NT>))
STRATA_KERNEL(KQ4_1, (dot_q32_min<ISA, DecodeQ4_1, NR, NT>))
STRATA_KERNEL(KQ5_1, (dot_q32_min<ISA, DecodeQ5_1, NR, NT>))
STRATA_KERNEL(KIQ4_NL, (dot_q32<ISA, DecodeIQ4_NL, NR, NT>))
STRATA_KERNEL(KMXFP4, (dot_q32<ISA, DecodeMXFP4, NR, NT>))
STRATA_KERNEL(KQ4_K, (dot_q45k<ISA, false, NR, NT>))
STRATA_KERNEL(KQ5_K, (dot_q45k<ISA, true, NR, NT>))
STRATA_KERNEL(KQ6_K, (dot_q6k<ISA, NR, NT>))
STRATA_KERNEL(KIQ4_XS, (dot_iq4xs<ISA, NR, NT>))
STRATA_KERNEL(KQ2_K, (dot_q23k<ISA, false, NR, NT>))
STRATA_KERNEL(KQ3_K, (dot_q23k<ISA, true, NR, NT>))
#undef STRATA_KERNEL

// The fast kernel of each weight type for this TU's ISA (float types do not depend on it).
[[maybe_unused]] DotKernel make_dot_kernel(DType type) {
  switch (type) {
    case DType::kF32: return {ActFormat::kF32, tile<KF32>};
    case DType::kF16: return {ActFormat::kF32, tile<KF16>};
    case DType::kBF16: return {ActFormat::kF32, tile<KBF16>};
    case DType::kQ8_0: return {ActFormat::kQ8_0, tile<KQ8_0>};
    case DType::kQ4_0: return {ActFormat::kQ8_0, tile<KQ4_0>};
    case DType::kQ5_0: return {ActFormat::kQ8_0, tile<KQ5_0>};
    case DType::kQ4_1: return {ActFormat::kQ8_0, tile<KQ4_1>};
    case DType::kQ5_1: return {ActFormat::kQ8_0, tile<KQ5_1>};
    case DType::kIQ4_NL: return {ActFormat::kQ8_0, tile<KIQ4_NL>};
    case DType::kMXFP4: return {ActFormat::kQ8_0, tile<KMXFP4>};
    case DType::kQ4_K: return {ActFormat::kQ8K, tile<KQ4_K>};
    case DType::kQ5_K: return {ActFormat::kQ8K, tile<KQ5_K>};
    case DType::kQ6_K: return {ActFormat::kQ8K, tile<KQ6_K>};
    case DType::kIQ4_XS: return {ActFormat::kQ8K, tile<KIQ4_XS>};
    case DType::kQ2_K: return {ActFormat::kQ8K, tile<KQ2_K>};
    case DType::kQ3_K: return {ActFormat::kQ8K, tile<KQ3_K>};
    default: return {};
  }
}

}  // namespace
}  // namespace strata::backend::cpu
