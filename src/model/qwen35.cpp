// qwen35 / qwen35moe (Qwen3.5, Qwen3.6): hybrid layers, three of four Gated DeltaNet
// (linear attention with a recurrent state) and every full_attention_interval-th one gated
// full attention (query-dependent sigmoid gate on the output, QK-norm, partial NeoX RoPE);
// post-attention norm then a SwiGLU FFN, or routed experts plus a gated shared expert.
// Reference: HF transformers modeling_qwen3_5.py / modeling_qwen3_5_moe.py; GGUF layout:
// hparams_hybrid.cpp. The MTP (nextn) blocks are checked at load and never run.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/check.h"
#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {

using backend::WeightView;

Status Decoder::bind_hybrid_layer(int64_t l) {
  const Hparams& hp = hp_;
  const int64_t d = hp.dim, qd = hp.num_heads * hp.head_dim, kvd = hp.num_kv_heads * hp.head_dim;
  const DeltaNetHparams& dn = hp.delta;
  const std::string p = "blk." + std::to_string(l) + ".";
  LayerWeights& L = layers_[static_cast<size_t>(l)];
  STRATA_ASSIGN_OR_RETURN(L.attn_norm, weight(p + "attn_norm.weight", {d}, false));
  STRATA_ASSIGN_OR_RETURN(L.ffn_norm, weight(p + "post_attention_norm.weight", {d}, false));
  if (hp.is_recurrent(l)) {
    STRATA_ASSIGN_OR_RETURN(L.ssm_qkv, weight(p + "attn_qkv.weight", {d, dn.conv_dim()}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_z, weight(p + "attn_gate.weight", {d, dn.value_dim()}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_alpha, weight(p + "ssm_alpha.weight", {d, dn.num_v_heads}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_beta, weight(p + "ssm_beta.weight", {d, dn.num_v_heads}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_out, weight(p + "ssm_out.weight", {dn.value_dim(), d}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_conv, weight(p + "ssm_conv1d.weight", {dn.conv_kernel, dn.conv_dim()}, false));
    if (L.ssm_conv.type != DType::kF32) {
      return error(ErrorCode::kUnsupported, fmt::format("tensor '{}ssm_conv1d.weight' is {}; only F32 is supported "
                                                        "(as the GGUF converters write it)", p, dtype_name(L.ssm_conv.type)));
    }
    STRATA_ASSIGN_OR_RETURN(L.ssm_dt, weight(p + "ssm_dt.bias", {dn.num_v_heads}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_a, weight(p + "ssm_a", {dn.num_v_heads}, false));
    STRATA_ASSIGN_OR_RETURN(L.ssm_norm, weight(p + "ssm_norm.weight", {dn.head_v_dim}, false));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.wq, weight(p + "attn_q.weight", {d, 2 * qd}, false));  // query + gate
    STRATA_ASSIGN_OR_RETURN(L.wk, weight(p + "attn_k.weight", {d, kvd}, false));
    STRATA_ASSIGN_OR_RETURN(L.wv, weight(p + "attn_v.weight", {d, kvd}, false));
    STRATA_ASSIGN_OR_RETURN(L.wo, weight(p + "attn_output.weight", {qd, d}, false));
    STRATA_ASSIGN_OR_RETURN(L.q_norm, weight(p + "attn_q_norm.weight", {hp.head_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.k_norm, weight(p + "attn_k_norm.weight", {hp.head_dim}, false));
  }
  if (hp.is_moe()) {
    const int64_t e = hp.num_experts, f = hp.expert_ffn_dim, s = hp.shared_expert_ffn_dim;
    STRATA_ASSIGN_OR_RETURN(L.router, weight(p + "ffn_gate_inp.weight", {d, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.gate_exps, weight(p + "ffn_gate_exps.weight", {d, f, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.up_exps, weight(p + "ffn_up_exps.weight", {d, f, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.down_exps, weight(p + "ffn_down_exps.weight", {f, d, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.shexp_gate, weight(p + "ffn_gate_inp_shexp.weight", {d}, false));
    STRATA_ASSIGN_OR_RETURN(L.gate_shexp, weight(p + "ffn_gate_shexp.weight", {d, s}, false));
    STRATA_ASSIGN_OR_RETURN(L.up_shexp, weight(p + "ffn_up_shexp.weight", {d, s}, false));
    STRATA_ASSIGN_OR_RETURN(L.down_shexp, weight(p + "ffn_down_shexp.weight", {s, d}, false));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.gate, weight(p + "ffn_gate.weight", {d, hp.ffn_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.up, weight(p + "ffn_up.weight", {d, hp.ffn_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.down, weight(p + "ffn_down.weight", {hp.ffn_dim, d}, false));
  }
  return Status::ok();
}

// The MTP blocks must be present and well-formed (a file missing them is corrupt), but Strata
// does not run them (no speculative decoding yet).
Status Decoder::check_mtp_layers() {
  for (const TensorDecl& t : declare_tensors(hp_)) {
    int64_t l = -1;
    if (std::sscanf(t.name.c_str(), "blk.%ld.", &l) != 1 || l < hp_.num_layers) continue;
    const bool optional = t.name.find("shared_head_norm") != std::string::npos;
    const gguf::TensorInfo* info = file_->find_tensor(t.name);
    if (info == nullptr && optional) continue;
    if (info == nullptr) return error(ErrorCode::kCorrupt, fmt::format("tensor '{}' (MTP block) is missing", t.name));
    if (info->shape != t.shape) return error(ErrorCode::kCorrupt, fmt::format("tensor '{}' (MTP block) has the wrong shape", t.name));
  }
  return Status::ok();
}

// Cut every sequence's tokens at KV block boundaries: the state before a block's first token
// is the previous block's blob, and each block's blob ends as the state of its last token.
void Decoder::plan_state_segments(const Batch& batch, const KvLayers& kv) {
  state_segs_.clear();
  const int64_t bt = kv.block_tokens();
  for (const BatchSeq& s : batch.seqs) {
    const int32_t* table = s.state_table != nullptr ? s.state_table : s.block_table;
    const int64_t p0 = s.kv_len - s.num_tokens;
    for (int64_t a = p0; a < s.kv_len;) {
      const int64_t blk = a / bt, b = std::min(s.kv_len, (blk + 1) * bt);
      StateSeg seg;
      seg.row_begin = s.token_begin + (a - p0);
      seg.num_rows = b - a;
      seg.pos_begin = a;
      seg.in = a == 0 ? nullptr : kv.state_blob(table[(a - 1) / bt]);
      seg.out = kv.state_blob(table[blk]);
      state_segs_.push_back(seg);
      a = b;
    }
  }
}

void Decoder::gated_attention_block(int l, const Batch& batch, const KvLayers& kv) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t hd = hp_.head_dim, nh = hp_.num_heads;
  be.rms_norm(x_, static_cast<const float*>(L.attn_norm.data), n, hp_.dim, hp_.rms_eps, h_);  // h [n, dim]
  // qfull [n, nh, 2, hd]: per head its query, then its gate; k [n, nkv*hd]; v [n, nkv*hd]
  const WeightView qkv_w[3] = {L.wq, L.wk, L.wv};
  float* const qkv_y[3] = {qfull_, k_, v_};
  be.matmul_multi(qkv_w, h_, n, qkv_y);
  // Split query and gate: rows of hd floats, 2*hd apart.
  const size_t stride = static_cast<size_t>(2 * hd) * 4;
  be.get_rows(WeightView{qfull_, DType::kF32, n * nh, hd, stride}, iota_.data(), n * nh, q_);         // q [n, nh, hd]
  be.get_rows(WeightView{qfull_ + hd, DType::kF32, n * nh, hd, stride}, iota_.data(), n * nh, gate_);  // [n, nh*hd]
  attend_and_project(l, batch, kv, gate_);
}

void Decoder::delta_net_block(int l, int64_t n) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  const DeltaNetHparams& dn = hp_.delta;
  // This layer's part of each state blob: conv state, then delta-rule state.
  const size_t conv_off = static_cast<size_t>(L.state_idx) * static_cast<size_t>(dn.state_floats());
  const size_t delta_off = conv_off + static_cast<size_t>(dn.conv_state_floats());
  conv_segs_.clear();
  delta_segs_.clear();
  for (const StateSeg& s : state_segs_) {
    auto at = [](uint8_t* blob, size_t off) { return blob == nullptr ? nullptr : reinterpret_cast<float*>(blob) + off; };
    conv_segs_.push_back({s.row_begin, s.num_rows, s.pos_begin, at(s.in, conv_off), at(s.out, conv_off)});
    delta_segs_.push_back({s.row_begin, s.num_rows, s.pos_begin, at(s.in, delta_off), at(s.out, delta_off)});
  }
  be.rms_norm(x_, static_cast<const float*>(L.attn_norm.data), n, hp_.dim, hp_.rms_eps, h_);  // h [n, dim]
  // qkv [n, conv_dim]: q, k, v heads; z [n, value_dim]: the output gate; alpha [n, v_heads]:
  // decay; beta [n, v_heads]: write strength. Four products of one input (one launch on CUDA).
  const WeightView in_w[4] = {L.ssm_qkv, L.ssm_z, L.ssm_alpha, L.ssm_beta};
  float* const in_y[4] = {qkv_, z_, alpha_, beta_};
  be.matmul_multi(in_w, h_, n, in_y);
  be.ssm_conv(qkv_, dn.conv_dim(), static_cast<const float*>(L.ssm_conv.data), static_cast<int>(dn.conv_kernel),
              conv_segs_, conv_);
  const backend::DeltaNetShape shape{static_cast<int>(dn.num_k_heads), static_cast<int>(dn.num_v_heads),
                                     static_cast<int>(dn.head_k_dim), static_cast<int>(dn.head_v_dim)};
  be.gated_delta_rule(conv_, alpha_, beta_, static_cast<const float*>(L.ssm_dt.data), static_cast<const float*>(L.ssm_a.data),
                      shape, delta_segs_, dn_);  // [n, v_heads, head_v_dim]
  // Gated RMSNorm per value head: norm(o) * w * silu(z).
  be.rms_norm(dn_, static_cast<const float*>(L.ssm_norm.data), n * dn.num_v_heads, dn.head_v_dim, hp_.rms_eps, dn_);
  be.swiglu(z_, dn_, n, dn.value_dim(), dn_);
  be.matmul(L.ssm_out, dn_, n, h_);  // [n, dim]
  be.add(x_, h_, n * hp_.dim);
}

namespace {

class Qwen35 final : public Decoder {
  void layer(int l, const Batch& batch, const KvLayers& kv) override {
    const int64_t n = static_cast<int64_t>(batch.tokens.size());
    if (hp_.is_recurrent(l)) delta_net_block(l, n);
    else gated_attention_block(l, batch, kv);
    if (hp_.is_moe()) moe_ffn_block(l, n);
    else dense_ffn_block(l, n);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_qwen35() { return std::make_unique<Qwen35>(); }

}  // namespace strata::model
