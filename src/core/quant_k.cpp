// K-quant super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K): scalar dequantize, and the
// Q8_K activation quantizer. The weight quantizers are in quant_k_quantize.cpp.
#include <cmath>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "core/quant_fit.h"
#include "core/quant_internal.h"

namespace strata::quant_detail {

void dequantize_q2_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    const float dmin = fp16_to_f32(b[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const uint8_t sc = b[i].scales[8 * h + 2 * s + l / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const int q = (b[i].qs[32 * h + l] >> (2 * s)) & 3;
      dst[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

void dequantize_q3_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const float dl = d * static_cast<float>(q3_k_scale(8 * h + 2 * s + l / 16, b[i].scales));
      const int lo = (b[i].qs[32 * h + l] >> (2 * s)) & 3;
      const int hbit = (b[i].hmask[l] >> (4 * h + s)) & 1;
      dst[e] = dl * static_cast<float>(lo - (hbit ? 0 : 4));
    }
  }
}

void dequantize_q4_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    const float dmin = fp16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      k4_scale_min(2 * c, b[i].scales, &sc0, &m0);
      k4_scale_min(2 * c + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), min0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), min1 = dmin * static_cast<float>(m1);
      const uint8_t* q = b[i].qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        dst[64 * c + l] = d0 * static_cast<float>(q[l] & 0xF) - min0;
        dst[64 * c + 32 + l] = d1 * static_cast<float>(q[l] >> 4) - min1;
      }
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    const float dmin = fp16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      k4_scale_min(2 * c, b[i].scales, &sc0, &m0);
      k4_scale_min(2 * c + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), min0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), min1 = dmin * static_cast<float>(m1);
      const uint8_t* q = b[i].qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        const int q0 = (q[l] & 0xF) | ((b[i].qh[l] >> (2 * c)) & 1) << 4;
        const int q1 = (q[l] >> 4) | ((b[i].qh[l] >> (2 * c + 1)) & 1) << 4;
        dst[64 * c + l] = d0 * static_cast<float>(q0) - min0;
        dst[64 * c + 32 + l] = d1 * static_cast<float>(q1) - min1;
      }
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const uint8_t lq = b[i].ql[64 * h + l + 32 * (s & 1)];
      const int lo = s < 2 ? lq & 0xF : lq >> 4;
      const int hi = (b[i].qh[32 * h + l] >> (2 * s)) & 3;
      const float dl = d * static_cast<float>(b[i].scales[8 * h + 2 * s + l / 16]);
      dst[e] = dl * static_cast<float>((lo | hi << 4) - 32);
    }
  }
}

void dequantize_q8_k(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK_K) {
    for (int j = 0; j < kQK_K; ++j) dst[j] = b[i].d * static_cast<float>(b[i].qs[j]);
  }
}

void quantize_q8_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    // Round to nearest on a symmetric +-127 grid; the f32 scale costs nothing to keep exact.
    float amax = 0.0f;
    for (int j = 0; j < kQK_K; ++j) amax = std::fmax(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = d;
    for (int j = 0; j < kQK_K; ++j) b[i].qs[j] = static_cast<int8_t>(clamp_round(src[j] * id, -127, 127));
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * g + l];
      b[i].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace strata::quant_detail
