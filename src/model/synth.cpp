// Random weights: each row is seeded by (seed, tensor name, row), so output does not depend
// on the thread count, then quantized to the recipe's type for that tensor.
#include "model/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "core/check.h"
#include "core/quant.h"
#include "core/rng.h"
#include "core/utf8.h"

namespace strata::model {
namespace {

uint64_t hash_name(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

void fill_row(const TensorDecl& d, uint64_t row_seed, float* out, int64_t n) {
  Rng rng(row_seed);
  switch (d.init) {
    case TensorDecl::Init::kZero: std::fill(out, out + n, 0.0f); break;
    case TensorDecl::Init::kNorm:
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f + 0.1f * rng.normal();
      break;
    case TensorDecl::Init::kNormal:
      for (int64_t i = 0; i < n; ++i) out[i] = d.std * rng.normal();
      break;
    case TensorDecl::Init::kNegExp:
      for (int64_t i = 0; i < n; ++i) out[i] = -std::exp(d.std * rng.normal());
      break;
  }
}

std::string gpt2_byte_char(int b) {
  // The byte-level BPE alphabet: printable bytes map to themselves, the rest to U+0100 + k.
  auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255); };
  int cp = b;
  if (!printable(b)) {
    int k = 0;
    for (int c = 0; c < b; ++c) k += printable(c) ? 0 : 1;
    cp = 256 + k;
  }
  std::string s;
  append_utf8(s, static_cast<uint32_t>(cp));
  return s;
}

const char* kChatmlTemplate =
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

}  // namespace

std::vector<std::string> preset_names() {
  return {"tiny",        "tiny-moe",          "tiny-llama", "tiny-qwen2",    "qwen3-0.6b",     "qwen3-8b",
          "llama3-8b",   "qwen3-30b-a3b",     "qwen3.5-tiny", "qwen3.5-tiny-moe", "qwen3.5-9b", "qwen3.6-35b-a3b"};
}

Result<Hparams> preset_hparams(const std::string& name) {
  Hparams hp;
  hp.context_length = 40960;
  hp.rope_freq_base = 1000000.0f;
  hp.rms_eps = 1e-6f;
  if (name == "tiny" || name == "tiny-moe" || name == "tiny-llama" || name == "tiny-qwen2") {
    hp.arch = name == "tiny-moe" ? "qwen3moe" : name == "tiny-llama" ? "llama" : name == "tiny-qwen2" ? "qwen2" : "qwen3";
    hp.num_layers = 2; hp.dim = 64; hp.num_heads = 4; hp.num_kv_heads = 2; hp.head_dim = 16;
    hp.ffn_dim = 128; hp.vocab_size = 512; hp.context_length = 4096;
    if (hp.arch == "qwen3moe") { hp.num_experts = 8; hp.num_experts_used = 2; hp.expert_ffn_dim = 32; }
    if (hp.arch == "llama") { hp.rope_freq_base = 500000.0f; hp.rms_eps = 1e-5f; }
  } else if (name == "qwen3-0.6b") {
    hp.arch = "qwen3"; hp.num_layers = 28; hp.dim = 1024; hp.num_heads = 16; hp.num_kv_heads = 8;
    hp.head_dim = 128; hp.ffn_dim = 3072; hp.vocab_size = 151936; hp.tied_embeddings = true;
  } else if (name == "qwen3-8b") {
    hp.arch = "qwen3"; hp.num_layers = 36; hp.dim = 4096; hp.num_heads = 32; hp.num_kv_heads = 8;
    hp.head_dim = 128; hp.ffn_dim = 12288; hp.vocab_size = 151936;
  } else if (name == "llama3-8b") {
    hp.arch = "llama"; hp.num_layers = 32; hp.dim = 4096; hp.num_heads = 32; hp.num_kv_heads = 8;
    hp.head_dim = 128; hp.ffn_dim = 14336; hp.vocab_size = 128256; hp.context_length = 131072;
    hp.rope_freq_base = 500000.0f; hp.rms_eps = 1e-5f;
    hp.rope_scaling.type = RopeScaling::Type::kLlama3; hp.rope_scaling.factor = 8.0f;
    hp.rope_scaling.original_context = 8192;
  } else if (name == "qwen3-30b-a3b") {
    hp.arch = "qwen3moe"; hp.num_layers = 48; hp.dim = 2048; hp.num_heads = 32; hp.num_kv_heads = 4;
    hp.head_dim = 128; hp.ffn_dim = 6144; hp.vocab_size = 151936; hp.num_experts = 128;
    hp.num_experts_used = 8; hp.expert_ffn_dim = 768;
  } else if (name == "qwen3.5-tiny" || name == "qwen3.5-tiny-moe") {
    // Every hybrid part at toy size: 3 DeltaNet layers + 1 gated attention layer, 2 key heads
    // serving 4 value heads, partial RoPE, one MTP block.
    hp.arch = name == "qwen3.5-tiny" ? "qwen35" : "qwen35moe";
    hp.num_layers = 4; hp.dim = 64; hp.num_heads = 4; hp.num_kv_heads = 2; hp.head_dim = 16;
    hp.ffn_dim = 128; hp.vocab_size = 512; hp.context_length = 4096; hp.rope_freq_base = 10000000.0f;
    hp.full_attn_interval = 4; hp.num_nextn_layers = 1;
    hp.delta = {4, 2, 4, 16, 16};
    if (hp.arch == "qwen35moe") { hp.num_experts = 8; hp.num_experts_used = 2; hp.expert_ffn_dim = 32; hp.shared_expert_ffn_dim = 64; }
  } else if (name == "qwen3.5-9b") {
    // Qwen/Qwen3.5-9B text config: 32 layers (24 DeltaNet, 8 gated attention), 16 query and
    // 4 KV heads of 256 (a quarter rotated), DeltaNet 16 key / 32 value heads of 128.
    hp.arch = "qwen35"; hp.num_layers = 32; hp.dim = 4096; hp.num_heads = 16; hp.num_kv_heads = 4;
    hp.head_dim = 256; hp.ffn_dim = 12288; hp.vocab_size = 248320; hp.context_length = 262144;
    hp.rope_freq_base = 10000000.0f; hp.full_attn_interval = 4; hp.num_nextn_layers = 1;
    hp.delta = {4, 16, 32, 128, 128};
  } else if (name == "qwen3.6-35b-a3b") {
    // Qwen/Qwen3.6-35B-A3B (the Qwen3.5-35B-A3B shape): 40 layers (30 DeltaNet, 10 gated
    // attention), 16 query / 2 KV heads of 256, 256 experts (8 used) of 512 plus a shared 512.
    hp.arch = "qwen35moe"; hp.num_layers = 40; hp.dim = 2048; hp.num_heads = 16; hp.num_kv_heads = 2;
    hp.head_dim = 256; hp.ffn_dim = 0; hp.vocab_size = 248320; hp.context_length = 262144;
    hp.rope_freq_base = 10000000.0f; hp.full_attn_interval = 4; hp.num_nextn_layers = 1;
    hp.num_experts = 256; hp.num_experts_used = 8; hp.expert_ffn_dim = 512; hp.shared_expert_ffn_dim = 512;
    hp.delta = {4, 16, 32, 128, 128};
  } else {
    std::string all;
    for (const auto& p : preset_names()) all += (all.empty() ? "" : ", ") + p;
    return error(ErrorCode::kInvalidArgument, fmt::format("unknown preset '{}' (known: {})", name, all));
  }
  hp.rope_dim = hp.is_hybrid() ? hp.head_dim / 4 : hp.head_dim;  // qwen35*: partial_rotary_factor 0.25
  STRATA_RETURN_IF_ERROR(apply_architecture_traits(hp));
  return hp;
}

std::vector<gguf::KeyValue> builtin_vocab(int64_t vocab_size) {
  using gguf::Value;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(gpt2_byte_char(b));
    types.push_back(1);  // normal
  }
  const int64_t first_special = static_cast<int64_t>(tokens.size());
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"}) {
    tokens.push_back(s);
    types.push_back(std::string(s).find("think") != std::string::npos || std::string(s).find("tool_call") != std::string::npos ? 4 : 3);
  }
  // Fill the rest with real byte-level BPE merges (space + letter, then letter pairs in
  // English frequency order), so the vocabulary encodes text into multi-byte tokens.
  std::vector<std::string> merges;
  const std::string letters = "etaoinshrdlucmfwypvbgkjqxz";
  const std::string space = gpt2_byte_char(' ');
  std::vector<std::pair<std::string, std::string>> pairs;
  for (char c : letters) pairs.push_back({space, std::string(1, c)});
  for (char a : letters) {
    for (char b : letters) pairs.push_back({std::string(1, a), std::string(1, b)});
  }
  for (size_t i = 0; static_cast<int64_t>(tokens.size()) < vocab_size; ++i) {
    if (i < pairs.size()) {
      merges.push_back(pairs[i].first + " " + pairs[i].second);
      tokens.push_back(pairs[i].first + pairs[i].second);
      types.push_back(1);
    } else {
      tokens.push_back(fmt::format("<|extra_{}|>", tokens.size()));
      types.push_back(4);  // user-defined
    }
  }
  std::vector<gguf::KeyValue> kv;
  kv.push_back({"tokenizer.ggml.model", Value::string("gpt2")});
  kv.push_back({"tokenizer.ggml.pre", Value::string("qwen2")});
  kv.push_back({"tokenizer.ggml.tokens", Value::string_array(tokens)});
  kv.push_back({"tokenizer.ggml.token_type", Value::i32_array(types)});
  kv.push_back({"tokenizer.ggml.merges", Value::string_array(merges)});
  kv.push_back({"tokenizer.ggml.eos_token_id", Value::u32(static_cast<uint32_t>(first_special + 2))});
  kv.push_back({"tokenizer.ggml.padding_token_id", Value::u32(static_cast<uint32_t>(first_special))});
  kv.push_back({"tokenizer.ggml.bos_token_id", Value::u32(static_cast<uint32_t>(first_special))});
  kv.push_back({"tokenizer.ggml.add_bos_token", Value::boolean(false)});
  kv.push_back({"tokenizer.chat_template", Value::string(kChatmlTemplate)});
  return kv;
}

std::vector<gguf::KeyValue> vocab_from_gguf(const gguf::File& file) {
  std::vector<gguf::KeyValue> kv;
  for (const auto& e : file.metadata()) {
    if (e.key.rfind("tokenizer.", 0) == 0) kv.push_back(e);
  }
  return kv;
}

Result<gguf::Writer> synthesize(const SynthOptions& opts, ThreadPool& pool) {
  Hparams hp = opts.hp;
  STRATA_RETURN_IF_ERROR(apply_architecture_traits(hp));
  std::vector<gguf::KeyValue> vocab = opts.vocab.empty() ? builtin_vocab(hp.vocab_size) : opts.vocab;
  for (const auto& kv : vocab) {
    if (kv.key == "tokenizer.ggml.tokens") hp.vocab_size = static_cast<int64_t>(kv.value.array_size());
  }
  if (hp.vocab_size <= 0) return error(ErrorCode::kInvalidArgument, "the vocabulary has no tokenizer.ggml.tokens");
  if (hp.dim <= 0 || hp.num_layers <= 0 || hp.num_heads <= 0 || hp.head_dim <= 0 || hp.num_kv_heads <= 0 ||
      hp.num_heads % hp.num_kv_heads != 0) {
    return error(ErrorCode::kInvalidArgument, "shape needs positive layers, dim, heads, head dim, and heads a multiple of kv heads");
  }
  if (hp.is_moe() ? (hp.expert_ffn_dim <= 0 || hp.num_experts_used <= 0 || hp.num_experts_used > hp.num_experts)
                  : hp.ffn_dim <= 0) {
    return error(ErrorCode::kInvalidArgument, "shape needs a positive ffn dim (and experts used <= experts)");
  }
  if (hp.rope_dim <= 0) hp.rope_dim = hp.head_dim;
  if (hp.is_hybrid()) {
    const DeltaNetHparams& d = hp.delta;
    if (d.conv_kernel < 2 || d.num_k_heads <= 0 || d.num_v_heads <= 0 || d.head_k_dim <= 0 || d.head_v_dim <= 0 ||
        d.num_v_heads % d.num_k_heads != 0) {
      return error(ErrorCode::kInvalidArgument, "a hybrid shape needs a conv kernel >= 2 and value heads a multiple of key heads");
    }
    if (hp.is_moe() && hp.shared_expert_ffn_dim <= 0) return error(ErrorCode::kInvalidArgument, "qwen35moe needs a shared expert ffn dim");
    if (hp.num_attention_layers() == 0) return error(ErrorCode::kInvalidArgument, "a hybrid needs at least one full-attention layer");
  }

  struct RowPools {
    std::mutex mu;
    std::map<std::string, std::shared_ptr<std::vector<uint8_t>>> by_key;
  };
  auto pools = std::make_shared<RowPools>();
  gguf::Writer w(32);
  w.set("general.architecture", gguf::Value::string(hp.arch));
  w.set("general.name", gguf::Value::string(opts.name));
  w.set("general.quantization_version", gguf::Value::u32(2));
  w.set("general.file_type", gguf::Value::u32(opts.recipe.file_type));
  w.set("general.alignment", gguf::Value::u32(32));
  write_hparams(hp, w);
  for (const auto& kv : vocab) w.set(kv.key, kv.value);

  for (const TensorDecl& d : declare_tensors(hp)) {
    const DType type = tensor_type(opts.recipe, d.name, d.shape, static_cast<int>(hp.num_layers));
    if (!can_quantize(type)) {
      return error(ErrorCode::kUnsupported, fmt::format("cannot quantize to {} (tensor {})", dtype_name(type), d.name));
    }
    const int64_t row_len = d.shape[0];
    int64_t rows = 1;
    for (size_t i = 1; i < d.shape.size(); ++i) rows *= d.shape[i];
    const uint64_t tseed = hash_name(opts.seed, d.name);
    const size_t rb = row_bytes(type, row_len);
    const bool pooled = rows * row_len > opts.unique_elements_limit;
    auto decl = std::make_shared<TensorDecl>(d);
    if (!pooled) {
      w.add_tensor(d.name, type, d.shape, [decl, type, row_len, rows, tseed, rb, &pool](uint8_t* dst, uint64_t) {
        pool.parallel_for(rows, 16, [&](int, int64_t b, int64_t e) {
          std::vector<float> tmp(static_cast<size_t>(row_len));
          for (int64_t r = b; r < e; ++r) {
            fill_row(*decl, tseed + static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull, tmp.data(), row_len);
            quantize_row(type, tmp.data(), dst + static_cast<size_t>(r) * rb, row_len);
          }
        });
      });
      continue;
    }
    // Large tensors pick seeded rows from a pool shared by every tensor of the same type, row
    // length and init: multi-GB shapes synthesize at memcpy speed.
    const std::string pool_key = fmt::format("{}/{}/{}/{}", dtype_name(type), row_len, static_cast<int>(d.init), d.std);
    const int64_t pool_rows = std::max<int64_t>(64, opts.unique_elements_limit / row_len);
    w.add_tensor(d.name, type, d.shape, [decl, type, row_len, rows, tseed, rb, pool_rows, pool_key, pools, seed = opts.seed, &pool](uint8_t* dst, uint64_t) {
      std::shared_ptr<std::vector<uint8_t>> rows_pool;
      {
        std::lock_guard<std::mutex> lock(pools->mu);
        auto& slot = pools->by_key[pool_key];
        if (!slot) {
          slot = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(pool_rows) * rb);
          const uint64_t pseed = hash_name(seed, pool_key);
          uint8_t* out = slot->data();
          pool.parallel_for(pool_rows, 16, [&](int, int64_t b, int64_t e) {
            std::vector<float> tmp(static_cast<size_t>(row_len));
            for (int64_t r = b; r < e; ++r) {
              fill_row(*decl, pseed + static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull, tmp.data(), row_len);
              quantize_row(type, tmp.data(), out + static_cast<size_t>(r) * rb, row_len);
            }
          });
        }
        rows_pool = slot;
      }
      Rng pick(tseed ^ 0x5bd1e995u);
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(dst + static_cast<size_t>(r) * rb,
                    rows_pool->data() + static_cast<size_t>(pick.below(static_cast<uint32_t>(pool_rows))) * rb, rb);
      }
    });
  }
  return w;
}

}  // namespace strata::model
