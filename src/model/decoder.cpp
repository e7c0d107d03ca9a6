// Shared decoder steps and weight binding. Shapes in comments are [rows, cols] of f32 unless
// said otherwise; n is the number of tokens in the batch.
#include "model/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/quant.h"

namespace strata::model {

using backend::WeightView;

Decoder::~Decoder() { free_scratch(); }

Result<WeightView> Decoder::weight(const std::string& name, std::vector<int64_t> shape, bool optional) {
  const gguf::TensorInfo* t = file_->find_tensor(name);
  if (t == nullptr) {
    if (optional) return WeightView{};
    return error(ErrorCode::kCorrupt, fmt::format("tensor '{}' is missing", name));
  }
  if (t->shape != shape) {
    std::string want, got;
    for (auto d : shape) want += std::to_string(d) + " ";
    for (auto d : t->shape) got += std::to_string(d) + " ";
    return error(ErrorCode::kCorrupt, fmt::format("tensor '{}' has shape [{}], expected [{}]", name, got, want));
  }
  WeightView w;
  w.type = t->type;
  w.cols = t->shape[0];
  w.rows = t->shape.size() > 1 ? t->shape[1] : 1;
  w.num_experts = t->shape.size() > 2 ? t->shape[2] : 1;
  w.row_bytes = row_bytes(t->type, w.cols);
  w.expert_bytes = w.row_bytes * static_cast<size_t>(w.rows);
  w.data = file_->tensor_data(*t);
  if (shape.size() == 1 && t->type != DType::kF32) {
    // Norm weights and biases are read as f32 by the ops.
    if (!can_dequantize(t->type)) return error(ErrorCode::kUnsupported, fmt::format("tensor '{}' type {}", name, dtype_name(t->type)));
    owned_f32_.emplace_back(static_cast<size_t>(w.cols));
    dequantize_row(t->type, w.data, owned_f32_.back().data(), w.cols);
    w.data = owned_f32_.back().data();
    w.type = DType::kF32;
    w.row_bytes = static_cast<size_t>(w.cols) * 4;
  }
  if (w.type != DType::kF32 && w.type != DType::kF16 && w.type != DType::kBF16 && !can_dequantize(w.type)) {
    return error(ErrorCode::kUnsupported, fmt::format("tensor '{}' has type {}, which this build cannot compute with", name, dtype_name(w.type)));
  }
  // Device backends copy the weight into their memory; the CPU reads the mapping in place.
  return backend_->upload_weight(w);
}

Status Decoder::bind_layer(int64_t l) {
  const Hparams& hp = hp_;
  const int64_t d = hp.dim, qd = hp.num_heads * hp.head_dim, kvd = hp.num_kv_heads * hp.head_dim;
  const std::string p = "blk." + std::to_string(l) + ".";
  LayerWeights& L = layers_[static_cast<size_t>(l)];
  STRATA_ASSIGN_OR_RETURN(L.attn_norm, weight(p + "attn_norm.weight", {d}, false));
  STRATA_ASSIGN_OR_RETURN(L.wq, weight(p + "attn_q.weight", {d, qd}, false));
  STRATA_ASSIGN_OR_RETURN(L.wk, weight(p + "attn_k.weight", {d, kvd}, false));
  STRATA_ASSIGN_OR_RETURN(L.wv, weight(p + "attn_v.weight", {d, kvd}, false));
  STRATA_ASSIGN_OR_RETURN(L.wo, weight(p + "attn_output.weight", {qd, d}, false));
  STRATA_ASSIGN_OR_RETURN(L.bq, weight(p + "attn_q.bias", {qd}, !hp.attn_bias));
  STRATA_ASSIGN_OR_RETURN(L.bk, weight(p + "attn_k.bias", {kvd}, !hp.attn_bias));
  STRATA_ASSIGN_OR_RETURN(L.bv, weight(p + "attn_v.bias", {kvd}, !hp.attn_bias));
  if (hp.qk_norm) {
    STRATA_ASSIGN_OR_RETURN(L.q_norm, weight(p + "attn_q_norm.weight", {hp.head_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.k_norm, weight(p + "attn_k_norm.weight", {hp.head_dim}, false));
  }
  STRATA_ASSIGN_OR_RETURN(L.ffn_norm, weight(p + "ffn_norm.weight", {d}, false));
  if (hp.is_moe()) {
    const int64_t e = hp.num_experts, f = hp.expert_ffn_dim;
    STRATA_ASSIGN_OR_RETURN(L.router, weight(p + "ffn_gate_inp.weight", {d, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.gate_exps, weight(p + "ffn_gate_exps.weight", {d, f, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.up_exps, weight(p + "ffn_up_exps.weight", {d, f, e}, false));
    STRATA_ASSIGN_OR_RETURN(L.down_exps, weight(p + "ffn_down_exps.weight", {f, d, e}, false));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.gate, weight(p + "ffn_gate.weight", {d, hp.ffn_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.up, weight(p + "ffn_up.weight", {d, hp.ffn_dim}, false));
    STRATA_ASSIGN_OR_RETURN(L.down, weight(p + "ffn_down.weight", {hp.ffn_dim, d}, false));
  }
  return Status::ok();
}

Status Decoder::bind(std::unique_ptr<gguf::File> file, const Hparams& hp, backend::Backend& backend) {
  file_ = std::move(file);
  hp_ = hp;
  backend_ = &backend;
  const int64_t d = hp.dim;
  STRATA_ASSIGN_OR_RETURN(token_embd_, weight("token_embd.weight", {d, hp.vocab_size}, false));
  STRATA_ASSIGN_OR_RETURN(output_norm_, weight("output_norm.weight", {d}, false));
  STRATA_ASSIGN_OR_RETURN(output_, weight("output.weight", {d, hp.vocab_size}, true));
  if (output_.data == nullptr) output_ = token_embd_;
  if (hp.is_hybrid() && !backend.supports_delta_net()) {
    return error(ErrorCode::kUnsupported, fmt::format("architecture '{}' needs the Gated DeltaNet ops, which backend '{}' "
                                                      "does not implement yet (use --backend cpu)", hp.arch, backend.name()));
  }
  layers_.resize(static_cast<size_t>(hp.num_layers));
  int kv_idx = 0, state_idx = 0;
  for (int64_t l = 0; l < hp.num_layers; ++l) {
    LayerWeights& L = layers_[static_cast<size_t>(l)];
    if (hp.is_recurrent(l)) L.state_idx = state_idx++;
    else L.kv_idx = kv_idx++;
    STRATA_RETURN_IF_ERROR(hp.is_hybrid() ? bind_hybrid_layer(l) : bind_layer(l));
  }
  if (hp.is_hybrid()) STRATA_RETURN_IF_ERROR(check_mtp_layers());
  rope_ = make_rope_table(hp_);
  // Llama 3.1 files may carry per-pair frequency divisors instead of scaling keys.
  if (const gguf::TensorInfo* rf = file_->find_tensor("rope_freqs.weight"); rf && rf->type == DType::kF32 &&
      rf->num_elements() == hp.rope_dim / 2) {
    const float* div = reinterpret_cast<const float*>(file_->tensor_data(*rf));
    for (size_t i = 0; i < rope_.freqs.size(); ++i) rope_.freqs[i] /= div[i];
  }
  alloc_scratch();
  return Status::ok();
}

void Decoder::free_scratch() {
  for (float* p : {x_, h_, q_, k_, v_, att_, f1_, f2_, fo_, router_, topw_, reinterpret_cast<float*>(topi_), last_,
                   qfull_, gate_, qkv_, conv_, z_, dn_, alpha_, beta_, sh_, shg_}) {
    if (p != nullptr) backend_->free(p);
  }
  x_ = h_ = q_ = k_ = v_ = att_ = f1_ = f2_ = fo_ = router_ = topw_ = last_ = nullptr;
  qfull_ = gate_ = qkv_ = conv_ = z_ = dn_ = alpha_ = beta_ = sh_ = shg_ = nullptr;
  topi_ = nullptr;
}

void Decoder::alloc_scratch() {
  free_scratch();
  const auto n = static_cast<size_t>(max_batch_tokens_);
  const auto& hp = hp_;
  // Expert slots a token: a shared expert may run as one more (moe_ffn_block).
  const size_t k = static_cast<size_t>(std::max<int64_t>(1, hp.num_experts_used) + (hp.shared_expert_ffn_dim > 0 ? 1 : 0));
  const size_t ff = static_cast<size_t>(
      std::max({hp.ffn_dim, hp.num_experts_used * hp.expert_ffn_dim, hp.shared_expert_ffn_dim}));
  x_ = backend_->alloc_f32(n * hp.dim);
  h_ = backend_->alloc_f32(n * hp.dim);
  q_ = backend_->alloc_f32(n * hp.num_heads * hp.head_dim);
  k_ = backend_->alloc_f32(n * hp.num_kv_heads * hp.head_dim);
  v_ = backend_->alloc_f32(n * hp.num_kv_heads * hp.head_dim);
  att_ = backend_->alloc_f32(n * hp.num_heads * hp.head_dim);
  f1_ = backend_->alloc_f32(n * ff);
  f2_ = backend_->alloc_f32(n * ff);
  if (hp.is_moe()) {
    fo_ = backend_->alloc_f32(n * k * hp.dim);
    router_ = backend_->alloc_f32(n * hp.num_experts);
    topw_ = backend_->alloc_f32(n * k);
    topi_ = reinterpret_cast<int32_t*>(backend_->alloc_f32(n * k));
  }
  last_ = backend_->alloc_f32(n * hp.dim);
  if (hp.is_hybrid()) {
    const size_t qd = static_cast<size_t>(hp.num_heads * hp.head_dim);
    const auto& dn = hp.delta;
    qfull_ = backend_->alloc_f32(n * 2 * qd);
    gate_ = backend_->alloc_f32(n * qd);
    qkv_ = backend_->alloc_f32(n * dn.conv_dim());
    conv_ = backend_->alloc_f32(n * dn.conv_dim());
    z_ = backend_->alloc_f32(n * dn.value_dim());
    dn_ = backend_->alloc_f32(n * dn.value_dim());
    alpha_ = backend_->alloc_f32(n * dn.num_v_heads);
    beta_ = backend_->alloc_f32(n * dn.num_v_heads);
    if (hp.shared_expert_ffn_dim > 0) {
      sh_ = backend_->alloc_f32(n * hp.dim);
      shg_ = backend_->alloc_f32(n);
    }
    iota_.resize(n * static_cast<size_t>(hp.num_heads));
    for (size_t i = 0; i < iota_.size(); ++i) iota_[i] = static_cast<int32_t>(i);
  }
  scratch_tokens_ = max_batch_tokens_;
}

void Model::set_max_batch_tokens(int64_t n) {
  max_batch_tokens_ = std::max<int64_t>(1, n);
  if (auto* d = dynamic_cast<Decoder*>(this)) {
    (void)d;  // scratch is re-allocated lazily on the next forward
  }
}

Status Decoder::forward(const Batch& batch, const KvLayers& kv, float* logits) {
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  if (n == 0) return Status::ok();
  if (n > max_batch_tokens_) {
    return error(ErrorCode::kInvalidArgument, fmt::format("batch of {} tokens exceeds the maximum {}", n, max_batch_tokens_));
  }
  if (scratch_tokens_ != max_batch_tokens_) alloc_scratch();
  if (static_cast<int64_t>(kv.layers.size()) != hp_.num_attention_layers()) {
    return error(ErrorCode::kInvalidArgument, "KV layers do not match the model");
  }
  if (hp_.is_hybrid() && kv.state_base == nullptr) {
    return error(ErrorCode::kInvalidArgument, "a hybrid model needs recurrent-state blobs beside its K/V");
  }
  for (int32_t t : batch.tokens) {
    if (t < 0 || t >= hp_.vocab_size) return error(ErrorCode::kInvalidArgument, fmt::format("token id {} is outside the vocabulary", t));
  }
  attn_seqs_.clear();
  seq_rows_.clear();
  for (const BatchSeq& s : batch.seqs) {
    attn_seqs_.push_back({s.token_begin, s.num_tokens, s.kv_len, s.block_table});
    if (s.want_logits && s.num_tokens > 0) seq_rows_.push_back(static_cast<int32_t>(s.token_begin + s.num_tokens - 1));
  }
  backend::Backend& be = *backend_;
  be.begin_step(step_info(batch, kv, logits));
  if (hp_.is_hybrid()) plan_state_segments(batch, kv);
  be.get_rows(token_embd_, batch.tokens.data(), n, x_);  // x [n, dim]
  for (int l = 0; l < hp_.num_layers; ++l) layer(l, batch, kv);
  // Only the rows that need logits go through the head.
  const int64_t m = static_cast<int64_t>(seq_rows_.size());
  if (m > 0) {
    WeightView xs{x_, DType::kF32, n, hp_.dim, static_cast<size_t>(hp_.dim) * 4};
    be.get_rows(xs, seq_rows_.data(), m, last_);  // [m, dim]
    be.rms_norm(last_, static_cast<const float*>(output_norm_.data), m, hp_.dim, hp_.rms_eps, last_);
    be.matmul(output_, last_, m, logits);  // [m, vocab]
  }
  be.end_step();
  return Status::ok();
}

// The step's shape for backends that replay recorded steps (backend.h): everything that
// decides which ops run on which buffers, but not the token ids, positions or kv_len.
backend::Backend::StepInfo Decoder::step_info(const Batch& batch, const KvLayers& kv, const float* logits) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(batch.tokens.size());
  mix(reinterpret_cast<uintptr_t>(logits));
  mix(reinterpret_cast<uintptr_t>(x_));
  mix(kv.layers.empty() ? 0 : reinterpret_cast<uintptr_t>(kv.layers[0].k));
  int64_t max_kv = 0;
  bool decode_only = !batch.seqs.empty();
  for (const BatchSeq& s : batch.seqs) {
    mix(static_cast<uint64_t>(s.token_begin));
    mix(static_cast<uint64_t>(s.num_tokens) * 2 + (s.want_logits ? 1 : 0));
    max_kv = std::max(max_kv, s.kv_len);
    decode_only = decode_only && s.num_tokens == 1;
  }
  return {h, static_cast<int64_t>(batch.tokens.size()), max_kv, decode_only};
}

namespace {
void add_bias_rows(backend::Backend& be, float* y, const WeightView& b, int64_t n, int64_t dim) {
  if (b.data == nullptr) return;
  for (int64_t r = 0; r < n; ++r) be.add(y + r * dim, static_cast<const float*>(b.data), dim);
}
}  // namespace

void Decoder::attention_block(int l, const Batch& batch, const KvLayers& kv) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t hd = hp_.head_dim, nh = hp_.num_heads, nkv = hp_.num_kv_heads;
  be.rms_norm(x_, static_cast<const float*>(L.attn_norm.data), n, hp_.dim, hp_.rms_eps, h_);  // h [n, dim]
  // q [n, nh*hd], k [n, nkv*hd], v [n, nkv*hd]
  const WeightView qkv_w[3] = {L.wq, L.wk, L.wv};
  float* const qkv_y[3] = {q_, k_, v_};
  be.matmul_multi(qkv_w, h_, n, qkv_y);
  add_bias_rows(be, q_, L.bq, n, nh * hd);
  add_bias_rows(be, k_, L.bk, n, nkv * hd);
  add_bias_rows(be, v_, L.bv, n, nkv * hd);
  attend_and_project(l, batch, kv, nullptr);
}

void Decoder::attend_and_project(int l, const Batch& batch, const KvLayers& kv, const float* gate) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t hd = hp_.head_dim, nh = hp_.num_heads, nkv = hp_.num_kv_heads;
  if (L.q_norm.data != nullptr) {  // qwen3, qwen35: RMSNorm over each head's vector
    be.rms_norm(q_, static_cast<const float*>(L.q_norm.data), n * nh, hd, hp_.rms_eps, q_);
    be.rms_norm(k_, static_cast<const float*>(L.k_norm.data), n * nkv, hd, hp_.rms_eps, k_);
  }
  // (qwen35: the rope covers the first rope_dim dimensions of each head)
  be.rope(q_, n, static_cast<int>(nh), static_cast<int>(hd), batch.positions.data(), rope_);
  be.rope(k_, n, static_cast<int>(nkv), static_cast<int>(hd), batch.positions.data(), rope_);
  const backend::PagedKv& layer_kv = kv.layers[static_cast<size_t>(L.kv_idx)];
  be.kv_store(layer_kv, k_, v_, n, batch.slots.data());
  be.attention(q_, static_cast<int>(nh), layer_kv, attn_seqs_, 1.0f / std::sqrt(static_cast<float>(hd)), att_);
  if (gate != nullptr) be.sigmoid_mul(att_, gate, n, nh * hd, nh * hd);  // the output gate
  be.matmul(L.wo, att_, n, h_);  // h [n, dim]
  be.add(x_, h_, n * hp_.dim);
}

void Decoder::dense_ffn_block(int l, int64_t n) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  be.rms_norm(x_, static_cast<const float*>(L.ffn_norm.data), n, hp_.dim, hp_.rms_eps, h_);
  const WeightView gate_up_w[2] = {L.gate, L.up};
  float* const gate_up_y[2] = {f1_, f2_};
  be.matmul_multi(gate_up_w, h_, n, gate_up_y);  // f1, f2 [n, ffn]
  be.swiglu(f1_, f2_, n, hp_.ffn_dim, f1_);
  be.matmul(L.down, f1_, n, h_);  // [n, dim]
  be.add(x_, h_, n * hp_.dim);
}

void Decoder::moe_ffn_block(int l, int64_t n) {
  const LayerWeights& L = layers_[static_cast<size_t>(l)];
  backend::Backend& be = *backend_;
  const int k = static_cast<int>(hp_.num_experts_used);
  const int64_t ef = hp_.expert_ffn_dim;
  be.rms_norm(x_, static_cast<const float*>(L.ffn_norm.data), n, hp_.dim, hp_.rms_eps, h_);
  be.matmul(L.router, h_, n, router_);  // [n, experts]
  be.topk_softmax(router_, n, static_cast<int>(hp_.num_experts), k, hp_.norm_topk_prob, topi_, topw_);
  // qwen35moe: a shared expert behind a sigmoid gate. Of one token, and of the routed experts'
  // size, it runs as slot k beside them (one launch each on CUDA).
  const bool shared = L.up_shexp.data != nullptr;
  const bool shared_slot = shared && n == 1 && hp_.shared_expert_ffn_dim == ef;
  float* sh = sh_;
  if (shared_slot) {
    be.matmul_experts_shared(L.gate_exps, L.gate_shexp, h_, false, topi_, k, f1_);  // [k + 1, ef]
    be.matmul_experts_shared(L.up_exps, L.up_shexp, h_, false, topi_, k, f2_);
    be.swiglu(f1_, f2_, k + 1, ef, f1_);
    be.matmul_experts_shared(L.down_exps, L.down_shexp, f1_, true, topi_, k, fo_);  // [k + 1, dim]
    sh = fo_ + static_cast<int64_t>(k) * hp_.dim;
  } else {
    be.matmul_experts(L.gate_exps, h_, false, topi_, n, k, f1_);  // [n, k, expert_ffn]
    be.matmul_experts(L.up_exps, h_, false, topi_, n, k, f2_);    // [n, k, expert_ffn]
    be.swiglu(f1_, f2_, n * k, ef, f1_);
    be.matmul_experts(L.down_exps, f1_, true, topi_, n, k, fo_);  // [n, k, dim]
    if (shared) {
      const int64_t sf = hp_.shared_expert_ffn_dim;
      const WeightView sh_w[2] = {L.gate_shexp, L.up_shexp};
      float* const sh_y[2] = {f1_, f2_};
      be.matmul_multi(sh_w, h_, n, sh_y);  // f1, f2 [n, sf]
      be.swiglu(f1_, f2_, n, sf, f1_);
      be.matmul(L.down_shexp, f1_, n, sh_);  // [n, dim]
    }
  }
  if (shared) {
    // The gate's product, its sigmoid, the two adds and the weighted sum come last and in this
    // order, so that a backend can run them with the next layer's norm (the CUDA decode path).
    be.matmul(L.shexp_gate, h_, n, shg_);  // [n, 1]
    be.sigmoid_mul(sh, shg_, n, hp_.dim, 1);
    be.add(x_, sh, n * hp_.dim);
  }
  be.weighted_sum(fo_, topw_, n, k, hp_.dim, h_);  // [n, dim]
  be.add(x_, h_, n * hp_.dim);
}

}  // namespace strata::model
