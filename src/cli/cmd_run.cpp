// strata run: stream a completion from a model; strata bench: prefill and decode speed as a
// fraction of this machine's measured limits; strata tokenize: text -> ids.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_probe.h"
#include "cli/backend_choice.h"
#include "cli/commands.h"
#include "cli/decode_stretches.h"
#include "cli/model_loading.h"
#include "core/rng.h"
#include "engine/generator.h"

namespace strata::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  bool prompt_ids = false;
  int n = 128;
  float temp = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  uint64_t seed = 0;
  int threads = 0;
  int ctx = 4096;
  bool json = false;
  std::string kv_type = "F16";
  std::string backend = "cpu";
};

Result<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      ids.push_back(static_cast<int32_t>(std::stol(item)));
    } catch (...) {
      return error(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a token id", item));
    }
  }
  return ids;
}

int fail(const char* cmd, const Status& st) {
  std::fprintf(stderr, "strata %s: %s\n", cmd, st.to_string().c_str());
  return st.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

int run_run(const RunArgs& a) {
  auto kv_type = dtype_from_name(a.kv_type);
  if (!kv_type || (*kv_type != DType::kF16 && *kv_type != DType::kBF16 && *kv_type != DType::kF32 && *kv_type != DType::kQ8_0)) {
    return fail("run", error(ErrorCode::kInvalidArgument, "--kv-type must be F16, BF16, F32 or Q8_0"));
  }
  auto be_r = make_backend(a.backend, a.threads);
  if (!be_r.is_ok()) return fail("run", be_r.status());
  backend::Backend& be = **be_r;
  auto loaded = load_model(a.model, be, !a.json);
  if (!loaded.is_ok()) return fail("run", loaded.status());
  model::Model& m = *loaded->model;
  const tokenizer::Tokenizer* tok = loaded->tokenizer.get();
  std::vector<int32_t> prompt;
  if (a.prompt_ids || tok == nullptr) {
    auto ids = parse_ids(a.prompt);
    if (!ids.is_ok()) return fail("run", error(ErrorCode::kInvalidArgument, ids.status().message() + " (the model has no vocabulary, or --ids was given: pass comma-separated ids)"));
    prompt = *ids;
  } else {
    prompt = tok->encode(a.prompt, /*add_special=*/true, /*parse_special=*/true);
  }
  const int64_t ctx = std::min<int64_t>(a.ctx, m.hparams().context_length);
  engine::Generator gen(m, ctx, *kv_type);
  engine::GenerateOptions opts;
  opts.max_tokens = a.n;
  opts.sampling.temperature = a.temp;
  opts.sampling.top_p = a.top_p;
  opts.sampling.top_k = a.top_k;
  opts.sampling.min_p = a.min_p;
  opts.sampling.seed = a.seed;
  if (tok) opts.eog_tokens.assign(tok->eog_ids().begin(), tok->eog_ids().end());
  std::unique_ptr<tokenizer::IncrementalDecoder> dec;
  if (tok) dec = std::make_unique<tokenizer::IncrementalDecoder>(*tok);
  std::string text;
  engine::GenerateStats stats;
  auto out = gen.generate(prompt, opts, [&](const engine::SampleResult& r) {
    std::string piece = dec ? dec->add(r.token) : fmt::format("{} ", r.token);
    text += piece;
    if (!a.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  }, &stats);
  if (!out.is_ok()) return fail("run", out.status());
  if (dec) {
    std::string rest = dec->flush();
    text += rest;
    if (!a.json) std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  if (a.json) {
    nlohmann::ordered_json j;
    j["prompt_ids"] = prompt;
    j["ids"] = *out;
    j["text"] = text;
    j["prompt_tokens_per_s"] = stats.prompt_tokens / std::max(1e-9, stats.prefill_seconds);
    j["decode_tokens_per_s"] = (stats.generated_tokens - 1) / std::max(1e-9, stats.decode_seconds);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr, "\n[%d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s]\n", stats.prompt_tokens,
                 stats.prompt_tokens / std::max(1e-9, stats.prefill_seconds), stats.generated_tokens,
                 (stats.generated_tokens - 1) / std::max(1e-9, stats.decode_seconds));
  }
  return 0;
}

struct BenchArgs {
  std::string model;
  int p = 512;
  int n = 128;
  int threads = 0;
  bool json = false;
  int reps = 2;
  std::string backend = "cpu";
  int block_tokens = 64;
  int state_slots = 2;  // hybrids: 2 = a state snapshot per block (as the cache keeps them), 1 = none
};

// Bytes of weights one decode token reads and matrix FLOPs one token costs.
struct TokenCost {
  double weight_bytes = 0;
  double matrix_flops = 0;
};

TokenCost token_cost(const model::Model& m) {
  const auto& hp = m.hparams();
  TokenCost c;
  for (const auto& t : m.file().tensors()) {
    // MTP (nextn) blocks after the main stack are loaded but never run.
    if (int64_t l = -1; std::sscanf(t.name.c_str(), "blk.%ld.", &l) == 1 && l >= hp.num_layers) continue;
    if (t.shape.size() < 2) {
      c.weight_bytes += static_cast<double>(t.num_bytes);
      continue;
    }
    double frac = 1.0;
    if (t.name == "token_embd.weight") {
      frac = hp.tied_embeddings ? 1.0 : 1.0 / static_cast<double>(t.shape[1]);  // one row, or the whole head
      if (!hp.tied_embeddings) {
        c.weight_bytes += static_cast<double>(t.num_bytes) * frac;
        continue;
      }
    }
    if (t.shape.size() == 3) frac = static_cast<double>(hp.num_experts_used) / static_cast<double>(t.shape[2]);
    c.weight_bytes += static_cast<double>(t.num_bytes) * frac;
    c.matrix_flops += 2.0 * static_cast<double>(t.num_elements()) * frac;
  }
  return c;
}

// The decode of strata bench on the CPU in stretches of kDecodeProbeEvery tokens, the memory
// bandwidth probed before the first and after each (decode_stretches.h says how they make the
// fraction). Token times leave the probes out. Each probe is the one before and after the
// whole run (512 MiB, best of 10 passes, the buffer of measure_memory_bandwidth_gbs): best of 2
// read 5-9% under it in the VM's fast phase, a yardstick biased low.
constexpr int kDecodeProbeEvery = 32;
constexpr size_t kDecodeProbeBytes = size_t{512} << 20;
constexpr int kDecodeProbePasses = 10;
struct DecodeProbes {
  std::vector<cli::DecodeStretch> stretches;
  double last_probe = 0, stretch_seconds = 0, seconds = 0, mark = 0;
  int stretch_tokens = 0, tokens = 0;
  bool first = true;  // the 1-token prompt's token: not a decode token

  static double now() { return backend::cpu::probe_clock_s(); }
  void start(backend::cpu::BandwidthProbe& p) {
    last_probe = p.measure(kDecodeProbePasses);
    mark = now();
  }
  bool token(backend::cpu::BandwidthProbe& p) {
    const double t = now();
    if (first) {
      first = false;
      mark = t;
      return true;
    }
    stretch_seconds += t - mark;
    ++stretch_tokens;
    if (stretch_tokens == kDecodeProbeEvery) close(p);
    mark = now();
    return true;
  }
  void finish(backend::cpu::BandwidthProbe& p) {
    if (stretch_tokens > 0) close(p);
  }
  void close(backend::cpu::BandwidthProbe& p) {
    const double bw = p.measure(kDecodeProbePasses);
    stretches.push_back({stretch_tokens, stretch_seconds, last_probe, bw});
    seconds += stretch_seconds;
    tokens += stretch_tokens;
    last_probe = bw;
    stretch_seconds = 0;
    stretch_tokens = 0;
  }
};

int run_bench(const BenchArgs& a) {
  auto be_r = make_backend(a.backend, a.threads);
  if (!be_r.is_ok()) return fail("bench", be_r.status());
  backend::Backend& be = **be_r;
  auto loaded = load_model(a.model, be, !a.json);
  if (!loaded.is_ok()) return fail("bench", loaded.status());
  model::Model& m = *loaded->model;
  const auto& hp = m.hparams();
  // The limits: measured here for the CPU (the CUDA roofline is bench/cuda/cuda_bench's job),
  // the bandwidth by one probe (its buffer placed once) before, during and after the decode.
  double bw = 0, bw_after = 0, peak = 0;
  auto* cpu_be = dynamic_cast<backend::CpuBackend*>(&be);
  std::unique_ptr<backend::cpu::BandwidthProbe> probe;
  if (cpu_be != nullptr) {
    if (!a.json) std::fprintf(stderr, "measuring memory bandwidth and FMA peak...\n");
    probe = std::make_unique<backend::cpu::BandwidthProbe>(cpu_be->pool(), kDecodeProbeBytes);
    bw = probe->measure(kDecodeProbePasses);
    peak = backend::cpu::measure_fma_peak_gflops(cpu_be->pool());
  }
  const TokenCost cost = token_cost(m);
  Rng rng(1);
  std::vector<int32_t> prompt(static_cast<size_t>(a.p));
  for (auto& t : prompt) t = static_cast<int32_t>(rng.below(static_cast<uint32_t>(hp.vocab_size)));
  const int64_t ctx = a.p + a.n + 8;
  engine::Generator gen(m, ctx, DType::kF16, a.block_tokens, a.state_slots);
  m.set_max_batch_tokens(a.p);
  engine::GenerateOptions opts;
  opts.prefill_chunk = a.p;
  opts.stop_at_eog = false;
  // Prefill: p tokens in one batch; best of reps.
  double best_prefill = 1e30;
  opts.max_tokens = 1;
  for (int r = 0; r < a.reps; ++r) {
    engine::GenerateStats st;
    auto out = gen.generate(prompt, opts, nullptr, &st);
    if (!out.is_ok()) return fail("bench", out.status());
    best_prefill = std::min(best_prefill, st.prefill_seconds);
  }
  // Decode: n tokens after a 1-token prompt (as tg128 measures); best of reps. On the CPU the
  // bandwidth is also probed during the decode (DecodeProbes): the best rep's roofline is the
  // one of the minutes it ran in (and every rep's pooled is reported beside it).
  double best_decode = 1e30;
  std::vector<std::vector<cli::DecodeStretch>> rep_stretches;  // each rep's
  int best_rep = -1;
  opts.max_tokens = a.n + 1;
  for (int r = 0; r < a.reps; ++r) {
    engine::GenerateStats st;
    DecodeProbes dp;
    std::function<bool(const engine::SampleResult&)> on_token;
    if (probe) {
      dp.start(*probe);
      on_token = [&](const engine::SampleResult&) { return dp.token(*probe); };
    }
    auto out = gen.generate(std::span<const int32_t>(prompt.data(), 1), opts, on_token, &st);
    if (!out.is_ok()) return fail("bench", out.status());
    if (probe) {
      dp.finish(*probe);
      if (dp.tokens > 0 && dp.seconds / dp.tokens < best_decode) {
        best_decode = dp.seconds / dp.tokens;
        best_rep = static_cast<int>(rep_stretches.size());
      }
      rep_stretches.push_back(std::move(dp.stretches));
    } else {
      best_decode = std::min(best_decode, st.decode_seconds / std::max(1, st.generated_tokens - 1));
    }
  }
  // This VM's bandwidth changes from minute to minute (bench/cpu/NOTES.md): probe again after
  // decode and take the larger, so a probe taken in a slow minute cannot inflate the fraction.
  const double bw_before = bw;
  if (probe) {
    bw_after = probe->measure(kDecodeProbePasses);
    bw = std::max(bw, bw_after);
  }
  const double pp = a.p / best_prefill, tg = 1.0 / best_decode;
  // Decode roofline: weights read once per token plus the K/V read at the mean context.
  const double kv_bytes_token = 2.0 * hp.num_attention_layers() * hp.num_kv_heads * hp.head_dim * 2 /*f16*/ * (a.n / 2.0);
  const double bytes_per_token = cost.weight_bytes + kv_bytes_token;
  const double roofline_tg = bw > 0 ? bw * 1e9 / bytes_per_token : 0;
  // During the decode: the best rep's steady stretches (the rate they ran at, the rate their
  // rooflines allow, and the bandwidth that is), and every rep's pooled.
  const cli::PooledStretches during =
      best_rep >= 0
          ? cli::pool_stretches({rep_stretches[static_cast<size_t>(best_rep)]}, bytes_per_token)
          : cli::PooledStretches{};
  const cli::PooledStretches all_reps = cli::pool_stretches(rep_stretches, bytes_per_token);
  const double during_tg = during.tokens_per_s(),
               during_roofline_tg = during.roofline_tokens_per_s();
  const double during_gbs = during_roofline_tg * bytes_per_token / 1e9;
  const double all_tg = all_reps.tokens_per_s(), all_roofline_tg = all_reps.roofline_tokens_per_s();
  // Prefill: model FLOPs = matrix FLOPs + attention (QK^T and PV over the causal half).
  const double attn_flops = 4.0 * hp.num_attention_layers() * hp.num_heads * hp.head_dim * (a.p / 2.0);
  const double flops_token = cost.matrix_flops + attn_flops;
  const double pp_gflops = pp * flops_token / 1e9;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["arch"] = hp.arch;
    j["threads"] = be.num_threads();
    j["memory_bandwidth_gbs"] = bw;
    j["memory_bandwidth_before_after_gbs"] = {bw_before, bw_after};
    j["fma_peak_gflops"] = peak;
    j["prefill_tokens"] = a.p;
    j["prefill_tokens_per_s"] = pp;
    j["prefill_gflops"] = pp_gflops;
    if (peak > 0) j["prefill_fraction_of_peak"] = pp_gflops / peak;
    j["decode_tokens"] = a.n;
    j["decode_tokens_per_s"] = tg;
    j["decode_bytes_per_token"] = bytes_per_token;
    j["decode_roofline_tokens_per_s"] = roofline_tg;
    if (roofline_tg > 0) j["decode_fraction_of_roofline"] = tg / roofline_tg;
    if (during_roofline_tg > 0) {
      j["decode_bandwidth_during_gbs"] = during_gbs;
      j["decode_tokens_per_s_during"] = during_tg;
      j["decode_roofline_during_tokens_per_s"] = during_roofline_tg;
      j["decode_fraction_of_roofline_during"] = during_tg / during_roofline_tg;
      j["decode_stretches_used"] = during.used;
      j["decode_best_rep"] = best_rep;
      j["decode_tokens_per_s_during_all_reps"] = all_tg;
      j["decode_fraction_of_roofline_during_all_reps"] = all_tg / all_roofline_tg;
      auto& st = j["decode_stretches"] = nlohmann::ordered_json::array();
      for (size_t r = 0; r < rep_stretches.size(); ++r) {
        for (const auto& x : rep_stretches[r]) {
          st.push_back(
              {{"rep", r},
               {"tokens", x.tokens},
               {"tokens_per_s", x.tokens / x.seconds},
               {"probe_before_gbs", x.before_gbs},
               {"probe_after_gbs", x.after_gbs},
               {"probe_gbs", x.gbs()},
               {"steady", x.steady()},
               {"fraction_of_roofline", x.tokens * bytes_per_token / (x.gbs() * 1e9) / x.seconds}});
        }
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model: %s (%s), %d threads\n", a.model.c_str(), hp.arch.c_str(), be.num_threads());
    if (bw > 0) {
      std::printf("machine: memory bandwidth %.1f GB/s (probes before/after: %.1f/%.1f), FMA peak %.1f GFLOP/s\n", bw,
                  bw_before, bw_after, peak);
    }
    if (bw <= 0) {
      std::printf("prefill %4d tokens: %8.1f tok/s\ndecode  %4d tokens: %8.2f tok/s  %7.3f GB/token\n", a.p, pp, a.n, tg,
                  bytes_per_token / 1e9);
      return 0;
    }
    std::printf("prefill %4d tokens: %8.1f tok/s  %7.1f GFLOP/s  = %5.1f%% of FMA peak\n", a.p, pp, pp_gflops,
                100 * pp_gflops / peak);
    std::printf("decode  %4d tokens: %8.2f tok/s  %7.3f GB/token  = %5.1f%% of bandwidth roofline (%.2f tok/s)\n", a.n,
                tg, bytes_per_token / 1e9, 100 * tg / roofline_tg, roofline_tg);
    if (during_roofline_tg > 0) {
      std::printf(
          "        probed during the decode (every %d tokens): %.1f GB/s = %5.1f%% of that "
          "roofline (%.2f tok/s)\n",
          kDecodeProbeEvery, during_gbs, 100 * during_tg / during_roofline_tg, during_roofline_tg);
      if (during.used < during.total) {
        std::printf(
            "        (%d of its %d stretches left out: the bandwidth changed by more than %.0f%% "
            "inside them)\n",
            during.total - during.used, during.total, 100 * cli::kUnsteadyProbes);
      }
      if (rep_stretches.size() > 1) {
        std::printf(
            "        all %d reps pooled: %.2f tok/s = %5.1f%% of their roofline (%d of %d "
            "stretches)\n",
            static_cast<int>(rep_stretches.size()), all_tg, 100 * all_tg / all_roofline_tg,
            all_reps.used, all_reps.total);
      }
    }
  }
  return 0;
}

int run_tokenize(const std::string& model, const std::string& text, bool ids_only) {
  auto f = gguf::File::open(model);
  if (!f.is_ok()) return fail("tokenize", f.status());
  auto tok = tokenizer::Tokenizer::from_gguf(**f);
  if (!tok.is_ok()) return fail("tokenize", tok.status());
  const auto ids = (*tok)->encode(text, true, true);
  if (ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? "," : "", ids[i]);
    std::printf("\n");
  } else {
    for (int32_t id : ids) std::printf("%6d  %s\n", id, nlohmann::json((*tok)->decode({id})).dump().c_str());
    std::printf("%zu tokens\n", ids.size());
  }
  return 0;
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Generate text from a model, streaming");
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text (or comma-separated ids with --ids)")->required();
  cmd->add_flag("--ids", a->prompt_ids, "The prompt is comma-separated token ids");
  cmd->add_option("-n,--max-tokens", a->n, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temp", a->temp, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Top-p");
  cmd->add_option("--top-k", a->top_k, "Top-k");
  cmd->add_option("--min-p", a->min_p, "Min-p");
  cmd->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)");
  cmd->add_option("--ctx", a->ctx, "Context length")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: F16, BF16, F32, Q8_0")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON object with ids and text");
  cmd->add_option("--backend", a->backend, "cpu or cuda")->capture_default_str();
  cmd->callback([a] { set_exit_code(run_run(*a)); });
}

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Prefill and decode speed against the machine's limits");
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("-p", a->p, "Prefill tokens")->capture_default_str();
  cmd->add_option("-n", a->n, "Decode tokens")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)");
  cmd->add_option("--reps", a->reps, "Repetitions (best is reported)")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->add_option("--backend", a->backend, "cpu or cuda")->capture_default_str();
  cmd->add_option("--block-tokens", a->block_tokens, "KV block size")->capture_default_str();
  cmd->add_option("--state-slots", a->state_slots,
                  "Hybrid models: 2 = snapshot the recurrent state at every block boundary (as the prefix "
                  "cache does), 1 = keep one state updated in place (the baseline)")
      ->check(CLI::Range(1, 2))->capture_default_str();
  cmd->callback([a] { set_exit_code(run_bench(*a)); });
}

void register_tokenize(CLI::App& app) {
  auto model = std::make_shared<std::string>(), text = std::make_shared<std::string>();
  auto ids = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("tokenize", "Text to token ids with a model's (or vocabulary file's) tokenizer");
  auto* m = cmd->add_option("-m,--model", *model, "GGUF model");
  cmd->add_option("--vocab", *model, "Vocabulary GGUF")->excludes(m);
  cmd->add_option("text", *text, "Text")->required();
  cmd->add_flag("--ids", *ids, "Print only the ids, comma-separated");
  cmd->callback([=] {
    if (model->empty()) {
      std::fprintf(stderr, "strata tokenize: give -m MODEL or --vocab FILE\n");
      set_exit_code(2);
      return;
    }
    set_exit_code(run_tokenize(*model, *text, *ids));
  });
}

}  // namespace strata::cli
