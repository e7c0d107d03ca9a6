// Two-level (super-block) scale fitting for the K-quants and IQ4_XS (see quant_fit.h):
// 1. fit each group alone (quant_fit.cpp), 2. quantize the group scales to integers times
// one fp16 super-scale, trying a few super-scales, 3. re-pick every level for the stored
// scales, 4. re-solve the super-scale(s) by least squares and keep it if the error drops.
#include <algorithm>
#include <cmath>

#include "core/fp16.h"
#include "core/quant_fit.h"

namespace strata::quant_detail {
namespace {

inline float level_value(const Levels& lv, int q) {
  return lv.grid != nullptr ? static_cast<float>(lv.grid[q]) : static_cast<float>(q);
}
inline int nearest_level(const Levels& lv, float v) {
  return lv.grid != nullptr ? nearest_grid_index(lv.grid, v) : clamp_round(v, lv.qmin, lv.qmax);
}

// Levels for one group at scale s: q[group_size] filled, returns the squared error.
float assign_group_symmetric(const float* x, const KSymmetricSpec& spec, float s, int8_t* q) {
  const float is = s != 0.0f ? 1.0f / s : 0.0f;
  float err = 0.0f;
  for (int j = 0; j < spec.group_size; ++j) {
    q[j] = static_cast<int8_t>(nearest_level(spec.levels, x[j] * is));
    const float diff = s * level_value(spec.levels, q[j]) - x[j];
    err += diff * diff;
  }
  return err;
}

// Given the fp16 super-scale and the group scales as floats, fill sc and q and return the
// squared error. Each group tries the integer sub-scales just below and above its own.
float assign_symmetric(const float* x, const KSymmetricSpec& spec, const float* group_scale,
                       KSymmetricFit* fit) {
  const float d = fp16_to_f32(fit->d);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  float err = 0.0f;
  for (int g = 0; g < spec.num_groups; ++g) {
    const float* xg = x + g * spec.group_size;
    int8_t* qg = fit->q + g * spec.group_size;
    const float t = group_scale[g] * id;
    const int lo = clamp_round(std::floor(t), spec.sc_min, spec.sc_max);
    const int hi = clamp_round(std::ceil(t), spec.sc_min, spec.sc_max);
    fit->sc[g] = static_cast<int8_t>(lo);
    float best = assign_group_symmetric(xg, spec, d * static_cast<float>(lo), qg);
    if (hi != lo) {
      int8_t q[256];
      const float e = assign_group_symmetric(xg, spec, d * static_cast<float>(hi), q);
      if (e < best) {
        best = e;
        fit->sc[g] = static_cast<int8_t>(hi);
        for (int j = 0; j < spec.group_size; ++j) qg[j] = q[j];
      }
    }
    err += best;
  }
  return err;
}

// Levels for one group at scale s and min m: l[group_size] filled, returns the squared error.
float assign_group_affine(const float* x, const KAffineSpec& spec, float s, float m, uint8_t* l) {
  const float is = s != 0.0f ? 1.0f / s : 0.0f;
  float err = 0.0f;
  for (int j = 0; j < spec.group_size; ++j) {
    l[j] = static_cast<uint8_t>(clamp_round((x[j] + m) * is, 0, spec.lmax));
    const float diff = s * static_cast<float>(l[j]) - m - x[j];
    err += diff * diff;
  }
  return err;
}

// Given d and dmin (already fp16 in fit) and the group scales and mins as floats, fill sc, mn
// and l; returns the squared error. Each group tries the integers just below and above its
// own scale and min (four pairs).
float assign_affine(const float* x, const KAffineSpec& spec, const float* group_scale,
                    const float* group_min, KAffineFit* fit) {
  const float d = fp16_to_f32(fit->d), dmin = fp16_to_f32(fit->dmin);
  const float id = d != 0.0f ? 1.0f / d : 0.0f, idmin = dmin != 0.0f ? 1.0f / dmin : 0.0f;
  float err = 0.0f;
  for (int g = 0; g < spec.num_groups; ++g) {
    const float* xg = x + g * spec.group_size;
    uint8_t* lg = fit->l + g * spec.group_size;
    const float ts = group_scale[g] * id, tm = group_min[g] * idmin;
    const int sc_c[2] = {clamp_round(std::floor(ts), 0, spec.sc_max), clamp_round(std::ceil(ts), 0, spec.sc_max)};
    const int mn_c[2] = {clamp_round(std::floor(tm), 0, spec.sc_max), clamp_round(std::ceil(tm), 0, spec.sc_max)};
    float best = INFINITY;
    for (int a = 0; a < 2; ++a) {
      if (a == 1 && sc_c[1] == sc_c[0]) break;
      for (int b = 0; b < 2; ++b) {
        if (b == 1 && mn_c[1] == mn_c[0]) break;
        uint8_t l[256];
        const float e = assign_group_affine(xg, spec, d * static_cast<float>(sc_c[a]),
                                            dmin * static_cast<float>(mn_c[b]), l);
        if (e < best) {
          best = e;
          fit->sc[g] = static_cast<uint8_t>(sc_c[a]);
          fit->mn[g] = static_cast<uint8_t>(mn_c[b]);
          for (int j = 0; j < spec.group_size; ++j) lg[j] = l[j];
        }
      }
    }
    err += best;
  }
  return err;
}

}  // namespace

KSymmetricFit fit_k_symmetric(const float* x, const KSymmetricSpec& spec) {
  float group_scale[16];
  float max_scale = 0.0f;  // the group scale of largest magnitude, with its sign
  for (int g = 0; g < spec.num_groups; ++g) {
    const float* xg = x + g * spec.group_size;
    if (spec.levels.grid != nullptr) {
      uint8_t idx[256];
      group_scale[g] = fit_grid(xg, nullptr, spec.group_size, spec.levels.grid, idx);
    } else {
      int8_t q[256];
      group_scale[g] = fit_symmetric(xg, nullptr, spec.group_size, spec.levels.qmin, spec.levels.qmax, q);
    }
    if (std::fabs(group_scale[g]) > std::fabs(max_scale)) max_scale = group_scale[g];
  }
  KSymmetricFit best{};
  best.d = 0;
  float best_err = assign_symmetric(x, spec, group_scale, &best);
  if (max_scale == 0.0f) return best;
  // Super-scale candidates: the largest group scale lands near either end of the sub-scale range.
  for (int k = 0; k <= 8; ++k) {
    for (const int end : {spec.sc_min, spec.sc_max}) {
      KSymmetricFit cand{};
      const float target = static_cast<float>(end) * (1.0f - 0.02f * static_cast<float>(k));
      cand.d = f32_to_fp16_sat(max_scale / target);
      const float err = assign_symmetric(x, spec, group_scale, &cand);
      if (err < best_err) {
        best_err = err;
        best = cand;
      }
    }
  }
  // Least-squares super-scale for the chosen integers, then re-pick everything for it.
  for (int round = 0; round < 2; ++round) {
    float sxa = 0.0f, saa = 0.0f;
    for (int g = 0; g < spec.num_groups; ++g) {
      for (int j = 0; j < spec.group_size; ++j) {
        const int i = g * spec.group_size + j;
        const float a = static_cast<float>(best.sc[g]) * level_value(spec.levels, best.q[i]);
        sxa += x[i] * a;
        saa += a * a;
      }
    }
    if (!(saa > 0.0f)) break;
    KSymmetricFit cand{};
    cand.d = f32_to_fp16_sat(sxa / saa);
    float scales[16];
    // Keep the integer sub-scales: express them as floats for the new d.
    for (int g = 0; g < spec.num_groups; ++g) scales[g] = static_cast<float>(best.sc[g]) * fp16_to_f32(cand.d);
    const float err = assign_symmetric(x, spec, scales, &cand);
    if (!(err < best_err)) break;
    best_err = err;
    best = cand;
  }
  return best;
}

KAffineFit fit_k_affine(const float* x, const KAffineSpec& spec) {
  float group_scale[16], group_min[16];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int g = 0; g < spec.num_groups; ++g) {
    uint8_t l[256];
    const AffineFit f = fit_affine(x + g * spec.group_size, nullptr, spec.group_size, spec.lmax, true, l);
    group_scale[g] = f.scale;
    group_min[g] = -f.offset;
    max_scale = std::max(max_scale, f.scale);
    max_min = std::max(max_min, -f.offset);
  }
  KAffineFit best{};
  float best_err = INFINITY;
  const float top = static_cast<float>(spec.sc_max);
  for (int k = 0; k <= 8; ++k) {
    for (int km = 0; km <= 2; ++km) {
      KAffineFit cand{};
      cand.d = f32_to_fp16_sat(max_scale / (top * (1.0f - 0.02f * static_cast<float>(k))));
      cand.dmin = f32_to_fp16_sat(max_min / (top * (1.0f - 0.02f * static_cast<float>(km))));
      const float err = assign_affine(x, spec, group_scale, group_min, &cand);
      if (err < best_err) {
        best_err = err;
        best = cand;
      }
    }
  }
  // Least squares for (d, dmin) with the integers fixed: x ~ d * (sc l) - dmin * mn.
  for (int round = 0; round < 2; ++round) {
    float saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
    for (int g = 0; g < spec.num_groups; ++g) {
      const float b = -static_cast<float>(best.mn[g]);
      for (int j = 0; j < spec.group_size; ++j) {
        const int i = g * spec.group_size + j;
        const float a = static_cast<float>(best.sc[g]) * static_cast<float>(best.l[i]);
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        sax += a * x[i];
        sbx += b * x[i];
      }
    }
    const float det = saa * sbb - sab * sab;
    float d, dmin;
    if (det > 0.0f) {
      d = (sbb * sax - sab * sbx) / det;
      dmin = (saa * sbx - sab * sax) / det;
    } else if (saa > 0.0f) {
      d = sax / saa;
      dmin = 0.0f;
    } else {
      break;
    }
    if (!(d >= 0.0f) || !(dmin >= 0.0f)) break;
    KAffineFit cand = best;
    cand.d = f32_to_fp16_sat(d);
    cand.dmin = f32_to_fp16_sat(dmin);
    float scales[16], mins[16];
    for (int g = 0; g < spec.num_groups; ++g) {
      scales[g] = static_cast<float>(best.sc[g]) * fp16_to_f32(cand.d);
      mins[g] = static_cast<float>(best.mn[g]) * fp16_to_f32(cand.dmin);
    }
    const float err = assign_affine(x, spec, scales, mins, &cand);
    if (!(err < best_err)) break;
    best_err = err;
    best = cand;
  }
  return best;
}

}  // namespace strata::quant_detail
