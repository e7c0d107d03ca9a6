// Dot-kernel variants side by side (single thread, process CPU time, interleaved runs, best
// of many): variant 1 (bench/cpu/variants/dot_kernels_v1.cpp) against the product's kernels
// (src/backend/cpu/dot_kernels*.cpp) in their AVX2 build (v2) and AVX-VNNI build (v3), on
// cache-resident shapes so the kernel, not DRAM, is
// measured. Each variant's output is checked against the other's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "backend/cpu/dot_kernels.h"
#include "core/quant.h"
#include "core/rng.h"
#include "variants/dot_kernels_v1.h"

namespace {

using namespace strata;
using namespace strata::backend::cpu;

double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  // rows: argv[1] (default 1024; 1024x1024 Q8_0 is 1.06 MB, just over a Zen 5 core's 1 MB L2)
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1024, cols = 1024;
  for (DType type : {DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16, DType::kQ4_0}) {
    Rng rng(1);
    const size_t rb = row_bytes(type, cols);
    std::vector<uint8_t> w(rb * rows);
    std::vector<float> src(cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& v : src) v = rng.normal();
      quantize_row(type, src.data(), w.data() + r * rb, cols);
    }
    for (int64_t n : {1, 64}) {
      std::vector<float> x(n * cols);
      for (float& v : x) v = rng.normal();
      DotKernel k2 = dot_kernel(type);
      const v1::DotTileFnV1 k1 = v1::dot_kernel(type).dot;
      const size_t xs = act_row_bytes(k2.act, cols);
      std::vector<uint8_t> xa(xs * n);
      for (int64_t t = 0; t < n; ++t) quantize_act_row(k2.act, x.data() + t * cols, cols, xa.data() + t * xs);
      std::vector<float> y1(n * rows), y2(n * rows);
      auto run1 = [&] {
        for (int64_t c0 = 0; c0 < rows; c0 += 16)
          for (int64_t t0 = 0; t0 < n; t0 += 4)
            for (int64_t r = c0; r < c0 + 16; ++r)
              k1(w.data() + r * rb, xa.data() + t0 * xs, xs, static_cast<int>(std::min<int64_t>(4, n - t0)), cols,
                 y1.data() + t0 * rows + r, rows);
      };
      auto run2 = [&] {
        for (int64_t c0 = 0; c0 < rows; c0 += 16)
          for (int64_t t0 = 0; t0 < n; t0 += 4)
            k2.dot(w.data() + c0 * rb, rb, 16, xa.data() + t0 * xs, xs, static_cast<int>(std::min<int64_t>(4, n - t0)),
                   cols, y2.data() + t0 * rows + c0, rows);
      };
      // v2 = the product's AVX2 build, v3 = its AVX-VNNI build, v4 = its AVX-512 build (each
      // where the CPU has it)
      const bool vnni = vnni_kernels_available(), avx512 = avx512_kernels_available();
      set_avx512_kernels(false);
      DotKernel k3 = k2;
      if (vnni) {
        set_vnni_kernels(true);
        k3 = dot_kernel(type);
      }
      set_vnni_kernels(false);
      k2 = dot_kernel(type);
      DotKernel k4 = k2;
      if (avx512) {
        set_avx512_kernels(true);
        k4 = dot_kernel(type);
        set_avx512_kernels(false);
      }
      std::vector<float> y3(y2.size());
      auto run3 = [&] {
        for (int64_t c0 = 0; c0 < rows; c0 += 16)
          for (int64_t t0 = 0; t0 < n; t0 += 4)
            k3.dot(w.data() + c0 * rb, rb, 16, xa.data() + t0 * xs, xs, static_cast<int>(std::min<int64_t>(4, n - t0)),
                   cols, y3.data() + t0 * rows + c0, rows);
      };
      std::vector<float> y4(y2.size());
      auto run4 = [&] {
        for (int64_t c0 = 0; c0 < rows; c0 += 16)
          for (int64_t t0 = 0; t0 < n; t0 += 4)
            k4.dot(w.data() + c0 * rb, rb, 16, xa.data() + t0 * xs, xs, static_cast<int>(std::min<int64_t>(4, n - t0)),
                   cols, y4.data() + t0 * rows + c0, rows);
      };
      double b1 = 1e9, b2 = 1e9, b3 = 1e9, b4 = 1e9;
      for (int rep = 0; rep < 15; ++rep) {
        double t0 = cpu_s();
        run1();
        b1 = std::min(b1, cpu_s() - t0);
        t0 = cpu_s();
        run2();
        b2 = std::min(b2, cpu_s() - t0);
        t0 = cpu_s();
        run3();
        b3 = std::min(b3, cpu_s() - t0);
        t0 = cpu_s();
        run4();
        b4 = std::min(b4, cpu_s() - t0);
      }
      double maxdiff = 0, maxabs = 0;
      for (size_t i = 0; i < y1.size(); ++i) {
        maxdiff = std::max(maxdiff, static_cast<double>(std::fabs(y1[i] - y2[i])));
        maxdiff = std::max(maxdiff, static_cast<double>(std::fabs(y1[i] - y3[i])));
        maxdiff = std::max(maxdiff, static_cast<double>(std::fabs(y1[i] - y4[i])));
        maxabs = std::max(maxabs, static_cast<double>(std::fabs(y1[i])));
      }
      const double bytes = static_cast<double>(w.size()), flops = 2.0 * rows * cols * n;
      std::printf("%-5s n=%-3lld  v1 %7.1f us (%5.1f GB/s %6.1f GFLOP/s)  v2 %7.1f us (%5.1f GB/s %6.1f GFLOP/s)"
                  "  v3%s %7.1f us (%5.1f GB/s %6.1f GFLOP/s)  v4%s %7.1f us (%5.1f GB/s %6.1f GFLOP/s)  diff %.1e of %.1e\n",
                  dtype_name(type), static_cast<long long>(n), b1 * 1e6, bytes / b1 / 1e9, flops / b1 / 1e9, b2 * 1e6,
                  bytes / b2 / 1e9, flops / b2 / 1e9, vnni ? "" : "(=v2)", b3 * 1e6, bytes / b3 / 1e9, flops / b3 / 1e9,
                  avx512 ? "" : "(=v2)", b4 * 1e6, bytes / b4 / 1e9, flops / b4 / 1e9, maxdiff, maxabs);
    }
  }
}
