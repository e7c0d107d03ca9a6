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

struct Hparams {
  std::string arch;  // llama | qwen2 | qwen3 | qwen3moe
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

  bool is_moe() const { return num_experts > 0; }
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
  enum class Init { kNormal, kNorm, kZero } init = Init::kNormal;
  float std = 0.02f;            // for kNormal
};

// Every tensor the architecture needs, in file order.
std::vector<TensorDecl> declare_tensors(const Hparams& hp);

}  // namespace strata::model
