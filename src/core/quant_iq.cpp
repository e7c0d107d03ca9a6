// Non-linear 4-bit formats: IQ4_NL, IQ4_XS (the kIq4nlValues grid) and MXFP4 (E2M1 values
// with an E8M0 block exponent): scalar dequantize and quantize.
#include <cmath>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "core/quant_fit.h"
#include "core/quant_internal.h"

namespace strata::quant_detail {

void dequantize_iq4_nl(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = d * static_cast<float>(kIq4nlValues[b[i].qs[j] & 0xF]);
      dst[j + 16] = d * static_cast<float>(kIq4nlValues[b[i].qs[j] >> 4]);
    }
  }
}

void dequantize_iq4_xs(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < num_blocks; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQK_K / kQK; ++g, dst += kQK) {
      const float dl = d * static_cast<float>(iq4_xs_scale(g, b[i]));
      const uint8_t* qs = b[i].qs + 16 * g;
      for (int j = 0; j < kQK / 2; ++j) {
        dst[j] = dl * static_cast<float>(kIq4nlValues[qs[j] & 0xF]);
        dst[j + 16] = dl * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
      }
    }
  }
}

void dequantize_mxfp4(const void* src, float* dst, int64_t num_blocks) {
  const auto* b = static_cast<const BlockMXFP4*>(src);
  for (int64_t i = 0; i < num_blocks; ++i, dst += kQK) {
    const float d = bits_to_f32(e8m0_to_f32_half_bits(b[i].e));
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>(kMxfp4Values[b[i].qs[j] & 0xF]) * d;
      dst[j + 16] = static_cast<float>(kMxfp4Values[b[i].qs[j] >> 4]) * d;
    }
  }
}

}  // namespace strata::quant_detail

namespace strata::quant_detail {

void quantize_iq4_nl(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockIQ4_NL*>(dst);
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    uint8_t q[kQK];
    b[i].d = f32_to_fp16_sat(fit_grid(src, nullptr, kQK, kIq4nlValues, q));
    // Re-pick the levels for the stored scale.
    const float d = fp16_to_f32(b[i].d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(nearest_grid_index(kIq4nlValues, src[j] * id));
    for (int j = 0; j < kQK / 2; ++j) b[i].qs[j] = static_cast<uint8_t>(q[j] | q[j + 16] << 4);
  }
}

void quantize_iq4_xs(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockIQ4_XS*>(dst);
  static constexpr KSymmetricSpec kSpec{8, 32, {0, 15, kIq4nlValues}, -32, 31};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KSymmetricFit fit = fit_k_symmetric(src, kSpec);
    b[i].d = fit.d;
    b[i].scales_h = 0;
    for (int g = 0; g < 4; ++g) b[i].scales_l[g] = 0;
    for (int g = 0; g < 8; ++g) {
      const int ls = fit.sc[g] + 32;
      b[i].scales_l[g / 2] = static_cast<uint8_t>(b[i].scales_l[g / 2] | (ls & 0xF) << (4 * (g % 2)));
      b[i].scales_h = static_cast<uint16_t>(b[i].scales_h | (ls >> 4) << (2 * g));
      const int8_t* q = fit.q + 32 * g;
      for (int j = 0; j < kQK / 2; ++j) b[i].qs[16 * g + j] = static_cast<uint8_t>(q[j] | q[j + 16] << 4);
    }
  }
}

// MXFP4: the block exponent is a power of two, so a search over three neighbouring exponents
// around "the largest magnitude lands on the top value (6)" finds the best; each value then
// takes its nearest E2M1 code.
void quantize_mxfp4(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockMXFP4*>(dst);
  // Codes 0..7 hold +0, 1, 2, 3, 4, 6, 8, 12 (doubled); 8..15 the negatives.
  auto nearest_code = [](float v) {  // v in units of the (halved) scale
    const float a = std::fabs(v);
    int best = 0;
    for (int c = 1; c < 8; ++c) {
      if (std::fabs(a - kMxfp4Values[c]) < std::fabs(a - kMxfp4Values[best])) best = c;
    }
    return v < 0.0f && best != 0 ? best + 8 : best;
  };
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(src[j]));
    uint8_t q[kQK] = {};
    int best_e = 0;
    if (amax > 0.0f) {
      // d = 2^(e - 128); amax / d ~ 12 gives e ~ 128 + log2(amax / 12).
      const int e0 = 128 + static_cast<int>(std::floor(std::log2(amax / 12.0f)));
      float best_err = INFINITY;
      for (int e = e0 - 1; e <= e0 + 2; ++e) {
        if (e < 0 || e > 254) continue;
        const float d = bits_to_f32(e8m0_to_f32_half_bits(static_cast<uint8_t>(e)));
        float err = 0.0f;
        for (int j = 0; j < kQK; ++j) {
          const float diff = static_cast<float>(kMxfp4Values[nearest_code(src[j] / d)]) * d - src[j];
          err += diff * diff;
        }
        if (err < best_err) {
          best_err = err;
          best_e = e;
        }
      }
      const float d = bits_to_f32(e8m0_to_f32_half_bits(static_cast<uint8_t>(best_e)));
      for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(nearest_code(src[j] / d));
    }
    b[i].e = static_cast<uint8_t>(best_e);
    for (int j = 0; j < kQK / 2; ++j) b[i].qs[j] = static_cast<uint8_t>(q[j] | q[j + 16] << 4);
  }
}

}  // namespace strata::quant_detail
