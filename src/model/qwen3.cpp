// qwen3: no biases; RMSNorm on each q and k head before RoPE (QK-norm); NeoX RoPE.
#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {
namespace {

class Qwen3 final : public Decoder {
  void layer(int l, const Batch& batch, const KvLayers& kv) override {
    attention_block(l, batch, kv);  // applies attn_q_norm / attn_k_norm
    dense_ffn_block(l, static_cast<int64_t>(batch.tokens.size()));
  }
};

}  // namespace

std::unique_ptr<Decoder> make_qwen3() { return std::make_unique<Qwen3>(); }

}  // namespace strata::model
