// The decoder-only transformer that llama, qwen2, qwen3 and qwen3moe share: weights declared
// once (hparams.cpp) and bound here, and the forward as named steps. Each architecture's file
// composes a layer from these steps.
#pragma once

#include <vector>

#include "model/model.h"

namespace strata::model {

struct LayerWeights {
  backend::WeightView attn_norm, wq, wk, wv, wo;
  backend::WeightView bq, bk, bv;          // qwen2
  backend::WeightView q_norm, k_norm;      // qwen3
  backend::WeightView ffn_norm, gate, up, down;           // dense
  backend::WeightView router, gate_exps, up_exps, down_exps;  // MoE
};

class Decoder : public Model {
 public:
  Status bind(std::unique_ptr<gguf::File> file, const Hparams& hp, backend::Backend& backend);
  ~Decoder() override;
  Status forward(const Batch& batch, const KvLayers& kv, float* logits) override;

 protected:
  // One layer: the architecture's file decides which steps run.
  virtual void layer(int l, const Batch& batch, const KvLayers& kv) = 0;

  // Steps. x_ [n, dim] is the residual stream.
  void attention_block(int l, const Batch& batch, const KvLayers& kv);
  void dense_ffn_block(int l, int64_t n);
  void moe_ffn_block(int l, int64_t n);

  std::vector<LayerWeights> layers_;

 private:
  Result<backend::WeightView> weight(const std::string& name, std::vector<int64_t> shape, bool optional);
  void alloc_scratch();
  backend::Backend::StepInfo step_info(const Batch& batch, const KvLayers& kv, const float* logits) const;
  void free_scratch();

  backend::WeightView token_embd_, output_norm_, output_;
  backend::RopeTable rope_;
  std::vector<std::vector<float>> owned_f32_;  // small tensors converted to f32 at load
  std::vector<int32_t> seq_rows_;              // last row of each sequence wanting logits
  std::vector<backend::SeqAttention> attn_seqs_;
  // Scratch (backend memory), sized for max_batch_tokens_.
  int64_t scratch_tokens_ = 0;
  float* x_ = nullptr;     // [n, dim]
  float* h_ = nullptr;     // [n, dim]
  float* q_ = nullptr;     // [n, heads * head_dim]
  float* k_ = nullptr;     // [n, kv_heads * head_dim]
  float* v_ = nullptr;     // [n, kv_heads * head_dim]
  float* att_ = nullptr;   // [n, heads * head_dim]
  float* f1_ = nullptr;    // [n, max(ffn, k * expert_ffn)]
  float* f2_ = nullptr;    // same
  float* fo_ = nullptr;    // [n, k, dim] expert outputs
  float* router_ = nullptr;  // [n, experts]
  float* topw_ = nullptr;    // [n, k]
  int32_t* topi_ = nullptr;  // [n, k]
  float* last_ = nullptr;    // [num seqs, dim]
};

}  // namespace strata::model
