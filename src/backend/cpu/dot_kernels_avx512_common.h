// Shared by the AVX-512 kernel files (dot_kernels_avx512.cpp: Q4_K, Q6_K and the kernel table;
// dot_kernels_avx512_q80.cpp: Q8_0), each compiled with the AVX-512 flags and nothing else: the
// kernel templates of dot_kernels_impl.h in EVEX form, and the helpers the 512-bit kernels
// share, all with internal linkage (each of the two files gets its own copies).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backend/cpu/dot_kernels.h"

namespace strata::backend::cpu {
// The software prefetch distance of the one-token kernels (set_decode_prefetch): -1 the type's
// default (returned as type_default), 0 off, > 0 bytes.
int64_t avx512_prefetch_bytes(int64_t type_default);
// Whether the tiles of 2-4 tokens take the 512-bit forms (set_tile_tokens_avx512).
bool avx512_tile_tokens();
// Q8_0 rows against one token or a tile of tokens (DotTileFn), dot_kernels_avx512_q80.cpp.
void q80_tile_avx512(const void* w, size_t ws, int nr, const void* x, size_t xs, int nt,
                     int64_t cols, float* y, int64_t ys);
// Its packed one-token path (DotKernel::pack_bytes, pack, dot1).
size_t q80_packed_bytes_avx512(int64_t cols);
void q80_pack_token_avx512(const void* x, int64_t cols, void* packed);
void q80_dot1_avx512(const void* w, size_t ws, int nr, const void* packed, const void* x,
                     int64_t cols, float* y);
}  // namespace strata::backend::cpu

namespace strata::backend::cpu {
namespace {

struct Avx512Isa {
  static __m256i madd_acc(__m256i acc, __m256i p16, __m256i s16) {
    return _mm256_dpwssd_epi32(acc, p16, s16);
  }
  static __m256i dot_u8i8(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  }
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
  return _mm512_permutexvar_epi16(
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<int16_t>(i))),
                         _mm256_set1_epi16(static_cast<int16_t>(j)), 1),
      v);
}

// Software prefetch on the weight stream of the one-token kernels: NTA, this many bytes ahead
// (~200 ns of kernel time). With two threads decoding from DRAM it lifted the 28-layer sweep
// from ~42-45 to 52-64 GB/s (the hardware prefetchers alone keep too few lines in flight per
// core); T0 and shorter or longer distances did less (bench/cpu/NOTES.md).
constexpr int64_t kPrefetchQ8_0 = 12288, kPrefetchQ4_K = 8192, kPrefetchQ6_K = 12288;
inline int64_t prefetch_bytes(int64_t type_default) { return avx512_prefetch_bytes(type_default); }

// kLines cache lines from `ahead` bytes past p (a loop step of up to 64 * kLines bytes).
template <int kLines>
inline void prefetch_ahead(const void* p, int64_t ahead) {
  const char* c = static_cast<const char*>(p) + ahead;
  for (int i = 0; i < kLines; ++i) _mm_prefetch(c + 64 * i, _MM_HINT_NTA);
}

// f(std::integral_constant<int, NT>{}) for a tile of nt = 2, 3 or 4 tokens (a kernel unrolled
// for its token count).
template <class F>
void with_tokens(int nt, F&& f) {
  if (nt == 2)
    f(std::integral_constant<int, 2>{});
  else if (nt == 3)
    f(std::integral_constant<int, 3>{});
  else
    f(std::integral_constant<int, 4>{});
}

inline __m256i fold(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}
}  // namespace
}  // namespace strata::backend::cpu
