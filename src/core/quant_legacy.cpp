// The 32-element formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: scalar dequantize and quantize.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "core/quant_fit.h"
#include "core/quant_internal.h"

namespace strata::quant_detail {
namespace {

// 5-bit quant i of a Q5 block: nibble plus bit i of qh (read as a little-endian uint32).
inline int q5_value(const uint8_t qh[4], const uint8_t qs[16], int i) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  const int nib = i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4;
  return nib | static_cast<int>((h >> i) & 1u) << 4;
}

inline void pack_nibbles(const uint8_t q[kQK], uint8_t qs[kQK / 2]) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>(q[j] | q[j + 16] << 4);
}

inline void pack_q5(const uint8_t q[kQK], uint8_t qh[4], uint8_t qs[kQK / 2]) {
  uint32_t h = 0;
  uint8_t low[kQK];
  for (int i = 0; i < kQK; ++i) {
    low[i] = q[i] & 0xF;
    h |= static_cast<uint32_t>(q[i] >> 4) << i;
  }
  pack_nibbles(low, qs);
  std::memcpy(qh, &h, 4);
}

}  // namespace

void dequantize_q4_0(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      dst[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      dst[j + 16] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(q5_value(b[i].qh, b[i].qs, j) - 16) * d;
  }
}

void dequantize_q5_1(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(q5_value(b[i].qh, b[i].qs, j)) * d + m;
  }
}

void dequantize_q8_0(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void quantize_q4_0(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    int8_t q[kQK];
    b[i].d = fit_symmetric_fp16(src, kQK, -8, 7, q);
    uint8_t u[kQK];
    for (int j = 0; j < kQK; ++j) u[j] = static_cast<uint8_t>(q[j] + 8);
    pack_nibbles(u, b[i].qs);
  }
}

void quantize_q5_0(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    int8_t q[kQK];
    b[i].d = fit_symmetric_fp16(src, kQK, -16, 15, q);
    uint8_t u[kQK];
    for (int j = 0; j < kQK; ++j) u[j] = static_cast<uint8_t>(q[j] + 16);
    pack_q5(u, b[i].qh, b[i].qs);
  }
}

void quantize_q8_0(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    // Round to nearest with the extreme on +-127: the error is at most d/2 per element, and
    // quantizing the dequantized block again reproduces it (the scale survives exactly).
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(src[j]));
    b[i].d = f32_to_fp16(amax / 127.0f);
    const float d = fp16_to_f32(b[i].d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(clamp_round(src[j] * id, -127, 127));
  }
}

void quantize_q4_1(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    uint8_t u[kQK];
    const AffineFp16 fit = fit_affine_fp16(src, kQK, 15, u);
    b[i].d = fit.d;
    b[i].m = fit.m;
    pack_nibbles(u, b[i].qs);
  }
}

void quantize_q5_1(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    uint8_t u[kQK];
    const AffineFp16 fit = fit_affine_fp16(src, kQK, 31, u);
    b[i].d = fit.d;
    b[i].m = fit.m;
    pack_q5(u, b[i].qh, b[i].qs);
  }
}

}  // namespace strata::quant_detail
