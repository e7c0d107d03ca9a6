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

  // Runs the plan; returns logits [number of items with sample, vocab] f32 on the host, in
  // item order.
  Result<std::span<const float>> run(const StepPlan& plan);

 private:
  model::Model& model_;
  kv::KvCache& kv_;
  model::KvLayers layers_;
  int max_seqs_;
  float* logits_dev_ = nullptr;     // [max_seqs, vocab] f32, backend memory
  std::vector<float> logits_host_;  // [max_seqs, vocab] f32
  // Batch arrays, reused: [num_tokens] each; block tables [items][blocks] i32.
  std::vector<int32_t> tokens_, positions_, slots_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<model::BatchSeq> seqs_;
};

}  // namespace strata::engine
