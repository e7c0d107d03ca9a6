// llama (Llama 2/3, Mistral): pre-norm attention with adjacent-pair RoPE, SwiGLU FFN.
#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {
namespace {

class Llama final : public Decoder {
  void layer(int l, const Batch& batch, const KvLayers& kv) override {
    attention_block(l, batch, kv);
    dense_ffn_block(l, static_cast<int64_t>(batch.tokens.size()));
  }
};

}  // namespace

std::unique_ptr<Decoder> make_llama() { return std::make_unique<Llama>(); }

}  // namespace strata::model
