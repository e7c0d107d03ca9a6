// The engine end to end on a synthesized tiny model: batched output equals solo output,
// preemption, cancellation storms, stop conditions, context checks, the prefix cache through
// RAM and SSD (restart).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "backend/backend.h"
#include "engine/engine_test_util.h"
#include "kv/kv_test_util.h"

namespace strata::engine {
namespace {

using testing::Collector;
using testing::greedy_request;

constexpr int64_t kCtx = 1024;
constexpr int kBlock = 16;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = testing::make_tiny().release(); }
  static void TearDownTestSuite() {
    delete tiny_;
    tiny_ = nullptr;
  }
  static EngineOptions options() { return testing::tiny_options("tiny-test", kCtx, kBlock); }
  static std::unique_ptr<Engine> engine(const EngineOptions& o) { return testing::tiny_engine(*tiny_, o); }
  static std::vector<int32_t> prompt(uint32_t seed, size_t n) {
    std::mt19937 rng(seed);
    return testing::random_prompt(rng, n, static_cast<int32_t>(tiny_->model->hparams().vocab_size));
  }
  static std::vector<int32_t> solo(const std::vector<int32_t>& p, int max_tokens) {
    return testing::solo_greedy(*tiny_->model, p, max_tokens, DType::kF32, kBlock, kCtx);
  }
  // Prompts of mixed lengths at once; each must give exactly its solo greedy tokens.
  static uint64_t expect_batched_equals_solo(const EngineOptions& o,
                                             testing::TinyModel* m = nullptr) {
    if (m == nullptr) m = tiny_;
    const std::vector<size_t> lengths = {5, 17, 33, 64, 100, 3, 48, 130};
    const int max_tokens = 24;
    auto made = make_engine(*m->model, *m->tok, o);
    STRATA_CHECK(made.is_ok());
    std::unique_ptr<Engine> e = std::move(made).value();
    Collector c(e.get());
    std::vector<std::pair<RequestId, std::vector<int32_t>>> ids;
    for (size_t i = 0; i < lengths.size(); ++i) {
      auto p = prompt(static_cast<uint32_t>(100 + i), lengths[i]);
      ids.emplace_back(c.submit(*e, greedy_request(p, max_tokens)), p);
    }
    c.wait();
    for (auto& [id, p] : ids) {
      Collector::Out out = c.get(id);
      EXPECT_EQ(out.num_done, 1);
      EXPECT_EQ(out.done.finish, FinishReason::kLength) << out.done.error.to_string();
      EXPECT_EQ(out.tokens,
                testing::solo_greedy(*m->model, p, max_tokens, o.kv_dtype, o.block_tokens, o.ctx))
          << "prompt of " << p.size() << " tokens";
      EXPECT_EQ(out.done.usage.completion_tokens, max_tokens);
      EXPECT_EQ(out.done.usage.prompt_tokens, static_cast<int>(p.size()));
    }
    const EngineStats s = e->stats();
    EXPECT_EQ(s.requests_total, lengths.size());
    e->shutdown(true);
    EXPECT_EQ(e->stats().device_blocks_used, 0u);
    return s.preemptions;
  }
  static testing::TinyModel* tiny_;
};
testing::TinyModel* EngineTest::tiny_ = nullptr;

TEST_F(EngineTest, BatchedOutputEqualsSoloOutput) {
  EngineOptions o = options();
  EXPECT_EQ(expect_batched_equals_solo(o), 0u);
}

TEST_F(EngineTest, BatchedOutputEqualsSoloOutputF16KvAndMoe) {
  EngineOptions o = options();
  o.kv_dtype = DType::kF16;
  o.batch_tokens = 48;
  EXPECT_EQ(expect_batched_equals_solo(o), 0u);
  auto moe = testing::make_tiny("tiny-moe", 4096);
  o.kv_dtype = DType::kF32;
  EXPECT_EQ(expect_batched_equals_solo(o, moe.get()), 0u);
}

TEST_F(EngineTest, TinyPoolPreemptsAndStillMatchesSolo) {
  EngineOptions o = options();
  o.device_blocks = 12;  // 192 tokens for 4 sequences of up to 154 tokens
  EXPECT_GT(expect_batched_equals_solo(o), 0u);
}

TEST_F(EngineTest, TinyPoolWithHostTierPreemptsAndStillMatchesSolo) {
  EngineOptions o = options();
  o.device_blocks = 12;
  o.host_bytes = 8u << 20;  // preempted blocks go down to RAM and come back
  o.parallel = 3;
  EXPECT_GT(expect_batched_equals_solo(o), 0u);
}

TEST_F(EngineTest, CancellationStormReturnsEveryBlock) {
  EngineOptions o = options();
  o.device_blocks = 64;
  auto e = engine(o);
  const uint64_t used0 = e->stats().device_blocks_used;
  EXPECT_EQ(used0, 0u);
  Collector c(e.get());
  std::vector<RequestId> ids;
  for (int i = 0; i < 40; ++i)
    ids.push_back(c.submit(
        *e, greedy_request(prompt(static_cast<uint32_t>(i), 10 + static_cast<size_t>(i) * 7 % 120),
                           40)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (size_t k = static_cast<size_t>(t); k < ids.size(); k += 4) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        if (rng() % 4 != 0) e->cancel(ids[k]);
        if (rng() % 8 == 0) e->cancel(ids[k]);  // twice
      }
    });
  }
  for (auto& th : threads) th.join();
  c.wait();
  int cancelled = 0;
  for (RequestId id : ids) {
    Collector::Out out = c.get(id);
    EXPECT_EQ(out.num_done, 1) << "exactly one kDone per request";
    cancelled += out.done.finish == FinishReason::kCancelled;
    if (out.done.finish == FinishReason::kLength) {
      EXPECT_EQ(out.tokens.size(), 40u);
    }
  }
  EXPECT_GT(cancelled, 0);
  const EngineStats s = e->stats();
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.device_blocks_used, used0) << "every block is back in the pool";
  e->cancel(ids[0]);  // a finished request: nothing happens
  e->shutdown(false);
}

TEST_F(EngineTest, OverContextPromptIsRejectedWithBothNumbers) {
  auto e = engine(options());
  auto r =
      e->submit(greedy_request(prompt(1, kCtx), 4), [](const Event&) { FAIL() << "no events"; });
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("prompt has 1024 tokens; the context is 1024"),
            std::string::npos)
      << r.status().message();
  auto bad = e->submit(greedy_request({1, 2, 100000}, 4), [](const Event&) {});
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(e->submit(greedy_request({}, 4), [](const Event&) {}).is_ok());
}

TEST_F(EngineTest, RequestLargerThanTheWholePoolEndsWithAnError) {
  EngineOptions o = options();
  o.device_blocks = 2;  // 32 tokens
  auto e = engine(o);
  Collector c(e.get());
  RequestId big = c.submit(*e, greedy_request(prompt(10, 60), 4));
  RequestId small = c.submit(*e, greedy_request(prompt(11, 10), 4));
  c.wait();
  EXPECT_EQ(c.get(big).done.finish, FinishReason::kError);
  EXPECT_EQ(c.get(big).done.error.code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(c.get(small).done.finish, FinishReason::kLength)
      << "a request that fits alone completes";
  EXPECT_EQ(e->stats().device_blocks_used, 0u);
}

TEST_F(EngineTest, MaxTokensGivesLengthAndContextClampsIt) {
  auto e = engine(options());
  Collector c(e.get());
  RequestId a = c.submit(*e, greedy_request(prompt(2, 20), 7));
  RequestId b = c.submit(*e, greedy_request(prompt(3, kCtx - 5), 100));  // 5 left in the context
  c.wait();
  EXPECT_EQ(c.get(a).done.finish, FinishReason::kLength);
  EXPECT_EQ(c.get(a).tokens.size(), 7u);
  EXPECT_EQ(c.get(b).done.finish, FinishReason::kLength);
  EXPECT_EQ(c.get(b).tokens.size(), 5u);
}

TEST_F(EngineTest, EndOfGenerationStops) {
  auto e = engine(options());
  Collector c(e.get());
  const int32_t eog = *tiny_->tok->eog_ids().begin();
  GenerateRequest r = greedy_request(prompt(4, 20), 10);
  r.ignore_eos = false;
  r.sampling.logit_bias = {{eog, 1000.0f}};
  RequestId a = c.submit(*e, r);
  r.ignore_eos = true;  // the same bias, but EOG is just a token
  RequestId b = c.submit(*e, r);
  c.wait();
  EXPECT_EQ(c.get(a).done.finish, FinishReason::kStop);
  EXPECT_EQ(c.get(a).tokens, std::vector<int32_t>{eog});
  EXPECT_EQ(c.get(a).text, "") << "the EOG token is not text";
  EXPECT_EQ(c.get(b).done.finish, FinishReason::kLength);
  EXPECT_EQ(c.get(b).tokens.size(), 10u);
}

TEST_F(EngineTest, StopStringSplitAcrossTokensIsWithheldAndCut) {
  auto e = engine(options());
  Collector c(e.get());
  const auto p = prompt(5, 30);
  RequestId a = c.submit(*e, greedy_request(p, 40));
  c.wait();
  const Collector::Out full = c.get(a);
  // A stop string made of the end of one token's text and the start of a later one's.
  // Text length after each token, as the engine's decoder emits it.
  tokenizer::IncrementalDecoder dec(*tiny_->tok);
  std::string pieces_text;
  std::vector<size_t> ends;
  for (int32_t t : full.tokens) {
    pieces_text += dec.add(t);
    ends.push_back(pieces_text.size());
  }
  pieces_text += dec.flush();
  ASSERT_EQ(pieces_text, full.text);
  size_t cut = 0;
  for (size_t i = 10; i + 1 < ends.size(); ++i) {
    if (ends[i] - ends[i - 1] >= 1 && ends[i + 1] - ends[i] >= 1 &&
        static_cast<unsigned char>(full.text[ends[i] - 1]) < 128 &&
        static_cast<unsigned char>(full.text[ends[i]]) < 128) {
      cut = ends[i];
      break;
    }
  }
  ASSERT_GT(cut, 0u);
  const std::string stop = full.text.substr(cut - 1, 2);
  const size_t first = full.text.find(stop);
  GenerateRequest r = greedy_request(p, 40);
  r.stop = {"never-there", stop};
  RequestId b = c.submit(*e, r);
  c.wait();
  const Collector::Out out = c.get(b);
  EXPECT_EQ(out.done.finish, FinishReason::kStop);
  EXPECT_EQ(out.done.stop_matched, stop);
  EXPECT_EQ(out.text, full.text.substr(0, first)) << "stop string '" << stop << "'";
}

TEST_F(EngineTest, LogprobsWhenAsked) {
  auto e = engine(options());
  GenerateRequest r = greedy_request(prompt(6, 12), 3);
  r.sampling.top_logprobs = 3;
  std::mutex mu;
  std::vector<Event> events;
  std::condition_variable cv;
  bool done = false;
  ASSERT_TRUE(e->submit(r, [&](const Event& ev) {
                 std::lock_guard lk(mu);
                 events.push_back(ev);
                 done |= ev.kind == Event::Kind::kDone;
                 cv.notify_all();
               }).is_ok());
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return done; });
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(events[i].logprobs.size(), 1u);
    EXPECT_EQ(events[i].logprobs[0].token, events[i].tokens[0]);
    EXPECT_EQ(events[i].logprobs[0].top.size(), 3u);
    EXPECT_LE(events[i].logprobs[0].logprob, 0.0f);
  }
}

TEST_F(EngineTest, PrefixCacheOffRamAndSsdRestartGiveTheSameOutput) {
  kv::testing::TempDir dir;
  const auto p = prompt(7, 150);  // 9 full blocks of 16, cached: 144 tokens
  const std::vector<int32_t> want = solo(p, 16);
  auto run = [&](Engine& e) {
    Collector c(&e);
    RequestId id = c.submit(e, greedy_request(p, 16));
    c.wait();
    Collector::Out out = c.get(id);
    EXPECT_EQ(out.tokens, want);
    return out.done.usage;
  };
  {
    EngineOptions o = options();
    o.prefix_cache = false;
    auto e = engine(o);
    EXPECT_EQ(run(*e).cached_tokens, 0);
    EXPECT_EQ(run(*e).cached_tokens, 0) << "cache off";
  }
  EngineOptions o = options();
  o.ssd_dir = dir.path;
  o.ssd_bytes = 64u << 20;
  o.min_ssd_wait_seconds = 5.0;  // a loaded test machine must not turn the SSD hit into a recompute
  {
    auto e = engine(o);
    Usage u1 = run(*e);
    EXPECT_EQ(u1.cached_tokens, 0);
    Usage u2 = run(*e);
    EXPECT_GE(u2.cached_tokens, 144);
    EXPECT_EQ(u2.cached_tokens, u2.cached_tokens_device);
    e->shutdown(true);
  }
  {
    auto e = engine(o);  // a restart on the same cache directory
    Usage u = run(*e);
    EXPECT_EQ(u.cached_tokens_disk, 144);
    EXPECT_EQ(u.cached_tokens, 144);
    EXPECT_EQ(e->stats().cached_tokens_total, 144u);
  }
}

TEST_F(EngineTest, FailedSsdReadsAreRecomputedWithTheSameOutput) {
  kv::testing::TempDir dir;
  const auto p = prompt(9, 150);
  const std::vector<int32_t> want = solo(p, 12);
  EngineOptions o = options();
  o.ssd_dir = dir.path;
  o.ssd_bytes = 64u << 20;
  {
    auto e = engine(o);
    Collector c(e.get());
    c.submit(*e, greedy_request(p, 12));
    c.wait();
    e->shutdown(true);
  }
  auto e = engine(o);  // indexes the records...
  int damaged = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir.path)) {
    if (f.is_regular_file() && f.file_size() > 64) {
      std::filesystem::resize_file(f.path(), 64);  // ...which then go bad under it
      ++damaged;
    }
  }
  ASSERT_GT(damaged, 0);
  Collector c(e.get());
  RequestId id = c.submit(*e, greedy_request(p, 12));
  c.wait();
  const Collector::Out out = c.get(id);
  EXPECT_EQ(out.tokens, want);
  EXPECT_EQ(out.done.usage.cached_tokens_disk, 0) << "no damaged block was served";
}

TEST_F(EngineTest, ConcurrentIdenticalPromptsShareTheirBlocks) {
  EngineOptions o = options();
  o.batch_tokens = 256;  // the whole prompt in one step, so the twin is considered in it
  auto e = engine(o);
  Collector c(e.get());
  const auto p = prompt(8, 200);
  RequestId a = c.submit(*e, greedy_request(p, 8));
  RequestId b = c.submit(*e, greedy_request(p, 8));
  c.wait();
  EXPECT_EQ(c.get(a).tokens, c.get(b).tokens);
  EXPECT_EQ(c.get(a).done.usage.cached_tokens + c.get(b).done.usage.cached_tokens, 192)
      << "one computed the 12 full blocks, the other took them";
}

}  // namespace
}  // namespace strata::engine

namespace strata::engine {
namespace {

// Issue 5: the effect of 8-bit K/V in the lower tiers on output, measured. A prompt's prefix
// is restored from int8 SSD records after a restart; the next-token distribution is compared
// with the one computed from scratch (cache off).
TEST_F(EngineTest, Int8LowerTiersEffectOnOutputIsSmall) {
  kv::testing::TempDir dir;
  double worst_logprob_diff = 0;
  int same_tokens = 0, total_tokens = 0, prompts = 0;
  for (uint32_t seed = 20; seed < 24; ++seed) {
    const auto p = prompt(seed, 150);
    auto request = [&] {
      GenerateRequest r = greedy_request(p, 8);
      r.sampling.top_logprobs = 5;
      return r;
    };
    auto run = [&](Engine& e) {
      Collector c(&e);
      RequestId id = c.submit(e, request());
      c.wait();
      return c.get(id);
    };
    EngineOptions off = options();
    off.prefix_cache = false;
    auto e0 = engine(off);
    const Collector::Out fresh = run(*e0);
    EngineOptions o = options();
    o.ssd_dir = dir.path + "/" + std::to_string(seed);
    o.ssd_bytes = 64u << 20;
    o.lower_tier_int8 = true;
    o.min_ssd_wait_seconds = 5.0;
    {
      auto e = engine(o);
      run(*e);
      e->shutdown(true);
    }
    auto e = engine(o);  // restart: the prefix comes from int8 records
    const Collector::Out restored = run(*e);
    ASSERT_EQ(restored.done.usage.cached_tokens_disk, 144);
    ASSERT_FALSE(fresh.logprobs.empty());
    ASSERT_FALSE(restored.logprobs.empty());
    // First token: same context except the int8 round trip of the 144 cached tokens' K/V.
    for (const auto& a : fresh.logprobs[0].top) {
      for (const auto& b : restored.logprobs[0].top) {
        if (a.token == b.token) worst_logprob_diff = std::max(worst_logprob_diff, std::fabs(static_cast<double>(a.logprob - b.logprob)));
      }
    }
    for (size_t i = 0; i < std::min(fresh.tokens.size(), restored.tokens.size()); ++i) {
      if (fresh.tokens[i] != restored.tokens[i]) break;
      ++same_tokens;
    }
    total_tokens += static_cast<int>(fresh.tokens.size());
    ++prompts;
  }
  std::printf("[int8 lower tiers] %d prompts: greedy tokens identical until divergence %d/%d; "
              "worst |logprob difference| of the top-5 at the first token %.4f\n",
              prompts, same_tokens, total_tokens, worst_logprob_diff);
  RecordProperty("int8_worst_logprob_diff", std::to_string(worst_logprob_diff));
  RecordProperty("int8_same_tokens", std::to_string(same_tokens) + "/" + std::to_string(total_tokens));
  // Per-row absmax int8 keeps each K/V element within amax/254: a few hundredths of a nat on
  // the next-token log-probabilities is the expected scale; 0.1 would mean a real distortion.
  EXPECT_LT(worst_logprob_diff, 0.1);
  EXPECT_GE(same_tokens, total_tokens / 2);
}

// The KV cache's block strides (which its tiers and codecs go by) and the backends' row
// offsets (which every kernel goes by) describe one layout: heads major.
TEST(KvLayoutTest, CacheStridesAgreeWithTheKernelsRowOffsets) {
  for (DType dt : {DType::kF16, DType::kQ8_0, DType::kF32}) {
    for (int bt : {16, 64}) {
      kv::KvLayout lay;
      lay.num_layers = 2;
      lay.num_kv_heads = 3;
      lay.head_dim = 64;
      lay.dtype = dt;
      lay.block_tokens = bt;
      const kv::BlockStrides st = kv::block_strides(lay);
      backend::PagedKv p;
      p.type = dt;
      p.block_tokens = bt;
      p.num_kv_heads = lay.num_kv_heads;
      p.head_dim = lay.head_dim;
      const size_t rb = row_bytes(dt, lay.head_dim);
      EXPECT_EQ(st.token_stride_bytes, rb);
      for (int h = 0; h < lay.num_kv_heads; ++h) {
        for (int t = 0; t < bt; ++t) {
          ASSERT_EQ(backend::kv_row_offset(p, t, h, rb),
                    t * st.token_stride_bytes + h * st.head_stride_bytes);
          ASSERT_LT(backend::kv_row_offset(p, t, h, rb) + rb, lay.layer_bytes() + 1);
        }
      }
      // a head's rows of a block: one contiguous run
      EXPECT_EQ(backend::kv_row_offset(p, bt - 1, 0, rb) + rb, backend::kv_row_offset(p, 0, 1, rb));
    }
  }
}

}  // namespace
}  // namespace strata::engine
