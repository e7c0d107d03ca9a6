// Direct generation without the scheduler: one model, its own K/V blocks, prompts run as
// chunked prefill then token-by-token decode. Used by `strata run`, `strata bench` and the
// model correctness tests; the serving engine (scheduler + tiered cache) builds on the same
// Model::forward.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"
#include "model/model.h"

namespace strata::engine {

// Device-tier K/V for a model without the cache: per attention layer, blocks of
// [num_kv_heads, block_tokens, head_dim] of `dtype`. Hybrid models also get recurrent-state
// blobs: two, which consecutive blocks alternate (a block reads its predecessor's state and
// writes its own, as with the cache), or one (state_slots = 1: updated in place, never
// copied; the baseline that measures what per-block snapshots cost).
class KvBuffers {
 public:
  KvBuffers(backend::Backend& backend, const model::Hparams& hp, DType dtype, int block_tokens,
            int num_blocks, int state_slots = 2);
  ~KvBuffers();
  KvBuffers(const KvBuffers&) = delete;
  KvBuffers& operator=(const KvBuffers&) = delete;

  const model::KvLayers& layers() const { return layers_; }
  int num_blocks() const { return num_blocks_; }
  int block_tokens() const { return block_tokens_; }
  size_t bytes() const { return bytes_; }
  // State blob of each logical block (hybrid models), or null.
  const int32_t* state_table() const { return state_table_.empty() ? nullptr : state_table_.data(); }

 private:
  backend::Backend& backend_;
  model::KvLayers layers_;
  std::vector<void*> allocations_;
  int num_blocks_;
  int block_tokens_;
  size_t bytes_ = 0;
  std::vector<int32_t> state_table_;
};

struct GenerateOptions {
  int max_tokens = 128;
  SamplingParams sampling;
  bool stop_at_eog = true;
  std::vector<int32_t> eog_tokens;   // end-of-generation ids
  int prefill_chunk = 512;           // tokens per prefill forward
};

struct GenerateStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

class Generator {
 public:
  // kv_dtype: F16 by default; capacity in tokens for one sequence.
  // state_slots: see KvBuffers (hybrid models only).
  Generator(model::Model& model, int64_t max_context, DType kv_dtype = DType::kF16,
            int block_tokens = 64, int state_slots = 2);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Streams each new token to on_token (return false to stop). Returns all new tokens.
  Result<std::vector<int32_t>> generate(std::span<const int32_t> prompt, const GenerateOptions& opts,
                                        const std::function<bool(const SampleResult&)>& on_token,
                                        GenerateStats* stats = nullptr);

  // Logits [prompt.size() - first_decode_pos + 1 ... ] for tests: prefills
  // prompt[0, prefill_len) in chunks of `chunk`, then feeds the rest one token at a time,
  // and returns the logits after each fed position from prefill_len - 1 on, [positions, vocab].
  Result<std::vector<float>> logits_per_position(std::span<const int32_t> prompt, int prefill_len,
                                                 int chunk = 512);

 private:
  Status run_tokens(std::span<const int32_t> tokens, int64_t start_pos, bool want_logits, float* logits);

  model::Model& model_;
  int64_t max_context_;
  KvBuffers kv_;
  std::vector<int32_t> block_table_;
  float* logits_dev_ = nullptr;
  float* logits_host_ = nullptr;  // [vocab], Backend::alloc_host_f32
};

}  // namespace strata::engine
