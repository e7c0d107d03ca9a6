// Block layouts the CPU fast kernels decode (core/quant_blocks.h), and the activation formats
// they quantize x into (private to this backend: a float scale instead of fp16).
#pragma once

#include <cstdint>

#include "core/quant_blocks.h"

namespace strata::backend::cpu {

// Weight blocks: the GGUF layouts of core/quant_blocks.h, under the kernels' short names.
inline constexpr int kQK = strata::kQK;     // elements per block of the 32-element formats
inline constexpr int kQKK = strata::kQK_K;  // elements per K-quant super-block
using WQ4_0 = BlockQ4_0;
using WQ8_0 = BlockQ8_0;
using WQ4_K = BlockQ4_K;
using WQ5_K = BlockQ5_K;
using WQ6_K = BlockQ6_K;

// Q4_K / Q5_K: the 6-bit scales and mins of all 8 groups (k4_scale_min, unrolled).
inline void unpack_k4_scales(const uint8_t* s, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 0xF) | ((s[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
  }
}

// Activations for the 32-element formats: x = d * qs.
struct ActQ8_0 {
  float d;
  int8_t qs[kQK];
};
// Activations for K-quants: x = d * qs; bsums[g] = sum of qs over group g of 16.
struct ActQ8K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};
static_assert(sizeof(ActQ8_0) == 36);
static_assert(sizeof(ActQ8K) == 292);

}  // namespace strata::backend::cpu
