// Synthetic models: random-weight GGUF files at any shape, seeded, in any weight recipe, with
// a real vocabulary and chat template when given one. Tests and benchmarks use these because
// no model can be downloaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "model/hparams.h"
#include "model/recipe.h"

namespace strata::model {

// Named real shapes: tiny, tiny-moe, qwen3-0.6b, qwen3-8b, llama3-8b, qwen3-30b-a3b, and the
// hybrids qwen3.5-tiny, qwen3.5-tiny-moe, qwen3.5-9b, qwen3.6-35b-a3b.
Result<Hparams> preset_hparams(const std::string& name);
std::vector<std::string> preset_names();

struct SynthOptions {
  Hparams hp;                     // vocab_size is replaced by the vocabulary's size
  Recipe recipe;
  uint64_t seed = 1;
  // Tokenizer metadata (tokenizer.* keys, chat template included). Empty: a built-in
  // byte-level vocabulary padded to hp.vocab_size.
  std::vector<gguf::KeyValue> vocab;
  std::string name = "strata-synthetic";
  // Tensors above this many elements take seeded picks from a pool of rows shared by the
  // tensors of the same type, row length and init, so multi-GB shapes synthesize in seconds;
  // smaller tensors get every row fresh.
  int64_t unique_elements_limit = int64_t{1} << 24;
};

// The built-in vocabulary: 256 byte-level tokens, ChatML specials, then byte-level BPE merges
// (space+letter, letter pairs) up to `vocab_size`.
std::vector<gguf::KeyValue> builtin_vocab(int64_t vocab_size);
// The tokenizer.* keys (and chat template) of a vocabulary GGUF file.
std::vector<gguf::KeyValue> vocab_from_gguf(const gguf::File& file);

// Declares everything in a writer; tensor data is produced (on `pool`) when it is written.
Result<gguf::Writer> synthesize(const SynthOptions& opts, ThreadPool& pool);

}  // namespace strata::model
