// The integer dot kernels built for AVX-VNNI (vpdpbusd / vpdpwssd fuse maddubs/madd with the
// accumulate): this file alone is compiled with -mavxvnni, and dot_kernel() calls into it only
// when the CPU reports avx_vnni.
#include <immintrin.h>

namespace strata::backend::cpu {
namespace {

struct VnniIsa {
  static __m256i madd_acc(__m256i acc, __m256i p16, __m256i s16) {
    return _mm256_dpwssd_avx_epi32(acc, p16, s16);
  }
  static __m256i dot_u8i8(__m256i u, __m256i s) {
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
  }
};

}  // namespace
}  // namespace strata::backend::cpu

#define STRATA_DOT_ISA VnniIsa
#include "backend/cpu/dot_kernels_impl.h"

namespace strata::backend::cpu {

DotKernel dot_kernel_vnni(DType type) { return make_dot_kernel(type); }

}  // namespace strata::backend::cpu
