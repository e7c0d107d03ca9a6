#include "engine/generator.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>

namespace strata::engine {

KvBuffers::KvBuffers(backend::Backend& backend, const model::Hparams& hp, DType dtype, int block_tokens,
                     int num_blocks, int state_slots)
    : backend_(backend), num_blocks_(num_blocks), block_tokens_(block_tokens) {
  const size_t token_bytes = row_bytes(dtype, hp.num_kv_heads * hp.head_dim);
  const size_t block_bytes = token_bytes * static_cast<size_t>(block_tokens);
  if (hp.is_hybrid()) {
    const size_t state_bytes = static_cast<size_t>(hp.recurrent_state_bytes());
    const size_t stride = (state_bytes + 63) & ~size_t{63};
    void* p = backend_.alloc_f32(stride / 4 * static_cast<size_t>(state_slots));
    allocations_.push_back(p);
    bytes_ += stride * static_cast<size_t>(state_slots);
    layers_.state_base = static_cast<uint8_t*>(p);
    layers_.state_stride_bytes = stride;
    for (int b = 0; b < num_blocks; ++b) state_table_.push_back(b % state_slots);
  }
  for (int64_t l = 0; l < hp.num_attention_layers(); ++l) {
    backend::PagedKv p;
    p.type = dtype;
    p.block_tokens = block_tokens;
    p.num_kv_heads = static_cast<int>(hp.num_kv_heads);
    p.head_dim = static_cast<int>(hp.head_dim);
    p.block_stride_bytes = block_bytes;
    const size_t floats = (block_bytes * static_cast<size_t>(num_blocks) + 3) / 4;
    p.k = backend_.alloc_f32(floats);
    p.v = backend_.alloc_f32(floats);
    allocations_.push_back(p.k);
    allocations_.push_back(p.v);
    bytes_ += 2 * floats * 4;
    layers_.layers.push_back(p);
  }
}

KvBuffers::~KvBuffers() {
  for (void* p : allocations_) backend_.free(p);
}

Generator::Generator(model::Model& model, int64_t max_context, DType kv_dtype, int block_tokens, int state_slots)
    : model_(model),
      max_context_(max_context),
      kv_(model.backend(), model.hparams(), kv_dtype, block_tokens,
          static_cast<int>((max_context + block_tokens - 1) / block_tokens), state_slots) {
  // Blocks in reverse order: the block table is not the identity, as in a real cache.
  for (int b = kv_.num_blocks() - 1; b >= 0; --b) block_table_.push_back(b);
  logits_dev_ = model_.backend().alloc_f32(static_cast<size_t>(model_.hparams().vocab_size));
  logits_host_ = model_.backend().alloc_host_f32(static_cast<size_t>(model_.hparams().vocab_size));
}

Generator::~Generator() {
  model_.backend().free(logits_dev_);
  model_.backend().free_host(logits_host_);
}

Status Generator::run_tokens(std::span<const int32_t> tokens, int64_t start_pos, bool want_logits, float* logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (start_pos + n > max_context_) {
    return error(ErrorCode::kOutOfRange, fmt::format("{} tokens exceed the context of {}", start_pos + n, max_context_));
  }
  std::vector<int32_t> positions(static_cast<size_t>(n)), slots(static_cast<size_t>(n));
  const int bt = kv_.block_tokens();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = start_pos + i;
    positions[static_cast<size_t>(i)] = static_cast<int32_t>(pos);
    slots[static_cast<size_t>(i)] = block_table_[static_cast<size_t>(pos / bt)] * bt + static_cast<int32_t>(pos % bt);
  }
  model::BatchSeq seq;
  seq.token_begin = 0;
  seq.num_tokens = n;
  seq.kv_len = start_pos + n;
  seq.block_table = block_table_.data();
  seq.state_table = kv_.state_table();
  seq.want_logits = want_logits;
  model::Batch batch{tokens, positions, slots, std::span<const model::BatchSeq>(&seq, 1)};
  if (model_.max_batch_tokens() < n) model_.set_max_batch_tokens(n);
  return model_.forward(batch, kv_.layers(), logits);
}

Result<std::vector<int32_t>> Generator::generate(std::span<const int32_t> prompt, const GenerateOptions& opts,
                                                 const std::function<bool(const SampleResult&)>& on_token,
                                                 GenerateStats* stats) {
  if (prompt.empty()) return error(ErrorCode::kInvalidArgument, "empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= max_context_) {
    return error(ErrorCode::kOutOfRange,
                 fmt::format("prompt has {} tokens; the context is {}", prompt.size(), max_context_));
  }
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  backend::Backend& be = model_.backend();
  const int64_t vocab = model_.hparams().vocab_size;
  const int chunk = std::max(1, opts.prefill_chunk);
  for (size_t b = 0; b < prompt.size(); b += static_cast<size_t>(chunk)) {
    const size_t e = std::min(prompt.size(), b + static_cast<size_t>(chunk));
    STRATA_RETURN_IF_ERROR(run_tokens(prompt.subspan(b, e - b), static_cast<int64_t>(b), e == prompt.size(), logits_dev_));
  }
  be.synchronize();
  auto t1 = clock::now();
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::vector<int32_t> out;
  Sampler sampler(opts.sampling);
  int64_t pos = static_cast<int64_t>(prompt.size());
  while (static_cast<int>(out.size()) < opts.max_tokens) {
    SampleResult r;
    // The argmax where the logits are: 4 bytes come back (STRATA_HOST_ARGMAX=1: the logits
    // come back and the sampler takes it, for comparisons).
    static const bool host_argmax = std::getenv("STRATA_HOST_ARGMAX") != nullptr;
    if (!host_argmax && sampler.plain_greedy(history)) {
      be.argmax_rows(logits_dev_, 1, vocab, &r.token);
    } else {
      be.copy_to_host(logits_dev_, static_cast<size_t>(vocab), logits_host_);
      r = sampler.sample(std::span<const float>(logits_host_, static_cast<size_t>(vocab)), history);
    }
    out.push_back(r.token);
    history.push_back(r.token);
    bool eog = false;
    for (int32_t e : opts.eog_tokens) eog |= e == r.token;
    if (on_token && !on_token(r)) break;
    if (eog && opts.stop_at_eog) break;
    if (static_cast<int>(out.size()) >= opts.max_tokens || pos + 1 >= max_context_) break;
    const int32_t tok = r.token;
    STRATA_RETURN_IF_ERROR(run_tokens(std::span<const int32_t>(&tok, 1), pos, true, logits_dev_));
    ++pos;
  }
  be.synchronize();
  auto t2 = clock::now();
  if (stats != nullptr) {
    stats->prompt_tokens = static_cast<int>(prompt.size());
    stats->generated_tokens = static_cast<int>(out.size());
    stats->prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
    stats->decode_seconds = std::chrono::duration<double>(t2 - t1).count();
  }
  return out;
}

Result<std::vector<float>> Generator::logits_per_position(std::span<const int32_t> prompt, int prefill_len, int chunk) {
  if (prefill_len < 1 || prefill_len > static_cast<int>(prompt.size())) {
    return error(ErrorCode::kInvalidArgument, "prefill_len must be in [1, prompt size]");
  }
  const int64_t vocab = model_.hparams().vocab_size;
  std::vector<float> out;
  backend::Backend& be = model_.backend();
  for (int b = 0; b < prefill_len; b += chunk) {
    const int e = std::min(prefill_len, b + chunk);
    STRATA_RETURN_IF_ERROR(run_tokens(prompt.subspan(static_cast<size_t>(b), static_cast<size_t>(e - b)), b, e == prefill_len, logits_dev_));
  }
  auto take = [&] {
    be.copy_to_host(logits_dev_, static_cast<size_t>(vocab), logits_host_);
    out.insert(out.end(), logits_host_, logits_host_ + vocab);
  };
  take();
  for (size_t p = static_cast<size_t>(prefill_len); p < prompt.size(); ++p) {
    STRATA_RETURN_IF_ERROR(run_tokens(prompt.subspan(p, 1), static_cast<int64_t>(p), true, logits_dev_));
    take();
  }
  return out;
}

}  // namespace strata::engine
