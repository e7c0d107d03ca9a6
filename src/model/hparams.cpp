// GGUF metadata <-> Hparams, and the tensor declarations shared by the loader and synth.
#include "model/hparams.h"

#include <fmt/format.h>

#include <cmath>

namespace strata::model {
namespace {

const std::vector<std::string> kArchitectures = {"llama", "qwen2", "qwen3", "qwen3moe", "qwen35", "qwen35moe"};

bool is_hybrid_arch(const std::string& arch) { return arch == "qwen35" || arch == "qwen35moe"; }

}  // namespace

int64_t Hparams::num_attention_layers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_layers; ++l) n += is_recurrent(l) ? 0 : 1;
  return n;
}

int64_t Hparams::recurrent_state_bytes() const {
  return (num_layers - num_attention_layers()) * delta.state_floats() * 4;
}

bool is_supported_architecture(const std::string& arch) {
  for (const auto& a : kArchitectures) {
    if (a == arch) return true;
  }
  return false;
}

std::vector<std::string> supported_architectures() { return kArchitectures; }

Status apply_architecture_traits(Hparams& hp) {
  if (!is_supported_architecture(hp.arch)) {
    std::string all;
    for (const auto& a : kArchitectures) all += (all.empty() ? "" : ", ") + a;
    return error(ErrorCode::kUnsupported,
                 fmt::format("architecture '{}' is not supported (supported: {})", hp.arch, all));
  }
  hp.rope_neox = hp.arch != "llama";
  hp.attn_bias = hp.arch == "qwen2";
  hp.qk_norm = hp.arch == "qwen3" || hp.arch == "qwen3moe" || is_hybrid_arch(hp.arch);
  if (is_hybrid_arch(hp.arch) && hp.full_attn_interval <= 0) hp.full_attn_interval = 4;  // the ecosystem's default
  if (!is_hybrid_arch(hp.arch)) hp.full_attn_interval = 0;
  return Status::ok();
}

Result<Hparams> read_hparams(const gguf::File& f) {
  Hparams hp;
  hp.arch = f.architecture();
  if (hp.arch.empty()) return error(ErrorCode::kCorrupt, "general.architecture is missing");
  STRATA_RETURN_IF_ERROR(apply_architecture_traits(hp));
  auto need_int = [&](const char* suffix, int64_t& out) -> Status {
    auto v = f.get_int(f.arch_key(suffix));
    if (!v || *v <= 0) return error(ErrorCode::kCorrupt, fmt::format("metadata '{}' is missing or not a positive integer", f.arch_key(suffix)));
    out = *v;
    return Status::ok();
  };
  STRATA_RETURN_IF_ERROR(need_int("embedding_length", hp.dim));
  STRATA_RETURN_IF_ERROR(need_int("block_count", hp.num_layers));
  STRATA_RETURN_IF_ERROR(need_int("attention.head_count", hp.num_heads));
  STRATA_RETURN_IF_ERROR(need_int("context_length", hp.context_length));
  hp.num_kv_heads = f.get_int(f.arch_key("attention.head_count_kv")).value_or(hp.num_heads);
  hp.head_dim = f.get_int(f.arch_key("attention.key_length")).value_or(hp.dim / hp.num_heads);
  if (auto vl = f.get_int(f.arch_key("attention.value_length")); vl && *vl != hp.head_dim) {
    return error(ErrorCode::kUnsupported, "key_length != value_length is not supported");
  }
  if (hp.num_kv_heads <= 0 || hp.num_heads % hp.num_kv_heads != 0) {
    return error(ErrorCode::kCorrupt, fmt::format("head_count {} is not a multiple of head_count_kv {}", hp.num_heads, hp.num_kv_heads));
  }
  hp.rms_eps = static_cast<float>(f.get_float(f.arch_key("attention.layer_norm_rms_epsilon")).value_or(1e-6));
  hp.rope_freq_base = static_cast<float>(f.get_float(f.arch_key("rope.freq_base")).value_or(10000.0));
  hp.rope_dim = f.get_int(f.arch_key("rope.dimension_count")).value_or(hp.head_dim);
  if (is_hybrid_arch(hp.arch)) STRATA_RETURN_IF_ERROR(read_hybrid_hparams(f, hp));
  if (hp.arch == "qwen3moe" || hp.arch == "qwen35moe") {
    STRATA_RETURN_IF_ERROR(need_int("expert_count", hp.num_experts));
    STRATA_RETURN_IF_ERROR(need_int("expert_used_count", hp.num_experts_used));
    STRATA_RETURN_IF_ERROR(need_int("expert_feed_forward_length", hp.expert_ffn_dim));
    if (hp.num_experts_used > hp.num_experts) return error(ErrorCode::kCorrupt, "expert_used_count > expert_count");
    hp.ffn_dim = f.get_int(f.arch_key("feed_forward_length")).value_or(0);
    if (hp.arch == "qwen35moe") STRATA_RETURN_IF_ERROR(need_int("expert_shared_feed_forward_length", hp.shared_expert_ffn_dim));
  } else {
    STRATA_RETURN_IF_ERROR(need_int("feed_forward_length", hp.ffn_dim));
  }
  if (auto st = f.get_string(f.arch_key("rope.scaling.type"))) {
    auto& rs = hp.rope_scaling;
    if (*st == "linear") rs.type = RopeScaling::Type::kLinear;
    else if (*st == "yarn") rs.type = RopeScaling::Type::kYarn;
    else if (*st == "llama3") rs.type = RopeScaling::Type::kLlama3;
    else if (*st != "none") return error(ErrorCode::kUnsupported, fmt::format("rope scaling type '{}'", *st));
    rs.factor = static_cast<float>(f.get_float(f.arch_key("rope.scaling.factor")).value_or(1.0));
    rs.original_context = f.get_int(f.arch_key("rope.scaling.original_context_length")).value_or(hp.context_length);
    rs.yarn_beta_fast = static_cast<float>(f.get_float(f.arch_key("rope.scaling.yarn_beta_fast")).value_or(32.0));
    rs.yarn_beta_slow = static_cast<float>(f.get_float(f.arch_key("rope.scaling.yarn_beta_slow")).value_or(1.0));
    rs.low_freq_factor = static_cast<float>(f.get_float(f.arch_key("rope.scaling.low_freq_factor")).value_or(1.0));
    rs.high_freq_factor = static_cast<float>(f.get_float(f.arch_key("rope.scaling.high_freq_factor")).value_or(4.0));
  } else if (auto factor = f.get_float(f.arch_key("rope.scaling.factor"))) {
    if (*factor != 1.0) {
      hp.rope_scaling.type = RopeScaling::Type::kLinear;
      hp.rope_scaling.factor = static_cast<float>(*factor);
    }
  }
  // Llama 3.1 files carry rope_freqs.weight instead of scaling keys: handled by the loader.
  if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens")) hp.vocab_size = static_cast<int64_t>(toks->array_size());
  if (const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight"); emb && emb->shape.size() == 2) {
    hp.vocab_size = emb->shape[1];
  }
  if (hp.vocab_size <= 0) return error(ErrorCode::kCorrupt, "vocabulary size unknown: no tokenizer.ggml.tokens and no token_embd.weight");
  hp.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return hp;
}

void write_hparams(const Hparams& hp, gguf::Writer& w) {
  using gguf::Value;
  auto k = [&](const char* suffix) { return hp.arch + "." + suffix; };
  w.set("general.architecture", Value::string(hp.arch));
  w.set(k("context_length"), Value::u32(static_cast<uint32_t>(hp.context_length)));
  w.set(k("embedding_length"), Value::u32(static_cast<uint32_t>(hp.dim)));
  w.set(k("block_count"), Value::u32(static_cast<uint32_t>(hp.num_layers + hp.num_nextn_layers)));
  w.set(k("feed_forward_length"), Value::u32(static_cast<uint32_t>(hp.ffn_dim)));
  w.set(k("attention.head_count"), Value::u32(static_cast<uint32_t>(hp.num_heads)));
  w.set(k("attention.head_count_kv"), Value::u32(static_cast<uint32_t>(hp.num_kv_heads)));
  w.set(k("attention.key_length"), Value::u32(static_cast<uint32_t>(hp.head_dim)));
  w.set(k("attention.value_length"), Value::u32(static_cast<uint32_t>(hp.head_dim)));
  w.set(k("attention.layer_norm_rms_epsilon"), Value::f32(hp.rms_eps));
  w.set(k("rope.freq_base"), Value::f32(hp.rope_freq_base));
  if (hp.rope_dim != hp.head_dim) w.set(k("rope.dimension_count"), Value::u32(static_cast<uint32_t>(hp.rope_dim)));
  if (hp.arch == "llama") w.set(k("vocab_size"), Value::u32(static_cast<uint32_t>(hp.vocab_size)));
  if (hp.is_moe()) {
    w.set(k("expert_count"), Value::u32(static_cast<uint32_t>(hp.num_experts)));
    w.set(k("expert_used_count"), Value::u32(static_cast<uint32_t>(hp.num_experts_used)));
    w.set(k("expert_feed_forward_length"), Value::u32(static_cast<uint32_t>(hp.expert_ffn_dim)));
    if (hp.shared_expert_ffn_dim > 0) {
      w.set(k("expert_shared_feed_forward_length"), Value::u32(static_cast<uint32_t>(hp.shared_expert_ffn_dim)));
    }
  }
  if (hp.is_hybrid()) write_hybrid_hparams(hp, w);
  const auto& rs = hp.rope_scaling;
  if (rs.type != RopeScaling::Type::kNone) {
    const char* names[] = {"none", "linear", "yarn", "llama3"};
    w.set(k("rope.scaling.type"), Value::string(names[static_cast<int>(rs.type)]));
    w.set(k("rope.scaling.factor"), Value::f32(rs.factor));
    w.set(k("rope.scaling.original_context_length"), Value::u32(static_cast<uint32_t>(rs.original_context)));
    if (rs.type == RopeScaling::Type::kLlama3) {
      w.set(k("rope.scaling.low_freq_factor"), Value::f32(rs.low_freq_factor));
      w.set(k("rope.scaling.high_freq_factor"), Value::f32(rs.high_freq_factor));
    }
  }
}

std::vector<TensorDecl> declare_tensors(const Hparams& hp) {
  if (hp.is_hybrid()) return declare_hybrid_tensors(hp);
  using Init = TensorDecl::Init;
  std::vector<TensorDecl> t;
  const int64_t q_dim = hp.num_heads * hp.head_dim;
  const int64_t kv_dim = hp.num_kv_heads * hp.head_dim;
  // Init scales keep activations in a realistic range: rows of unit-rms inputs give unit-rms
  // outputs (std = 1/sqrt(fan_in)); residual writers are scaled down by sqrt(2 * layers) so
  // the residual stream grows slowly; the output projection gives logits of std ~3.
  auto std_in = [](int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); };
  const float resid = 1.0f / std::sqrt(2.0f * static_cast<float>(hp.num_layers));
  // Tied models read logits through the embedding, so it gets the output projection's scale.
  t.push_back({"token_embd.weight", {hp.dim, hp.vocab_size}, Init::kNormal, hp.tied_embeddings ? 3.0f * std_in(hp.dim) : 1.0f});
  for (int64_t l = 0; l < hp.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", {hp.dim}, Init::kNorm});
    t.push_back({p + "attn_q.weight", {hp.dim, q_dim}, Init::kNormal, std_in(hp.dim)});
    t.push_back({p + "attn_k.weight", {hp.dim, kv_dim}, Init::kNormal, std_in(hp.dim)});
    t.push_back({p + "attn_v.weight", {hp.dim, kv_dim}, Init::kNormal, std_in(hp.dim)});
    if (hp.attn_bias) {
      t.push_back({p + "attn_q.bias", {q_dim}, Init::kNormal, 0.1f});
      t.push_back({p + "attn_k.bias", {kv_dim}, Init::kNormal, 0.1f});
      t.push_back({p + "attn_v.bias", {kv_dim}, Init::kNormal, 0.1f});
    }
    if (hp.qk_norm) {
      t.push_back({p + "attn_q_norm.weight", {hp.head_dim}, Init::kNorm});
      t.push_back({p + "attn_k_norm.weight", {hp.head_dim}, Init::kNorm});
    }
    t.push_back({p + "attn_output.weight", {q_dim, hp.dim}, Init::kNormal, std_in(q_dim) * resid});
    t.push_back({p + "ffn_norm.weight", {hp.dim}, Init::kNorm});
    if (hp.is_moe()) {
      const int64_t e = hp.num_experts, f = hp.expert_ffn_dim;
      t.push_back({p + "ffn_gate_inp.weight", {hp.dim, e}, Init::kNormal, 2.0f * std_in(hp.dim)});
      t.push_back({p + "ffn_gate_exps.weight", {hp.dim, f, e}, Init::kNormal, std_in(hp.dim)});
      t.push_back({p + "ffn_up_exps.weight", {hp.dim, f, e}, Init::kNormal, std_in(hp.dim)});
      t.push_back({p + "ffn_down_exps.weight", {f, hp.dim, e}, Init::kNormal, 2.0f * std_in(f) * resid});
    } else {
      t.push_back({p + "ffn_gate.weight", {hp.dim, hp.ffn_dim}, Init::kNormal, std_in(hp.dim)});
      t.push_back({p + "ffn_up.weight", {hp.dim, hp.ffn_dim}, Init::kNormal, std_in(hp.dim)});
      t.push_back({p + "ffn_down.weight", {hp.ffn_dim, hp.dim}, Init::kNormal, 2.0f * std_in(hp.ffn_dim) * resid});
    }
  }
  t.push_back({"output_norm.weight", {hp.dim}, Init::kNorm});
  if (!hp.tied_embeddings) t.push_back({"output.weight", {hp.dim, hp.vocab_size}, Init::kNormal, 3.0f * std_in(hp.dim)});
  return t;
}

}  // namespace strata::model
