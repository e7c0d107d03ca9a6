// Decode A/B in one process: a model file, batch-1 decode after a 1-token prompt (as `strata
// bench -n N` measures), with a runtime switch of the CPU backend taking turns token by token:
// this VM's bandwidth drifts over seconds (bench/cpu/NOTES.md), so settings are only compared
// on neighbouring tokens. Each token's time (one forward and its sampling) goes to the setting
// it ran under; rounds whose bandwidth probe reads under --min-probe are left out.
// Usage: cpu_decode_ab_bench MODEL [--threads 2] [--decode 128] [--rounds 5] [--min-probe GB/s]
//        [--pf B1,B2,...]  (set_decode_prefetch values: -1 tuned default, 0 off, > 0 bytes)
//        [--q4k4 0,1]      (instead: the Q4_K one-token kernel's four-super-block path off / on)
//        [--gfni 0,1]      (instead: that path's block sums in the shift-and-blend / GFNI form)
//        [--att 0,1]       (instead: F16 decode attention's AVX2 / AVX-512 inner loops)
//        [--long 0,1,N]    (instead: decode attention of >= 1024 keys by heads / by key chunks;
//                           N >= 2: by key chunks from N keys on)
//        [--attruns 0,1]   (instead: decode attention's units by one shared counter / by the pool's
//        runs)
//        [--waitpf B1,...] (instead: bytes of its next product's run each thread prefetches while
//        it
//                           waits, set_wait_prefetch; 0 off)
//        [--pool V1,...]   (instead: the pool's chunking, C * 100 + D: C chunks a thread, a take
//                           claims 1/D of what is left of a run, D = 0 one chunk; ThreadPool::
//                           set_chunking; 1600 = before round 11, 6404 = the default)
//        [--prompt N]      (a prompt of N tokens before the decode: the context it starts from)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_probe.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/matmul.h"
#include "engine/generator.h"
#include "model/model.h"

using namespace strata;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cpu_decode_ab_bench MODEL [--threads N] [--decode N] [--rounds N] [--min-probe GB/s] [--pf LIST]\n");
    return 1;
  }
  const std::string path = argv[1];
  int threads = 2, decode = 128, rounds = 5, prompt_len = 1;
  double min_probe = 0;
  std::vector<int64_t> settings = {-1};
  std::string knob = "--pf";  // which switch the settings turn: --pf, --q4k4, --gfni, --att,
                              // --long, --runs, --packed, --attruns or --waitpf
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--decode") decode = std::atoi(argv[i + 1]);
    else if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--prompt")
      prompt_len = std::atoi(argv[i + 1]);
    else if (a == "--min-probe") min_probe = std::atof(argv[i + 1]);
    else if (a == "--pf" || a == "--q4k4" || a == "--gfni" || a == "--att" || a == "--long" ||
             a == "--runs" || a == "--packed" || a == "--attruns" || a == "--waitpf" ||
             a == "--pool") {
      knob = a;
      settings.clear();
      std::stringstream ss(argv[i + 1]);
      for (std::string v; std::getline(ss, v, ',');) settings.push_back(std::stoll(v));
    }
  }
  const auto apply = [&](int64_t v) {
    if (knob == "--q4k4")
      backend::cpu::set_q4k_four_blocks(v != 0);
    else if (knob == "--gfni")
      backend::cpu::set_q4k_gfni(v != 0);
    else if (knob == "--att")
      backend::cpu::set_decode_attention_avx512(v != 0);
    else if (knob == "--runs") {  // 0: one-token kernel calls of 16 rows
      backend::cpu::set_one_token_runs(v != 0);
    } else if (knob == "--packed") {  // 0: the token packed at each one-token kernel call
      backend::cpu::set_one_token_packed(v != 0);
    } else if (knob == "--attruns") {  // 0: decode attention's units through one shared counter
      backend::cpu::set_decode_attention_runs(v != 0);
    } else if (knob == "--pool") {
      // C * 100 + D: C chunks a thread, a take claims 1/D of what is left of a run
      ThreadPool::set_chunking(static_cast<int>(v / 100), static_cast<int>(v % 100));
    } else if (knob == "--waitpf") {
      backend::cpu::set_wait_prefetch(v);
    } else if (knob == "--long") {
      backend::cpu::set_long_decode_attention(v != 0);
      backend::cpu::set_long_decode_min_keys(v >= 2 ? v : 1024);
    } else
      backend::cpu::set_decode_prefetch(v);
  };
  backend::cpu::CpuBackend cpu(threads);
  auto m = model::Model::load(path, cpu);
  if (!m.is_ok()) {
    std::fprintf(stderr, "load: %s\n", m.status().to_string().c_str());
    return 1;
  }
  engine::Generator gen(**m, prompt_len + decode + 16);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(300 + i % 1000);
  engine::GenerateOptions opts;
  opts.max_tokens = decode + 1;
  opts.stop_at_eog = false;
  std::vector<std::vector<double>> times(settings.size());
  for (int r = 0; r < rounds; ++r) {
    const double bw = backend::cpu::measure_memory_bandwidth_gbs(cpu.pool());
    size_t cur = static_cast<size_t>(r) % settings.size();
    apply(settings[cur]);
    auto last = std::chrono::steady_clock::now();
    int tok = 0;
    auto out = gen.generate(prompt, opts, [&](const engine::SampleResult&) {
      const auto now = std::chrono::steady_clock::now();
      if (tok++ > 0 && bw >= min_probe) times[cur].push_back(std::chrono::duration<double>(now - last).count());
      cur = (cur + 1) % settings.size();
      apply(settings[cur]);
      last = std::chrono::steady_clock::now();
      return true;
    });
    if (!out.is_ok()) return 1;
    std::printf("round %d probe %5.1f GB/s\n", r, bw);
    std::fflush(stdout);
  }
  backend::cpu::set_decode_prefetch(-1);
  ThreadPool::set_chunking(64, 4);
  backend::cpu::set_q4k_four_blocks(true);
  backend::cpu::set_q4k_gfni(true);
  backend::cpu::set_decode_attention_avx512(true);
  backend::cpu::set_long_decode_attention(true);
  backend::cpu::set_long_decode_min_keys(1024);
  for (size_t i = 0; i < settings.size(); ++i) {
    std::vector<double>& t = times[i];
    if (t.empty()) continue;
    std::sort(t.begin(), t.end());
    double sum = 0;
    for (double v : t) sum += v;
    std::printf("setting %lld: %zu tokens, mean %.1f tok/s, median %.1f, p25 %.1f, p75 %.1f\n",
                static_cast<long long>(settings[i]), t.size(), t.size() / sum, 1 / t[t.size() / 2],
                1 / t[t.size() * 3 / 4], 1 / t[t.size() / 4]);
  }
  return 0;
}
