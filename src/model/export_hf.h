// Export a GGUF model as a Hugging Face checkpoint (config.json + model.safetensors, weights
// dequantized to f32), so HF transformers can run the very same weights as the reference for
// golden logits. llama's q/k rows are un-permuted back to HF's rotate-half convention.
#pragma once

#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace strata::model {

Status export_hf(const gguf::File& file, const std::string& out_dir);

}  // namespace strata::model
