// AVX2/FMA dot kernels (variant 3: v2 plus an AVX-VNNI build of the integer kernels; v1 in
// bench/cpu/variants): a register block of NR weight rows against a tile of NT activation
// rows (see dot_kernels.h, templates in dot_kernels_impl.h). Scalar twin: ref::matmul
// (dequantize + double dot); tests bound the activation-quantization error.
#include "backend/cpu/dot_kernels.h"

#include <immintrin.h>

#include <atomic>

namespace strata::backend::cpu {
namespace {

struct Avx2Isa {
  static __m256i madd_acc(__m256i acc, __m256i p16, __m256i s16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, s16));
  }
  static __m256i dot_u8i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
};

}  // namespace
}  // namespace strata::backend::cpu

#define STRATA_DOT_ISA Avx2Isa
#include "backend/cpu/dot_kernels_impl.h"

namespace strata::backend::cpu {

DotKernel dot_kernel_vnni(DType type);    // dot_kernels_vnni.cpp
DotKernel dot_kernel_avx512(DType type);  // dot_kernels_avx512.cpp

namespace {
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
std::atomic<bool> g_use_vnni{__builtin_cpu_supports("avxvnni") != 0};
std::atomic<bool> g_use_avx512{cpu_has_avx512()};
}  // namespace

bool vnni_kernels_available() { return __builtin_cpu_supports("avxvnni") != 0; }
void set_vnni_kernels(bool on) { g_use_vnni.store(on && vnni_kernels_available()); }
bool vnni_kernels_enabled() { return g_use_vnni.load(); }
bool avx512_kernels_available() { return cpu_has_avx512(); }
void set_avx512_kernels(bool on) { g_use_avx512.store(on && avx512_kernels_available()); }
bool avx512_kernels_enabled() { return g_use_avx512.load(); }

DotKernel dot_kernel(DType type) {
  const bool integer = type != DType::kF32 && type != DType::kF16 && type != DType::kBF16;
  if (integer && g_use_avx512.load(std::memory_order_relaxed)) {
    if (DotKernel k = dot_kernel_avx512(type); k.dot != nullptr) return k;
  }
  if (integer && g_use_vnni.load(std::memory_order_relaxed)) return dot_kernel_vnni(type);
  return make_dot_kernel(type);
}

}  // namespace strata::backend::cpu
