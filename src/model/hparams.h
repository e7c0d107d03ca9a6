// Hyperparameters of the decoder-only transformers Strata runs, read from (and written to)
// GGUF metadata under the architecture's prefix, and the tensors each architecture declares.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"

namespace strata::model {

struct RopeScaling {
  enum class Type { kNone, kLinear, kYarn, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  int64_t original_context = 0;
  // YaRN
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  float yarn_ext_factor = -1.0f;  // < 0: derive from factor
  float yarn_attn_factor = 1.0f;
  // Llama 3
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
};

// The linear-attention (Gated DeltaNet) part of a hybrid model (qwen35, qwen35moe), as the
// GGUF ecosystem names it: ssm.conv_kernel, ssm.state_size (key head dim), ssm.group_count
// (key heads), ssm.time_step_rank (value heads), ssm.inner_size (value heads x value head dim).
struct DeltaNetHparams {
  int64_t conv_kernel = 0;
  int64_t num_k_heads = 0;
  int64_t num_v_heads = 0;
  int64_t head_k_dim = 0;
  int64_t head_v_dim = 0;
  int64_t key_dim() const { return num_k_heads * head_k_dim; }
  int64_t value_dim() const { return num_v_heads * head_v_dim; }
  int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }  // q, k, v channels
  // Floats of one layer's recurrent state: conv [kernel-1, conv_dim], then delta-rule
  // [num_v_heads, head_k_dim, head_v_dim].
  int64_t conv_state_floats() const { return (conv_kernel - 1) * conv_dim(); }
  int64_t state_floats() const { return conv_state_floats() + num_v_heads * head_k_dim * head_v_dim; }
};

struct Hparams {
  std::string arch;  // llama | qwen2 | qwen3 | qwen3moe | qwen35 | qwen35moe
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  int64_t dim = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;
  int64_t num_experts = 0;        // 0: dense
  int64_t num_experts_used = 0;
  int64_t expert_ffn_dim = 0;
  bool norm_topk_prob = true;     // renormalise the top-k router weights
  float rms_eps = 1e-6f;
  float rope_freq_base = 10000.0f;
  int64_t rope_dim = 0;           // rotated dims per head
  bool rope_neox = false;         // qwen*: NeoX pairs; llama: adjacent pairs
  RopeScaling rope_scaling;
  bool tied_embeddings = false;   // no output.weight: logits use token_embd
  bool attn_bias = false;         // qwen2: q/k/v biases
  bool qk_norm = false;           // qwen3: RMSNorm on q and k per head
  // Hybrids (qwen35*): every full_attn_interval-th layer is gated full attention, the others
  // Gated DeltaNet; MoE layers add a shared expert behind a sigmoid gate.
  int64_t full_attn_interval = 0;     // 0: every layer is attention
  DeltaNetHparams delta;
  int64_t shared_expert_ffn_dim = 0;  // 0: none
  int64_t num_nextn_layers = 0;       // MTP blocks after the main stack (loaded, unused)

  bool is_moe() const { return num_experts > 0; }
  bool is_hybrid() const { return full_attn_interval > 0; }
  // Layer l runs Gated DeltaNet (keeps recurrent state, no K/V).
  bool is_recurrent(int64_t l) const { return is_hybrid() && (l + 1) % full_attn_interval != 0; }
  int64_t num_attention_layers() const;
  // Bytes of the recurrent state of all DeltaNet layers (f32): the KV cache's per-block blob.
  int64_t recurrent_state_bytes() const;
};

// What the architecture registry knows: the list below is the single place that names them.
bool is_supported_architecture(const std::string& arch);
std::vector<std::string> supported_architectures();

// Fill the architecture's fixed traits (rope style, biases, qk norm) for `arch`.
Status apply_architecture_traits(Hparams& hp);

// Read from GGUF metadata; errors name the missing key.
Result<Hparams> read_hparams(const gguf::File& file);
// Write the metadata keys that read_hparams reads.
void write_hparams(const Hparams& hp, gguf::Writer& w);

struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;  // GGUF order
  // kNegExp: -exp(std * normal) (the DeltaNet decay rate A, always negative).
  enum class Init { kNormal, kNorm, kZero, kNegExp } init = Init::kNormal;
  float std = 0.02f;            // for kNormal, kNegExp
};

// Every tensor the architecture needs, in file order.
std::vector<TensorDecl> declare_tensors(const Hparams& hp);

// The hybrid (qwen35, qwen35moe) parts, in hparams_hybrid.cpp.
Status read_hybrid_hparams(const gguf::File& f, Hparams& hp);
void write_hybrid_hparams(const Hparams& hp, gguf::Writer& w);
std::vector<TensorDecl> declare_hybrid_tensors(const Hparams& hp);

}  // namespace strata::model
