// The greedy choice over a row of logits, shared by the sampler and the backends' default
// argmax_rows: the first index of the largest value; NaN never wins (all NaN: 0).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>

namespace strata {

// Two passes the compiler keeps in registers: eight running maxima, then the first match (a
// 150k vocabulary: ~40 us instead of ~150 us for std::max_element).
inline int32_t first_argmax(std::span<const float> x) {
  const size_t n = x.size();
  float m[8];
  std::fill(m, m + 8, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  }
  float best = *std::max_element(m, m + 8);
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  for (size_t j = 0; j < n; ++j) {
    if (x[j] == best) return static_cast<int32_t>(j);
  }
  return 0;  // all NaN (or empty)
}

}  // namespace strata
