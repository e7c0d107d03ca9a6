// The pooled decode fraction of strata bench (decode_stretches.h) on made-up stretches.
#include "cli/decode_stretches.h"

#include <gtest/gtest.h>

namespace strata::cli {
namespace {

// 1 GB a token, so a stretch's roofline time is tokens / GB/s.
constexpr double kBytes = 1e9;

TEST(DecodeStretches, StretchesOfEveryRepPoolAsRooflineTimeOverDecodeTime) {
  // Rep 0: 32 tokens in 1 s at 50 GB/s (roofline 0.64 s); rep 1: 32 tokens in 0.5 s at
  // 80/76 GB/s (roofline 0.4 s, the larger probe).
  const std::vector<std::vector<DecodeStretch>> reps = {{{32, 1.0, 50, 50}}, {{32, 0.5, 76, 80}}};
  const PooledStretches p = pool_stretches(reps, kBytes);
  EXPECT_EQ(p.total, 2);
  EXPECT_EQ(p.used, 2);
  EXPECT_EQ(p.tokens, 64);
  EXPECT_DOUBLE_EQ(p.seconds, 1.5);
  EXPECT_DOUBLE_EQ(p.roofline_seconds, 32.0 / 50 + 32.0 / 80);
}

TEST(DecodeStretches, AStretchWhoseProbesDifferByMoreThanAFifthIsLeftOut) {
  // The middle stretch ran while the bandwidth went from 50 to 78 GB/s: out. 80 vs 65 (19%
  // apart) stays.
  const std::vector<std::vector<DecodeStretch>> reps = {
      {{32, 1.0, 50, 50}, {32, 0.9, 50, 78}, {8, 0.2, 65, 80}}};
  EXPECT_TRUE(reps[0][0].steady());
  EXPECT_FALSE(reps[0][1].steady());
  EXPECT_TRUE(reps[0][2].steady());
  const PooledStretches p = pool_stretches(reps, kBytes);
  EXPECT_EQ(p.total, 3);
  EXPECT_EQ(p.used, 2);
  EXPECT_EQ(p.tokens, 40);
  EXPECT_DOUBLE_EQ(p.seconds, 1.2);
  EXPECT_DOUBLE_EQ(p.roofline_seconds, 32.0 / 50 + 8.0 / 80);
}

TEST(DecodeStretches, WhereNoStretchIsSteadyAllAreKept) {
  const std::vector<std::vector<DecodeStretch>> reps = {{{32, 1.0, 50, 78}}, {{32, 1.0, 80, 48}}};
  const PooledStretches p = pool_stretches(reps, kBytes);
  EXPECT_EQ(p.used, 2);
  EXPECT_DOUBLE_EQ(p.roofline_seconds, 32.0 / 78 + 32.0 / 80);
}

}  // namespace
}  // namespace strata::cli
