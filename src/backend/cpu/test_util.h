// Helpers shared by the CPU backend tests: seeded normal data (never zeros), weights of any
// type quantized from normal data, and the unit roundoff of f32.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/rng.h"

namespace strata::backend::cpu::testing {

inline constexpr double kF32Eps = 0x1.0p-24;  // unit roundoff of f32

inline std::vector<float> normal(Rng& rng, size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.normal() * scale;
  return v;
}

// rows x cols weights of `type`, each row from normal data with its own magnitude.
inline std::vector<uint8_t> random_weights(Rng& rng, DType type, int64_t rows, int64_t cols) {
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> src = normal(rng, static_cast<size_t>(cols), rng.uniform(0.05f, 2.0f));
    quantize_row(type, src.data(), w.data() + rb * r, cols);
  }
  return w;
}

}  // namespace strata::backend::cpu::testing
