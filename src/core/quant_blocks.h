// GGUF block layouts, byte for byte, and the small decoding helpers that every backend's
// kernels share (K-quant scale unpacking, the IQ4 and MXFP4 value tables, E8M0 scales).
// Layouts follow the GGUF specification / ggml type traits; half scales are stored as raw
// IEEE binary16 bits (decode with fp16_to_f32 from core/fp16.h).
#pragma once

#include <cstdint>

namespace strata {

inline constexpr int kQK = 32;    // elements per block of the 32-element formats
inline constexpr int kQK_K = 256;  // elements per K-quant super-block
inline constexpr int kK4ScaleBytes = 12;  // Q4_K/Q5_K: 8 scales + 8 mins, 6 bits each

// x[i] = d * (q[i] - 8); q[i] = low nibble of qs[i] for i < 16, high nibble of qs[i-16] after.
struct BlockQ4_0 {
  uint16_t d;           // fp16
  uint8_t qs[kQK / 2];  // nibbles
};
// x[i] = d * q[i] + m; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;  // fp16
  uint16_t m;  // fp16
  uint8_t qs[kQK / 2];
};
// x[i] = d * (q[i] - 16); q = nibble as Q4_0 | bit i of qh (little-endian uint32) << 4.
struct BlockQ5_0 {
  uint16_t d;  // fp16
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x[i] = d * q[i] + m; 5-bit q as Q5_0.
struct BlockQ5_1 {
  uint16_t d;  // fp16
  uint16_t m;  // fp16
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x[i] = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK];
};

// 16 groups of 16; x = d*(sc&15) * q - dmin*(sc>>4), q 2-bit. Within each 128-element half h,
// element 32*s + l (s = 0..3, l = 0..31) is bits 2s..2s+1 of qs[32h + l], group 8h + 2s + l/16.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low nibble scale, high nibble min
  uint8_t qs[kQK_K / 4];
  uint16_t d;     // fp16, super-block scale for the scales
  uint16_t dmin;  // fp16, super-block scale for the mins
};
// 16 groups of 16; x = d*(sc-32) * (q - (hbit ? 0 : 4)), q 2-bit placed as in Q2_K; the high
// bit of element 128h + 32s + l is bit 4h + s of hmask[l]. Scales: see q3_k_scale().
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];  // 16 x 6 bits
  uint16_t d;          // fp16
};
// 8 groups of 32; x = d*sc * q - dmin*m, q 4-bit. Within each 64-element chunk c, element l
// (l < 32) is the low nibble of qs[32c + l] (group 2c), element 32 + l the high nibble (group
// 2c + 1). Scales and mins: see k4_scale_min().
struct BlockQ4_K {
  uint16_t d;     // fp16
  uint16_t dmin;  // fp16
  uint8_t scales[kK4ScaleBytes];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K with a fifth bit: element 64c + l has bit 2c of qh[l], element 64c + 32 + l bit 2c+1.
struct BlockQ5_K {
  uint16_t d;     // fp16
  uint16_t dmin;  // fp16
  uint8_t scales[kK4ScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 groups of 16; x = d * scales[g] * (q - 32), q 6-bit. Within each 128-element half h and
// l < 32: element 128h + 32s + l takes ql[64h + l + 32*(s&1)] (low nibble for s < 2, high for
// s >= 2) and bits 2s..2s+1 of qh[32h + l]; group 8h + 2s + l/16.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // fp16
};
// Activations for K-quant dot products: x = d * qs; bsums[g] = sum of qs over group g of 16.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

// x[i] = d * kIq4nlValues[q[i]]; nibbles as Q4_0.
struct BlockIQ4_NL {
  uint16_t d;  // fp16
  uint8_t qs[kQK / 2];
};
// 8 groups of 32, each laid out as an IQ4_NL block's nibbles; x = d*(ls-32) * kIq4nlValues[q],
// ls 6-bit: see iq4_xs_scale().
struct BlockIQ4_XS {
  uint16_t d;  // fp16
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
// OCP microscaling FP4 (E2M1) with an E8M0 shared exponent:
// x[i] = kMxfp4Values[q[i]] * e8m0_to_f32_half(e); nibbles as Q4_0.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kQK / 2];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);
static_assert(sizeof(BlockMXFP4) == 17);

// The IQ4_NL / IQ4_XS non-linear 4-bit grid.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
// E2M1 values times two (0, 0.5, 1, 1.5, 2, 3, 4, 6 doubled); the half goes into the scale.
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e - 127) / 2 as f32 bits (exact; e = 0 and 1 give f32 subnormals).
inline uint32_t e8m0_to_f32_half_bits(uint8_t e) {
  return e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
}

// Q4_K/Q5_K group j (0..7): 6-bit scale and min. Groups 0-3 sit in the low 6 bits of bytes
// 0-3 (scales) and 4-7 (mins); groups 4-7 keep their low 4 bits in the nibbles of bytes 8-11
// and their top 2 bits in the top 2 bits of bytes 0-3 (scales) and 4-7 (mins).
inline void k4_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}
// The inverse of k4_scale_min for all 8 groups; sc and m are 6-bit.
inline void k4_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t* scales) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

// Q3_K group j (0..15): the signed scale (-32..31). Low 4 bits: nibble of scales[j % 8] (low
// for j < 8); high 2 bits: bits 2*(j/4).. of scales[8 + j%4].
inline int q3_k_scale(int j, const uint8_t* scales) {
  const int lo = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  const int hi = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (lo | hi << 4) - 32;
}
// The inverse of q3_k_scale for all 16 groups; sc in -32..31.
inline void q3_k_pack_scales(const int8_t sc[16], uint8_t* scales) {
  for (int i = 0; i < 12; ++i) scales[i] = 0;
  for (int j = 0; j < 16; ++j) {
    const int u = sc[j] + 32;
    if (j < 8) {
      scales[j] = static_cast<uint8_t>(scales[j] | (u & 0xF));
    } else {
      scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | (u & 0xF) << 4);
    }
    scales[8 + j % 4] = static_cast<uint8_t>(scales[8 + j % 4] | ((u >> 4) & 3) << (2 * (j / 4)));
  }
}

// IQ4_XS group j (0..7): the signed scale ls - 32 (-32..31).
inline int iq4_xs_scale(int j, const BlockIQ4_XS& b) {
  const int lo = (b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF;
  const int hi = (b.scales_h >> (2 * j)) & 3;
  return (lo | hi << 4) - 32;
}

}  // namespace strata
