// Scale fitting shared by the quantizers: a grid of candidate scales, each refined by weighted
// least squares, keeping the one with the smallest weighted squared error. Internal to core.
#pragma once

#include <cmath>
#include <cstdint>

namespace strata::quant_detail {

// Round to nearest (ties to even) and clamp to [lo, hi]; NaN gives lo.
inline int clamp_round(float x, int lo, int hi) {
  if (!(x >= static_cast<float>(lo))) return lo;
  if (x >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(x));
}

// x[n] ~ scale * q[n], q integer in [qmin, qmax] (qmin < 0 < qmax). Minimizes
// sum w[i] (x[i] - scale q[i])^2 (w == nullptr: all ones). The scale may be negative, so the
// larger side of the grid can take the element of largest magnitude. Returns the scale.
float fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, int8_t* q);

// As fit_symmetric, over the 16 values of a non-linear grid (kIq4nlValues): x ~ scale *
// grid[q]. Returns the scale.
float fit_grid(const float* x, const float* w, int n, const int8_t grid[16], uint8_t* q);

// Nearest index of a non-linear grid of 16 ascending values to v.
int nearest_grid_index(const int8_t grid[16], float v);

struct AffineFit {
  float scale;   // >= 0
  float offset;  // x ~ scale * l + offset
};
// x[n] ~ scale * l[n] + offset, l integer in [0, lmax]. With offset_nonpositive, the offset is
// kept <= 0 (K-quant mins are stored as an unsigned amount subtracted).
AffineFit fit_affine(const float* x, const float* w, int n, int lmax, bool offset_nonpositive,
                     uint8_t* l);

// fit_symmetric with the scale stored as fp16 and q re-chosen for the stored scale; returns
// the fp16 bits.
uint16_t fit_symmetric_fp16(const float* x, int n, int qmin, int qmax, int8_t* q);

struct AffineFp16 {
  uint16_t d;  // fp16 scale
  uint16_t m;  // fp16 offset (added)
};
// fit_affine (offset free) with both stored as fp16 and l re-chosen for the stored values.
AffineFp16 fit_affine_fp16(const float* x, int n, int lmax, uint8_t* l);

}  // namespace strata::quant_detail
