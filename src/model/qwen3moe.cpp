// qwen3moe: qwen3 attention; the FFN is a mixture of experts: softmax router over all
// experts, top-k, weights renormalised (norm_topk_prob), SwiGLU experts, weighted sum.
#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {
namespace {

class Qwen3Moe final : public Decoder {
  void layer(int l, const Batch& batch, const KvLayers& kv) override {
    attention_block(l, batch, kv);
    moe_ffn_block(l, static_cast<int64_t>(batch.tokens.size()));
  }
};

}  // namespace

std::unique_ptr<Decoder> make_qwen3moe() { return std::make_unique<Qwen3Moe>(); }

}  // namespace strata::model
