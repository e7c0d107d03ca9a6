// Hybrid models (qwen35: Gated DeltaNet + gated attention) through the engine: the recurrent
// state rides in every KV block, so batched output, cache off / RAM / SSD / restart, and a
// replayed multi-turn conversation must all give the solo greedy tokens, with the cached
// prompt tokens of each turn exactly what the previous turns computed.
#include <gtest/gtest.h>

#include "engine/engine_test_util.h"
#include "kv/kv_test_util.h"

namespace strata::engine {
namespace {

using testing::Collector;
using testing::greedy_request;

constexpr int64_t kCtx = 1024;
constexpr int kBlock = 16;

class HybridEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = testing::make_tiny("qwen3.5-tiny", 4096).release(); }
  static void TearDownTestSuite() {
    delete tiny_;
    tiny_ = nullptr;
  }
  static EngineOptions options() { return testing::tiny_options("qwen3.5-tiny-test", kCtx, kBlock); }
  static std::unique_ptr<Engine> engine(const EngineOptions& o, testing::TinyModel* m = nullptr) {
    return testing::tiny_engine(m != nullptr ? *m : *tiny_, o);
  }
  static std::vector<int32_t> prompt(uint32_t seed, size_t n) {
    std::mt19937 rng(seed);
    return testing::random_prompt(rng, n, static_cast<int32_t>(tiny_->model->hparams().vocab_size));
  }
  static std::vector<int32_t> solo(const std::vector<int32_t>& p, int max_tokens, testing::TinyModel* m = nullptr) {
    return testing::solo_greedy(*(m ? m : tiny_)->model, p, max_tokens, DType::kF32, kBlock, kCtx);
  }
  static testing::TinyModel* tiny_;
};
testing::TinyModel* HybridEngineTest::tiny_ = nullptr;

TEST_F(HybridEngineTest, StateBytesRideInTheLayout) {
  const model::Hparams& hp = tiny_->model->hparams();
  ASSERT_TRUE(hp.is_hybrid());
  EXPECT_EQ(hp.num_attention_layers(), 1);
  // 3 DeltaNet layers x (conv [3, 2*2*16 + 4*16] + state [4, 16, 16]) floats.
  EXPECT_EQ(hp.recurrent_state_bytes(), 3 * (3 * 128 + 4 * 16 * 16) * 4);
}

// A file missing a DeltaNet key, or whose keys disagree with its tensors, is refused with a
// message naming the key or the tensor.
TEST_F(HybridEngineTest, BadFilesNameTheMissingKeyOrTensor) {
  model::SynthOptions so;
  so.hp = model::preset_hparams("qwen3.5-tiny").value();
  so.recipe = model::find_recipe("F32").value();
  ThreadPool pool(1);
  backend::CpuBackend be(1);
  auto load_error = [&](const char* key, gguf::Value v) {
    auto w = model::synthesize(so, pool);
    STRATA_CHECK(w.is_ok());
    w->set(key, std::move(v));
    const std::vector<uint8_t> bytes = w->write_to_buffer();
    auto m = model::Model::from_file(gguf::File::parse(bytes).value(), be);
    return m.is_ok() ? std::string("loaded") : m.status().message();
  };
  EXPECT_NE(load_error("qwen35.ssm.conv_kernel", gguf::Value::string("four")).find("qwen35.ssm.conv_kernel"), std::string::npos);
  EXPECT_NE(load_error("qwen35.ssm.inner_size", gguf::Value::u32(128)).find("blk.0.attn_qkv.weight"), std::string::npos);
  EXPECT_NE(load_error("qwen35.block_count", gguf::Value::u32(6)).find("tensor 'blk.4."), std::string::npos)
      << "block_count one more than the file holds: layer 4 is read as a DeltaNet layer";
}

TEST_F(HybridEngineTest, BatchedOutputEqualsSoloOutput) {
  auto moe = testing::make_tiny("qwen3.5-tiny-moe", 4096);
  for (testing::TinyModel* m : {tiny_, moe.get()}) {
    auto e = engine(options(), m);
    Collector c(e.get());
    std::vector<std::pair<RequestId, std::vector<int32_t>>> ids;
    const std::vector<size_t> lengths = {5, 17, 33, 64, 100, 3, 48, 130};
    for (size_t i = 0; i < lengths.size(); ++i) {
      auto p = prompt(static_cast<uint32_t>(200 + i), lengths[i]);
      ids.emplace_back(c.submit(*e, greedy_request(p, 20)), p);
    }
    c.wait();
    for (auto& [id, p] : ids) EXPECT_EQ(c.get(id).tokens, solo(p, 20, m)) << m->model->hparams().arch << " " << p.size();
    e->shutdown(true);
    EXPECT_EQ(e->stats().device_blocks_used, 0u);
  }
}

TEST_F(HybridEngineTest, PrefixCacheOffRamAndSsdRestartGiveTheSameOutput) {
  kv::testing::TempDir dir;
  const auto p = prompt(7, 150);  // 9 full blocks of 16 (144 tokens) + 6
  const std::vector<int32_t> want = solo(p, 16);
  auto run = [&](Engine& e, const std::vector<int32_t>& q) {
    Collector c(&e);
    RequestId id = c.submit(e, greedy_request(q, 16));
    c.wait();
    Collector::Out out = c.get(id);
    EXPECT_EQ(out.tokens, want);
    return out.done.usage;
  };
  {
    EngineOptions o = options();
    o.prefix_cache = false;
    auto e = engine(o);
    EXPECT_EQ(run(*e, p).cached_tokens, 0);
    EXPECT_EQ(run(*e, p).cached_tokens, 0) << "cache off";
  }
  EngineOptions o = options();
  o.ssd_dir = dir.path;
  o.ssd_bytes = 64u << 20;
  o.min_ssd_wait_seconds = 5.0;
  {
    auto e = engine(o);
    EXPECT_EQ(run(*e, p).cached_tokens, 0);
    // An exact repeat resumes from the last full block's state and recomputes the 6-token
    // tail (the finished request's tail block holds the state after its generated tokens,
    // which this prompt does not reach).
    Usage u2 = run(*e, p);
    EXPECT_EQ(u2.cached_tokens, 144);
    EXPECT_EQ(u2.cached_tokens, u2.cached_tokens_device);
    e->shutdown(true);
  }
  {
    auto e = engine(o);  // a restart on the same cache directory: state from the SSD records
    Usage u = run(*e, p);
    EXPECT_EQ(u.cached_tokens_disk, 144);
    EXPECT_EQ(u.cached_tokens, 144);
  }
  {
    EngineOptions h = o;  // a small device tier over a host-RAM tier: blocks come back from RAM
    h.ssd_dir.clear();
    h.device_blocks = 14;
    h.host_bytes = 64u << 20;
    h.parallel = 1;
    auto e = engine(h);
    EXPECT_EQ(run(*e, p).cached_tokens, 0);
    Collector c(e.get());
    c.submit(*e, greedy_request(prompt(8, 200), 4));  // pushes the first prompt's blocks to RAM
    c.wait();
    Usage u = run(*e, p);
    EXPECT_GT(u.cached_tokens_host, 0);
  }
}

// A conversation replayed turn by turn: each prompt is the previous prompt, its answer and a
// new user message. Every turn must reuse exactly the tokens the previous turn computed (its
// full blocks and, whole, its partial tail block with the state after its last token).
TEST_F(HybridEngineTest, MultiTurnReplayReusesEveryComputedToken) {
  auto e = engine(options());
  std::vector<int32_t> history;
  int64_t computed_before = 0;  // tokens of history with K/V and state after the previous turn
  const int answer = 12;
  for (int turn = 0; turn < 5; ++turn) {
    const auto user = prompt(static_cast<uint32_t>(300 + turn), 20 + 7 * static_cast<size_t>(turn));
    history.insert(history.end(), user.begin(), user.end());
    Collector c(e.get());
    RequestId id = c.submit(*e, greedy_request(history, answer));
    c.wait();
    const Collector::Out out = c.get(id);
    EXPECT_EQ(out.tokens, solo(history, answer)) << "turn " << turn;
    EXPECT_EQ(out.done.usage.cached_tokens, computed_before) << "turn " << turn;
    // The last answer token is sampled, never fed back: it has no K/V or state yet.
    computed_before = static_cast<int64_t>(history.size()) + answer - 1;
    history.insert(history.end(), out.tokens.begin(), out.tokens.end());
  }
}

}  // namespace
}  // namespace strata::engine

namespace strata::engine {
namespace {

// qwen35moe with a shared expert of the routed experts' size: decode steps (one token) run it
// as slot k beside them (Backend::matmul_experts_shared), prefill steps as products of their
// own. Every position's logits from one-token steps equal those of a prefill that ends there
// (the reference ops; the DeltaNet's chunked and recurrent forms differ only by f32 rounding).
TEST(HybridMoe, SharedExpertSlotMatchesItsOwnProducts) {
  model::SynthOptions so;
  so.hp = model::preset_hparams("qwen3.5-tiny-moe").value();
  so.hp.shared_expert_ffn_dim = so.hp.expert_ffn_dim;
  so.recipe = model::find_recipe("F32").value();
  ThreadPool pool(1);
  auto w = model::synthesize(so, pool);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  const std::vector<uint8_t> bytes = w->write_to_buffer();
  backend::CpuBackend be(1, /*reference=*/true);
  auto m = model::Model::from_file(gguf::File::parse(bytes).value(), be);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const std::vector<int32_t> prompt = {5, 77, 300, 12, 9, 411, 42, 8, 199, 3};
  Generator dec(**m, 64, DType::kF32, 4);
  auto steps = dec.logits_per_position(prompt, 1, 1);  // every position a one-token step
  ASSERT_TRUE(steps.is_ok()) << steps.status().to_string();
  const int64_t vocab = (*m)->hparams().vocab_size;
  ASSERT_EQ(steps->size(), prompt.size() * static_cast<size_t>(vocab));
  for (size_t p = 2; p <= prompt.size(); ++p) {
    Generator pre(**m, 64, DType::kF32, 4);
    auto last = pre.logits_per_position(std::span(prompt).first(p), static_cast<int>(p), 512);
    ASSERT_TRUE(last.is_ok());
    double err = 0, rms = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double a = (*steps)[(p - 1) * static_cast<size_t>(vocab) + static_cast<size_t>(v)], b = (*last)[static_cast<size_t>(v)];
      err = std::max(err, std::fabs(a - b));
      rms += b * b;
    }
    rms = std::sqrt(rms / static_cast<double>(vocab));
    EXPECT_LT(err, 1e-4 * rms) << "position " << p - 1;
  }
}

}  // namespace
}  // namespace strata::engine
