// Whole-model CPU benchmark: a synthetic Qwen3-0.6B (random weights, real shapes) in a weight
// recipe, prefill of a 512-token prompt then batch-1 decode, with per-op time attribution.
// Reports decode against the bandwidth roofline (weight bytes per token / measured GB/s) and
// prefill against the FMA peak (2 * params FLOPs per token).
// Usage: cpu_model_bench [--recipe Q8_0|Q4_K_M] [--threads N] [--prompt 512] [--decode 32]
// [--cpu-time]
//        [--long-keys N]  (decode attention by key chunks from N keys on; set_long_decode_min_keys)
//        [--model FILE]  (instead of the synthetic model: any model file, e.g. strata synth's)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_probe.h"
#include "engine/generator.h"
#include "model/model.h"
#include "model/recipe.h"
#include "model/synth.h"

namespace {

using namespace strata;
using backend::Backend;

bool g_cpu_time = false;  // --cpu-time: op times in this thread's CPU time (use with --threads 1)
double now_s() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times every op of the backend it wraps (the CPU backend is synchronous).
class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : in_(inner) {}
  std::map<std::string, std::pair<double, int64_t>> times;  // op -> (seconds, calls)

  std::string name() const override { return in_.name(); }
  int num_threads() const override { return in_.num_threads(); }
  float* alloc_f32(size_t count) override { return in_.alloc_f32(count); }
  void free(void* p) override { in_.free(p); }
  void copy_to_host(const float* s, size_t c, float* d) override { in_.copy_to_host(s, c, d); }
  void copy_from_host(const float* s, size_t c, float* d) override { in_.copy_from_host(s, c, d); }
  void get_rows(const backend::WeightView& w, const int32_t* ids, int64_t n, float* out) override {
    timed("get_rows", [&] { in_.get_rows(w, ids, n, out); });
  }
  void matmul(const backend::WeightView& w, const float* x, int64_t n, float* y) override {
    const std::string key = std::string("matmul ") + dtype_name(w.type) + " " + std::to_string(w.rows) + "x" +
                            std::to_string(w.cols);
    timed(key, [&] { in_.matmul(w, x, n, y); });
  }
  // The fused products (q/k/v, gate/up) as the model issues them: one pass, one entry.
  void matmul_multi(std::span<const backend::WeightView> ws, const float* x, int64_t n,
                    std::span<float* const> ys) override {
    std::string key = "matmul_multi";
    for (const backend::WeightView& w : ws) {
      key += std::string(" ") + dtype_name(w.type) + " " + std::to_string(w.rows) + "x" + std::to_string(w.cols);
    }
    timed(key, [&] { in_.matmul_multi(ws, x, n, ys); });
  }
  void matmul_experts(const backend::WeightView& w, const float* x, bool ps, const int32_t* ids, int64_t n, int k,
                      float* y) override {
    timed("matmul_experts", [&] { in_.matmul_experts(w, x, ps, ids, n, k, y); });
  }
  void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out) override {
    timed("rms_norm", [&] { in_.rms_norm(x, w, n, dim, eps, out); });
  }
  void rope(float* x, int64_t n, int nh, int hd, const int32_t* pos, const backend::RopeTable& t) override {
    timed("rope", [&] { in_.rope(x, n, nh, hd, pos, t); });
  }
  void kv_store(const backend::PagedKv& kv, const float* k, const float* v, int64_t n, const int32_t* s) override {
    timed("kv_store", [&] { in_.kv_store(kv, k, v, n, s); });
  }
  void attention(const float* q, int nh, const backend::PagedKv& kv, std::span<const backend::SeqAttention> seqs,
                 float scale, float* out) override {
    timed("attention", [&] { in_.attention(q, nh, kv, seqs, scale, out); });
  }
  void swiglu(const float* g, const float* u, int64_t n, int64_t dim, float* out) override {
    timed("swiglu", [&] { in_.swiglu(g, u, n, dim, out); });
  }
  void add(float* y, const float* x, int64_t count) override { timed("add", [&] { in_.add(y, x, count); }); }
  void topk_softmax(const float* l, int64_t n, int ne, int k, bool r, int32_t* ids, float* w) override {
    timed("topk_softmax", [&] { in_.topk_softmax(l, n, ne, k, r, ids, w); });
  }
  void weighted_sum(const float* x, const float* w, int64_t n, int k, int64_t dim, float* out) override {
    timed("weighted_sum", [&] { in_.weighted_sum(x, w, n, k, dim, out); });
  }
  void synchronize() override { in_.synchronize(); }

  double total() const {
    double sum = 0;
    for (auto& e : times) sum += e.second.first;
    return sum;
  }
  void print(const char* title, double total) {
    std::vector<std::pair<std::string, std::pair<double, int64_t>>> v(times.begin(), times.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
    const double sum = this->total();
    std::printf("  %s: %.3f s in ops of %.3f s total\n", title, sum, total);
    for (auto& e : v) {
      std::printf("    %-28s %8.2f ms %5.1f%%  %6lld calls\n", e.first.c_str(), e.second.first * 1e3,
                  100 * e.second.first / total, static_cast<long long>(e.second.second));
    }
    times.clear();
  }

 private:
  template <typename F>
  void timed(const std::string& key, F&& f) {
    const double t0 = now_s();
    f();
    auto& e = times[key];
    e.first += now_s() - t0;
    ++e.second;
  }
  Backend& in_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string recipe_name = "Q8_0", model_path;
  int threads = 0, prompt_len = 512, decode_len = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cpu-time") {
      g_cpu_time = true;
      continue;
    }
    if (i + 1 >= argc) break;
    if (a == "--recipe") recipe_name = argv[i + 1];
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--prompt") prompt_len = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--decode") decode_len = std::atoi(argv[i + 1]);
    else if (a == "--model") model_path = argv[i + 1];
    else if (a == "--long-keys")
      strata::backend::cpu::set_long_decode_min_keys(std::atoll(argv[i + 1]));
    ++i;
  }
  const std::string path =
      model_path.empty() ? "/tmp/strata_cpu_bench_qwen3-0.6b_" + recipe_name + ".gguf" : model_path;
  if (model_path.empty() && !std::filesystem::exists(path)) {
    ThreadPool pool(threads);
    model::SynthOptions opts;
    opts.hp = *model::preset_hparams("qwen3-0.6b");
    opts.recipe = *model::find_recipe(recipe_name);
    auto w = model::synthesize(opts, pool);
    if (!w.is_ok() || !w->write_file(path).is_ok()) {
      std::fprintf(stderr, "cannot synthesize %s\n", path.c_str());
      return 1;
    }
  }
  backend::cpu::CpuBackend cpu(threads);
  ProfilingBackend prof(cpu);
  auto m = model::Model::load(path, prof);
  if (!m.is_ok()) {
    std::fprintf(stderr, "load: %s\n", m.status().to_string().c_str());
    return 1;
  }
  model::Model& model = **m;
  uint64_t weight_bytes = 0, params = 0;
  for (const auto& t : model.file().tensors()) {
    int64_t ne = 1;
    for (int64_t d : t.shape) ne *= d;
    params += static_cast<uint64_t>(ne);
    weight_bytes += row_bytes(t.type, ne);
  }
  const double bw = backend::cpu::measure_memory_bandwidth_gbs(cpu.pool(), 0, g_cpu_time);
  const double peak = backend::cpu::measure_fma_peak_gflops(cpu.pool(), g_cpu_time);
  const std::string label = model_path.empty() ? "qwen3-0.6b " + recipe_name : model_path;
  std::printf(
      "%s: %.1f M params, %.1f MB weights; %d threads; bandwidth %.1f GB/s, FMA peak %.1f "
      "GFLOP/s\n",
      label.c_str(), params / 1e6, weight_bytes / 1e6, cpu.num_threads(), bw, peak);

  engine::Generator gen(model, prompt_len + decode_len + 64);
  std::vector<int32_t> prompt(prompt_len);
  for (int i = 0; i < prompt_len; ++i) prompt[i] = (i * 7919 + 13) % 1000 + 300;
  engine::GenerateOptions opts;
  opts.max_tokens = 1;
  opts.stop_at_eog = false;
  engine::GenerateStats st;
  // prefill (and one sampled token)
  auto r = gen.generate(prompt, opts, [](const engine::SampleResult&) { return true; }, &st);
  if (!r.is_ok()) {
    std::fprintf(stderr, "generate: %s\n", r.status().to_string().c_str());
    return 1;
  }
  if (g_cpu_time) st.prefill_seconds = prof.total();
  const double pf = 2.0 * params * prompt_len / st.prefill_seconds / 1e9;
  std::printf("prefill %d tokens: %.3f s, %.1f tok/s, %.1f GFLOP/s (2*params/token) = %.0f%% of FMA peak\n", prompt_len,
              st.prefill_seconds, prompt_len / st.prefill_seconds, pf, 100 * pf / peak);
  prof.print("prefill ops", st.prefill_seconds + st.decode_seconds);
  // decode: a short prompt, then decode_len tokens
  opts.max_tokens = decode_len;
  std::vector<int32_t> short_prompt(prompt.begin(), prompt.begin() + std::min(8, prompt_len));
  bool first = true;  // the first token comes from the prompt's forward: time only what follows
  r = gen.generate(short_prompt, opts, [&](const engine::SampleResult&) {
    if (first) prof.times.clear();
    first = false;
    return true;
  }, &st);
  if (g_cpu_time) st.decode_seconds = prof.total();  // the decode forwards only
  const double tps = (st.generated_tokens - 1) / st.decode_seconds;
  const double gbs = weight_bytes * tps / 1e9;
  std::printf("decode: %d tokens in %.3f s, %.1f tok/s, %.1f GB/s of weights = %.0f%% of bandwidth\n",
              st.generated_tokens, st.decode_seconds, tps, gbs, 100 * gbs / bw);
  prof.print("decode ops", st.decode_seconds);
  return 0;
}
