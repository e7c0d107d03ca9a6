#include "model/export_hf.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/quant.h"
#include "model/hparams.h"

namespace strata::model {
namespace {

struct OutTensor {
  std::string name;
  std::vector<int64_t> shape;  // torch order
  std::vector<float> data;
};

std::vector<float> dequant(const gguf::File& f, const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  const size_t rb = row_bytes(t.type, t.shape[0]);
  for (int64_t r = 0; r < t.rows(); ++r) {
    dequantize_row(t.type, f.tensor_data(t) + static_cast<size_t>(r) * rb, out.data() + r * t.shape[0], t.shape[0]);
  }
  return out;
}

// GGUF llama q/k rows are interleaved per head for adjacent-pair RoPE: GGUF row h*hd + 2i + j
// holds HF row h*hd + j*hd/2 + i.
std::vector<float> unpermute_rows(const std::vector<float>& w, int64_t n_head, int64_t head_dim, int64_t cols) {
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t src = h * head_dim + 2 * i + j, dst = h * head_dim + j * (head_dim / 2) + i;
        std::memcpy(&out[static_cast<size_t>(dst * cols)], &w[static_cast<size_t>(src * cols)], static_cast<size_t>(cols) * 4);
      }
    }
  }
  return out;
}

nlohmann::ordered_json make_config(const Hparams& hp) {
  nlohmann::ordered_json c;
  const std::map<std::string, std::pair<std::string, std::string>> kinds = {
      {"llama", {"llama", "LlamaForCausalLM"}},
      {"qwen2", {"qwen2", "Qwen2ForCausalLM"}},
      {"qwen3", {"qwen3", "Qwen3ForCausalLM"}},
      {"qwen3moe", {"qwen3_moe", "Qwen3MoeForCausalLM"}},
      {"qwen35", {"qwen3_5_text", "Qwen3_5ForCausalLM"}},
      {"qwen35moe", {"qwen3_5_moe_text", "Qwen3_5MoeForCausalLM"}}};
  c["architectures"] = {kinds.at(hp.arch).second};
  c["model_type"] = kinds.at(hp.arch).first;
  c["vocab_size"] = hp.vocab_size;
  c["hidden_size"] = hp.dim;
  c["intermediate_size"] = hp.ffn_dim > 0 ? hp.ffn_dim : hp.expert_ffn_dim;
  c["num_hidden_layers"] = hp.num_layers;
  c["num_attention_heads"] = hp.num_heads;
  c["num_key_value_heads"] = hp.num_kv_heads;
  c["head_dim"] = hp.head_dim;
  c["hidden_act"] = "silu";
  c["max_position_embeddings"] = hp.context_length;
  c["rms_norm_eps"] = hp.rms_eps;
  c["rope_theta"] = hp.rope_freq_base;
  c["tie_word_embeddings"] = hp.tied_embeddings;
  c["attention_bias"] = hp.attn_bias;
  c["torch_dtype"] = "float32";
  c["use_cache"] = true;
  if (hp.is_moe()) {
    c["num_experts"] = hp.num_experts;
    c["num_experts_per_tok"] = hp.num_experts_used;
    c["moe_intermediate_size"] = hp.expert_ffn_dim;
    c["norm_topk_prob"] = hp.norm_topk_prob;
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = nlohmann::json::array();
  }
  if (hp.is_hybrid()) {
    const auto& d = hp.delta;
    c["linear_conv_kernel_dim"] = d.conv_kernel;
    c["linear_key_head_dim"] = d.head_k_dim;
    c["linear_value_head_dim"] = d.head_v_dim;
    c["linear_num_key_heads"] = d.num_k_heads;
    c["linear_num_value_heads"] = d.num_v_heads;
    c["full_attention_interval"] = hp.full_attn_interval;
    nlohmann::json types = nlohmann::json::array();
    for (int64_t l = 0; l < hp.num_layers; ++l) types.push_back(hp.is_recurrent(l) ? "linear_attention" : "full_attention");
    c["layer_types"] = types;
    const double partial = static_cast<double>(hp.rope_dim) / static_cast<double>(hp.head_dim);
    const int64_t half = hp.rope_dim / 2, s1 = half * 11 / 32, s2 = half * 10 / 32;
    c["partial_rotary_factor"] = partial;
    c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", hp.rope_freq_base}, {"partial_rotary_factor", partial},
                            {"mrope_section", {half - s1 - s2, s1, s2}}, {"mrope_interleaved", true}};
    c["mtp_num_hidden_layers"] = 0;  // Strata's MTP blocks are not exported
    if (hp.is_moe()) c["shared_expert_intermediate_size"] = hp.shared_expert_ffn_dim;
  }
  const auto& rs = hp.rope_scaling;
  if (rs.type == RopeScaling::Type::kLinear) {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
  } else if (rs.type == RopeScaling::Type::kYarn) {
    c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", rs.factor},
                         {"original_max_position_embeddings", rs.original_context},
                         {"beta_fast", rs.yarn_beta_fast}, {"beta_slow", rs.yarn_beta_slow}};
  } else if (rs.type == RopeScaling::Type::kLlama3) {
    c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", rs.factor},
                         {"low_freq_factor", rs.low_freq_factor}, {"high_freq_factor", rs.high_freq_factor},
                         {"original_max_position_embeddings", rs.original_context}};
  }
  return c;
}

// GGUF keeps DeltaNet value heads tiled (head t = j * num_k_heads + k reads key head k); HF
// groups them by key head (head g = k * per + j). Moves `unit`-long blocks of value heads at
// `off` along rows (columns = false) or columns of a [rows, cols] tensor from GGUF to HF order.
void untile_v_heads(OutTensor& t, const DeltaNetHparams& d, int64_t off, int64_t unit, bool columns) {
  const int64_t per = d.num_v_heads / d.num_k_heads;
  const int64_t rows = t.shape[0], cols = static_cast<int64_t>(t.data.size()) / rows;
  std::vector<float> src = t.data;
  for (int64_t g = 0; g < d.num_v_heads; ++g) {
    const int64_t tile = (g % per) * d.num_k_heads + g / per;
    for (int64_t u = 0; u < unit; ++u) {
      const int64_t to = off + g * unit + u, from = off + tile * unit + u;
      if (!columns) {
        std::memcpy(&t.data[static_cast<size_t>(to * cols)], &src[static_cast<size_t>(from * cols)], static_cast<size_t>(cols) * 4);
      } else {
        for (int64_t r = 0; r < rows; ++r) t.data[static_cast<size_t>(r * cols + to)] = src[static_cast<size_t>(r * cols + from)];
      }
    }
  }
}

// qwen35 / qwen35moe in HF's Qwen3_5ForCausalLM naming: zero-centred norms (GGUF stores 1 + w),
// A_log = log(-ssm_a), value heads back in grouped order, experts fused as transformers 5 keeps
// them (gate_up_proj [E, 2f, d], down_proj [E, d, f]).
Status export_hybrid_tensors(const gguf::File& f, const Hparams& hp, std::vector<OutTensor>& out) {
  auto take = [&](const std::string& name, const std::string& hf_name) -> Result<OutTensor*> {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (t == nullptr) return error(ErrorCode::kNotFound, fmt::format("tensor '{}' is missing", name));
    OutTensor o;
    o.name = hf_name;
    o.data = dequant(f, *t);
    for (auto it = t->shape.rbegin(); it != t->shape.rend(); ++it) o.shape.push_back(*it);
    out.push_back(std::move(o));
    return &out.back();
  };
  auto centred = [&](const std::string& name, const std::string& hf_name) -> Status {
    STRATA_ASSIGN_OR_RETURN(OutTensor* o, take(name, hf_name));
    for (float& x : o->data) x -= 1.0f;
    return Status::ok();
  };
  const DeltaNetHparams& d = hp.delta;
  STRATA_RETURN_IF_ERROR(take("token_embd.weight", "model.embed_tokens.weight").status());
  for (int64_t l = 0; l < hp.num_layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    STRATA_RETURN_IF_ERROR(centred(g + "attn_norm.weight", h + "input_layernorm.weight"));
    STRATA_RETURN_IF_ERROR(centred(g + "post_attention_norm.weight", h + "post_attention_layernorm.weight"));
    if (hp.is_recurrent(l)) {
      const std::string a = h + "linear_attn.";
      STRATA_ASSIGN_OR_RETURN(OutTensor* qkv, take(g + "attn_qkv.weight", a + "in_proj_qkv.weight"));
      untile_v_heads(*qkv, d, 2 * d.key_dim(), d.head_v_dim, false);
      STRATA_ASSIGN_OR_RETURN(OutTensor* z, take(g + "attn_gate.weight", a + "in_proj_z.weight"));
      untile_v_heads(*z, d, 0, d.head_v_dim, false);
      STRATA_ASSIGN_OR_RETURN(OutTensor* b, take(g + "ssm_beta.weight", a + "in_proj_b.weight"));
      untile_v_heads(*b, d, 0, 1, false);
      STRATA_ASSIGN_OR_RETURN(OutTensor* al, take(g + "ssm_alpha.weight", a + "in_proj_a.weight"));
      untile_v_heads(*al, d, 0, 1, false);
      STRATA_ASSIGN_OR_RETURN(OutTensor* conv, take(g + "ssm_conv1d.weight", a + "conv1d.weight"));
      untile_v_heads(*conv, d, 2 * d.key_dim(), d.head_v_dim, false);
      conv->shape = {d.conv_dim(), 1, d.conv_kernel};
      STRATA_ASSIGN_OR_RETURN(OutTensor* dt, take(g + "ssm_dt.bias", a + "dt_bias"));
      dt->shape = {d.num_v_heads, 1};
      untile_v_heads(*dt, d, 0, 1, false);
      dt->shape = {d.num_v_heads};
      STRATA_ASSIGN_OR_RETURN(OutTensor* alog, take(g + "ssm_a", a + "A_log"));
      for (float& x : alog->data) x = std::log(-x);
      alog->shape = {d.num_v_heads, 1};
      untile_v_heads(*alog, d, 0, 1, false);
      alog->shape = {d.num_v_heads};
      STRATA_RETURN_IF_ERROR(take(g + "ssm_norm.weight", a + "norm.weight").status());  // plain weight
      STRATA_ASSIGN_OR_RETURN(OutTensor* o, take(g + "ssm_out.weight", a + "out_proj.weight"));
      untile_v_heads(*o, d, 0, d.head_v_dim, true);
    } else {
      STRATA_RETURN_IF_ERROR(take(g + "attn_q.weight", h + "self_attn.q_proj.weight").status());
      STRATA_RETURN_IF_ERROR(take(g + "attn_k.weight", h + "self_attn.k_proj.weight").status());
      STRATA_RETURN_IF_ERROR(take(g + "attn_v.weight", h + "self_attn.v_proj.weight").status());
      STRATA_RETURN_IF_ERROR(take(g + "attn_output.weight", h + "self_attn.o_proj.weight").status());
      STRATA_RETURN_IF_ERROR(centred(g + "attn_q_norm.weight", h + "self_attn.q_norm.weight"));
      STRATA_RETURN_IF_ERROR(centred(g + "attn_k_norm.weight", h + "self_attn.k_norm.weight"));
    }
    if (!hp.is_moe()) {
      for (const char* p : {"gate", "up", "down"}) {
        STRATA_RETURN_IF_ERROR(take(g + "ffn_" + p + ".weight", h + "mlp." + p + "_proj.weight").status());
      }
      continue;
    }
    STRATA_RETURN_IF_ERROR(take(g + "ffn_gate_inp.weight", h + "mlp.gate.weight").status());
    STRATA_ASSIGN_OR_RETURN(OutTensor* gate, take(g + "ffn_gate_exps.weight", h + "mlp.experts.gate_up_proj"));
    const std::vector<float> gate_all = gate->data;
    out.pop_back();
    STRATA_ASSIGN_OR_RETURN(OutTensor* up, take(g + "ffn_up_exps.weight", h + "mlp.experts.gate_up_proj"));
    const int64_t e = hp.num_experts, ff = hp.expert_ffn_dim, dm = hp.dim, per = ff * dm;
    std::vector<float> fused;
    for (int64_t x = 0; x < e; ++x) {  // [E, 2f, d]: gate rows then up rows of each expert
      fused.insert(fused.end(), gate_all.begin() + x * per, gate_all.begin() + (x + 1) * per);
      fused.insert(fused.end(), up->data.begin() + x * per, up->data.begin() + (x + 1) * per);
    }
    up->data = std::move(fused);
    up->shape = {e, 2 * ff, dm};
    STRATA_RETURN_IF_ERROR(take(g + "ffn_down_exps.weight", h + "mlp.experts.down_proj").status());
    STRATA_ASSIGN_OR_RETURN(OutTensor* sg, take(g + "ffn_gate_inp_shexp.weight", h + "mlp.shared_expert_gate.weight"));
    sg->shape = {1, dm};
    for (const char* p : {"gate", "up", "down"}) {
      STRATA_RETURN_IF_ERROR(take(g + "ffn_" + p + "_shexp.weight", h + "mlp.shared_expert." + p + "_proj.weight").status());
    }
  }
  STRATA_RETURN_IF_ERROR(centred("output_norm.weight", "model.norm.weight"));
  if (!hp.tied_embeddings) STRATA_RETURN_IF_ERROR(take("output.weight", "lm_head.weight").status());
  return Status::ok();
}

}  // namespace

Status export_hf(const gguf::File& f, const std::string& out_dir) {
  STRATA_ASSIGN_OR_RETURN(Hparams hp, read_hparams(f));
  std::vector<OutTensor> out;
  for (const auto& t : f.tensors()) {
    if (!can_dequantize(t.type)) return error(ErrorCode::kUnsupported, fmt::format("cannot dequantize {}", dtype_name(t.type)));
  }
  auto add = [&](const std::string& name, const std::string& hf_name, bool unpermute_heads = false, int64_t heads = 0) -> Status {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (t == nullptr) return error(ErrorCode::kNotFound, fmt::format("tensor '{}' is missing", name));
    OutTensor o;
    o.name = hf_name;
    o.data = dequant(f, *t);
    for (auto it = t->shape.rbegin(); it != t->shape.rend(); ++it) o.shape.push_back(*it);
    if (unpermute_heads) o.data = unpermute_rows(o.data, heads, hp.head_dim, t->shape[0]);
    out.push_back(std::move(o));
    return Status::ok();
  };
  if (hp.is_hybrid()) STRATA_RETURN_IF_ERROR(export_hybrid_tensors(f, hp, out));
  const bool llama = hp.arch == "llama";
  if (!hp.is_hybrid()) STRATA_RETURN_IF_ERROR(add("token_embd.weight", "model.embed_tokens.weight"));
  for (int64_t l = 0; l < (hp.is_hybrid() ? 0 : hp.num_layers); ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    STRATA_RETURN_IF_ERROR(add(g + "attn_norm.weight", h + "input_layernorm.weight"));
    STRATA_RETURN_IF_ERROR(add(g + "attn_q.weight", h + "self_attn.q_proj.weight", llama, hp.num_heads));
    STRATA_RETURN_IF_ERROR(add(g + "attn_k.weight", h + "self_attn.k_proj.weight", llama, hp.num_kv_heads));
    STRATA_RETURN_IF_ERROR(add(g + "attn_v.weight", h + "self_attn.v_proj.weight"));
    STRATA_RETURN_IF_ERROR(add(g + "attn_output.weight", h + "self_attn.o_proj.weight"));
    if (hp.attn_bias) {
      for (const char* p : {"q", "k", "v"}) {
        STRATA_RETURN_IF_ERROR(add(g + "attn_" + p + ".bias", h + "self_attn." + p + "_proj.bias"));
      }
    }
    if (hp.qk_norm) {
      STRATA_RETURN_IF_ERROR(add(g + "attn_q_norm.weight", h + "self_attn.q_norm.weight"));
      STRATA_RETURN_IF_ERROR(add(g + "attn_k_norm.weight", h + "self_attn.k_norm.weight"));
    }
    STRATA_RETURN_IF_ERROR(add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight"));
    if (hp.is_moe()) {
      STRATA_RETURN_IF_ERROR(add(g + "ffn_gate_inp.weight", h + "mlp.gate.weight"));
      for (const char* p : {"gate", "up", "down"}) {
        const gguf::TensorInfo* t = f.find_tensor(g + "ffn_" + p + "_exps.weight");
        if (t == nullptr) return error(ErrorCode::kNotFound, "expert tensor missing");
        std::vector<float> all = dequant(f, *t);
        const int64_t per = t->shape[0] * t->shape[1];
        for (int64_t e = 0; e < hp.num_experts; ++e) {
          OutTensor o;
          o.name = h + "mlp.experts." + std::to_string(e) + "." + p + "_proj.weight";
          o.shape = {t->shape[1], t->shape[0]};
          o.data.assign(all.begin() + e * per, all.begin() + (e + 1) * per);
          out.push_back(std::move(o));
        }
      }
    } else {
      STRATA_RETURN_IF_ERROR(add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight"));
      STRATA_RETURN_IF_ERROR(add(g + "ffn_up.weight", h + "mlp.up_proj.weight"));
      STRATA_RETURN_IF_ERROR(add(g + "ffn_down.weight", h + "mlp.down_proj.weight"));
    }
  }
  if (!hp.is_hybrid()) {
    STRATA_RETURN_IF_ERROR(add("output_norm.weight", "model.norm.weight"));
    if (!hp.tied_embeddings) STRATA_RETURN_IF_ERROR(add("output.weight", "lm_head.weight"));
  }

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  {
    std::ofstream cfg(out_dir + "/config.json");
    cfg << make_config(hp).dump(2) << "\n";
    if (!cfg) return error(ErrorCode::kIo, "cannot write config.json");
  }
  // safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, data.
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& t : out) {
    const uint64_t bytes = t.data.size() * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string hs = header.dump();
  while (hs.size() % 8 != 0) hs += ' ';
  std::ofstream st(out_dir + "/model.safetensors", std::ios::binary);
  const uint64_t hl = hs.size();
  st.write(reinterpret_cast<const char*>(&hl), 8);
  st.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& t : out) st.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * 4));
  if (!st) return error(ErrorCode::kIo, "cannot write model.safetensors");
  return Status::ok();
}

}  // namespace strata::model
