// Dot kernels for CPUs with AVX-512 (F, BW, VL, VNNI), such as Zen 4/5: 512-bit kernels for the
// types decode is made of (Q4_K, Q6_K here, Q8_0 in dot_kernels_avx512_q80.cpp), for one token
// and for tiles of 2-4 (prefill); the other types' tiles use the kernel templates of
// dot_kernels_impl.h built with EVEX vpdpwssd on 256-bit registers. One
// token is decode, where a 256-bit Q4_K kernel runs out of instructions before a
// core runs out of memory bandwidth (bench/cpu/NOTES.md): a 512-bit register unpacks and
// multiplies two 32-element groups per instruction. This file alone is compiled with the
// AVX-512 flags (with dot_kernels_avx512_q80.cpp); dot_kernel() calls into it only when the CPU
// reports them. The Q4_K kernel's
// four-super-block path also needs AVX512-VBMI (a target attribute on its functions, called
// after its own CPUID check).
#include <algorithm>
#include <atomic>
#include <cstring>

#include "backend/cpu/dot_kernels_avx512_common.h"

namespace strata::backend::cpu {
namespace {

std::atomic<int64_t> g_prefetch{
    -1};  // set_decode_prefetch: -1 the type's distance, 0 off, > 0 this

// Q4_K, one token. Register p (p = 0, 1) holds qs[64p .. 64p + 63] of a super-block: its low
// nibbles are elements 128p + 0..31 (group 4p) and 128p + 64..95 (group 4p + 2), its high
// nibbles 128p + 32..63 (4p + 1) and 128p + 96..127 (4p + 3). The token's qs are repacked once
// per call in that order (Q4KAct: one aligned register per maddubs instead of two halves), d
// and dmin are converted together, and the float sums stay 512-bit to the end: 34 -> 43 GB/s
// in cache, 1 thread (the loop was ~70 instructions a super-block, issue-bound, not latency-
// bound: a second integer accumulator chain and in-lane scale shuffles changed nothing).
struct alignas(64) Q4KAct {
  int8_t qs[4][64];  // [2p + h]: elements 128p + 32h + 0..31, then 128p + 32h + 64..95
};
constexpr int64_t kQ4KChunkBlocks = 64;  // super-blocks packed at a time: 16 KB of stack

void q4k_pack(const ActQ8K* x, int64_t n, Q4KAct* xp) {
  for (int64_t b = 0; b < n; ++b) {
    for (int k = 0; k < 4; ++k) _mm512_store_si512(xp[b].qs[k], load_pair(x[b].qs + 128 * (k / 2) + 32 * (k % 2), 64));
  }
}

// Super-blocks [0, n) of one row against the packed token (xp; d and bsums from x).
float q4k_row(const BlockQ4_K* w, const Q4KAct* xp, const ActQ8K* x, int64_t n, int64_t pf) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int64_t b = 0; b < n; ++b) {
    const BlockQ4_K& wb = w[b];
    if (pf != 0) prefetch_ahead<3>(&wb, pf);
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
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(lo, _mm512_load_si512(xp[b].qs[2 * p])),
                                 two_scales(sc16, 4 * p, 4 * p + 2));
      iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(hi, _mm512_load_si512(xp[b].qs[2 * p + 1])),
                                 two_scales(sc16, 4 * p + 1, 4 * p + 3));
    }
    const __m256i mins = _mm256_madd_epi16(m16, loadu(xb.bsums));
    // d and dmin are adjacent fp16: both converted and scaled by x's d at once
    uint32_t dd_bits;
    std::memcpy(&dd_bits, &wb.d, 4);
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd_bits))), _mm_set1_ps(xb.d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc), _mm512_broadcastss_ps(dd), acc);
    acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(1)), acc_min);
  }
  const __m256 a256 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(acc), 1)));
  return simd::hsum(_mm256_sub_ps(a256, acc_min));
}

// ---- Q4_K, one token, four super-blocks at a time (AVX512-VBMI) ----
// q4k_row spends about half of its ~50 instructions a super-block around the 16 multiplies
// (the 6-bit scale unpack, four scale broadcasts, d and dmin, the min term). Here four super-
// blocks of a row share that work, and the rows loop inside the kernel (most Q4_K rows of a
// 0.6B model are exactly four super-blocks):
// - their 16-byte heads (d, dmin, 12 scale bytes) side by side in one register, unpacked in
//   one pass and gathered by one vpermt2b into u: bytes 8k + j scale j of super-block k,
//   32 + 8k + j its min j;
// - per 64 weights, vpdpbusd of the low and of the high nibbles (L, H: int32 sums of four
//   products, |.| <= 7680); the high sums go to the upper int16 of each lane (L's upper half
//   is dropped), so one vpdpwssd applies both groups' scales;
// - the scale operand is one in-lane vpshufd of two registers built per four super-blocks;
// - the min term: one vpmaddwd of the four super-blocks' mins against the token's 32-element
//   group sums (packed once per call), and one float step per four super-blocks.
// Kernel alone, 1 thread, in cache: 42-45 -> 53-58 GB/s (16-row calls, 1024-3072 columns);
// decode from DRAM gained only once its prefetches moved (below; bench/cpu/NOTES.md, round 3).
struct alignas(64) Q4KAct4 {
  int16_t gsum[32];  // [8k + j]: sum of x's qs over group j (32 elements) of super-block k
  float xd[8];       // [2k], [2k + 1]: x's d of super-block k (scales d and dmin alike)
};

// x: n super-blocks (a multiple of 4) -> xg: n / 4 groups of four.
void q4k_pack4(const ActQ8K* x, int64_t n, Q4KAct4* xg) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; 4 * g < n; ++g) {
    for (int k = 0; k < 4; ++k) {
      const ActQ8K& xb = x[4 * g + k];
      const __m256i s32 = _mm256_madd_epi16(loadu(xb.bsums), ones);  // pairs of 16-element sums
      _mm_storeu_si128(reinterpret_cast<__m128i*>(xg[g].gsum + 8 * k), _mm256_cvtepi32_epi16(s32));
      xg[g].xd[2 * k] = xg[g].xd[2 * k + 1] = xb.d;
    }
  }
}

// Byte indices of the vpermb steps, built at compile time.
struct Q4KIdx4 {
  alignas(64) uint8_t u[64];        // u from (lo6, hi6): vpermt2b
  alignas(64) uint8_t pairs[2][64];  // scale pairs of super-blocks 2h, 2h + 1 (see make_q4k_idx4)
  alignas(64) uint8_t mins[64];      // int16 lane 8k + j: min j of super-block k
};
constexpr Q4KIdx4 make_q4k_idx4() {
  Q4KIdx4 t{};
  // lo6 = head & 63: bytes 16k + 4..7 scales 0-3, 16k + 8..11 mins 0-3; hi6 (the second
  // source, index + 64): the same bytes hold scales 4-7 and mins 4-7
  for (int k = 0; k < 4; ++k) {
    for (int j = 0; j < 8; ++j) {
      const int src = 16 * k + (j & 3) + (j < 4 ? 0 : 64);
      t.u[8 * k + j] = static_cast<uint8_t>(src + 4);
      t.u[32 + 8 * k + j] = static_cast<uint8_t>(src + 8);
      t.mins[2 * (8 * k + j)] = static_cast<uint8_t>(32 + 8 * k + j);
    }
  }
  // pairs[h], dword d (128-bit lane l = d / 4, slot i = d % 4): super-block k = 2h + i / 2,
  // register p = i % 2; int16 scales (4p + c, 4p + c + 1) with c = 0 in lanes 0-1 (the
  // register's low 32 bytes, groups 4p and 4p + 1) and c = 2 in lanes 2-3
  for (int h = 0; h < 2; ++h) {
    for (int d = 0; d < 16; ++d) {
      const int l = d / 4, i = d % 4, k = 2 * h + i / 2, p = i % 2, c = l >= 2 ? 2 : 0;
      t.pairs[h][4 * d] = static_cast<uint8_t>(8 * k + 4 * p + c);
      t.pairs[h][4 * d + 2] = static_cast<uint8_t>(8 * k + 4 * p + c + 1);
    }
  }
  return t;
}
constexpr Q4KIdx4 kQ4KIdx4 = make_q4k_idx4();

// The scale operand of register p of super-block k when L and H are packed with vpackssdw
// (q4k_block_sum_g): 128-bit lane l holds L's four dwords of lane l as int16 words 0-3 and
// H's as words 4-7; L's lanes 0-1 are group 4p, lanes 2-3 group 4p + 2, H's one group more.
// Word w of lane l: the scale of group 4p + (l >= 2 ? 2 : 0) + (w >= 4 ? 1 : 0), i.e. byte
// 8k + that group of u (low byte of the word; the high byte is zeroed by the kEven mask).
struct Q4KIdxPacks {
  alignas(64) uint8_t sc[4][2][64];  // [k][p]
};
constexpr Q4KIdxPacks make_q4k_idx_packs() {
  Q4KIdxPacks t{};
  for (int k = 0; k < 4; ++k) {
    for (int p = 0; p < 2; ++p) {
      for (int l = 0; l < 4; ++l) {
        for (int w = 0; w < 8; ++w) {
          const int g = 4 * p + (l >= 2 ? 2 : 0) + (w >= 4 ? 1 : 0);
          t.sc[k][p][2 * (8 * l + w)] = static_cast<uint8_t>(8 * k + g);
        }
      }
    }
  }
  return t;
}
constexpr Q4KIdxPacks kQ4KIdxPacks = make_q4k_idx_packs();

#define STRATA_VBMI __attribute__((target("avx512vbmi")))

// Scale operand of register p of super-block k (pair = the pairs register holding k): dword
// slot 2 (k % 2) + p of each 128-bit lane, broadcast in the lane.
template <int k, int p>
inline __m512i q4k_scale_pair(__m512i pair) {
  constexpr int i = 2 * (k % 2) + p;
  return _mm512_shuffle_epi32(pair, static_cast<_MM_PERM_ENUM>(i * 0x55));
}

// Super-block k of a group: sum over its 8 groups of scale * (q . x), as int32 lanes.
template <int k>
STRATA_VBMI inline __m512i q4k_block_sum(const BlockQ4_K& wb, const Q4KAct& xk, __m512i pair, __m512i m4) {
  __m512i iacc = _mm512_setzero_si512();
  for (int p = 0; p < 2; ++p) {
    const __m512i q = _mm512_loadu_si512(wb.qs + 64 * p);
    const __m512i lo = _mm512_and_si512(q, m4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    const __m512i l = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_load_si512(xk.qs[2 * p]));
    const __m512i h = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_load_si512(xk.qs[2 * p + 1]));
    const __m512i lh = _mm512_mask_blend_epi16(0xAAAAAAAA, l, _mm512_slli_epi32(h, 16));  // int16 (L, H) pairs
    iacc = _mm512_dpwssd_epi32(iacc, lh, p == 0 ? q4k_scale_pair<k, 0>(pair) : q4k_scale_pair<k, 1>(pair));
  }
  return iacc;
}

// q4k_block_sum with fewer instructions a 64 bytes (8 instead of 10; bench/cpu/NOTES.md,
// round 4): the high nibbles in one GF2P8AFFINEQB (a bit matrix moving bits 4-7 to 0-3)
// instead of a shift and a mask, and L and H packed to int16 by one VPACKSSDW (|L|, |H| <=
// 7680: no saturation) instead of a shift and a blend, the scale operand (sc_p) laid out to
// match by its own VPERMB.
#define STRATA_GFNI __attribute__((target("avx512vbmi,gfni")))
constexpr long long kHighNibbleMatrix = 0x1020408000000000LL;  // bit i of the result: bit i + 4
STRATA_GFNI inline __m512i q4k_sc_packs(int k, int p, __m512i u) {
  return _mm512_maskz_permutexvar_epi8(0x5555555555555555ULL,
                                       _mm512_load_si512(kQ4KIdxPacks.sc[k][p]), u);
}
STRATA_GFNI inline __m512i q4k_block_sum_g(const BlockQ4_K& wb, const Q4KAct& xk, __m512i sc0,
                                           __m512i sc1, __m512i m4) {
  const __m512i hi_matrix = _mm512_set1_epi64(kHighNibbleMatrix);
  __m512i iacc = _mm512_setzero_si512();
  for (int p = 0; p < 2; ++p) {
    const __m512i q = _mm512_loadu_si512(wb.qs + 64 * p);
    const __m512i lo = _mm512_and_si512(q, m4);
    const __m512i hi = _mm512_gf2p8affine_epi64_epi8(q, hi_matrix, 0);
    const __m512i l =
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_load_si512(xk.qs[2 * p]));
    const __m512i h =
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_load_si512(xk.qs[2 * p + 1]));
    iacc = _mm512_dpwssd_epi32(iacc, _mm512_packs_epi32(l, h), p == 0 ? sc0 : sc1);
  }
  return iacc;
}

// The four 16-byte heads of a group of super-blocks (sizeof(BlockQ4_K) apart) unpacked at once:
// u, bytes 8k + j: scale j of super-block k, 32 + 8k + j: its min j (k4_scales_mins on the four
// heads side by side, their scale bytes at byte 4 of each lane); dw: [d0 dmin0 d1 dmin1 ...].
struct Q4KHeads {
  __m512i u;
  __m256 dw;
};
STRATA_GFNI __attribute__((always_inline)) inline Q4KHeads q4k_heads(const uint8_t* head) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m63 = _mm512_set1_epi8(0x3F),
                m48 = _mm512_set1_epi8(0x30);
  const __m512i nib_shift =
      _mm512_set4_epi32(0, 4, 0, 0);  // dword 1: scale bits 0-3, dword 2: min bits 0-3
  const __m512i head_d = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i hd = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(head)));
  hd = _mm512_inserti32x4(
      hd, _mm_loadu_si128(reinterpret_cast<const __m128i*>(head + sizeof(BlockQ4_K))), 1);
  hd = _mm512_inserti32x4(
      hd, _mm_loadu_si128(reinterpret_cast<const __m128i*>(head + 2 * sizeof(BlockQ4_K))), 2);
  hd = _mm512_inserti32x4(
      hd, _mm_loadu_si128(reinterpret_cast<const __m128i*>(head + 3 * sizeof(BlockQ4_K))), 3);
  const __m512i lo6 = _mm512_and_si512(hd, m63);
  const __m512i nib =
      _mm512_and_si512(_mm512_srlv_epi32(_mm512_shuffle_epi32(hd, _MM_PERM_DDDD), nib_shift), m4);
  const __m512i hi6 = _mm512_or_si512(nib, _mm512_and_si512(_mm512_srli_epi32(hd, 2), m48));
  return {_mm512_permutex2var_epi8(lo6, _mm512_load_si512(kQ4KIdx4.u), hi6),
          _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(head_d, hd)))};
}

// A group's four super-block sums (s_k: int32 lanes of super-block k) as one register: each
// 128-bit lane holds the four super-blocks' partial sums, ready for one float step.
STRATA_GFNI __attribute__((always_inline)) inline __m512i q4k_group_sums(__m512i s0, __m512i s1,
                                                                         __m512i s2, __m512i s3) {
  const __m512 s01 = _mm512_castsi512_ps(
      _mm512_add_epi32(_mm512_unpacklo_epi64(s0, s1), _mm512_unpackhi_epi64(s0, s1)));
  const __m512 s23 = _mm512_castsi512_ps(
      _mm512_add_epi32(_mm512_unpacklo_epi64(s2, s3), _mm512_unpackhi_epi64(s2, s3)));
  return _mm512_add_epi32(
      _mm512_castps_si512(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(2, 0, 2, 0))),
      _mm512_castps_si512(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 1, 3, 1))));
}

// Rows [0, nr) (ws bytes apart) over super-blocks [0, 4 * n4) against the packed token
// (xp: qs, xg: group sums and d): y[r] += the row's sum.
template <bool kGfni>
STRATA_GFNI void q4k_rows4(const uint8_t* w, size_t ws, int nr, const Q4KAct* xp, const Q4KAct4* xg,
                           int64_t n4, int64_t pf, float* y) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  constexpr __mmask64 kEven = 0x5555555555555555ULL;  // the low bytes of int16 lanes
  const __m512i idx_m = _mm512_load_si512(kQ4KIdx4.mins);
  const __m512i idx_p0 = _mm512_load_si512(kQ4KIdx4.pairs[0]),
                idx_p1 = _mm512_load_si512(kQ4KIdx4.pairs[1]);
  const __m512i dmin_lanes = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
  const __m512i d_lanes = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6);
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ4_K*>(w + r * ws);
    __m512 acc = _mm512_setzero_ps(), acc_min = _mm512_setzero_ps();
    for (int64_t g = 0; g < n4; ++g) {
      const BlockQ4_K* wb = wr + 4 * g;
      const auto* head = reinterpret_cast<const uint8_t*>(wb);
      const Q4KHeads h = q4k_heads(head);
      const __m512i u = h.u;
      const __m512 dd512 =
          _mm512_castps256_ps512(_mm256_mul_ps(h.dw, _mm256_load_ps(xg[g].xd)));  // times x's d
      // the min term, lanes 4k .. 4k + 3: super-block k
      const __m512i mins = _mm512_madd_epi16(_mm512_maskz_permutexvar_epi8(kEven, idx_m, u), _mm512_load_si512(xg[g].gsum));
      acc_min = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_permutexvar_ps(dmin_lanes, dd512),
                                acc_min);
      const Q4KAct* xk = xp + 4 * g;
      // The group's 9 lines, pf bytes ahead, 3 before each of the first three super-blocks.
      // Where they go matters more than the kernel's speed: all 9 at the group's start, or 2-3
      // before each of the four, decoded 9-11% fewer tokens/s in fast minutes (decode A/B,
      // bench/cpu/NOTES.md); not understood yet.
      __m512i s0, s1, s2, s3;
      if constexpr (kGfni) {
        if (pf != 0) prefetch_ahead<3>(head, pf);
        s0 = q4k_block_sum_g(wb[0], xk[0], q4k_sc_packs(0, 0, u), q4k_sc_packs(0, 1, u), m4);
        if (pf != 0) prefetch_ahead<3>(head + 192, pf);
        s1 = q4k_block_sum_g(wb[1], xk[1], q4k_sc_packs(1, 0, u), q4k_sc_packs(1, 1, u), m4);
        if (pf != 0) prefetch_ahead<3>(head + 384, pf);
        s2 = q4k_block_sum_g(wb[2], xk[2], q4k_sc_packs(2, 0, u), q4k_sc_packs(2, 1, u), m4);
        s3 = q4k_block_sum_g(wb[3], xk[3], q4k_sc_packs(3, 0, u), q4k_sc_packs(3, 1, u), m4);
      } else {
        const __m512i pair01 = _mm512_maskz_permutexvar_epi8(kEven, idx_p0, u);
        const __m512i pair23 = _mm512_maskz_permutexvar_epi8(kEven, idx_p1, u);
        if (pf != 0) prefetch_ahead<3>(head, pf);
        s0 = q4k_block_sum<0>(wb[0], xk[0], pair01, m4);
        if (pf != 0) prefetch_ahead<3>(head + 192, pf);
        s1 = q4k_block_sum<1>(wb[1], xk[1], pair01, m4);
        if (pf != 0) prefetch_ahead<3>(head + 384, pf);
        s2 = q4k_block_sum<2>(wb[2], xk[2], pair23, m4);
        s3 = q4k_block_sum<3>(wb[3], xk[3], pair23, m4);
      }
      // each 128-bit lane: [super-block 0, 1, 2, 3] partial sums, then one float step
      const __m512i z = q4k_group_sums(s0, s1, s2, s3);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(z), _mm512_permutexvar_ps(d_lanes, dd512), acc);
    }
    acc = _mm512_sub_ps(acc, acc_min);
    y[r] += simd::hsum(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(acc), 1))));
  }
}

const bool g_has_vbmi = __builtin_cpu_supports("avx512vbmi") != 0;
const bool g_has_gfni = g_has_vbmi && __builtin_cpu_supports("gfni") != 0;
std::atomic<bool> g_q4k_rows4{true};  // tests and benches: false = q4k_row alone
std::atomic<bool> g_q4k_gfni{true};   // tests and benches: false = q4k_rows4's shift-and-blend form

// ---- Q4_K, tiles of 2-4 tokens (prefill), four super-blocks at a time ----
// q4k_rows4's walk with the work of a group that does not depend on the token - the head's
// scale unpack, d and dmin, the 8 scale operands, the min selection - done once for all NT
// tokens; each token's block sums, min term and float step as there.
template <int NT>
STRATA_GFNI void q4k_rows4_tokens(const uint8_t* w, size_t ws, int nr,
                                  const Q4KAct (*xp)[kQ4KChunkBlocks],
                                  const Q4KAct4 (*xg)[kQ4KChunkBlocks / 4], int64_t n4, float* y,
                                  int64_t ys) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  constexpr __mmask64 kEven = 0x5555555555555555ULL;
  const __m512i idx_m = _mm512_load_si512(kQ4KIdx4.mins);
  const __m512i dmin_lanes = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
  const __m512i d_lanes = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6);
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ4_K*>(w + r * ws);
    __m512 acc[NT], acc_min[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc_min[t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < n4; ++g) {
      const BlockQ4_K* wb = wr + 4 * g;
      const auto* head = reinterpret_cast<const uint8_t*>(wb);
      const Q4KHeads h = q4k_heads(head);
      const __m512i u = h.u;
      const __m256 dw = h.dw;
      const __m512i min_sel = _mm512_maskz_permutexvar_epi8(kEven, idx_m, u);
      __m512i sc[8];
      for (int k = 0; k < 4; ++k) {
        sc[2 * k] = q4k_sc_packs(k, 0, u);
        sc[2 * k + 1] = q4k_sc_packs(k, 1, u);
      }
      for (int t = 0; t < NT; ++t) {
        const __m512 dd512 = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_load_ps(xg[t][g].xd)));
        const __m512i mins = _mm512_madd_epi16(min_sel, _mm512_load_si512(xg[t][g].gsum));
        acc_min[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mins),
                                     _mm512_permutexvar_ps(dmin_lanes, dd512), acc_min[t]);
        const Q4KAct* xk = xp[t] + 4 * g;
        const __m512i s0 = q4k_block_sum_g(wb[0], xk[0], sc[0], sc[1], m4);
        const __m512i s1 = q4k_block_sum_g(wb[1], xk[1], sc[2], sc[3], m4);
        const __m512i s2 = q4k_block_sum_g(wb[2], xk[2], sc[4], sc[5], m4);
        const __m512i s3 = q4k_block_sum_g(wb[3], xk[3], sc[6], sc[7], m4);
        const __m512i z = q4k_group_sums(s0, s1, s2, s3);
        acc[t] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(z), _mm512_permutexvar_ps(d_lanes, dd512), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 a = _mm512_sub_ps(acc[t], acc_min[t]);
      y[t * ys + r] += simd::hsum(
          _mm256_add_ps(_mm512_castps512_ps256(a),
                        _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(a), 1))));
    }
  }
}

std::atomic<bool> g_q4k_tokens{true};  // tests and benches: false = the VNNI tile templates

// Tiles of 2-4 tokens of rows whose super-blocks come in fours (GFNI + VBMI).
void q4k_tile_tokens(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt,
                     int64_t cols, float* y, int64_t ys) {
  const int64_t nb = cols / kQKK;
  Q4KAct xp[kMaxTile][kQ4KChunkBlocks];
  Q4KAct4 xg[kMaxTile][kQ4KChunkBlocks / 4];
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ys + r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ4KChunkBlocks) {
    const int64_t n = std::min(kQ4KChunkBlocks, nb - c0);  // a multiple of 4
    for (int t = 0; t < nt; ++t) {
      const auto* xa =
          reinterpret_cast<const ActQ8K*>(static_cast<const uint8_t*>(x) + t * xs) + c0;
      q4k_pack(xa, n, xp[t]);
      q4k_pack4(xa, n, xg[t]);
    }
    const auto* wc = static_cast<const uint8_t*>(w) + c0 * sizeof(BlockQ4_K);
    with_tokens(nt, [&](auto k) { q4k_rows4_tokens<k>(wc, ws, nr, xp, xg, n / 4, y, ys); });
  }
}

// One token: super-blocks [0, n) of rows [0, nr) (wc: their first, ws bytes apart) against the
// packed token (xp: n, xg: n / 4 groups; xa its blocks): y[r] += the rows' sums.
void q4k_rows_one(const uint8_t* wc, size_t ws, int nr, const Q4KAct* xp, const Q4KAct4* xg,
                  const ActQ8K* xa, int64_t n, float* y) {
  const int64_t pf = prefetch_bytes(kPrefetchQ4_K);
  const bool four = g_has_vbmi && g_q4k_rows4.load(std::memory_order_relaxed);
  const int64_t n4 = four ? n / 4 : 0;  // super-blocks [4 * n4, n): q4k_row
  const bool gfni = g_has_gfni && g_q4k_gfni.load(std::memory_order_relaxed);
  const auto rows4 = [&](const uint8_t* w, int rows, float* yr) {
    if (gfni)
      q4k_rows4<true>(w, ws, rows, xp, xg, n4, pf, yr);
    else
      q4k_rows4<false>(w, ws, rows, xp, xg, n4, pf, yr);
  };
  if (4 * n4 == n) {
    rows4(wc, nr, y);
    return;
  }
  // A row's fours, then its other super-blocks, row by row: the weights in one pass (a pass of
  // the fours over every row, then one of the rest, read each row in two strided pieces).
  for (int r = 0; r < nr; ++r) {
    if (n4 > 0) rows4(wc + r * ws, 1, y + r);
    const auto* wr = reinterpret_cast<const BlockQ4_K*>(wc + r * ws) + 4 * n4;
    y[r] += q4k_row(wr, xp + 4 * n4, xa + 4 * n4, n - 4 * n4, pf);
  }
}

void q4k_tile(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt, int64_t cols, float* y, int64_t ys) {
  if (nt != 1) {
    if (g_has_gfni && g_q4k_tokens.load(std::memory_order_relaxed) && (cols / kQKK) % 4 == 0)
      q4k_tile_tokens(w, ws, nr, x, xs, nt, cols, y, ys);
    else
      tile<KQ4_K>(w, ws, nr, x, xs, nt, cols, y, ys);
    return;
  }
  const int64_t nb = cols / kQKK;
  const auto* xa = static_cast<const ActQ8K*>(x);
  Q4KAct xp[kQ4KChunkBlocks];
  Q4KAct4 xg[kQ4KChunkBlocks / 4];
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ4KChunkBlocks) {
    const int64_t n = std::min(kQ4KChunkBlocks, nb - c0);
    q4k_pack(xa + c0, n, xp);
    q4k_pack4(xa + c0, n / 4 * 4, xg);
    q4k_rows_one(static_cast<const uint8_t*>(w) + c0 * sizeof(BlockQ4_K), ws, nr, xp, xg, xa + c0,
                 n, y);
  }
}

// The packed one-token path (DotKernel::pack, dot1): the token packed once per product, all
// of its super-blocks, then any rows against it.
int64_t q4k_groups_offset(int64_t nb) { return nb * static_cast<int64_t>(sizeof(Q4KAct)); }
size_t q4k_packed_bytes(int64_t cols) {
  const int64_t nb = cols / kQKK;
  return static_cast<size_t>(q4k_groups_offset(nb)) + static_cast<size_t>(nb / 4) * sizeof(Q4KAct4);
}
void q4k_pack_token(const void* x, int64_t cols, void* packed) {
  const int64_t nb = cols / kQKK;
  auto* base = static_cast<uint8_t*>(packed);
  q4k_pack(static_cast<const ActQ8K*>(x), nb, reinterpret_cast<Q4KAct*>(base));
  q4k_pack4(static_cast<const ActQ8K*>(x), nb / 4 * 4,
            reinterpret_cast<Q4KAct4*>(base + q4k_groups_offset(nb)));
}
void q4k_dot1(const void* w, size_t ws, int nr, const void* packed, const void* x, int64_t cols,
              float* y) {
  const int64_t nb = cols / kQKK;
  const auto* base = static_cast<const uint8_t*>(packed);
  const auto* xp = reinterpret_cast<const Q4KAct*>(base);
  const auto* xg = reinterpret_cast<const Q4KAct4*>(base + q4k_groups_offset(nb));
  const auto* xa = static_cast<const ActQ8K*>(x);
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ4KChunkBlocks) {
    const int64_t n = std::min(kQ4KChunkBlocks, nb - c0);
    q4k_rows_one(static_cast<const uint8_t*>(w) + c0 * sizeof(BlockQ4_K), ws, nr, xp + c0,
                 xg + c0 / 4, xa + c0, n, y);
  }
}

// Q6_K, one token. The two 128-element halves side by side: register s (s = 0..3) holds
// elements 32s + 0..31 (groups 2s, 2s + 1) and 128 + 32s + 0..31 (groups 8 + 2s, 9 + 2s); q in
// 0..63, the -32 offset applied through the group sums. The token's qs are repacked once per
// call in that order (Q6KAct, as Q4_K's): one aligned load per maddubs instead of two halves.
struct alignas(64) Q6KAct {
  int8_t qs[4][64];  // [s]: elements 32s + 0..31, then 128 + 32s + 0..31
};
constexpr int64_t kQ6KChunkBlocks = 64;  // super-blocks packed at a time: 16 KB of stack

void q6k_pack(const ActQ8K* x, int64_t n, Q6KAct* xp) {
  for (int64_t b = 0; b < n; ++b) {
    for (int s = 0; s < 4; ++s) _mm512_store_si512(xp[b].qs[s], load_pair(x[b].qs + 32 * s, 128));
  }
}

// One Q6_K super-block decoded in the registers' order above: q[s] (0..63), the int16 scales
// (sc, for the group-sum correction) and the scale operand of each register (so[s]: int16 lanes
// 0-7 group 2s, 8-15 2s + 1, 16-23 8 + 2s, 24-31 9 + 2s).
struct Q6KBlock {
  __m256i sc;
  __m512i q[4], so[4];
};
__attribute__((always_inline)) inline Q6KBlock q6k_unpack(const BlockQ6_K& wb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  Q6KBlock k;
  k.sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
  const __m512i sc16 = _mm512_castsi256_si512(k.sc);
  const __m512i ql0 = load_pair(wb.ql, 64), ql1 = load_pair(wb.ql + 32, 64);
  const __m512i qh = _mm512_loadu_si512(wb.qh);
  k.q[0] =
      _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
  k.q[1] =
      _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
  k.q[2] =
      _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), m4), _mm512_and_si512(qh, m30));
  k.q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), m4),
                           _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
  for (int s = 0; s < 4; ++s) {
    const __m512i idx = _mm512_set_epi16(
        9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s, 9 + 2 * s,
        8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s, 8 + 2 * s,
        2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1, 2 * s + 1,
        2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s);
    k.so[s] = _mm512_permutexvar_epi16(idx, sc16);
  }
  return k;
}

// The float step of one super-block against one token: acc + d_w d_x (sum_s so[s] . (q[s] . x)
// - 32 sum_g sc_g bsum_g).
__attribute__((always_inline)) inline __m256 q6k_block_step(const Q6KBlock& k, float dw,
                                                            const Q6KAct& xp, const ActQ8K& xb,
                                                            __m256 acc) {
  __m512i iacc = _mm512_setzero_si512();
  for (int s = 0; s < 4; ++s)
    iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(k.q[s], _mm512_load_si512(xp.qs[s])),
                               k.so[s]);
  const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(k.sc, loadu(xb.bsums)), 5);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(fold(iacc), corr)),
                         _mm256_set1_ps(dw * xb.d), acc);
}

// Super-blocks [0, n) of one row against the packed token (xp; d and bsums from x).
float q6k_row(const BlockQ6_K* w, const Q6KAct* xp, const ActQ8K* x, int64_t n, int64_t pf) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n; ++b) {
    if (pf != 0) prefetch_ahead<4>(&w[b], pf);
    acc = q6k_block_step(q6k_unpack(w[b]), simd::f16_to_f32(w[b].d), xp[b], x[b], acc);
  }
  return simd::hsum(acc);
}

// Tiles of 2-4 tokens (prefill): q6k_row's walk with a super-block decoded once for all NT
// tokens (xp[t], x[t]: token t's packed qs and blocks).
template <int NT>
void q6k_rows_tokens(const uint8_t* w, size_t ws, int nr, const Q6KAct (*xp)[kQ6KChunkBlocks],
                     const ActQ8K* const* x, int64_t n, float* y, int64_t ys) {
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ6_K*>(w + r * ws);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n; ++b) {
      const Q6KBlock k = q6k_unpack(wr[b]);
      const float dw = simd::f16_to_f32(wr[b].d);
      for (int t = 0; t < NT; ++t) acc[t] = q6k_block_step(k, dw, xp[t][b], x[t][b], acc[t]);
    }
    for (int t = 0; t < NT; ++t) y[t * ys + r] += simd::hsum(acc[t]);
  }
}

std::atomic<bool> g_tile_tokens512{true};  // set_tile_tokens_avx512: Q6_K and Q8_0 tiles of tokens

void q6k_tile_tokens(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt,
                     int64_t cols, float* y, int64_t ys) {
  const int64_t nb = cols / kQKK;
  Q6KAct xp[kMaxTile][kQ6KChunkBlocks];
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ys + r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ6KChunkBlocks) {
    const int64_t n = std::min(kQ6KChunkBlocks, nb - c0);
    const ActQ8K* xa[kMaxTile];
    for (int t = 0; t < nt; ++t) {
      xa[t] = reinterpret_cast<const ActQ8K*>(static_cast<const uint8_t*>(x) + t * xs) + c0;
      q6k_pack(xa[t], n, xp[t]);
    }
    const auto* wc = static_cast<const uint8_t*>(w) + c0 * sizeof(BlockQ6_K);
    with_tokens(nt, [&](auto k) { q6k_rows_tokens<k>(wc, ws, nr, xp, xa, n, y, ys); });
  }
}

// One token: super-blocks [c0, c0 + n) of rows [0, nr) against the packed token (xp: those n;
// xa: all of the token's blocks): y[r] += the rows' sums.
void q6k_rows_one(const uint8_t* w, size_t ws, int nr, const Q6KAct* xp, const ActQ8K* xa,
                  int64_t c0, int64_t n, float* y) {
  const int64_t pf = prefetch_bytes(kPrefetchQ6_K);
  for (int r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const BlockQ6_K*>(w + r * ws);
    y[r] += q6k_row(wr + c0, xp, xa + c0, n, pf);
  }
}

void q6k_tile(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt, int64_t cols, float* y, int64_t ys) {
  if (nt != 1) {
    if (g_tile_tokens512.load(std::memory_order_relaxed))
      q6k_tile_tokens(w, ws, nr, x, xs, nt, cols, y, ys);
    else
      tile<KQ6_K>(w, ws, nr, x, xs, nt, cols, y, ys);
    return;
  }
  const int64_t nb = cols / kQKK;
  const auto* xa = static_cast<const ActQ8K*>(x);
  Q6KAct xp[kQ6KChunkBlocks];
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ6KChunkBlocks) {
    const int64_t n = std::min(kQ6KChunkBlocks, nb - c0);
    q6k_pack(xa + c0, n, xp);
    q6k_rows_one(static_cast<const uint8_t*>(w), ws, nr, xp, xa, c0, n, y);
  }
}

// The packed one-token path (as Q4_K's): the token's super-blocks packed once per product.
size_t q6k_packed_bytes(int64_t cols) { return static_cast<size_t>(cols / kQKK) * sizeof(Q6KAct); }
void q6k_pack_token(const void* x, int64_t cols, void* packed) {
  q6k_pack(static_cast<const ActQ8K*>(x), cols / kQKK, static_cast<Q6KAct*>(packed));
}
void q6k_dot1(const void* w, size_t ws, int nr, const void* packed, const void* x, int64_t cols,
              float* y) {
  const int64_t nb = cols / kQKK;
  const auto* xp = static_cast<const Q6KAct*>(packed);
  const auto* xa = static_cast<const ActQ8K*>(x);
  for (int r = 0; r < nr; ++r) y[r] = 0;
  for (int64_t c0 = 0; c0 < nb; c0 += kQ6KChunkBlocks)
    q6k_rows_one(static_cast<const uint8_t*>(w), ws, nr, xp + c0, xa, c0,
                 std::min(kQ6KChunkBlocks, nb - c0), y);
}

}  // namespace

void set_decode_prefetch(int64_t bytes) { g_prefetch.store(bytes); }
int64_t avx512_prefetch_bytes(int64_t type_default) {
  const int64_t p = g_prefetch.load(std::memory_order_relaxed);
  return p < 0 ? type_default : p;
}
bool avx512_tile_tokens() { return g_tile_tokens512.load(std::memory_order_relaxed); }
void set_q4k_four_blocks(bool on) { g_q4k_rows4.store(on); }
bool q4k_four_blocks_available() { return g_has_vbmi; }
void set_q4k_gfni(bool on) { g_q4k_gfni.store(on); }
void set_q4k_tokens(bool on) { g_q4k_tokens.store(on); }
void set_tile_tokens_avx512(bool on) { g_tile_tokens512.store(on); }
bool q4k_gfni_available() { return g_has_gfni; }

DotKernel dot_kernel_avx512(DType type) {
  switch (type) {
    case DType::kQ8_0:
      return {ActFormat::kQ8_0, q80_tile_avx512, q80_packed_bytes_avx512, q80_pack_token_avx512,
              q80_dot1_avx512};
    case DType::kQ4_K:
      return {ActFormat::kQ8K, q4k_tile, q4k_packed_bytes, q4k_pack_token, q4k_dot1};
    case DType::kQ6_K:
      return {ActFormat::kQ8K, q6k_tile, q6k_packed_bytes, q6k_pack_token, q6k_dot1};
    default: return {};  // the VNNI or AVX2 build
  }
}

}  // namespace strata::backend::cpu
