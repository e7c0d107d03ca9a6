#include "engine/runner.h"

#include "core/check.h"

namespace strata::engine {

Runner::Runner(model::Model& model, kv::KvCache& kv, int max_tokens, int max_seqs)
    : model_(model), kv_(kv), max_seqs_(max_seqs) {
  const kv::KvLayout& lay = kv.layout();
  const kv::BlockStrides st = kv.strides();
  for (int32_t l = 0; l < lay.num_layers; ++l) {
    backend::PagedKv p;
    p.k = kv.k_ptr(kv::BlockId{0}, l);
    p.v = kv.v_ptr(kv::BlockId{0}, l);
    p.block_stride_bytes = st.block_stride_bytes;
    p.type = lay.dtype;
    p.block_tokens = lay.block_tokens;
    p.num_kv_heads = lay.num_kv_heads;
    p.head_dim = lay.head_dim;
    // The cache's strides and the kernels' row offsets are one layout.
    STRATA_CHECK(backend::kv_row_offset(p, 1, 1, st.token_stride_bytes) ==
                 st.token_stride_bytes + st.head_stride_bytes);
    layers_.layers.push_back(p);
  }
  if (lay.state_bytes > 0) {  // hybrid models: the recurrent state rides in every block
    layers_.state_base = kv.state_ptr(kv::BlockId{0});
    layers_.state_stride_bytes = st.block_stride_bytes;
  }
  if (model_.max_batch_tokens() < max_tokens) model_.set_max_batch_tokens(max_tokens);
  const auto vocab = static_cast<size_t>(model_.hparams().vocab_size);
  logits_dev_ = model_.backend().alloc_f32(vocab * static_cast<size_t>(max_seqs));
  logits_host_ = model_.backend().alloc_host_f32(vocab * static_cast<size_t>(max_seqs));
  argmax_.resize(static_cast<size_t>(max_seqs));
}

Runner::~Runner() {
  model_.backend().free(logits_dev_);
  model_.backend().free_host(logits_host_);
}

Result<Runner::Output> Runner::run(const StepPlan& plan, bool argmax_only) {
  const int32_t bt = kv_.layout().block_tokens;
  tokens_.clear();
  positions_.clear();
  slots_.clear();
  seqs_.clear();
  if (tables_.size() < plan.items.size()) tables_.resize(plan.items.size());
  int num_logits = 0;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const StepItem& it = plan.items[i];
    const SeqState& s = *it.seq;
    std::span<const kv::BlockId> table = kv_.block_table(*s.seq);
    std::vector<int32_t>& t = tables_[i];
    t.resize(table.size());
    for (size_t b = 0; b < table.size(); ++b) t[b] = static_cast<int32_t>(table[b]);
    model::BatchSeq bs;
    bs.token_begin = static_cast<int64_t>(tokens_.size());
    bs.num_tokens = it.num_tokens;
    bs.kv_len = it.begin + it.num_tokens;
    bs.block_table = t.data();
    bs.want_logits = it.sample;
    STRATA_CHECK(static_cast<int64_t>(t.size()) * bt >= bs.kv_len);
    for (int32_t p = it.begin; p < it.begin + it.num_tokens; ++p) {
      tokens_.push_back(s.tokens[static_cast<size_t>(p)]);
      positions_.push_back(p);
      slots_.push_back(t[static_cast<size_t>(p / bt)] * bt + p % bt);
    }
    seqs_.push_back(bs);
    num_logits += it.sample ? 1 : 0;
  }
  STRATA_CHECK(num_logits <= max_seqs_);
  if (static_cast<int64_t>(tokens_.size()) > model_.max_batch_tokens()) {
    model_.set_max_batch_tokens(static_cast<int64_t>(tokens_.size()));
  }
  model::Batch batch{tokens_, positions_, slots_, seqs_};
  STRATA_RETURN_IF_ERROR(model_.forward(batch, layers_, logits_dev_));
  const auto vocab = static_cast<size_t>(model_.hparams().vocab_size);
  Output out;
  if (argmax_only) {
    model_.backend().argmax_rows(logits_dev_, num_logits, static_cast<int64_t>(vocab), argmax_.data());
    out.argmax = std::span<const int32_t>(argmax_.data(), static_cast<size_t>(num_logits));
  } else {
    const size_t n = vocab * static_cast<size_t>(num_logits);
    if (n > 0) model_.backend().copy_to_host(logits_dev_, n, logits_host_);
    out.logits = std::span<const float>(logits_host_, n);
  }
  model_.backend().synchronize();
  return out;
}

}  // namespace strata::engine
