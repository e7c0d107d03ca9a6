// Scale fitting for the quantizers (see quant_fit.h). The idea is the usual one for block
// quantization: try a grid of scales around "the extreme lands on the grid's end", assign each
// value to its nearest level, solve the scale (and offset) by least squares for that
// assignment, and keep the best; then a few assign / re-solve rounds (Lloyd iterations).
#include "core/quant_fit.h"

#include "core/fp16.h"

namespace strata::quant_detail {
namespace {

constexpr int kMaxN = 256;

inline float weight(const float* w, int i) { return w != nullptr ? w[i] : 1.0f; }

// Least-squares scale for fixed levels v[i]: s = sum w x v / sum w v^2; returns the gain
// (sum w x v)^2 / sum w v^2, the amount the squared error drops below sum w x^2.
inline float ls_gain(const float* x, const float* w, const float* v, int n, float* scale) {
  float sxv = 0.0f, svv = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float wi = weight(w, i);
    sxv += wi * x[i] * v[i];
    svv += wi * v[i] * v[i];
  }
  if (svv <= 0.0f) {
    *scale = 0.0f;
    return 0.0f;
  }
  *scale = sxv / svv;
  return sxv * sxv / svv;
}

}  // namespace

uint16_t f32_to_fp16_sat(float x) { return f32_to_fp16(std::fmax(-65504.0f, std::fmin(65504.0f, x))); }

float fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, int8_t* q) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  for (int i = 0; i < n; ++i) q[i] = 0;
  if (amax == 0.0f) return 0.0f;
  float v[kMaxN];
  float best_gain = -1.0f, best_scale = 0.0f;
  // Candidate: the extreme maps to `target` (negative: the qmin side).
  auto try_inverse_scale = [&](float iscale) {
    for (int i = 0; i < n; ++i) v[i] = static_cast<float>(clamp_round(x[i] * iscale, qmin, qmax));
    float scale;
    const float gain = ls_gain(x, w, v, n, &scale);
    if (gain > best_gain) {
      best_gain = gain;
      best_scale = scale;
    }
  };
  for (int k = -10; k <= 10; ++k) {
    try_inverse_scale((static_cast<float>(qmin) - 0.05f * static_cast<float>(k)) / max);
    try_inverse_scale((static_cast<float>(qmax) + 0.05f * static_cast<float>(k)) / max);
  }
  for (int round = 0; round < 3 && best_scale != 0.0f; ++round) try_inverse_scale(1.0f / best_scale);
  const float iscale = best_scale != 0.0f ? 1.0f / best_scale : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(clamp_round(x[i] * iscale, qmin, qmax));
  return best_scale;
}

int nearest_grid_index(const int8_t grid[16], float v) {
  // Binary search for the first grid value >= v, then pick the closer neighbour.
  int lo = 0, hi = 15;
  if (v <= grid[0]) return 0;
  if (v >= grid[15]) return 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < grid[mid]) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return v - static_cast<float>(grid[lo]) <= static_cast<float>(grid[hi]) - v ? lo : hi;
}

float fit_grid(const float* x, const float* w, int n, const int8_t grid[16], uint8_t* q) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(nearest_grid_index(grid, 0.0f));
  if (amax == 0.0f) return 0.0f;
  float v[kMaxN];
  float best_gain = -1.0f, best_scale = 0.0f;
  auto try_inverse_scale = [&](float iscale) {
    for (int i = 0; i < n; ++i) v[i] = grid[nearest_grid_index(grid, x[i] * iscale)];
    float scale;
    const float gain = ls_gain(x, w, v, n, &scale);
    if (gain > best_gain) {
      best_gain = gain;
      best_scale = scale;
    }
  };
  const float lo = grid[0], hi = grid[15];
  for (int k = -10; k <= 10; ++k) {
    const float t = 1.0f + 0.02f * static_cast<float>(k);
    try_inverse_scale(lo * t / max);
    try_inverse_scale(hi * t / max);
  }
  for (int round = 0; round < 3 && best_scale != 0.0f; ++round) try_inverse_scale(1.0f / best_scale);
  const float iscale = best_scale != 0.0f ? 1.0f / best_scale : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(nearest_grid_index(grid, x[i] * iscale));
  return best_scale;
}

AffineFit fit_affine(const float* x, const float* w, int n, int lmax, bool offset_nonpositive,
                     uint8_t* l) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  if (offset_nonpositive) lo = std::fmin(lo, 0.0f);
  for (int i = 0; i < n; ++i) l[i] = 0;
  if (!(hi > lo)) return {0.0f, lo};

  uint8_t cand[kMaxN];
  AffineFit best{(hi - lo) / static_cast<float>(lmax), lo};
  float best_err = INFINITY;
  // Solve min sum w (x - s l - o)^2 for fixed l; keep it if it beats the best so far.
  auto solve = [&](const uint8_t* lv) {
    float sw = 0, sl = 0, sll = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; ++i) {
      const float wi = weight(w, i), li = lv[i];
      sw += wi;
      sl += wi * li;
      sll += wi * li * li;
      sx += wi * x[i];
      slx += wi * li * x[i];
    }
    const float det = sw * sll - sl * sl;
    if (!(det > 0.0f)) return;
    float s = (sw * slx - sl * sx) / det;
    float o = (sll * sx - sl * slx) / det;
    if (offset_nonpositive && o > 0.0f) {
      o = 0.0f;
      s = slx / sll;
    }
    if (!(s > 0.0f)) return;
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = s * static_cast<float>(lv[i]) + o - x[i];
      err += weight(w, i) * diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best = {s, o};
      for (int i = 0; i < n; ++i) l[i] = lv[i];
    }
  };
  auto assign = [&](float iscale, float offset) {
    for (int i = 0; i < n; ++i) cand[i] = static_cast<uint8_t>(clamp_round((x[i] - offset) * iscale, 0, lmax));
    solve(cand);
  };
  for (int k = -10; k <= 10; ++k) {
    assign((static_cast<float>(lmax) + 0.1f * static_cast<float>(k)) / (hi - lo), lo);
  }
  for (int round = 0; round < 3; ++round) assign(1.0f / best.scale, best.offset);
  return best;
}

uint16_t fit_symmetric_fp16(const float* x, int n, int qmin, int qmax, int8_t* q) {
  const uint16_t d = f32_to_fp16_sat(fit_symmetric(x, nullptr, n, qmin, qmax, q));
  const float df = fp16_to_f32(d);
  const float id = df != 0.0f ? 1.0f / df : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(clamp_round(x[i] * id, qmin, qmax));
  return d;
}

AffineFp16 fit_affine_fp16(const float* x, int n, int lmax, uint8_t* l) {
  const AffineFit fit = fit_affine(x, nullptr, n, lmax, false, l);
  const AffineFp16 out{f32_to_fp16_sat(fit.scale), f32_to_fp16_sat(fit.offset)};
  const float d = fp16_to_f32(out.d), m = fp16_to_f32(out.m);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) l[i] = static_cast<uint8_t>(clamp_round((x[i] - m) * id, 0, lmax));
  return out;
}

}  // namespace strata::quant_detail
