// strata synth: write a random-weight GGUF at a preset or custom shape.
// strata quantize IN OUT RECIPE: convert a GGUF file's weights to another recipe.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct SynthArgs {
  std::string preset = "tiny";
  std::string out;
  std::string recipe = "F32";
  std::string vocab;       // vocabulary GGUF
  std::string hf_tokenizer;  // folder with tokenizer.json + tokenizer_config.json
  std::string template_file;
  std::string arch;
  uint64_t seed = 1;
  int64_t layers = 0, dim = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, experts = 0,
          experts_used = 0, expert_ffn = 0, ctx = 0, vocab_size = 0, rope_dim = 0;
  double rope_base = 0, rope_factor = 0;
  std::string rope_scaling;
  int64_t orig_ctx = 0;
  bool tied = false, untied = false;
  int threads = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run_synth(const SynthArgs& a) {
  auto hp_r = model::preset_hparams(a.preset);
  if (!hp_r.is_ok()) {
    std::fprintf(stderr, "strata synth: %s\n", hp_r.status().message().c_str());
    return 2;
  }
  model::Hparams hp = *hp_r;
  if (!a.arch.empty()) hp.arch = a.arch;
  auto set = [](int64_t v, int64_t& dst) { if (v > 0) dst = v; };
  set(a.layers, hp.num_layers); set(a.dim, hp.dim); set(a.heads, hp.num_heads);
  set(a.kv_heads, hp.num_kv_heads); set(a.head_dim, hp.head_dim); set(a.ffn, hp.ffn_dim);
  set(a.experts, hp.num_experts); set(a.experts_used, hp.num_experts_used);
  set(a.expert_ffn, hp.expert_ffn_dim); set(a.ctx, hp.context_length); set(a.vocab_size, hp.vocab_size);
  if (a.head_dim > 0 && a.rope_dim == 0) hp.rope_dim = a.head_dim;
  set(a.rope_dim, hp.rope_dim);
  if (a.rope_base > 0) hp.rope_freq_base = static_cast<float>(a.rope_base);
  if (a.tied) hp.tied_embeddings = true;
  if (a.untied) hp.tied_embeddings = false;
  const bool moe_arch = hp.arch == "qwen3moe" || hp.arch == "qwen35moe";
  if (moe_arch && hp.num_experts == 0) {
    std::fprintf(stderr, "strata synth: %s needs --experts and --experts-used\n", hp.arch.c_str());
    return 2;
  }
  if (!moe_arch) hp.num_experts = 0;
  if (!a.rope_scaling.empty()) {
    using T = model::RopeScaling::Type;
    auto& rs = hp.rope_scaling;
    if (a.rope_scaling == "none") rs.type = T::kNone;
    else if (a.rope_scaling == "linear") rs.type = T::kLinear;
    else if (a.rope_scaling == "yarn") rs.type = T::kYarn;
    else if (a.rope_scaling == "llama3") rs.type = T::kLlama3;
    else {
      std::fprintf(stderr, "strata synth: --rope-scaling must be none, linear, yarn or llama3\n");
      return 2;
    }
    rs.factor = a.rope_factor > 0 ? static_cast<float>(a.rope_factor) : 4.0f;
    rs.original_context = a.orig_ctx > 0 ? a.orig_ctx : hp.context_length / static_cast<int64_t>(rs.factor);
  }
  auto recipe = model::find_recipe(a.recipe);
  if (!recipe.is_ok()) {
    std::fprintf(stderr, "strata synth: %s\n", recipe.status().message().c_str());
    return 2;
  }
  model::SynthOptions opts;
  opts.hp = hp;
  opts.recipe = *recipe;
  opts.seed = a.seed;
  opts.name = fmt::format("strata-synth-{}-{}", a.preset, recipe->name);
  std::unique_ptr<gguf::File> vocab_file;
  if (!a.vocab.empty()) {
    auto vf = gguf::File::open(a.vocab);
    if (!vf.is_ok()) {
      std::fprintf(stderr, "strata synth: %s\n", vf.status().to_string().c_str());
      return 1;
    }
    vocab_file = std::move(vf).value();
    opts.vocab = model::vocab_from_gguf(*vocab_file);
  }
  if (!a.hf_tokenizer.empty()) {
    const std::string tj = a.hf_tokenizer + "/tokenizer.json", tc = a.hf_tokenizer + "/tokenizer_config.json";
    std::ifstream p1(tj), p2(tc);
    if (!p1 || !p2) {
      std::fprintf(stderr, "strata synth: '%s' needs tokenizer.json and tokenizer_config.json\n", a.hf_tokenizer.c_str());
      return 1;
    }
    auto v = tokenizer::vocab_from_hf_json(read_text(tj), read_text(tc));
    if (!v.is_ok()) {
      std::fprintf(stderr, "strata synth: %s\n", v.status().to_string().c_str());
      return 1;
    }
    opts.vocab = tokenizer::to_gguf_metadata(*v);
  }
  if (!a.template_file.empty()) {
    std::ifstream probe(a.template_file);
    if (!probe) {
      std::fprintf(stderr, "strata synth: cannot read template '%s'\n", a.template_file.c_str());
      return 1;
    }
    if (opts.vocab.empty()) opts.vocab = model::builtin_vocab(hp.vocab_size);
    bool replaced = false;
    for (auto& kv : opts.vocab) {
      if (kv.key == "tokenizer.chat_template") { kv.value = gguf::Value::string(read_text(a.template_file)); replaced = true; }
    }
    if (!replaced) opts.vocab.push_back({"tokenizer.chat_template", gguf::Value::string(read_text(a.template_file))});
  }
  ThreadPool pool(a.threads);
  auto w = model::synthesize(opts, pool);
  if (!w.is_ok()) {
    std::fprintf(stderr, "strata synth: %s\n", w.status().to_string().c_str());
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t bytes = w->file_bytes();
  Status st = w->write_file(a.out);
  if (!st.is_ok()) {
    std::fprintf(stderr, "strata synth: %s\n", st.to_string().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %s, %lld layers, dim %lld, %s, %.2f GB in %.1f s\n", a.out.c_str(), hp.arch.c_str(),
              static_cast<long long>(hp.num_layers), static_cast<long long>(hp.dim), recipe->name.c_str(),
              static_cast<double>(bytes) / 1e9, secs);
  return 0;
}

int run_quantize(const std::string& in, const std::string& out, const std::string& recipe_name, int threads) {
  auto recipe = model::find_recipe(recipe_name);
  if (!recipe.is_ok()) {
    std::fprintf(stderr, "strata quantize: %s\n", recipe.status().message().c_str());
    return 2;
  }
  auto f = gguf::File::open(in);
  if (!f.is_ok()) {
    std::fprintf(stderr, "strata quantize: %s\n", f.status().to_string().c_str());
    return 1;
  }
  const gguf::File& file = **f;
  const int num_layers = static_cast<int>(file.get_int(file.arch_key("block_count")).value_or(1));
  gguf::Writer w(file.alignment());
  for (const auto& kv : file.metadata()) w.set(kv.key, kv.value);
  w.set("general.file_type", gguf::Value::u32(recipe->file_type));
  w.set("general.quantization_version", gguf::Value::u32(2));
  ThreadPool pool(threads);
  for (const auto& t : file.tensors()) {
    if (!can_dequantize(t.type)) {
      std::fprintf(stderr, "strata quantize: cannot read tensor %s of type %s\n", t.name.c_str(), dtype_name(t.type));
      return 1;
    }
    const DType to = model::tensor_type(*recipe, t.name, t.shape, num_layers);
    if (!can_quantize(to)) {
      std::fprintf(stderr, "strata quantize: cannot write type %s\n", dtype_name(to));
      return 1;
    }
    const uint8_t* src = file.tensor_data(t);
    const DType from = t.type;
    const int64_t row_len = t.shape[0];
    const int64_t rows = t.rows();
    w.add_tensor(t.name, to, t.shape, [=, &pool](uint8_t* dst, uint64_t) {
      const size_t in_rb = row_bytes(from, row_len), out_rb = row_bytes(to, row_len);
      pool.parallel_for(rows, 8, [&](int, int64_t b, int64_t e) {
        std::vector<float> tmp(static_cast<size_t>(row_len));
        for (int64_t r = b; r < e; ++r) {
          dequantize_row(from, src + static_cast<size_t>(r) * in_rb, tmp.data(), row_len);
          quantize_row(to, tmp.data(), dst + static_cast<size_t>(r) * out_rb, row_len);
        }
      });
    });
  }
  Status st = w.write_file(out);
  if (!st.is_ok()) {
    std::fprintf(stderr, "strata quantize: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("wrote %s (%s, %.2f GB)\n", out.c_str(), recipe->name.c_str(), static_cast<double>(w.file_bytes()) / 1e9);
  return 0;
}

}  // namespace

void register_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight GGUF model at a preset or custom shape");
  std::string presets;
  for (const auto& p : model::preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  cmd->add_option("-o,--out", a->out, "Output GGUF path")->required();
  cmd->add_option("--preset", a->preset, "Shape preset: " + presets)->capture_default_str();
  cmd->add_option("--type,--recipe", a->recipe, "Weight type or recipe (F32, F16, BF16, Q8_0, Q4_K_M, ...)")->capture_default_str();
  cmd->add_option("--vocab", a->vocab, "Take vocabulary and chat template from this GGUF");
  cmd->add_option("--hf-tokenizer", a->hf_tokenizer, "Take vocabulary and chat template from a Hugging Face folder (tokenizer.json + tokenizer_config.json)");
  cmd->add_option("--chat-template", a->template_file, "Chat template file (Jinja)");
  cmd->add_option("--arch", a->arch, "Architecture: llama, qwen2, qwen3, qwen3moe");
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("--layers", a->layers, "Number of layers");
  cmd->add_option("--dim", a->dim, "Model dimension");
  cmd->add_option("--heads", a->heads, "Attention heads");
  cmd->add_option("--kv-heads", a->kv_heads, "KV heads");
  cmd->add_option("--head-dim", a->head_dim, "Head dimension");
  cmd->add_option("--ffn", a->ffn, "FFN dimension");
  cmd->add_option("--experts", a->experts, "Experts (qwen3moe)");
  cmd->add_option("--experts-used", a->experts_used, "Experts used per token");
  cmd->add_option("--expert-ffn", a->expert_ffn, "Expert FFN dimension");
  cmd->add_option("--ctx", a->ctx, "Context length");
  cmd->add_option("--vocab-size", a->vocab_size, "Vocabulary size for the built-in vocabulary");
  cmd->add_option("--rope-base", a->rope_base, "RoPE frequency base");
  cmd->add_option("--rope-dim", a->rope_dim, "Rotated dims per head");
  cmd->add_option("--rope-scaling", a->rope_scaling, "none, linear, yarn, llama3");
  cmd->add_option("--rope-factor", a->rope_factor, "RoPE scaling factor");
  cmd->add_option("--rope-orig-ctx", a->orig_ctx, "Original context for RoPE scaling");
  cmd->add_flag("--tied", a->tied, "Tie output to token embeddings");
  cmd->add_flag("--untied", a->untied, "Separate output matrix");
  cmd->add_option("--threads", a->threads, "Threads (0 = all)");
  cmd->callback([a] { set_exit_code(run_synth(*a)); });
}

void register_quantize(CLI::App& app) {
  auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>(), recipe = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto* cmd = app.add_subcommand("quantize", "Convert a GGUF model's weights to another type or recipe");
  cmd->add_option("in", *in, "Input GGUF")->required();
  cmd->add_option("out", *out, "Output GGUF")->required();
  cmd->add_option("recipe", *recipe, "Recipe: F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q6_K, ...")->required();
  cmd->add_option("--threads", *threads, "Threads (0 = all)");
  cmd->callback([=] { set_exit_code(run_quantize(*in, *out, *recipe, *threads)); });
}

}  // namespace strata::cli
