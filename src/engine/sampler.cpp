#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "core/argmax.h"

namespace strata::engine {

Sampler::Sampler(SamplingParams params) : params_(std::move(params)), rng_(params_.seed) {}

bool Sampler::plain_greedy(std::span<const int32_t> history) const {
  const bool penalize = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                        params_.frequency_penalty != 0.0f;
  const bool want_logprobs = params_.logprobs || params_.top_logprobs > 0;
  return params_.temperature <= 0.0f && !want_logprobs && params_.logit_bias.empty() &&
         (!penalize || history.empty());
}

SampleResult Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const int vocab = static_cast<int>(logits.size());
  const bool penalize = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                        params_.frequency_penalty != 0.0f;
  const bool want_logprobs = params_.logprobs || params_.top_logprobs > 0;
  if (plain_greedy(history)) {
    // Plain greedy, the common case in agents and benchmarks: no copy of the logits.
    SampleResult r;
    r.token = first_argmax(logits);
    return r;
  }
  work_.assign(logits.begin(), logits.end());
  for (const auto& [tok, bias] : params_.logit_bias) {
    if (tok >= 0 && tok < vocab) work_[static_cast<size_t>(tok)] += bias;
  }
  if (penalize && !history.empty()) {
    const size_t n = params_.penalty_last_n < 0
                         ? history.size()
                         : std::min(history.size(), static_cast<size_t>(params_.penalty_last_n));
    std::unordered_map<int32_t, int> counts;
    for (size_t i = history.size() - n; i < history.size(); ++i) ++counts[history[i]];
    for (const auto& [tok, c] : counts) {
      if (tok < 0 || tok >= vocab) continue;
      float& l = work_[static_cast<size_t>(tok)];
      if (params_.repetition_penalty != 1.0f) l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
      l -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(c);
    }
  }
  // Log-softmax of the adjusted logits: the logprobs reported to clients. Skipped when not
  // asked for: it is an exp per vocabulary entry per token.
  const float mx = *std::max_element(work_.begin(), work_.end());
  float log_z = 0.0f;
  if (want_logprobs) {
    double z = 0;
    for (float l : work_) z += std::exp(static_cast<double>(l - mx));
    log_z = mx + static_cast<float>(std::log(z));
  }
  SampleResult r;
  if (params_.top_logprobs > 0) {
    idx_.resize(static_cast<size_t>(vocab));
    std::iota(idx_.begin(), idx_.end(), 0);
    const int k = std::min(params_.top_logprobs, vocab);
    std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), [&](int32_t a, int32_t b) {
      return work_[static_cast<size_t>(a)] > work_[static_cast<size_t>(b)] || (work_[static_cast<size_t>(a)] == work_[static_cast<size_t>(b)] && a < b);
    });
    for (int i = 0; i < k; ++i) r.top.push_back({idx_[static_cast<size_t>(i)], work_[static_cast<size_t>(idx_[static_cast<size_t>(i)])] - log_z});
  }
  if (params_.temperature <= 0.0f) {
    // Greedy: the first maximum (lowest id on ties), deterministic.
    r.token = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
    if (want_logprobs) r.logprob = work_[static_cast<size_t>(r.token)] - log_z;
    return r;
  }
  if (params_.top_k <= 0 && params_.top_p >= 1.0f && params_.min_p <= 0.0f) {
    // Plain temperature sampling over the whole vocabulary: no sort needed.
    double total = 0;
    std::vector<double>& p = full_probs_;
    p.resize(static_cast<size_t>(vocab));
    for (int i = 0; i < vocab; ++i) {
      p[static_cast<size_t>(i)] = std::exp(static_cast<double>(work_[static_cast<size_t>(i)] - mx) / params_.temperature);
      total += p[static_cast<size_t>(i)];
    }
    double u = rng_.uniform() * total;
    r.token = vocab - 1;
    for (int i = 0; i < vocab; ++i) {
      if (u < p[static_cast<size_t>(i)]) {
        r.token = i;
        break;
      }
      u -= p[static_cast<size_t>(i)];
    }
    if (want_logprobs) r.logprob = work_[static_cast<size_t>(r.token)] - log_z;
    return r;
  }
  // Candidates sorted by logit, truncated by top-k, top-p, min-p.
  idx_.resize(static_cast<size_t>(vocab));
  std::iota(idx_.begin(), idx_.end(), 0);
  size_t n = static_cast<size_t>(vocab);
  auto by_logit = [&](int32_t a, int32_t b) {
    return work_[static_cast<size_t>(a)] > work_[static_cast<size_t>(b)] || (work_[static_cast<size_t>(a)] == work_[static_cast<size_t>(b)] && a < b);
  };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    n = static_cast<size_t>(params_.top_k);
    std::partial_sort(idx_.begin(), idx_.begin() + static_cast<long>(n), idx_.end(), by_logit);
  } else {
    std::sort(idx_.begin(), idx_.end(), by_logit);
  }
  std::vector<double> p(n);
  const float top = work_[static_cast<size_t>(idx_[0])];
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    p[i] = std::exp(static_cast<double>(work_[static_cast<size_t>(idx_[i])] - top));
    sum += p[i];
  }
  if (params_.top_p < 1.0f) {
    double acc = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      acc += p[i] / sum;
      if (acc >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (params_.min_p > 0.0f) {
    size_t keep = 1;
    while (keep < n && p[keep] >= params_.min_p * p[0]) ++keep;  // p[0] is the max
    n = keep;
  }
  // Temperature on the survivors, then a seeded draw.
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    p[i] = std::exp(static_cast<double>(work_[static_cast<size_t>(idx_[i])] - top) / params_.temperature);
    total += p[i];
  }
  double u = rng_.uniform() * total;
  size_t pick = n - 1;
  for (size_t i = 0; i < n; ++i) {
    if (u < p[i]) {
      pick = i;
      break;
    }
    u -= p[i];
  }
  r.token = idx_[pick];
  if (want_logprobs) r.logprob = work_[static_cast<size_t>(r.token)] - log_z;
  return r;
}

}  // namespace strata::engine
