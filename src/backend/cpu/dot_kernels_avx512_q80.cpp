// Q8_0 kernels for CPUs with AVX-512 (see dot_kernels_avx512.cpp): one token, and tiles of 2-4
// tokens. Compiled with the AVX-512 flags alone, like dot_kernels_avx512.cpp.
#include <algorithm>

#include "backend/cpu/dot_kernels_avx512_common.h"

namespace strata::backend::cpu {
namespace {

// ---- Q8_0, one token ----
// Two blocks per 512-bit register (block b in the low half, b + 1 in the high half). The
// token's blocks are repacked once per call (kQ80ChunkBlocks at a time) and reused by every
// row: per pair, the 64 qs bytes in one aligned register and corr = -128 * (each lane's sum of
// 4 of them), so dpbusd(corr, w ^ 0x80, x) = sum (w + 128) x - 128 sum x = w . x with one xor
// (AVX-512 has no vpsignb; abs, a mask and a masked negate per row cost 20% here). The scales
// d_w * d_x of four blocks are made at once: the four fp16 d of w lie 34 bytes apart in the
// row's first 128 bytes and one two-register word permute picks them out (a scalar
// conversion per block held the kernel at ~52 GB/s; bench/cpu/NOTES.md).
struct alignas(64) Q80Pair {
  int8_t qs[64];     // blocks 2p, 2p + 1 of x
  int32_t corr[16];  // -128 * sum of qs[4i .. 4i + 3]
};
constexpr int64_t kQ80ChunkBlocks = 256;  // x blocks packed at a time: 16 KB + 1 KB of stack

// x: n blocks -> xp: n / 2 pairs, dx: n scales.
void q80_pack(const ActQ8_0* x, int64_t n, Q80Pair* xp, float* dx) {
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t p = 0; 2 * p + 1 < n; ++p) {
    const __m512i xq = load_pair(x[2 * p].qs, sizeof(ActQ8_0));
    _mm512_store_si512(xp[p].qs, xq);
    const __m512i sum128 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), k80, xq);
    _mm512_store_si512(xp[p].corr, _mm512_sub_epi32(_mm512_setzero_si512(), sum128));
  }
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i].d;
}

// f32 lanes 0-7 = lane i of s, 8-15 = lane i + 1.
inline __m512 two_lanes(__m512 s, int i) {
  return _mm512_permutexvar_ps(
      _mm512_inserti64x4(_mm512_set1_epi32(i), _mm256_set1_epi32(i + 1), 1), s);
}

// acc + (blocks w[0], w[1] . pair xp) * s (s: lanes 0-7 block 0's scale, 8-15 block 1's).
// Blocks w[0], w[1] as unsigned bytes (w ^ 0x80) in one register.
inline __m512i q80_pair_u(const BlockQ8_0* w) {
  return _mm512_xor_si512(load_pair(w[0].qs, sizeof(BlockQ8_0)),
                          _mm512_set1_epi8(static_cast<char>(0x80)));
}
inline __m512 q80_pair(__m512i wu, const Q80Pair& xp, __m512 s, __m512 acc) {
  const __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(xp.corr), wu, _mm512_load_si512(xp.qs));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
}

// The d of blocks w[0..3] as f32: they lie 34 bytes apart in the first 128 bytes (int16 words
// 0, 17, 34, 51), picked by one two-register word permute.
inline __m128 q80_d4(const BlockQ8_0* w) {
  const __m512i d_words = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34, 17, 0);
  const auto* wb = reinterpret_cast<const uint8_t*>(w);
  const __m512i dw =
      _mm512_permutex2var_epi16(_mm512_loadu_si512(wb), d_words, _mm512_loadu_si512(wb + 64));
  return _mm_cvtph_ps(_mm512_castsi512_si128(dw));
}

// Blocks [0, n) of one row against the packed token (xp, dx; x for an odd last block).
float q80_row(const BlockQ8_0* w, const Q80Pair* xp, const float* dx, const ActQ8_0* x, int64_t n,
              int64_t pf) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= n; b += 4) {
    if (pf != 0) prefetch_ahead<3>(w + b, pf);
    const __m128 s4 = _mm_mul_ps(q80_d4(w + b), _mm_loadu_ps(dx + b));
    const __m512 s = _mm512_castps128_ps512(s4);
    acc0 = q80_pair(q80_pair_u(w + b), xp[b / 2], two_lanes(s, 0), acc0);
    acc1 = q80_pair(q80_pair_u(w + b + 2), xp[b / 2 + 1], two_lanes(s, 2), acc1);
  }
  if (b + 2 <= n) {
    const __m512 s = _mm512_castps256_ps512(_mm256_set_ps(0, 0, 0, 0, 0, 0,
                                                          simd::f16_to_f32(w[b + 1].d) * dx[b + 1],
                                                          simd::f16_to_f32(w[b].d) * dx[b]));
    acc0 = q80_pair(q80_pair_u(w + b), xp[b / 2], two_lanes(s, 0), acc0);
    b += 2;
  }
  acc0 = _mm512_add_ps(acc0, acc1);
  __m256 acc =
      _mm256_add_ps(_mm512_castps512_ps256(acc0),
                    _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(acc0), 1)));
  if (b < n) {  // an odd last block: the 256-bit step of dot_q32
    const __m256i wq = loadu(w[b].qs);
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq),
                                          _mm256_sign_epi8(loadu(x[b].qs), wq));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(simd::f16_to_f32(w[b].d) * dx[b]),
                          acc);
  }
  return simd::hsum(acc);
}

// One token: x packed, then each row in turn (one sequential stream); tiles of several tokens:
// the 256-bit register-blocked kernel.
// Tiles of 2-4 tokens (prefill) on rows of blocks in fours: q80_row's walk with each pair's
// weights (w ^ 0x80) and the four blocks' d decoded once for all NT tokens.
template <int NT>
void q80_rows_tokens(const uint8_t* w, size_t ws, int nr, const Q80Pair (*xp)[kQ80ChunkBlocks / 2],
                     const float (*dx)[kQ80ChunkBlocks], int64_t n, float* y, int64_t ys) {
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ8_0*>(w + r * ws);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b + 4 <= n; b += 4) {
      const __m128 d4 = q80_d4(wr + b);
      const __m512i wu0 = q80_pair_u(wr + b), wu1 = q80_pair_u(wr + b + 2);
      for (int t = 0; t < NT; ++t) {
        const __m512 sc = _mm512_castps128_ps512(_mm_mul_ps(d4, _mm_loadu_ps(dx[t] + b)));
        acc[t] = q80_pair(wu0, xp[t][b / 2], two_lanes(sc, 0), acc[t]);
        acc[t] = q80_pair(wu1, xp[t][b / 2 + 1], two_lanes(sc, 2), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 a = acc[t];
      y[t * ys + r] += simd::hsum(
          _mm256_add_ps(_mm512_castps512_ps256(a),
                        _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(a), 1))));
    }
  }
}

void q80_tile_tokens(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt,
                     int64_t cols, float* y, int64_t ys) {
  const int64_t nb = cols / kQK;
  Q80Pair xp[kMaxTile][kQ80ChunkBlocks / 2];
  alignas(64) float dx[kMaxTile][kQ80ChunkBlocks];
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ys + r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ80ChunkBlocks) {
    const int64_t n = std::min(kQ80ChunkBlocks, nb - c0);  // a multiple of 4
    for (int t = 0; t < nt; ++t)
      q80_pack(reinterpret_cast<const ActQ8_0*>(static_cast<const uint8_t*>(x) + t * xs) + c0, n,
               xp[t], dx[t]);
    const auto* wc = static_cast<const uint8_t*>(w) + c0 * sizeof(BlockQ8_0);
    with_tokens(nt, [&](auto k) { q80_rows_tokens<k>(wc, ws, nr, xp, dx, n, y, ys); });
  }
}

// One token: blocks [c0, c0 + n) of rows [0, nr) against the packed token (xp, dx: those n; xa:
// all of the token's blocks): y[r] += the rows' sums.
void q80_rows_one(const uint8_t* w, size_t ws, int nr, const Q80Pair* xp, const float* dx,
                  const ActQ8_0* xa, int64_t c0, int64_t n, float* y) {
  const int64_t pf = prefetch_bytes(kPrefetchQ8_0);
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ8_0*>(w + r * ws);
    y[r] += q80_row(wr + c0, xp, dx, xa + c0, n, pf);
  }
}

}  // namespace

void q80_tile_avx512(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt,
                     int64_t cols, float* y, int64_t ys) {
  if (nt != 1) {
    if (avx512_tile_tokens() && (cols / kQK) % 4 == 0)
      q80_tile_tokens(w, ws, nr, x, xs, nt, cols, y, ys);
    else
      tile<KQ8_0>(w, ws, nr, x, xs, nt, cols, y, ys);
    return;
  }
  const int64_t nb = cols / kQK;
  const auto* xa = static_cast<const ActQ8_0*>(x);
  Q80Pair xp[kQ80ChunkBlocks / 2];
  alignas(64) float dx[kQ80ChunkBlocks];
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ80ChunkBlocks) {
    const int64_t n = std::min(kQ80ChunkBlocks, nb - c0);
    q80_pack(xa + c0, n, xp, dx);
    q80_rows_one(static_cast<const uint8_t*>(w), ws, nr, xp, dx, xa, c0, n, y);
  }
}

// The packed one-token path: all of the token's pairs, then its scales (kQ80ChunkBlocks is
// even, so a chunk's pairs start at pair c0 / 2).
size_t q80_packed_bytes_avx512(int64_t cols) {
  const int64_t nb = cols / kQK;
  return static_cast<size_t>((nb + 1) / 2) * sizeof(Q80Pair) +
         static_cast<size_t>(nb) * sizeof(float);
}
void q80_pack_token_avx512(const void* x, int64_t cols, void* packed) {
  const int64_t nb = cols / kQK;
  auto* xp = static_cast<Q80Pair*>(packed);
  q80_pack(static_cast<const ActQ8_0*>(x), nb, xp, reinterpret_cast<float*>(xp + (nb + 1) / 2));
}
void q80_dot1_avx512(const void* w, size_t ws, int nr, const void* packed, const void* x,
                     int64_t cols, float* y) {
  const int64_t nb = cols / kQK;
  const auto* xp = static_cast<const Q80Pair*>(packed);
  const auto* dx = reinterpret_cast<const float*>(xp + (nb + 1) / 2);
  const auto* xa = static_cast<const ActQ8_0*>(x);
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ80ChunkBlocks)
    q80_rows_one(static_cast<const uint8_t*>(w), ws, nr, xp + c0 / 2, dx + c0, xa, c0,
                 std::min(kQ80ChunkBlocks, nb - c0), y);
}

}  // namespace strata::backend::cpu
