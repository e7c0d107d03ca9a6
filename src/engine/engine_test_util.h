// Test helpers for the engine: a synthesized tiny model with its tokenizer, solo greedy
// references from engine::Generator, and an event collector.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/check.h"
#include "core/thread_pool.h"
#include "engine/engine_impl.h"
#include "engine/generator.h"
#include "model/synth.h"

namespace strata::engine::testing {

struct TinyModel {
  std::vector<uint8_t> bytes;  // the GGUF file; the model's weights point into it
  std::unique_ptr<backend::CpuBackend> backend;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

inline std::unique_ptr<TinyModel> make_tiny(const std::string& preset = "tiny",
                                            int64_t ctx = 16384) {
  auto t = std::make_unique<TinyModel>();
  model::SynthOptions so;
  so.hp = model::preset_hparams(preset).value();
  so.hp.context_length = ctx;
  so.recipe = model::find_recipe("Q8_0").value();
  so.seed = 7;
  ThreadPool pool(2);
  auto w = model::synthesize(so, pool);
  STRATA_CHECK(w.is_ok());
  t->bytes = w->write_to_buffer();
  t->backend = std::make_unique<backend::CpuBackend>(2);
  auto file = gguf::File::parse(t->bytes);
  STRATA_CHECK(file.is_ok());
  auto tok = tokenizer::Tokenizer::from_gguf(**file);
  STRATA_CHECK(tok.is_ok());
  t->tok = std::move(tok).value();
  auto m = model::Model::from_file(std::move(file).value(), *t->backend);
  STRATA_CHECK(m.is_ok());
  t->model = std::move(m).value();
  return t;
}

// The engine tests' options: 4 sequences, 32-token steps (prefill chunks end anywhere, not
// only at block boundaries), F32 K/V in blocks of `block` tokens.
inline EngineOptions tiny_options(const std::string& model_id, int64_t ctx, int block) {
  EngineOptions o;
  o.parallel = 4;
  o.batch_tokens = 32;
  o.ctx = ctx;
  o.kv_dtype = DType::kF32;
  o.block_tokens = block;
  o.model_id = model_id;
  o.tokenizer_id = "builtin";
  return o;
}

inline std::unique_ptr<Engine> tiny_engine(TinyModel& m, const EngineOptions& o) {
  auto e = make_engine(*m.model, *m.tok, o);
  STRATA_CHECK(e.is_ok());
  return std::move(e).value();
}

inline std::vector<int32_t> random_prompt(std::mt19937& rng, size_t n, int32_t vocab) {
  std::vector<int32_t> p(n);
  // Byte tokens and merges only: no specials (ids 256..262 in the built-in vocabulary).
  for (int32_t& x : p) {
    do x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
    while (x >= 256 && x < 272);
  }
  return p;
}

// Greedy tokens of `prompt` run alone through the Generator (no scheduler, no cache).
inline std::vector<int32_t> solo_greedy(model::Model& m, const std::vector<int32_t>& prompt,
                                        int max_tokens, DType kv, int block_tokens, int64_t ctx) {
  Generator gen(m, ctx, kv, block_tokens);
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.stop_at_eog = false;
  auto r = gen.generate(prompt, o, nullptr);
  STRATA_CHECK(r.is_ok());
  return std::move(r).value();
}

// Collects events per request; wait() until every submitted request is done.
class Collector {
 public:
  struct Out {
    std::vector<int32_t> tokens;
    std::string text;
    std::vector<uint64_t> steps;  // engine step of each token
    std::vector<double> times;    // seconds since the collector was made
    int num_done = 0;
    Event done;
    std::vector<SampleResult> logprobs;  // when the request asked for them
  };
  explicit Collector(Engine* engine = nullptr)
      : engine_(engine), t0_(std::chrono::steady_clock::now()) {}
  void set_engine(Engine* e) { engine_ = e; }
  EventCallback callback() {
    return [this](const Event& ev) {
      const uint64_t step = engine_ != nullptr ? engine_->stats().steps : 0;
      const double t =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
      std::lock_guard lk(mu_);
      Out& o = out_[ev.id];
      if (ev.kind == Event::Kind::kDelta) {
        o.tokens.insert(o.tokens.end(), ev.tokens.begin(), ev.tokens.end());
        o.text += ev.text;
        o.logprobs.insert(o.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
        for (size_t i = 0; i < ev.tokens.size(); ++i) {
          o.steps.push_back(step);
          o.times.push_back(t);
        }
      } else {
        o.num_done++;
        o.done = ev;
        num_done_++;
        cv_.notify_all();
      }
    };
  }
  RequestId submit(Engine& e, GenerateRequest r) {
    auto id = e.submit(std::move(r), callback());
    STRATA_CHECK(id.is_ok());
    std::lock_guard lk(mu_);
    num_submitted_++;
    return *id;
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return num_done_ >= num_submitted_; });
  }
  Out get(RequestId id) {
    std::lock_guard lk(mu_);
    return out_[id];
  }
  std::map<RequestId, Out> all() {
    std::lock_guard lk(mu_);
    return out_;
  }

 private:
  Engine* engine_;
  std::chrono::steady_clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<RequestId, Out> out_;
  int num_submitted_ = 0;
  int num_done_ = 0;
};

inline GenerateRequest greedy_request(std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

}  // namespace strata::engine::testing
