// Gated DeltaNet kernels against their scalar twins (recurrent form in double): odd head
// shapes, segments chained through their states, chunks crossing absolute 64-token boundaries.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"

namespace strata::backend::cpu {
namespace {

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

// max |a - b| / rms(b)
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0;
  for (size_t i = 0; i < a.size(); ++i) mx = std::max(mx, std::fabs(static_cast<double>(a[i]) - b[i]));
  return mx / rms(b);
}

TEST(DeltaNet, ConvMatchesReference) {
  for (int kernel : {2, 4}) {
    for (int64_t channels : {5, 300, 777}) {
      Rng rng(static_cast<uint64_t>(kernel * 1000 + channels));
      const int64_t n = 23;
      const auto x = testing::normal(rng, n * channels), w = testing::normal(rng, channels * kernel, 0.5f);
      const auto st0 = testing::normal(rng, (kernel - 1) * channels);
      // Three segments of one sequence: fresh start, then chained through the state (in place
      // and to a new buffer), with a 1-row segment shorter than the conv history.
      std::vector<float> sa1(st0.size()), sa2(st0.size()), sb1(st0.size()), sb2(st0.size());
      auto segs_for = [&](std::vector<float>& s1, std::vector<float>& s2) {
        return std::vector<RecurrentSeg>{{0, 10, 0, nullptr, s1.data()},
                                         {10, 1, 10, s1.data(), s1.data()},
                                         {11, 12, 11, s1.data(), s2.data()}};
      };
      std::vector<float> a(x.size()), b(x.size());
      ref::ssm_conv(x.data(), channels, w.data(), kernel, segs_for(sa1, sa2), a.data());
      CpuBackend(2).ssm_conv(x.data(), channels, w.data(), kernel, segs_for(sb1, sb2), b.data());
      EXPECT_LT(rel_err(b, a), 1e-5) << kernel << " " << channels;
      EXPECT_EQ(sb2, sa2);  // the state is a copy of inputs
      // A segment that starts from a given state.
      std::vector<float> s3a = st0, s3b = st0;
      std::vector<RecurrentSeg> one_a{{0, 3, 40, s3a.data(), s3a.data()}}, one_b{{0, 3, 40, s3b.data(), s3b.data()}};
      ref::ssm_conv(x.data(), channels, w.data(), kernel, one_a, a.data());
      CpuBackend(2).ssm_conv(x.data(), channels, w.data(), kernel, one_b, b.data());
      for (int64_t i = 0; i < 3 * channels; ++i) ASSERT_NEAR(b[i], a[i], 1e-5 * (1 + std::fabs(a[i])));
      EXPECT_EQ(s3a, s3b);
    }
  }
}

struct DeltaCase {
  DeltaNetShape shape;
  std::vector<int64_t> seg_rows;  // one sequence cut into these segments
  int64_t pos0;                   // position of its first token
};

TEST(DeltaNet, DeltaRuleMatchesReference) {
  const std::vector<DeltaCase> cases = {
      {{1, 1, 8, 8}, {1, 1, 1}, 0},            // decode steps
      {{2, 4, 16, 12}, {150}, 0},               // chunks of 64, 64, 22
      {{2, 4, 16, 12}, {30, 100, 1, 7}, 37},    // unaligned start, chunks cut at 64 and segments
      {{3, 3, 5, 7}, {65, 2, 129}, 63},         // odd head dims
      {{1, 2, 32, 32}, {64, 64}, 64},           // exactly chunk-aligned
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const DeltaCase& c = cases[ci];
    const auto& sh = c.shape;
    int64_t n = 0;
    for (int64_t r : c.seg_rows) n += r;
    const int64_t row = 2 * int64_t{sh.num_k_heads} * sh.head_k_dim + int64_t{sh.num_v_heads} * sh.head_v_dim;
    Rng rng(ci + 7);
    const auto qkv = testing::normal(rng, n * row);
    const auto alpha = testing::normal(rng, n * sh.num_v_heads), beta = testing::normal(rng, n * sh.num_v_heads);
    const auto dt = testing::normal(rng, sh.num_v_heads, 0.5f);
    std::vector<float> A(static_cast<size_t>(sh.num_v_heads));
    for (float& x : A) x = -std::exp(rng.normal());
    const size_t state = static_cast<size_t>(sh.num_v_heads) * sh.head_k_dim * sh.head_v_dim;
    const auto init = testing::normal(rng, state, 0.3f);
    auto run = [&](bool reference, std::vector<float>& out, std::vector<float>& st_a, std::vector<float>& st_b) {
      // Alternate the state between two buffers: each segment reads the previous one's.
      st_a = init;
      std::vector<RecurrentSeg> segs;
      int64_t r0 = 0;
      for (size_t i = 0; i < c.seg_rows.size(); ++i) {
        float* in = i % 2 == 0 ? st_a.data() : st_b.data();
        float* o = i % 2 == 0 ? st_b.data() : st_a.data();
        if (i == 0 && c.pos0 == 0) in = nullptr;
        segs.push_back({r0, c.seg_rows[i], c.pos0 + r0, in, o});
        r0 += c.seg_rows[i];
      }
      out.assign(static_cast<size_t>(n * sh.num_v_heads * sh.head_v_dim), 0.0f);
      if (reference) ref::gated_delta_rule(qkv.data(), alpha.data(), beta.data(), dt.data(), A.data(), sh, segs, out.data());
      else CpuBackend(2).gated_delta_rule(qkv.data(), alpha.data(), beta.data(), dt.data(), A.data(), sh, segs, out.data());
    };
    std::vector<float> oa, ob, sa1, sa2(state), sb1, sb2(state);
    run(true, oa, sa1, sa2);
    run(false, ob, sb1, sb2);
    const std::vector<float>& fa = c.seg_rows.size() % 2 == 1 ? sa2 : sa1;
    const std::vector<float>& fb = c.seg_rows.size() % 2 == 1 ? sb2 : sb1;
    // f32 state through up to ~200 updates of dk-long sums; the chunked form reorders them.
    std::printf("[deltanet] case %zu: out max err/rms %.3g, state %.3g\n", ci, rel_err(ob, oa), rel_err(fb, fa));
    EXPECT_LT(rel_err(ob, oa), 5e-5) << "case " << ci;
    EXPECT_LT(rel_err(fb, fa), 5e-5) << "case " << ci;
  }
}

TEST(DeltaNet, SigmoidMul) {
  Rng rng(3);
  for (int64_t gate_dim : {int64_t{1}, int64_t{37}}) {
    const int64_t n = 1000, dim = 37;
    const auto x = testing::normal(rng, n * dim), g = testing::normal(rng, n * gate_dim, 3.0f);
    std::vector<float> a = x, b = x;
    ref::sigmoid_mul(a.data(), g.data(), n, dim, gate_dim);
    CpuBackend(2).sigmoid_mul(b.data(), g.data(), n, dim, gate_dim);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 4 * testing::kF32Eps * std::fabs(a[i]) + 1e-30);
  }
}

}  // namespace
}  // namespace strata::backend::cpu
