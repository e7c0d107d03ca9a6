// The golden cases of cases.json as synthesis options and prompts, shared by the tool that
// exports them for HF transformers and by the test that checks Strata against HF's logits.
#pragma once

#include <cstdint>
#include <fmt/format.h>
#include <xxhash.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/synth.h"

namespace strata::golden {

struct Case {
  std::string name;
  model::SynthOptions synth;
  std::vector<std::vector<int32_t>> prompts;
};

// XXH3-64 of a synthesized model's tensor data (metadata such as the vocabulary may change
// without touching the golden logits).
inline std::string weights_hash(const std::vector<uint8_t>& gguf_bytes);

inline std::vector<Case> load_cases(const std::string& path) {
  std::ifstream f(path);
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<Case> out;
  for (const auto& c : j["cases"]) {
    Case gc;
    gc.name = c["name"];
    model::Hparams hp = *model::preset_hparams("tiny");
    hp.arch = c["arch"];
    hp.num_layers = c.value("layers", 2);
    hp.dim = 256;
    hp.num_heads = 4;
    hp.num_kv_heads = 2;
    hp.head_dim = 64;
    hp.rope_dim = 64;
    hp.ffn_dim = 512;
    hp.vocab_size = 512;
    hp.context_length = 4096;
    hp.rope_freq_base = hp.arch == "llama" ? 500000.0f : 1000000.0f;
    hp.rms_eps = hp.arch == "llama" ? 1e-5f : 1e-6f;
    hp.tied_embeddings = hp.arch == "qwen3";  // one tied, the others untied
    if (hp.arch == "qwen3moe") {
      hp.num_experts = 8;
      hp.num_experts_used = 2;
      hp.expert_ffn_dim = 256;
    }
    if (hp.arch == "qwen35" || hp.arch == "qwen35moe") {
      // Qwen3.5's proportions, shrunk: partial RoPE (a quarter of the head), 2 key heads
      // serving 4 value heads (so the tiled head order matters), kernel-4 conv.
      hp.rope_dim = 16;
      hp.full_attn_interval = c.value("full_attn_interval", 4);
      hp.delta.conv_kernel = 4;
      hp.delta.num_k_heads = 2;
      hp.delta.num_v_heads = 4;
      hp.delta.head_k_dim = 32;
      hp.delta.head_v_dim = 32;
      hp.num_nextn_layers = c.value("mtp_layers", 0);
      hp.tied_embeddings = hp.arch == "qwen35";
      if (hp.arch == "qwen35moe") {
        hp.num_experts = 8;
        hp.num_experts_used = 2;
        hp.expert_ffn_dim = 128;
        hp.shared_expert_ffn_dim = 256;
      }
    }
    const std::string rs = c.value("rope_scaling", "none");
    if (rs != "none") {
      hp.rope_scaling.type = rs == "yarn" ? model::RopeScaling::Type::kYarn
                             : rs == "llama3" ? model::RopeScaling::Type::kLlama3
                                              : model::RopeScaling::Type::kLinear;
      hp.rope_scaling.factor = c.value("rope_factor", 4.0f);
      hp.rope_scaling.original_context = c.value("rope_orig_ctx", 1024);
    }
    (void)model::apply_architecture_traits(hp);
    gc.synth.hp = hp;
    gc.synth.recipe = *model::find_recipe(c["recipe"].get<std::string>());
    gc.synth.seed = std::hash<std::string>{}(gc.name) % 100000 + 1;
    gc.synth.name = "golden-" + gc.name;
    Rng rng(j["prompts"]["seed"].get<uint64_t>() + gc.synth.seed);
    for (int len : j["prompts"]["lengths"]) {
      std::vector<int32_t> p;
      for (int i = 0; i < len; ++i) p.push_back(static_cast<int32_t>(rng.below(static_cast<uint32_t>(hp.vocab_size))));
      gc.prompts.push_back(p);
    }
    out.push_back(std::move(gc));
  }
  return out;
}

inline std::string weights_hash(const std::vector<uint8_t>& gguf_bytes) {
  auto f = gguf::File::parse(gguf_bytes);
  if (!f.is_ok()) return "unreadable";
  const uint64_t off = (*f)->data_offset();
  return fmt::format("{:016x}", XXH3_64bits(gguf_bytes.data() + off, gguf_bytes.size() - off));
}

}  // namespace strata::golden
