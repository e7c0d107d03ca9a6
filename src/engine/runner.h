// The model runner: turns a step plan into one Model::forward over every scheduled sequence
// (prefill chunks and decode tokens mixed) against the KV cache's device tier, and brings
// back the logits of the sequences that sample.
#pragma once

#include <span>
#include <vector>

#include "core/status.h"
#include "engine/scheduler.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace strata::engine {

class Runner {
 public:
  // max_tokens: the step budget (the model's scratch is sized for it); max_seqs: parallel.
  Runner(model::Model& model, kv::KvCache& kv, int max_tokens, int max_seqs);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs the plan. For the items that sample, in item order: their logits [items, vocab] f32
  // on the host, or with argmax_only each one's first largest logit (Backend::argmax_rows:
  // greedy sampling without bringing the logits back).
  struct Output {
    std::span<const float> logits;
    std::span<const int32_t> argmax;
  };
  Result<Output> run(const StepPlan& plan, bool argmax_only = false);

 private:
  model::Model& model_;
  kv::KvCache& kv_;
  model::KvLayers layers_;
  int max_seqs_;
  float* logits_dev_ = nullptr;     // [max_seqs, vocab] f32, backend memory
  float* logits_host_ = nullptr;     // [max_seqs, vocab] f32, Backend::alloc_host_f32
  std::vector<int32_t> argmax_;     // [max_seqs]
  // Batch arrays, reused: [num_tokens] each; block tables [items][blocks] i32.
  std::vector<int32_t> tokens_, positions_, slots_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<model::BatchSeq> seqs_;
};

}  // namespace strata::engine
