// CPU matmul against the hardware: measured streaming bandwidth and FMA peak, then per weight
// type and shape: n = 1 (decode, GB/s of weights vs bandwidth) and n = 512 (prefill, GFLOP/s
// vs FMA peak), and a decode sweep over a whole Qwen3-0.6B-shaped layer stack (28 layers,
// far past the last-level cache) which is what `strata bench` decode sees.
// Usage: cpu_matmul_bench [--threads N] [--types Q8_0,Q4_K,...] [--quick] [--probe] [--cpu-time]
//                         [--sweep [--4b]] [--layers N] [--isa avx2,vnni,avx512,k4row,k4shift] [--pf
//                         -1,0,8192]
// --cpu-time (with --threads 1): time by process CPU time, for a machine busy with other work.
// --sweep: the decode sweep only; --4b: in Qwen3-4B's shapes (rows of 10 and 38 Q4_K
// super-blocks: fours and a rest); --layers N: of N layers instead of 28 (3 Q4_K layers fit a
// 32 MB L3: the two cores' compute and the pool, not DRAM, are then the limit). --isa: run the
// sweep with each listed build of the integer kernels, alternating rounds in one process (an A/B on
// one machine state). --pf: likewise for software prefetch distances of the AVX-512 decode kernels
// (-1 tuned default, 0 off).
#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_probe.h"
#include "backend/cpu/dot_kernels.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/rng.h"

#ifndef STRATA_BENCH_COMMIT
#define STRATA_BENCH_COMMIT "unknown"
#endif

namespace {

using strata::DType;
using strata::backend::WeightView;
using strata::backend::cpu::CpuBackend;

bool g_cpu_time = false;
double now_s() { return strata::backend::cpu::probe_clock_s(g_cpu_time); }

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown cpu";
}

// rows x cols of `type`: 64 distinct quantized rows from normal data, tiled (content does not
// change the speed; quantizing 150M elements with K-quant fits would take minutes).
std::vector<uint8_t> make_weights(DType type, int64_t rows, int64_t cols, uint64_t seed) {
  strata::Rng rng(seed);
  const size_t rb = strata::row_bytes(type, cols);
  const int64_t distinct = std::min<int64_t>(rows, 64);
  std::vector<uint8_t> w(rb * rows);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& x : src) x = rng.normal() * 0.05f;
    strata::quantize_row(type, src.data(), w.data() + r * rb, cols);
  }
  for (int64_t r = distinct; r < rows; ++r) std::memcpy(w.data() + r * rb, w.data() + (r % distinct) * rb, rb);
  return w;
}

// best time of `reps` calls after one warm-up (fewer reps for big calls)
template <typename F>
double best_time(F&& fn, double budget_s) {
  fn();
  double best = 1e30, spent = 0;
  for (int i = 0; i < 50 && (i < 2 || spent < budget_s); ++i) {
    const double t0 = now_s();
    fn();
    const double dt = now_s() - t0;
    best = std::min(best, dt);
    spent += dt;
  }
  return best;
}

struct Shape {
  int64_t rows, cols;
};

// Kernel builds: 0 AVX2, 1 AVX-VNNI, 2 AVX-512 (dot_kernels.h), 3 AVX-512 with the Q4_K
// one-token kernel's four-super-block path off ("k4row"), 4 that path in its shift-and-blend
// form ("k4shift", not GFNI), 5 AVX-512 with one-token kernel calls of 16 rows ("chunk16", as
// before set_one_token_runs), 6 AVX-512 with the token packed at each call ("packcall", as
// before set_one_token_packed); false where the CPU lacks it.
const char* const kIsaNames[] = {"avx2",    "vnni",    "avx512",  "k4row",
                                 "k4shift", "chunk16", "packcall"};
bool use_isa(int isa) {
  namespace cpu = strata::backend::cpu;
  if ((isa == 1 && !cpu::vnni_kernels_available()) || (isa >= 2 && !cpu::avx512_kernels_available())) return false;
  cpu::set_vnni_kernels(isa == 1);
  cpu::set_avx512_kernels(isa >= 2);
  if (isa == 4 && !cpu::q4k_gfni_available()) return false;
  cpu::set_q4k_four_blocks(isa != 3);
  cpu::set_q4k_gfni(isa != 4);
  cpu::set_one_token_runs(isa != 5);
  cpu::set_one_token_packed(isa != 6);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  bool quick = false, probe_only = false, sweep_only = false;
  int sweep_layers = 28;
  bool shape_4b = false;  // --4b: the sweep in Qwen3-4B's shapes
  std::vector<int> isas;  // empty: the product's choice
  std::vector<int> pfs;  // prefetch distances to compare (dot_kernels.h: -1 default, 0 off)
  std::vector<DType> types = {DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--cpu-time") {
      g_cpu_time = true;
    } else if (a == "--probe") {
      probe_only = true;
    } else if (a == "--pf" && i + 1 < argc) {
      std::string list = argv[++i];
      size_t p = 0;
      while (p < list.size()) {
        const size_t q = std::min(list.find(',', p), list.size());
        pfs.push_back(std::atoi(list.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else if (a == "--sweep") {
      sweep_only = true;
    } else if (a == "--4b") {
      shape_4b = true;
    } else if (a == "--layers" && i + 1 < argc) {
      sweep_layers = std::atoi(argv[++i]);
    } else if (a == "--isa" && i + 1 < argc) {
      const std::string list = argv[++i];
      for (int k = 0; k < 7; ++k) {
        if (list.find(kIsaNames[k]) != std::string::npos) isas.push_back(k);
      }
    } else if (a == "--types" && i + 1 < argc) {
      types.clear();
      std::string list = argv[++i];
      size_t p = 0;
      while (p <= list.size()) {
        const size_t q = std::min(list.find(',', p), list.size());
        auto t = strata::dtype_from_name(list.substr(p, q - p));
        if (!t) {
          std::fprintf(stderr, "unknown type %s\n", list.substr(p, q - p).c_str());
          return 2;
        }
        types.push_back(*t);
        p = q + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--types Q8_0,Q4_K] [--quick] [--probe] [--cpu-time] "
                   "[--sweep [--4b] [--layers N]] [--isa avx2,vnni,avx512,k4row,k4shift] [--pf -1,0,8192]\n",
                   argv[0]);
      return 2;
    }
  }
  CpuBackend be(threads);
  std::printf("machine: %s, %d threads; commit %s (at configure time); timing: %s\n", cpu_model().c_str(),
              be.num_threads(), STRATA_BENCH_COMMIT, g_cpu_time ? "process CPU time" : "wall clock");
  const double bw = strata::backend::cpu::measure_memory_bandwidth_gbs(be.pool(), 0, g_cpu_time);
  const double peak = strata::backend::cpu::measure_fma_peak_gflops(be.pool(), g_cpu_time);
  std::printf("memory bandwidth (streaming read): %.1f GB/s;  FMA peak (f32 AVX2): %.1f GFLOP/s\n\n", bw, peak);
  if (probe_only) return 0;

  const Shape shapes[] = {{1024, 1024}, {3072, 1024}, {1024, 3072}, {151936, 1024}};
  const int64_t n_prefill = 512;
  std::printf("%-6s %-12s | %9s %8s %6s | %9s %8s %6s\n", "type", "rows x cols", "n=1 us", "GB/s", "of bw",
              "n=512 ms", "GFLOP/s", "of pk");
  for (DType type : sweep_only ? std::vector<DType>{} : types) {
    for (const Shape& s : shapes) {
      if (quick && s.rows > 100000) continue;
      const std::vector<uint8_t> wb = make_weights(type, s.rows, s.cols, 1);
      const WeightView w{wb.data(), type, s.rows, s.cols, strata::row_bytes(type, s.cols)};
      std::vector<float> x(n_prefill * s.cols), y(n_prefill * s.rows);
      strata::Rng rng(2);
      for (float& v : x) v = rng.normal();
      const double t1 = best_time([&] { be.matmul(w, x.data(), 1, y.data()); }, 0.3);
      const double gbs = static_cast<double>(wb.size()) / t1 / 1e9;
      const double tp = best_time([&] { be.matmul(w, x.data(), n_prefill, y.data()); }, s.rows > 100000 ? 0.0 : 1.0);
      const double gf = 2.0 * s.rows * s.cols * n_prefill / tp / 1e9;
      std::printf("%-6s %6lldx%-5lld | %9.1f %8.1f %5.0f%% | %9.2f %8.1f %5.0f%%\n", strata::dtype_name(type),
                  static_cast<long long>(s.rows), static_cast<long long>(s.cols), t1 * 1e6, gbs, 100 * gbs / bw,
                  tp * 1e3, gf, 100 * gf / peak);
      std::fflush(stdout);
    }
  }

  // Decode sweep: every matmul of 28 Qwen3-0.6B layers once (q, k, v, o, gate, up, down),
  // batch 1: the weights stream from DRAM as in a real decode step.
  std::printf("\ndecode sweep (%d layers of %s matmuls, n = 1):\n", sweep_layers, shape_4b ? "Qwen3-4B" : "Qwen3-0.6B");
  const Shape qwen3_06b[] = {{2048, 1024}, {1024, 1024}, {1024, 1024}, {1024, 2048}, {3072, 1024}, {3072, 1024}, {1024, 3072}};
  // Qwen3-4B: rows of 10 and 38 Q4_K super-blocks (fours and a rest)
  const Shape qwen3_4b[] = {{4096, 2560}, {1024, 2560}, {1024, 2560}, {2560, 4096}, {9728, 2560}, {9728, 2560}, {2560, 9728}};
  const Shape* layer = shape_4b ? qwen3_4b : qwen3_06b;
  for (DType type : types) {
    std::vector<std::vector<uint8_t>> mats;
    std::vector<WeightView> views;
    size_t bytes = 0;
    for (int l = 0; l < sweep_layers; ++l) {
      for (int i = 0; i < 7; ++i) {
        const Shape& s = layer[i];
        mats.push_back(make_weights(type, s.rows, s.cols, static_cast<uint64_t>(l)));
        views.push_back({mats.back().data(), type, s.rows, s.cols, strata::row_bytes(type, s.cols)});
        bytes += mats.back().size();
      }
    }
    std::vector<float> x(9728), y(9728);
    strata::Rng rng(3);
    for (float& v : x) v = rng.normal();
    const auto sweep = [&] { for (const WeightView& w : views) be.matmul(w, x.data(), 1, y.data()); };
    if (!pfs.empty()) {
      std::vector<double> best(pfs.size(), 1e30);
      for (int round = 0; round < 5; ++round) {
        for (size_t k = 0; k < pfs.size(); ++k) {
          strata::backend::cpu::set_decode_prefetch(pfs[k]);
          best[k] = std::min(best[k], best_time(sweep, 0.4));
        }
      }
      for (size_t k = 0; k < pfs.size(); ++k) {
        const double gbs = static_cast<double>(bytes) / best[k] / 1e9;
        std::printf("%-6s pf %6d %7.1f MB  %7.2f ms/token  %6.1f GB/s  %4.0f%% of bandwidth\n", strata::dtype_name(type),
                    pfs[k], bytes / 1e6, best[k] * 1e3, gbs, 100 * gbs / bw);
      }
      strata::backend::cpu::set_decode_prefetch(-1);
    } else if (isas.empty()) {
      const double t = best_time(sweep, 2.0);
      const double gbs = static_cast<double>(bytes) / t / 1e9;
      std::printf("%-6s %7.1f MB  %7.2f ms/token  %6.1f GB/s  %4.0f%% of bandwidth\n", strata::dtype_name(type),
                  bytes / 1e6, t * 1e3, gbs, 100 * gbs / bw);
    } else {
      std::vector<double> best(isas.size(), 1e30);
      for (int round = 0; round < 5; ++round) {
        for (size_t k = 0; k < isas.size(); ++k) {
          if (use_isa(isas[k])) best[k] = std::min(best[k], best_time(sweep, 0.4));
        }
      }
      for (size_t k = 0; k < isas.size(); ++k) {
        const double gbs = static_cast<double>(bytes) / best[k] / 1e9;
        std::printf("%-6s %-6s %7.1f MB  %7.2f ms/token  %6.1f GB/s  %4.0f%% of bandwidth\n", strata::dtype_name(type),
                    kIsaNames[isas[k]], bytes / 1e6, best[k] * 1e3, gbs, 100 * gbs / bw);
      }
    }
    std::fflush(stdout);
  }
  return 0;
}
