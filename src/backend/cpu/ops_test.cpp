// Element-wise and small ops against their scalar twins, odd sizes, f32-derived tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"

namespace strata::backend::cpu {
namespace {

using testing::kF32Eps;

TEST(CpuOps, RmsNorm) {
  for (int64_t dim : {1, 7, 33, 1024}) {
    for (int64_t n : {1, 3, 40}) {
      Rng rng(static_cast<uint64_t>(dim * 100 + n));
      const auto x = testing::normal(rng, n * dim, 3.0f), w = testing::normal(rng, dim);
      std::vector<float> a(x.size()), b(x.size());
      ref::rms_norm(x.data(), w.data(), n, dim, 1e-6f, a.data());
      CpuBackend(2).rms_norm(x.data(), w.data(), n, dim, 1e-6f, b.data());
      for (size_t i = 0; i < a.size(); ++i) {
        // mean square: dim/8 + 8 rounded adds; sqrt, divide, two products: a few eps more
        ASSERT_NEAR(b[i], a[i], std::fabs(a[i]) * (dim / 8.0 + 16) * 2 * kF32Eps + 1e-30) << dim << " " << n;
      }
    }
  }
}

TEST(CpuOps, RmsNormInPlace) {
  Rng rng(5);
  const auto x = testing::normal(rng, 3 * 33), w = testing::normal(rng, 33);
  std::vector<float> a(x.size()), b = x;
  CpuBackend(2).rms_norm(x.data(), w.data(), 3, 33, 1e-5f, a.data());
  CpuBackend(2).rms_norm(b.data(), w.data(), 3, 33, 1e-5f, b.data());
  EXPECT_EQ(a, b);
}

TEST(CpuOps, Rope) {
  for (auto mode : {RopeTable::Mode::kNormal, RopeTable::Mode::kNeox}) {
    for (int head_dim : {64, 40, 6}) {
      for (int n_rot : {head_dim, head_dim / 2 + (head_dim / 2) % 2}) {
        Rng rng(static_cast<uint64_t>(head_dim * 7 + n_rot));
        RopeTable table;
        table.mode = mode;
        table.n_rot = n_rot;
        table.mscale = 1.1f;
        for (int i = 0; i < n_rot / 2; ++i) table.freqs.push_back(static_cast<float>(std::pow(10000.0, -2.0 * i / n_rot)));
        const int64_t n = 7;
        const int heads = 3;
        const std::vector<int32_t> pos = {0, 1, 5, 100, 4095, 31999, 17};
        const auto x = testing::normal(rng, n * heads * head_dim);
        std::vector<float> a = x, b = x;
        ref::rope(a.data(), n, heads, head_dim, pos.data(), table);
        CpuBackend(2).rope(b.data(), n, heads, head_dim, pos.data(), table);
        for (size_t i = 0; i < a.size(); ++i) {
          // cos and sin rounded to f32 (1 eps each), two products and a sum: <= 6 eps of the
          // pair's magnitude times mscale; bound by the row's max
          double m = 0;
          const size_t row = i / head_dim * head_dim;
          for (int d = 0; d < head_dim; ++d) m = std::max(m, static_cast<double>(std::fabs(x[row + d])));
          ASSERT_NEAR(b[i], a[i], 2 * m * table.mscale * 6 * kF32Eps) << head_dim << " " << n_rot << " " << i;
        }
      }
    }
  }
}

TEST(CpuOps, RopeOneTokenCallsAfterOneAnother) {
  // One-token calls, as a decode step makes them layer after layer, with one input changed
  // between calls (the kept cos/sin must follow every one): each gives the reference's floats.
  RopeTable t;
  t.mode = RopeTable::Mode::kNeox;
  t.n_rot = 32;
  for (int i = 0; i < 16; ++i) t.freqs.push_back(static_cast<float>(std::pow(10000.0, -i / 16.0)));
  CpuBackend be(1);
  Rng rng(9);
  const auto x = testing::normal(rng, 2 * 32);
  int32_t position = 5;
  for (int k = 0; k < 8; ++k) {
    if (k == 2) position = 6;                       // the next position
    if (k == 3) t.freqs[3] *= 1.5f;                 // other frequencies
    if (k == 4) t.mscale = 0.5f;                    // other mscale
    if (k == 5) t.mode = RopeTable::Mode::kNormal;  // other layout
    if (k == 6) t.n_rot = 16;                       // fewer rotated dims
    std::vector<float> a = x, b = x;
    ref::rope(a.data(), 1, 2, 32, &position, t);
    be.rope(b.data(), 1, 2, 32, &position, t);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(b[i], a[i], 16 * kF32Eps * 4) << "call " << k << " at " << i;
  }
}

TEST(CpuOps, SwigluAddWeightedSum) {
  Rng rng(77);
  for (int64_t dim : {1, 9, 33, 3072}) {
    const int64_t n = 3;
    const auto g = testing::normal(rng, n * dim, 4.0f), u = testing::normal(rng, n * dim);
    std::vector<float> a(g.size()), b(g.size());
    ref::swiglu(g.data(), u.data(), n, dim, a.data());
    CpuBackend(2).swiglu(g.data(), u.data(), n, dim, b.data());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], std::fabs(a[i]) * 16 * kF32Eps + 1e-30);

    std::vector<float> y1 = g, y2 = g;
    ref::add(y1.data(), u.data(), n * dim);
    CpuBackend(2).add(y2.data(), u.data(), n * dim);
    EXPECT_EQ(y1, y2);

    const int k = 3;
    const auto x = testing::normal(rng, n * k * dim), w = testing::normal(rng, n * k);
    std::vector<float> s1(n * dim), s2(n * dim);
    ref::weighted_sum(x.data(), w.data(), n, k, dim, s1.data());
    CpuBackend(2).weighted_sum(x.data(), w.data(), n, k, dim, s2.data());
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < dim; ++i) {
        double abs_sum = 0;
        for (int j = 0; j < k; ++j) abs_sum += std::fabs(w[t * k + j] * x[(t * k + j) * dim + i]);
        ASSERT_NEAR(s2[t * dim + i], s1[t * dim + i], (k + 1) * 2 * kF32Eps * abs_sum);
      }
    }
  }
}

TEST(CpuOps, LargeAddIsThreadedAndExact) {
  Rng rng(8);
  const int64_t count = 100003;
  const auto x = testing::normal(rng, count);
  std::vector<float> y1 = testing::normal(rng, count), y2 = y1;
  ref::add(y1.data(), x.data(), count);
  CpuBackend(2).add(y2.data(), x.data(), count);
  EXPECT_EQ(y1, y2);
}

TEST(CpuOps, TopkSoftmax) {
  Rng rng(21);
  const int64_t n = 37;
  const int ne = 13, k = 4;
  const auto logits = testing::normal(rng, n * ne, 2.0f);
  for (bool renorm : {false, true}) {
    std::vector<int32_t> i1(n * k), i2(n * k);
    std::vector<float> w1(n * k), w2(n * k);
    ref::topk_softmax(logits.data(), n, ne, k, renorm, i1.data(), w1.data());
    CpuBackend(2).topk_softmax(logits.data(), n, ne, k, renorm, i2.data(), w2.data());
    EXPECT_EQ(i1, i2);
    EXPECT_EQ(w1, w2);
    // the reference itself: weights descending, renormalized ones sum to 1
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int j = 0; j < k; ++j) {
        s += w1[t * k + j];
        if (j > 0) {
          EXPECT_GE(w1[t * k + j - 1], w1[t * k + j]);
        }
      }
      if (renorm) {
        EXPECT_NEAR(s, 1.0, 1e-6);
      }
    }
  }
}

}  // namespace
}  // namespace strata::backend::cpu
