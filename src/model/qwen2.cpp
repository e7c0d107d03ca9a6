// qwen2: llama's layer with biases on q, k, v and NeoX RoPE (traits in hparams.cpp).
#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {
namespace {

class Qwen2 final : public Decoder {
  void layer(int l, const Batch& batch, const KvLayers& kv) override {
    attention_block(l, batch, kv);  // adds attn_{q,k,v}.bias
    dense_ffn_block(l, static_cast<int64_t>(batch.tokens.size()));
  }
};

}  // namespace

std::unique_ptr<Decoder> make_qwen2() { return std::make_unique<Qwen2>(); }

}  // namespace strata::model
