// strata bench's decode in stretches between bandwidth probes, and the fraction of the roofline
// they reach, pooled over reps (cmd_run.cpp measures them).
//
// A stretch's roofline takes the larger of the probes at its two ends. A stretch whose two
// probes differ by more than kUnsteadyProbes of the larger ran while this VM changed speed
// (its phases differ by 35-50%; probes within one vary ~10%; bench/cpu/NOTES.md, round 8):
// the larger probe overstates its roofline by an unknown part, so it is left out, and
// counted. Where none is steady, all are kept. strata bench reports the best rep's steady
// stretches (the rep of its headline rate) and every rep's pooled (the average).
#pragma once

#include <algorithm>
#include <vector>

namespace strata::cli {

constexpr double kUnsteadyProbes = 0.2;

struct DecodeStretch {
  int tokens = 0;
  double seconds = 0, before_gbs = 0, after_gbs = 0;
  double gbs() const { return std::max(before_gbs, after_gbs); }
  bool steady() const { return std::min(before_gbs, after_gbs) >= (1 - kUnsteadyProbes) * gbs(); }
};

struct PooledStretches {
  double seconds = 0, roofline_seconds = 0;  // decode time, and time at the roofline
  int tokens = 0, used = 0, total = 0;
  double tokens_per_s() const { return tokens > 0 ? tokens / seconds : 0; }
  double roofline_tokens_per_s() const { return tokens > 0 ? tokens / roofline_seconds : 0; }
};

inline PooledStretches pool_stretches(const std::vector<std::vector<DecodeStretch>>& reps,
                                      double bytes_per_token) {
  bool any_steady = false;
  for (const auto& r : reps)
    for (const DecodeStretch& x : r) any_steady = any_steady || x.steady();
  PooledStretches p;
  for (const auto& r : reps) {
    for (const DecodeStretch& x : r) {
      ++p.total;
      if (any_steady && !x.steady()) continue;
      ++p.used;
      p.tokens += x.tokens;
      p.seconds += x.seconds;
      p.roofline_seconds += x.tokens * bytes_per_token / (x.gbs() * 1e9);
    }
  }
  return p;
}

}  // namespace strata::cli
