// Turning logits into the next token: logit bias, repetition / presence / frequency
// penalties, then greedy or top-k -> top-p -> min-p -> temperature -> a seeded draw.
// The same seed and the same logits give the same tokens.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/rng.h"

namespace strata::engine {

struct SamplingParams {
  float temperature = 0.0f;         // <= 0: greedy
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off (divides positive logits, multiplies negative)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int penalty_last_n = 64;          // tokens of history the penalties look at (-1: all)
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = 0;
  int top_logprobs = 0;             // how many alternatives to report (0..20)
  bool logprobs = false;            // report the chosen token's logprob (implied by top_logprobs > 0)
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;             // of the chosen token under the model's distribution (when asked)
  std::vector<TokenLogprob> top;    // top_logprobs alternatives, most likely first
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  const SamplingParams& params() const { return params_; }

  // logits [vocab] f32 (not modified); history: the tokens so far (prompt and generated).
  SampleResult sample(std::span<const float> logits, std::span<const int32_t> history);
  // Is the next sample the first largest logit, whatever else (no temperature, bias,
  // penalty on this history, or logprobs)? Then a caller may take the argmax where the
  // logits are (Backend::argmax_rows) instead of calling sample.
  bool plain_greedy(std::span<const int32_t> history) const;

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<float> work_;
  std::vector<int32_t> idx_;
  std::vector<double> full_probs_;
};

}  // namespace strata::engine
