// K-quant weight quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): fit with quant_kfit.cpp's
// two-level fits (round to nearest with a scale search, no importance matrix), then pack the
// levels into each format's layout (see quant_blocks.h).
#include <cstring>

#include "core/quant_blocks.h"
#include "core/quant_fit.h"
#include "core/quant_internal.h"

namespace strata::quant_detail {

void quantize_q2_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ2_K*>(dst);
  constexpr KAffineSpec kSpec{16, 16, 3, 15};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KAffineFit fit = fit_k_affine(src, kSpec);
    b[i].d = fit.d;
    b[i].dmin = fit.dmin;
    for (int g = 0; g < 16; ++g) b[i].scales[g] = static_cast<uint8_t>(fit.sc[g] | fit.mn[g] << 4);
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      b[i].qs[32 * h + l] = static_cast<uint8_t>(b[i].qs[32 * h + l] | fit.l[e] << (2 * s));
    }
  }
}

void quantize_q3_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ3_K*>(dst);
  constexpr KSymmetricSpec kSpec{16, 16, {-4, 3, nullptr}, -32, 31};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KSymmetricFit fit = fit_k_symmetric(src, kSpec);
    b[i].d = fit.d;
    q3_k_pack_scales(fit.sc, b[i].scales);
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    std::memset(b[i].hmask, 0, sizeof(b[i].hmask));
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const int u = fit.q[e] + 4;  // 0..7: low 2 bits in qs, bit 2 in hmask
      b[i].qs[32 * h + l] = static_cast<uint8_t>(b[i].qs[32 * h + l] | (u & 3) << (2 * s));
      b[i].hmask[l] = static_cast<uint8_t>(b[i].hmask[l] | (u >> 2) << (4 * h + s));
    }
  }
}

void quantize_q4_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ4_K*>(dst);
  constexpr KAffineSpec kSpec{8, 32, 15, 63};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KAffineFit fit = fit_k_affine(src, kSpec);
    b[i].d = fit.d;
    b[i].dmin = fit.dmin;
    k4_pack_scale_min(fit.sc, fit.mn, b[i].scales);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b[i].qs[32 * c + l] = static_cast<uint8_t>(fit.l[64 * c + l] | fit.l[64 * c + 32 + l] << 4);
      }
    }
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ5_K*>(dst);
  constexpr KAffineSpec kSpec{8, 32, 31, 63};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KAffineFit fit = fit_k_affine(src, kSpec);
    b[i].d = fit.d;
    b[i].dmin = fit.dmin;
    k4_pack_scale_min(fit.sc, fit.mn, b[i].scales);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = fit.l[64 * c + l], hi = fit.l[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | (hi & 0xF) << 4);
        b[i].qh[l] = static_cast<uint8_t>(b[i].qh[l] | (lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
      }
    }
  }
}

void quantize_q6_k(const float* src, void* dst, int64_t num_blocks) {
  auto* b = static_cast<BlockQ6_K*>(dst);
  constexpr KSymmetricSpec kSpec{16, 16, {-32, 31, nullptr}, -128, 127};
  for (int64_t i = 0; i < num_blocks; ++i, src += kQK_K) {
    const KSymmetricFit fit = fit_k_symmetric(src, kSpec);
    b[i].d = fit.d;
    for (int g = 0; g < 16; ++g) b[i].scales[g] = fit.sc[g];
    std::memset(b[i].ql, 0, sizeof(b[i].ql));
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const int u = fit.q[e] + 32;  // 0..63: low nibble in ql, top 2 bits in qh
      uint8_t& lq = b[i].ql[64 * h + l + 32 * (s & 1)];
      lq = static_cast<uint8_t>(lq | (u & 0xF) << (s < 2 ? 0 : 4));
      b[i].qh[32 * h + l] = static_cast<uint8_t>(b[i].qh[32 * h + l] | (u >> 4) << (2 * s));
    }
  }
}

}  // namespace strata::quant_detail
