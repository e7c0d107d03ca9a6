// A loaded model: hyperparameters, weight views into the mapped GGUF file, and a batched
// forward over paged KV. Architectures register themselves (llama.cpp, qwen2.cpp, ...);
// model code never branches on the device.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "gguf/gguf.h"
#include "model/hparams.h"

namespace strata::model {

// One sequence's part of a forward batch.
struct BatchSeq {
  int64_t token_begin = 0;   // rows [token_begin, token_begin + num_tokens) of the batch
  int64_t num_tokens = 0;
  int64_t kv_len = 0;        // tokens in the cache after this step (positions 0..kv_len-1)
  const int32_t* block_table = nullptr;  // ceil(kv_len / block_tokens) block ids
  bool want_logits = true;   // logits for this sequence's last token
  // Hybrid models: the recurrent-state blob of logical block j is KvLayers::state_blob(
  // state_table[j]); null: block_table[j] (the KV cache keeps a blob in every block).
  const int32_t* state_table = nullptr;
};

struct Batch {
  std::span<const int32_t> tokens;     // [n]
  std::span<const int32_t> positions;  // [n]
  std::span<const int32_t> slots;      // [n] KV slot = block * block_tokens + offset
  std::span<const BatchSeq> seqs;
};

// Where each attention layer's K/V lives: one PagedKv per layer that keeps K/V (every layer,
// or only the full-attention layers of a hybrid), all with the same layout. Hybrid models
// also keep, per block, the recurrent state of every DeltaNet layer as of the block's last
// computed token (Hparams::recurrent_state_bytes(), backend memory): the model reads the
// state before a block from the previous block's blob and writes the block's own, so a block
// found in the prefix cache brings the state needed to resume after it.
struct KvLayers {
  std::vector<backend::PagedKv> layers;
  uint8_t* state_base = nullptr;
  size_t state_stride_bytes = 0;
  int block_tokens() const { return layers.empty() ? 0 : layers[0].block_tokens; }
  uint8_t* state_blob(int32_t idx) const { return state_base + static_cast<size_t>(idx) * state_stride_bytes; }
};

class Model {
 public:
  virtual ~Model() = default;
  // Maps the file and binds weights (zero-copy for the CPU backend); the file stays mapped
  // for the model's lifetime.
  static Result<std::unique_ptr<Model>> load(const std::string& path, backend::Backend& backend);
  static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<gguf::File> file, backend::Backend& backend);

  const Hparams& hparams() const { return hp_; }
  const gguf::File& file() const { return *file_; }
  backend::Backend& backend() { return *backend_; }

  // Runs the batch; writes K/V of every token into its slot and logits [num seqs with
  // want_logits, vocab] (in seq order) into `logits` (backend memory, f32).
  virtual Status forward(const Batch& batch, const KvLayers& kv, float* logits) = 0;

  // Largest batch (tokens) a forward call accepts; scratch is sized for it.
  int64_t max_batch_tokens() const { return max_batch_tokens_; }
  void set_max_batch_tokens(int64_t n);

 protected:
  Model() = default;
  Hparams hp_;
  std::unique_ptr<gguf::File> file_;
  backend::Backend* backend_ = nullptr;
  int64_t max_batch_tokens_ = 512;
};

// Rotary table for the model's RoPE settings (base, dims, linear / YaRN / Llama 3 scaling).
backend::RopeTable make_rope_table(const Hparams& hp);

}  // namespace strata::model
