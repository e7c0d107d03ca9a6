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

// float -> fp16 bits, saturating at +-65504 instead of overflowing to inf (a fitted scale or
// offset may land a hair beyond the largest half for blocks that span the fp16 range).
uint16_t f32_to_fp16_sat(float x);

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

// Two-level fits for super-blocks: every group of group_size elements gets its own integer
// sub-scale times one fp16 super-scale, as the K-quants and IQ4_XS store them.

// Levels of a symmetric grid: integers qmin..qmax (grid == nullptr), or a 16-value grid
// indexed 0..15.
struct Levels {
  int qmin;
  int qmax;
  const int8_t* grid;
};
struct KSymmetricSpec {
  int num_groups;
  int group_size;
  Levels levels;
  int sc_min;  // integer sub-scale range, e.g. -32..31
  int sc_max;
};
struct KSymmetricFit {
  uint16_t d;     // fp16 super-scale
  int8_t sc[16];  // [num_groups] sub-scales
  int8_t q[256];  // [num_groups * group_size] level (integer, or grid index)
};
// x[num_groups * group_size] ~ d * sc[g] * level(q[i]).
KSymmetricFit fit_k_symmetric(const float* x, const KSymmetricSpec& spec);

struct KAffineSpec {
  int num_groups;
  int group_size;
  int lmax;      // levels 0..lmax
  int sc_max;    // sub-scales and sub-mins 0..sc_max
};
struct KAffineFit {
  uint16_t d;      // fp16 super-scale of the scales
  uint16_t dmin;   // fp16 super-scale of the mins
  uint8_t sc[16];  // [num_groups]
  uint8_t mn[16];  // [num_groups]
  uint8_t l[256];  // [num_groups * group_size]
};
// x[num_groups * group_size] ~ d * sc[g] * l[i] - dmin * mn[g].
KAffineFit fit_k_affine(const float* x, const KAffineSpec& spec);

}  // namespace strata::quant_detail
