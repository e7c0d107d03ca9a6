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
