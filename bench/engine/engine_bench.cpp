// Engine benchmark on a Qwen3-0.6B-shaped synthetic model (Q8_0): aggregate decode tokens/s
// at 1, 4 and 16 sequences, and time to first token / inter-token latency percentiles under
// mixed load (long prompts arriving among decoders). Not a test: numbers to compare on one
// machine. Usage: engine_bench [--threads N] [--tokens T] [--long L] [--budget B]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "core/check.h"
#include "core/thread_pool.h"
#include "engine/engine_impl.h"
#include "model/synth.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  int threads = 0;
  int tokens = 16;     // generated tokens per decode request
  int long_len = 512;  // tokens of a long prompt
  int budget = 256;    // batch_tokens
};

// Per request: token times and the final usage.
class Recorder {
 public:
  Recorder() : t0_(Clock::now()) {}
  engine::EventCallback cb() {
    return [this](const engine::Event& ev) {
      const double t = std::chrono::duration<double>(Clock::now() - t0_).count();
      std::lock_guard lk(mu_);
      auto& r = reqs_[ev.id];
      if (ev.kind == engine::Event::Kind::kDelta) {
        for (size_t i = 0; i < ev.tokens.size(); ++i) r.times.push_back(t);
      } else {
        r.usage = ev.usage;
        r.done = true;
        ++done_;
        cv_.notify_all();
      }
    };
  }
  double now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  void expect(int n) {
    std::lock_guard lk(mu_);
    expected_ += n;
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return done_ >= expected_; });
  }
  struct Req {
    std::vector<double> times;
    engine::Usage usage;
    bool done = false;
  };
  std::map<engine::RequestId, Req> reqs() {
    std::lock_guard lk(mu_);
    return reqs_;
  }

 private:
  Clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<engine::RequestId, Req> reqs_;
  int done_ = 0, expected_ = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(
      v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::vector<int32_t> prompt(std::mt19937& rng, size_t n) {
  std::vector<int32_t> p(n);
  for (int32_t& x : p) x = static_cast<int32_t>(300 + rng() % 20000);
  return p;
}

engine::GenerateRequest request(std::vector<int32_t> p, int max_tokens) {
  engine::GenerateRequest r;
  r.prompt = std::move(p);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

std::unique_ptr<engine::Engine> make(model::Model& m, const tokenizer::Tokenizer& tok, int parallel,
                                     int budget) {
  engine::EngineOptions o;
  o.parallel = parallel;
  o.batch_tokens = budget;
  o.ctx = 2048;
  o.kv_dtype = DType::kF16;
  o.block_tokens = 64;
  o.model_id = "bench";
  auto e = engine::make_engine(m, tok, o);
  STRATA_CHECK(e.is_ok());
  return std::move(e).value();
}

void decode_throughput(model::Model& m, const tokenizer::Tokenizer& tok, const Args& a, int n,
                       double weight_bytes) {
  auto e = make(m, tok, 16, a.budget);
  Recorder rec;
  std::mt19937 rng(static_cast<uint32_t>(n));
  rec.expect(n);
  for (int i = 0; i < n; ++i)
    STRATA_CHECK(e->submit(request(prompt(rng, 16), a.tokens), rec.cb()).is_ok());
  rec.wait();
  const auto reqs = rec.reqs();
  double start = 0, end = 0;
  int64_t tokens = 0;
  for (auto& [id, r] : reqs) {
    start = std::max(start, r.times.front());  // every sequence is decoding from here on
    end = std::max(end, r.times.back());
  }
  for (auto& [id, r] : reqs) {
    for (double t : r.times) tokens += t > start ? 1 : 0;
  }
  const double secs = end - start;
  const double steps = a.tokens - 1;  // decode steps in the window (one token per sequence each)
  fmt::print(
      "decode  {:2d} seqs: {:7.2f} tok/s aggregate ({} tokens in {:.2f} s; {:.1f} ms/step; weights "
      "read "
      "{:.2f} GB/s)\n",
      n, tokens / secs, tokens, secs, 1e3 * secs / steps, weight_bytes * steps / secs / 1e9);
}

void mixed_load(model::Model& m, const tokenizer::Tokenizer& tok, const Args& a) {
  auto e = make(m, tok, 8, a.budget);
  Recorder rec;
  std::mt19937 rng(99);
  const int num_dec = 4, num_long = 3;
  rec.expect(num_dec + num_long);
  std::vector<engine::RequestId> decoders;
  for (int i = 0; i < num_dec; ++i) {
    decoders.push_back(*e->submit(request(prompt(rng, 32), 4 * a.tokens), rec.cb()));
  }
  // Long prompts arrive while the decoders run.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < num_long; ++i) {
    STRATA_CHECK(
        e->submit(request(prompt(rng, static_cast<size_t>(a.long_len)), 8), rec.cb()).is_ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }
  rec.wait();
  std::vector<double> ttft, itl;
  for (auto& [id, r] : rec.reqs()) {
    ttft.push_back(r.usage.queue_seconds + r.usage.prefill_seconds);
    for (size_t i = 1; i < r.times.size(); ++i) itl.push_back(r.times[i] - r.times[i - 1]);
  }
  fmt::print(
      "mixed load: {} decoders x {} tokens, {} prompts of {} tokens arriving 0.7 s apart, budget "
      "{}\n",
      num_dec, 4 * a.tokens, num_long, a.long_len, a.budget);
  fmt::print("  TTFT   p50 {:.3f} s  p90 {:.3f} s  p99 {:.3f} s  (all {} requests)\n",
             percentile(ttft, 50), percentile(ttft, 90), percentile(ttft, 99), ttft.size());
  fmt::print("  ITL    p50 {:.4f} s  p90 {:.4f} s  p99 {:.4f} s  ({} gaps)\n", percentile(itl, 50),
             percentile(itl, 90), percentile(itl, 99), itl.size());
  const engine::EngineStats s = e->stats();
  fmt::print("  steps {}, preemptions {}\n", s.steps, s.preemptions);
}

int run(const Args& a) {
  const std::string path = "/tmp/strata_engine_bench_qwen3-0.6b_q8_0.gguf";
  if (!std::filesystem::exists(path)) {
    fmt::print("synthesizing {} ...\n", path);
    model::SynthOptions so;
    so.hp = model::preset_hparams("qwen3-0.6b").value();
    so.recipe = model::find_recipe("Q8_0").value();
    ThreadPool pool(2);
    auto w = model::synthesize(so, pool);
    STRATA_CHECK(w.is_ok());
    const std::string tmp = path + ".tmp";
    STRATA_CHECK(w->write_file(tmp).is_ok());
    std::filesystem::rename(tmp, path);
  }
  const int threads =
      a.threads > 0 ? a.threads : static_cast<int>(std::thread::hardware_concurrency());
  backend::CpuBackend be(threads);
  auto m = model::Model::load(path, be);
  STRATA_CHECK(m.is_ok());
  auto tok = tokenizer::Tokenizer::from_gguf((*m)->file());
  STRATA_CHECK(tok.is_ok());
  const double weight_bytes = static_cast<double>((*m)->file().file_bytes());
  fmt::print(
      "engine_bench: qwen3-0.6b shape, Q8_0 ({:.0f} MB), CPU backend, {} threads, F16 KV, block "
      "64\n",
      weight_bytes / 1e6, threads);
  for (int n : {1, 4, 16}) decode_throughput(**m, **tok, a, n, weight_bytes);
  mixed_load(**m, **tok, a);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads"))
      a.threads = v;
    else if (!std::strcmp(argv[i], "--tokens"))
      a.tokens = v;
    else if (!std::strcmp(argv[i], "--long"))
      a.long_len = v;
    else if (!std::strcmp(argv[i], "--budget"))
      a.budget = v;
  }
  return strata::run(a);
}
