// The architecture registry: one factory per file.
#pragma once

#include <memory>

namespace strata::model {

class Decoder;
std::unique_ptr<Decoder> make_llama();
std::unique_ptr<Decoder> make_qwen2();
std::unique_ptr<Decoder> make_qwen3();
std::unique_ptr<Decoder> make_qwen3moe();
std::unique_ptr<Decoder> make_qwen35();  // qwen35 and qwen35moe

}  // namespace strata::model
