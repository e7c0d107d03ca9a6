// Hybrid models (qwen35, qwen35moe: Gated DeltaNet + gated attention): their GGUF metadata and
// tensors, named and laid out as llama.cpp's converter writes Qwen3.5 / Qwen3.6 files:
//   - layer l is full attention when (l + 1) % full_attention_interval == 0, else DeltaNet;
//   - block_count counts the MTP (nextn) blocks after the main stack (nextn_predict_layers);
//   - attn_q holds query and output gate interleaved per head: [q_h (head_dim), gate_h (head_dim)];
//   - DeltaNet value heads are in "tiled" order: value head h reads key head h % num_k_heads
//     (HF groups them by key head; the converter reorders, export_hf.cpp undoes it);
//   - ssm_a = -exp(A_log), ssm_dt.bias = dt_bias, ssm_conv1d [kernel, channels];
//   - the zero-centred RMSNorm weights are stored as 1 + w (all but ssm_norm).
#include <fmt/format.h>

#include <cmath>

#include "model/hparams.h"

namespace strata::model {

Status read_hybrid_hparams(const gguf::File& f, Hparams& hp) {
  auto need = [&](const char* suffix, int64_t& out) -> Status {
    auto v = f.get_int(f.arch_key(suffix));
    if (!v || *v <= 0) {
      return error(ErrorCode::kCorrupt, fmt::format("metadata '{}' is missing or not a positive integer (a {} file "
                                                    "needs it for its Gated DeltaNet layers)", f.arch_key(suffix), hp.arch));
    }
    out = *v;
    return Status::ok();
  };
  DeltaNetHparams& d = hp.delta;
  STRATA_RETURN_IF_ERROR(need("ssm.conv_kernel", d.conv_kernel));
  STRATA_RETURN_IF_ERROR(need("ssm.state_size", d.head_k_dim));
  STRATA_RETURN_IF_ERROR(need("ssm.group_count", d.num_k_heads));
  STRATA_RETURN_IF_ERROR(need("ssm.time_step_rank", d.num_v_heads));
  int64_t inner = 0;
  STRATA_RETURN_IF_ERROR(need("ssm.inner_size", inner));
  if (inner % d.num_v_heads != 0) {
    return error(ErrorCode::kCorrupt, fmt::format("ssm.inner_size {} is not a multiple of ssm.time_step_rank {}", inner, d.num_v_heads));
  }
  d.head_v_dim = inner / d.num_v_heads;
  if (d.num_v_heads % d.num_k_heads != 0) {
    return error(ErrorCode::kCorrupt, fmt::format("ssm.time_step_rank {} (value heads) is not a multiple of "
                                                  "ssm.group_count {} (key heads)", d.num_v_heads, d.num_k_heads));
  }
  hp.full_attn_interval = f.get_int(f.arch_key("full_attention_interval")).value_or(4);
  if (hp.full_attn_interval <= 0) return error(ErrorCode::kCorrupt, "full_attention_interval must be positive");
  hp.num_nextn_layers = f.get_int(f.arch_key("nextn_predict_layers")).value_or(0);
  if (hp.num_nextn_layers < 0 || hp.num_nextn_layers >= hp.num_layers) {
    return error(ErrorCode::kCorrupt, fmt::format("nextn_predict_layers {} does not fit block_count {}", hp.num_nextn_layers, hp.num_layers));
  }
  hp.num_layers -= hp.num_nextn_layers;  // MTP blocks follow the main stack
  if (hp.rope_dim <= 0 || hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0) {
    return error(ErrorCode::kCorrupt, fmt::format("rope.dimension_count {} does not fit head dim {}", hp.rope_dim, hp.head_dim));
  }
  return Status::ok();
}

void write_hybrid_hparams(const Hparams& hp, gguf::Writer& w) {
  using gguf::Value;
  auto k = [&](const char* suffix) { return hp.arch + "." + suffix; };
  const DeltaNetHparams& d = hp.delta;
  w.set(k("ssm.conv_kernel"), Value::u32(static_cast<uint32_t>(d.conv_kernel)));
  w.set(k("ssm.state_size"), Value::u32(static_cast<uint32_t>(d.head_k_dim)));
  w.set(k("ssm.group_count"), Value::u32(static_cast<uint32_t>(d.num_k_heads)));
  w.set(k("ssm.time_step_rank"), Value::u32(static_cast<uint32_t>(d.num_v_heads)));
  w.set(k("ssm.inner_size"), Value::u32(static_cast<uint32_t>(d.value_dim())));
  w.set(k("full_attention_interval"), Value::u32(static_cast<uint32_t>(hp.full_attn_interval)));
  if (hp.num_nextn_layers > 0) w.set(k("nextn_predict_layers"), Value::u32(static_cast<uint32_t>(hp.num_nextn_layers)));
  // Multimodal RoPE sections (text, height, width): for text every section sees the same
  // position, so they reduce to plain RoPE; written in the real models' proportions 11:11:10.
  const int32_t half = static_cast<int32_t>(hp.rope_dim / 2);
  const int32_t s1 = half * 11 / 32, s2 = half * 10 / 32;
  w.set(k("rope.dimension_sections"), Value::i32_array({half - s1 - s2, s1, s2, 0}));
  w.set(k("rope.dimension_count"), Value::u32(static_cast<uint32_t>(hp.rope_dim)));
}

namespace {

using Init = TensorDecl::Init;
float std_in(int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); }

void gated_attention(std::vector<TensorDecl>& t, const Hparams& hp, const std::string& p, float resid) {
  const int64_t q_dim = hp.num_heads * hp.head_dim, kv_dim = hp.num_kv_heads * hp.head_dim;
  t.push_back({p + "attn_q.weight", {hp.dim, 2 * q_dim}, Init::kNormal, std_in(hp.dim)});  // query + gate
  t.push_back({p + "attn_k.weight", {hp.dim, kv_dim}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "attn_v.weight", {hp.dim, kv_dim}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "attn_output.weight", {q_dim, hp.dim}, Init::kNormal, std_in(q_dim) * resid});
  t.push_back({p + "attn_q_norm.weight", {hp.head_dim}, Init::kNorm});
  t.push_back({p + "attn_k_norm.weight", {hp.head_dim}, Init::kNorm});
}

void delta_net(std::vector<TensorDecl>& t, const Hparams& hp, const std::string& p, float resid) {
  const DeltaNetHparams& d = hp.delta;
  t.push_back({p + "attn_qkv.weight", {hp.dim, d.conv_dim()}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "attn_gate.weight", {hp.dim, d.value_dim()}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ssm_conv1d.weight", {d.conv_kernel, d.conv_dim()}, Init::kNormal, std_in(d.conv_kernel)});
  t.push_back({p + "ssm_dt.bias", {d.num_v_heads}, Init::kNorm});
  t.push_back({p + "ssm_a", {d.num_v_heads}, Init::kNegExp, 1.0f});
  t.push_back({p + "ssm_beta.weight", {hp.dim, d.num_v_heads}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ssm_alpha.weight", {hp.dim, d.num_v_heads}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ssm_norm.weight", {d.head_v_dim}, Init::kNorm});
  t.push_back({p + "ssm_out.weight", {d.value_dim(), hp.dim}, Init::kNormal, std_in(d.value_dim()) * resid});
}

void ffn(std::vector<TensorDecl>& t, const Hparams& hp, const std::string& p, float resid) {
  if (!hp.is_moe()) {
    t.push_back({p + "ffn_gate.weight", {hp.dim, hp.ffn_dim}, Init::kNormal, std_in(hp.dim)});
    t.push_back({p + "ffn_up.weight", {hp.dim, hp.ffn_dim}, Init::kNormal, std_in(hp.dim)});
    t.push_back({p + "ffn_down.weight", {hp.ffn_dim, hp.dim}, Init::kNormal, 2.0f * std_in(hp.ffn_dim) * resid});
    return;
  }
  const int64_t e = hp.num_experts, f = hp.expert_ffn_dim, s = hp.shared_expert_ffn_dim;
  t.push_back({p + "ffn_gate_inp.weight", {hp.dim, e}, Init::kNormal, 2.0f * std_in(hp.dim)});
  t.push_back({p + "ffn_gate_exps.weight", {hp.dim, f, e}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ffn_up_exps.weight", {hp.dim, f, e}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ffn_down_exps.weight", {f, hp.dim, e}, Init::kNormal, 2.0f * std_in(f) * resid});
  t.push_back({p + "ffn_gate_inp_shexp.weight", {hp.dim}, Init::kNormal, 2.0f * std_in(hp.dim)});
  t.push_back({p + "ffn_gate_shexp.weight", {hp.dim, s}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ffn_up_shexp.weight", {hp.dim, s}, Init::kNormal, std_in(hp.dim)});
  t.push_back({p + "ffn_down_shexp.weight", {s, hp.dim}, Init::kNormal, 2.0f * std_in(s) * resid});
}

}  // namespace

std::vector<TensorDecl> declare_hybrid_tensors(const Hparams& hp) {
  std::vector<TensorDecl> t;
  const float resid = 1.0f / std::sqrt(2.0f * static_cast<float>(hp.num_layers));
  t.push_back({"token_embd.weight", {hp.dim, hp.vocab_size}, Init::kNormal, hp.tied_embeddings ? 3.0f * std_in(hp.dim) : 1.0f});
  for (int64_t l = 0; l < hp.num_layers + hp.num_nextn_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const bool mtp = l >= hp.num_layers;
    t.push_back({p + "attn_norm.weight", {hp.dim}, Init::kNorm});
    if (mtp || !hp.is_recurrent(l)) gated_attention(t, hp, p, resid);
    else delta_net(t, hp, p, resid);
    t.push_back({p + "post_attention_norm.weight", {hp.dim}, Init::kNorm});
    ffn(t, hp, p, resid);
    if (mtp) {  // the multi-token-prediction head: loaded (so real files load), never run
      t.push_back({p + "nextn.eh_proj.weight", {2 * hp.dim, hp.dim}, Init::kNormal, std_in(2 * hp.dim)});
      t.push_back({p + "nextn.enorm.weight", {hp.dim}, Init::kNorm});
      t.push_back({p + "nextn.hnorm.weight", {hp.dim}, Init::kNorm});
      t.push_back({p + "nextn.shared_head_norm.weight", {hp.dim}, Init::kNorm});
    }
  }
  t.push_back({"output_norm.weight", {hp.dim}, Init::kNorm});
  if (!hp.tied_embeddings) t.push_back({"output.weight", {hp.dim, hp.vocab_size}, Init::kNormal, 3.0f * std_in(hp.dim)});
  return t;
}

}  // namespace strata::model
