// Slow engine tests: fairness of chunked prefill (an 8k-token prompt arriving while four
// sequences decode).
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "engine/engine_test_util.h"

namespace strata::engine {
namespace {

using testing::Collector;
using testing::greedy_request;

TEST(EngineSlow, LongPromptNeverStallsDecoders) {
  auto tiny = testing::make_tiny("tiny", 16384);
  const int32_t vocab = static_cast<int32_t>(tiny->model->hparams().vocab_size);
  std::mt19937 rng(1);
  const auto long_prompt = testing::random_prompt(rng, 8192, vocab);

  // The stall one unchunked step would cause: the whole prompt in one forward.
  double unchunked_seconds = 0;
  {
    Generator gen(*tiny->model, 9000, DType::kF16, 64);
    GenerateOptions o;
    o.max_tokens = 1;
    o.prefill_chunk = 8192;
    GenerateStats st;
    ASSERT_TRUE(gen.generate(long_prompt, o, nullptr, &st).is_ok());
    unchunked_seconds = st.prefill_seconds;
  }

  EngineOptions o;
  o.parallel = 8;
  o.batch_tokens = 256;
  o.ctx = 9000;
  o.kv_dtype = DType::kF16;
  o.block_tokens = 64;
  o.model_id = "tiny-fair";
  auto made = make_engine(*tiny->model, *tiny->tok, o);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  std::unique_ptr<Engine> e = std::move(made).value();
  Collector c(e.get());
  std::vector<RequestId> decoders;
  for (int i = 0; i < 4; ++i)
    decoders.push_back(c.submit(*e, greedy_request(testing::random_prompt(rng, 20, vocab), 120)));
  // Let them reach decode, then the long prompt arrives.
  for (bool ready = false; !ready;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ready = true;
    for (RequestId id : decoders) ready &= c.get(id).tokens.size() >= 2;
  }
  const uint64_t step_at_arrival = e->stats().steps;
  RequestId big = c.submit(*e, greedy_request(long_prompt, 4));
  c.wait();

  const Collector::Out b = c.get(big);
  ASSERT_EQ(b.done.finish, FinishReason::kLength) << b.done.error.to_string();
  const uint64_t prefill_steps = b.steps.front() - step_at_arrival;
  EXPECT_GE(prefill_steps, 8192u / 256u) << "the prompt was chunked by the budget";
  EXPECT_LE(prefill_steps, 8192u / (256u - 4u) + 3u) << "and each chunk filled the budget";
  const double t_begin = b.times.front() - b.done.usage.prefill_seconds;
  double max_gap = 0, sum_gap = 0;
  int gaps = 0;
  for (RequestId id : decoders) {
    const Collector::Out d = c.get(id);
    ASSERT_EQ(d.tokens.size(), 120u);
    for (size_t i = 1; i < d.steps.size(); ++i) {
      EXPECT_EQ(d.steps[i], d.steps[i - 1] + 1)
          << "decoder " << id << " skipped a step at token " << i;
      if (d.times[i] >= t_begin && d.times[i - 1] <= b.times.front()) {
        max_gap = std::max(max_gap, d.times[i] - d.times[i - 1]);
        sum_gap += d.times[i] - d.times[i - 1];
        ++gaps;
      }
    }
  }
  ASSERT_GT(gaps, 0);
  std::printf(
      "unchunked 8192-token prefill %.3f s; during the chunked prefill (%llu steps of 256 tokens) "
      "decoder gaps: mean %.4f s, max %.4f s\n",
      unchunked_seconds, static_cast<unsigned long long>(prefill_steps), sum_gap / gaps, max_gap);
  // One step's budget is ~1/32 of the prompt; even the last chunks (attending to ~8k keys)
  // stay far below the stall of an unchunked prefill.
  EXPECT_LT(max_gap, unchunked_seconds / 3);
}

}  // namespace
}  // namespace strata::engine
