// Making an Engine: the options that size the scheduler and the tiered KV cache, and the
// factory. The implementation (engine thread, command queue, per-request state) is private
// to engine_impl.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "engine/engine.h"
#include "kv/block_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata::engine {

struct EngineOptions {
  int parallel = 4;              // most sequences running at once
  int batch_tokens = 512;        // token budget of one step (decode tokens + prefill chunks)
  int64_t ctx = 8192;            // context length per sequence (prompt + generated); <= the model's
  DType kv_dtype = DType::kF16;  // device-tier K/V type (F16, BF16, F32, Q8_0)
  int block_tokens = 64;         // tokens per KV block (kv_cache.h says why 64)
  // Device tier size: device_blocks if > 0, else device_bytes / block bytes if > 0, else
  // room for `parallel` full contexts.
  int32_t device_blocks = 0;
  uint64_t device_bytes = 0;
  uint64_t host_bytes = 0;       // host RAM tier; 0: none
  std::string ssd_dir;           // SSD tier directory; empty: none
  uint64_t ssd_bytes = 0;        // SSD tier budget
  bool lower_tier_int8 = false;  // host/SSD blocks as int8 (lossy: greedy output may change)
  bool prefix_cache = true;      // false: never reuse a cached prefix (compute every prompt)
  // A request whose cached prefix is being read from SSD waits for the reads as long as
  // computing those tokens would take (measured), but at least this long; then it recomputes.
  double min_ssd_wait_seconds = 0.005;
  // Identities for the cache fingerprint: one cache directory serves many models only if
  // these differ between models (e.g. the weights file's path + size + header hash).
  std::string model_id;
  std::string tokenizer_id;
  // Memory of the tiers; null: aligned RAM (the CPU backend). The CLI passes device / pinned
  // memory for CUDA.
  std::function<Result<std::unique_ptr<kv::BlockMemory>>(size_t)> device_memory;
  std::function<Result<std::unique_ptr<kv::BlockMemory>>(size_t)> host_memory;
};

// The model and tokenizer must outlive the engine. The engine thread starts here.
Result<std::unique_ptr<Engine>> make_engine(model::Model& model,
                                            const tokenizer::Tokenizer& tokenizer,
                                            EngineOptions options);

}  // namespace strata::engine
