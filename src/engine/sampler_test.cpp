#include "engine/sampler.h"

#include "backend/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace strata::engine {
namespace {

std::vector<float> random_logits(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> l(static_cast<size_t>(n));
  for (auto& x : l) x = 3.0f * rng.normal();
  return l;
}

TEST(Sampler, GreedyPicksArgmaxAndReportsLogprob) {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  SamplingParams lp;
  lp.logprobs = true;
  Sampler s(lp);
  SampleResult r = s.sample(l, {});
  EXPECT_EQ(r.token, 1);  // first of the tied maxima
  double z = 0;
  for (float x : l) z += std::exp(x);
  EXPECT_NEAR(r.logprob, 2.0 - std::log(z), 1e-5);
}

TEST(Sampler, PlainGreedyIsTheFirstMaximum) {
  // The no-copy greedy path against std::max_element: odd sizes, many ties, -inf entries.
  Rng rng(7);
  Sampler s(SamplingParams{});
  for (int n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 100, 1001, 151936}) {
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<float> l(static_cast<size_t>(n));
      for (auto& x : l) x = static_cast<float>(static_cast<int>(rng.uniform() * 6)) - (rng.uniform() < 0.1 ? INFINITY : 0.0f);
      const auto want = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      EXPECT_EQ(s.sample(l, {}).token, want) << "n=" << n;
    }
  }
}

// When a caller may take the argmax where the logits are (Backend::argmax_rows) instead of
// calling sample, and that the backends' default argmax_rows is that sample, NaN included.
TEST(Sampler, PlainGreedyAndArgmaxRows) {
  EXPECT_TRUE(Sampler(SamplingParams{}).plain_greedy({}));
  const std::vector<int32_t> hist = {3, 4};
  SamplingParams p;
  p.temperature = 0.7f;
  EXPECT_FALSE(Sampler(p).plain_greedy({}));
  p = {};
  p.top_logprobs = 2;
  EXPECT_FALSE(Sampler(p).plain_greedy({}));
  p = {};
  p.logit_bias = {{1, 2.0f}};
  EXPECT_FALSE(Sampler(p).plain_greedy({}));
  p = {};
  p.repetition_penalty = 1.1f;
  EXPECT_TRUE(Sampler(p).plain_greedy({}));  // nothing to penalise yet
  EXPECT_FALSE(Sampler(p).plain_greedy(hist));
  EXPECT_TRUE(Sampler(SamplingParams{}).plain_greedy(hist));

  backend::CpuBackend be(1);  // the Backend base class's argmax_rows
  Rng rng(17);
  Sampler greedy(SamplingParams{});
  for (int cols : {1, 7, 33, 1000}) {
    const int rows = 5;
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (auto& v : x) {
      const double u = rng.uniform();
      v = u < 0.05 ? NAN : u < 0.1 ? -INFINITY : static_cast<float>(static_cast<int>(rng.uniform() * 4));
    }
    for (int i = 0; i < cols; ++i) x[static_cast<size_t>(i)] = NAN;  // row 0: all NaN
    std::vector<int32_t> got(static_cast<size_t>(rows));
    be.argmax_rows(x.data(), rows, cols, got.data());
    EXPECT_EQ(got[0], 0);
    for (int r = 0; r < rows; ++r) {
      const std::span<const float> row(x.data() + static_cast<size_t>(r * cols), static_cast<size_t>(cols));
      EXPECT_EQ(got[static_cast<size_t>(r)], greedy.sample(row, {}).token) << "row " << r << " cols " << cols;
    }
  }
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.seed = 77;
  Sampler a(p), b(p);
  p.seed = 78;
  Sampler c(p);
  int diff = 0;
  for (int i = 0; i < 50; ++i) {
    auto l = random_logits(1000, static_cast<uint64_t>(i));
    const int32_t ta = a.sample(l, {}).token;
    EXPECT_EQ(ta, b.sample(l, {}).token);
    diff += ta != c.sample(l, {}).token;
  }
  EXPECT_GT(diff, 0);
}

TEST(Sampler, TopKRestrictsCandidates) {
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 3;
  p.seed = 1;
  Sampler s(p);
  auto l = random_logits(200, 9);
  std::vector<int> order(l.size());
  for (size_t i = 0; i < l.size(); ++i) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  std::map<int, int> seen;
  for (int i = 0; i < 500; ++i) ++seen[s.sample(l, {}).token];
  EXPECT_LE(seen.size(), 3u);
  for (const auto& [tok, c] : seen) EXPECT_TRUE(tok == order[0] || tok == order[1] || tok == order[2]);
}

TEST(Sampler, TemperatureMatchesDistribution) {
  // Two tokens with logits 0 and ln 3 at temperature 1: picked 1:3.
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 5;
  Sampler s(p);
  std::vector<float> l = {0.0f, std::log(3.0f)};
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.sample(l, {}).token == 1;
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.015);
}

TEST(Sampler, TopPAndMinPCut) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.75f;  // keeps 0.5 + 0.3
  p.seed = 3;
  Sampler s(p);
  for (int i = 0; i < 300; ++i) EXPECT_LE(s.sample(l, {}).token, 1);
  SamplingParams q;
  q.temperature = 1.0f;
  q.min_p = 0.35f;  // keeps p >= 0.175: tokens 0 and 1
  q.seed = 4;
  Sampler m(q);
  for (int i = 0; i < 300; ++i) EXPECT_LE(m.sample(l, {}).token, 1);
}

TEST(Sampler, PenaltiesAndBias) {
  std::vector<float> l = {1.0f, 0.9f, 0.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;  // token 0: 1.0 -> 0.5
  Sampler s(p);
  const std::vector<int32_t> hist = {0};
  EXPECT_EQ(s.sample(l, hist).token, 1);
  SamplingParams f;
  f.frequency_penalty = 0.2f;  // token 0 seen twice: 1.0 - 0.4 = 0.6
  Sampler sf(f);
  const std::vector<int32_t> hist2 = {0, 0};
  EXPECT_EQ(sf.sample(l, hist2).token, 1);
  SamplingParams b;
  b.logit_bias = {{2, 5.0f}};
  Sampler sb(b);
  EXPECT_EQ(sb.sample(l, {}).token, 2);
}

TEST(Sampler, TopLogprobsSortedAndNormalised) {
  SamplingParams p;
  p.top_logprobs = 5;
  Sampler s(p);
  auto l = random_logits(100, 11);
  SampleResult r = s.sample(l, {});
  ASSERT_EQ(r.top.size(), 5u);
  EXPECT_EQ(r.top[0].token, r.token);
  for (size_t i = 1; i < r.top.size(); ++i) EXPECT_GE(r.top[i - 1].logprob, r.top[i].logprob);
  double z = 0;
  for (float x : l) z += std::exp(static_cast<double>(x));
  EXPECT_NEAR(r.top[2].logprob, l[static_cast<size_t>(r.top[2].token)] - std::log(z), 1e-4);
}

}  // namespace
}  // namespace strata::engine
