// The decoder-only transformer that llama, qwen2, qwen3 and qwen3moe share: weights declared
// once (hparams.cpp) and bound here, and the forward as named steps. Each architecture's file
// composes a layer from these steps.
#pragma once

#include <vector>

#include "model/model.h"

namespace strata::model {

struct LayerWeights {
  int kv_idx = -1;     // index into KvLayers::layers (attention layers only)
  int state_idx = -1;  // DeltaNet layers: index among them (offset in the state blob)
  backend::WeightView attn_norm, wq, wk, wv, wo;  // qwen35: wq is query + gate per head
  backend::WeightView bq, bk, bv;          // qwen2
  backend::WeightView q_norm, k_norm;      // qwen3
  backend::WeightView ffn_norm, gate, up, down;           // dense
  backend::WeightView router, gate_exps, up_exps, down_exps;  // MoE
  backend::WeightView shexp_gate, gate_shexp, up_shexp, down_shexp;  // qwen35moe shared expert
  // Gated DeltaNet (qwen35*)
  backend::WeightView ssm_qkv, ssm_z, ssm_alpha, ssm_beta, ssm_out;
  backend::WeightView ssm_conv;                    // [conv_dim, kernel] f32
  backend::WeightView ssm_dt, ssm_a, ssm_norm;     // [hv], [hv], [head_v_dim] f32
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
  // The part both attention blocks share, from q_, k_, v_: QK-norm (where the layer has it),
  // RoPE, K/V store, paged attention, the output gate (gate != nullptr: att *= sigmoid(gate)),
  // the output projection and the residual add.
  void attend_and_project(int l, const Batch& batch, const KvLayers& kv, const float* gate);
  void dense_ffn_block(int l, int64_t n);
  void moe_ffn_block(int l, int64_t n);
  // Hybrid steps (qwen35.cpp).
  void gated_attention_block(int l, const Batch& batch, const KvLayers& kv);
  void delta_net_block(int l, int64_t n);

  std::vector<LayerWeights> layers_;

 private:
  Result<backend::WeightView> weight(const std::string& name, std::vector<int64_t> shape, bool optional);
  Status bind_layer(int64_t l);
  Status bind_hybrid_layer(int64_t l);  // qwen35.cpp
  Status check_mtp_layers();            // qwen35.cpp
  void plan_state_segments(const Batch& batch, const KvLayers& kv);  // qwen35.cpp
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
  // Hybrid scratch.
  float* qfull_ = nullptr;   // [n, heads, 2, head_dim] query and gate
  float* gate_ = nullptr;    // [n, heads * head_dim]
  float* qkv_ = nullptr;     // [n, conv_dim]
  float* conv_ = nullptr;    // [n, conv_dim]
  float* z_ = nullptr;       // [n, value_dim]
  float* dn_ = nullptr;      // [n, value_dim]
  float* alpha_ = nullptr;   // [n, v_heads]
  float* beta_ = nullptr;    // [n, v_heads]
  float* sh_ = nullptr;      // [n, dim] shared expert output
  float* shg_ = nullptr;     // [n] shared expert gate
  std::vector<int32_t> iota_;  // 0, 1, 2, ... (row ids for strided copies)
  // This forward's DeltaNet segments (state blobs; per layer the offsets are added).
  struct StateSeg {
    int64_t row_begin, num_rows, pos_begin;
    uint8_t* in;   // null: zeros
    uint8_t* out;
  };
  std::vector<StateSeg> state_segs_;
  std::vector<backend::RecurrentSeg> conv_segs_, delta_segs_;
};

}  // namespace strata::model
