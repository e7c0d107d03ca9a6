// Block layouts the CPU fast kernels decode, and the activation formats they quantize x into.
// The weight layouts mirror the GGUF ones (core/quant.h owns the scalar codecs); the
// activation formats are private to this backend (a float scale instead of fp16).
#pragma once

#include <cstdint>

namespace strata::backend::cpu {

inline constexpr int kQK = 32;     // elements per block of the 32-element formats
inline constexpr int kQKK = 256;   // elements per K-quant super-block

// x[i] = d * (q[i] - 8); q[i] = low nibble of qs[i] for i < 16, high nibble of qs[i-16] after.
struct WQ4_0 {
  uint16_t d;  // fp16
  uint8_t qs[kQK / 2];
};
// x[i] = d * qs[i]
struct WQ8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK];
};
// 8 groups of 32: x = d*sc*q - dmin*m; chunk c of 64: low nibbles of qs[32c..] (group 2c),
// high nibbles (group 2c+1). Scales: 12 bytes of 6-bit sc/m (see unpack_k4_scales).
struct WQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// Q4_K plus a fifth bit: element 64c + l has bit 2c of qh[l], element 64c+32+l bit 2c+1.
struct WQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 groups of 16: x = d * scales[g] * (q - 32), q 6-bit. Half h, l < 32, s = 0..3: element
// 128h + 32s + l takes ql[64h + l + 32(s&1)] (low nibble s < 2, high s >= 2) and bits
// 2s..2s+1 of qh[32h + l].
struct WQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(WQ4_0) == 18);
static_assert(sizeof(WQ8_0) == 34);
static_assert(sizeof(WQ4_K) == 144);
static_assert(sizeof(WQ5_K) == 176);
static_assert(sizeof(WQ6_K) == 210);

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 groups.
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
