// A decode step's weight products alone, from a model file (Llama/Qwen dense layout), on the
// CPU backend: where a product's time goes between the cores (bench/cpu/NOTES.md, round 7).
//
//   cpu_product_bench MODEL [--threads 2] [--rounds 12] [--min-probe GB/s]
//       [--gaps 0,3,10]   every layer's products (q/k/v, o, gate/up, down; then the output head)
//                         back to back, with this many microseconds of busy-waiting on the caller
//                         before each; GB/s of each kind of product over the rounds whose
//                         bandwidth probe reads >= --min-probe
//       [--spmd]          instead: that pass in one region with a barrier a product (run_spmd)
//       [--trace NAME]    instead: the products of one matrix (attn_output, ffn_down, ...) taken
//                         apart, the other six of each layer run between them so that every byte
//                         comes from DRAM: the caller's quantize and pack, the worker's first
//                         chunk, each thread's time in the kernel, the end
//       [--tp]            instead: the layers as two tensor-parallel halves (two jobs a layer, o's
//                         and down's column halves repacked) against a job per product, and the
//                         same halves with no meeting at all (run_tp; round 10)
//       [--anon]          instead: a job per product from the file's mapping against a copy of
//                         the weights in anonymous 2 MB pages (round 10)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_probe.h"
#include "backend/cpu/dot_kernels.h"
#include "core/huge_pages.h"
#include "core/quant.h"
#include "gguf/gguf.h"

namespace {

using namespace strata;
using backend::WeightView;

// The first 64-byte aligned byte of buf (the packed token's alignment; buf has 64 spare).
uint8_t* aligned64(std::vector<uint8_t>& buf) {
  return buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const char* const kLayerMats[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                  "ffn_gate", "ffn_up", "ffn_down"};

struct Args {
  std::string model;
  int threads = 2, rounds = 12;
  double min_probe = 0;
  std::vector<int> gaps = {0};
  std::string trace;
  bool spmd = false;
  bool tp = false;
  bool anon = false;
};

// The products of the step in order: per layer q/k/v (one pass), o, gate/up (one pass), down;
// then the head. kind: 0-3 those of a layer, 4 the head.
struct Step {
  std::vector<WeightView> ws;
  int kind;
  double bytes;
};

// Seconds of passes a and b over the rounds whose probe read at least --min-probe, and how
// many of each.
struct AbTotals {
  double a = 0, b = 0;
  int n = 0;
};

// a.rounds rounds of 8 reps, each rep pass_a() then pass_b() (each returns its seconds), the
// bandwidth probed before each round and printed; after_round(sa, sb) reports a round (its
// 8 reps' seconds of each pass).
template <class A, class B, class R>
AbTotals alternate(const Args& a, ThreadPool& pool, A&& pass_a, B&& pass_b, R&& after_round) {
  backend::cpu::BandwidthProbe probe(pool, size_t{512} << 20);
  AbTotals t;
  for (int round = 0; round < a.rounds; ++round) {
    const double bw = probe.measure(10);
    std::printf("round %2d probe %5.1f GB/s%s\n", round, bw, bw < a.min_probe ? " (left out)" : "");
    double sa = 0, sb = 0;
    for (int rep = 0; rep < 8; ++rep) {
      sa += pass_a();
      sb += pass_b();
    }
    after_round(sa, sb);
    if (bw < a.min_probe) continue;
    t.a += sa, t.b += sb, t.n += 8;
  }
  return t;
}

// f() timed, in seconds.
template <class F>
double timed(F&& f) {
  const double t0 = now_s();
  f();
  return now_s() - t0;
}

int run_gaps(const Args& a, const std::vector<Step>& steps, backend::CpuBackend& be) {
  std::vector<float> x(1 << 15, 0.5f), y0(1 << 18), y1(1 << 15),
      y2(1 << 15);  // any layer of the supported shapes
  float* const ys[3] = {y0.data(), y1.data(), y2.data()};
  backend::cpu::BandwidthProbe probe(be.pool(), size_t{512} << 20);
  const size_t ng = a.gaps.size();
  std::vector<double> kind_s(5 * ng, 0), kind_bytes(5, 0);
  std::vector<int> passes(ng, 0);
  for (const Step& s : steps) kind_bytes[static_cast<size_t>(s.kind)] += s.bytes;
  for (int round = 0; round < a.rounds; ++round) {
    const double bw = probe.measure(10);
    std::printf("round %2d probe %5.1f GB/s%s\n", round, bw, bw < a.min_probe ? " (left out)" : "");
    for (size_t g = 0; g < ng; ++g) {
      for (int rep = 0; rep < 8; ++rep) {
        double t[5] = {0, 0, 0, 0, 0};
        for (const Step& s : steps) {
          for (const double t0 = now_s(); now_s() - t0 < a.gaps[g] * 1e-6;) {
          }
          const double t0 = now_s();
          be.matmul_multi(s.ws, x.data(), 1, std::span<float* const>(ys, s.ws.size()));
          t[s.kind] += now_s() - t0;
        }
        if (bw < a.min_probe) continue;
        for (int k = 0; k < 5; ++k) kind_s[5 * g + k] += t[k];
        ++passes[g];
      }
    }
  }
  const char* names[5] = {"q/k/v", "o", "gate/up", "down", "head"};
  for (size_t g = 0; g < ng; ++g) {
    if (passes[g] == 0) continue;
    double all_s = 0, all_b = 0;
    for (int k = 0; k < 5; ++k) all_s += kind_s[5 * g + k], all_b += kind_bytes[k];
    std::printf("gap %3d us: all products %.1f GB/s (%.3f ms a step, %d steps)\n", a.gaps[g],
                all_b / (all_s / passes[g]) / 1e9, all_s / passes[g] * 1e3, passes[g]);
    for (int k = 0; k < 5; ++k)
      std::printf("  %-8s %6.1f GB/s\n", names[k],
                  kind_bytes[k] / (kind_s[5 * g + k] / passes[g]) / 1e9);
  }
  return 0;
}

// --spmd: the same products with no job per product: every thread runs the whole step inside
// one run_on_all, quantizes and packs the token itself, takes a fixed half (a 1/threads share)
// of each product's rows and meets the others at a spinning barrier after it; alternated with
// the CPU backend's matmul_multi per product. What a decode that runs the layer program on
// every thread (instead of a job per op) could save on the products.
int run_spmd(const Args& a, const std::vector<Step>& steps, backend::CpuBackend& be) {
  using backend::cpu::DotKernel;
  ThreadPool& pool = be.pool();
  const int nt = pool.num_threads();
  for (const Step& s : steps) {
    for (const WeightView& w : s.ws) {
      if (backend::cpu::dot_kernel(w.type).dot1 == nullptr) {
        std::fprintf(stderr, "--spmd: no packed one-token kernel for %s\n", dtype_name(w.type));
        return 1;
      }
    }
  }
  std::vector<float> x(1 << 15, 0.5f), y0(1 << 18), y1(1 << 15), y2(1 << 15);
  float* const ys[3] = {y0.data(), y1.data(), y2.data()};
  struct alignas(64) Barrier {
    std::atomic<int> count{0};
    std::atomic<int> phase{0};
  } bar;
  const auto barrier = [&] {
    const int ph = bar.phase.load(std::memory_order_relaxed);
    if (bar.count.fetch_add(1, std::memory_order_acq_rel) == nt - 1) {
      bar.count.store(0, std::memory_order_relaxed);
      bar.phase.store(ph + 1, std::memory_order_release);
    } else {
      while (bar.phase.load(std::memory_order_acquire) == ph) _mm_pause();
    }
  };
  const auto spmd_pass = [&] {
    pool.run_on_all([&](int t) {
      thread_local std::vector<uint8_t> xa, pk;
      for (const Step& s : steps) {
        int64_t total = 0;
        for (const WeightView& w : s.ws) total += w.rows;
        const int64_t groups = (total + 15) / 16, g0 = groups * t / nt, g1 = groups * (t + 1) / nt;
        int64_t base = 0;
        backend::cpu::PackFn packed_by = nullptr;  // the kernel kind the token is packed for
        for (size_t i = 0; i < s.ws.size(); ++i) {
          const WeightView& w = s.ws[i];
          const int64_t r0 = std::max<int64_t>(g0 * 16 - base, 0),
                        r1 = std::min<int64_t>(g1 * 16 - base, w.rows);
          base += w.rows;
          if (r1 <= r0) continue;
          const DotKernel k = backend::cpu::dot_kernel(w.type);
          if (k.pack != packed_by) {  // (q/k/v and gate/up share one activation format)
            xa.resize(backend::cpu::act_row_bytes(k.act, w.cols));
            backend::cpu::quantize_act_row(k.act, x.data(), w.cols, xa.data());
            pk.resize(std::max(pk.size(), k.pack_bytes(w.cols) + 64));
            k.pack(xa.data(), w.cols, aligned64(pk));
            packed_by = k.pack;
          }
          const void* const packed = aligned64(pk);
          k.dot1(static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes, w.row_bytes,
                 static_cast<int>(r1 - r0), packed, xa.data(), w.cols, ys[i] + r0);
        }
        barrier();
      }
    });
  };
  const auto jobs_pass = [&] {
    for (const Step& s : steps)
      be.matmul_multi(s.ws, x.data(), 1, std::span<float* const>(ys, s.ws.size()));
  };
  // Both passes leave the last step's product (the head) in y0: the same floats, or the
  // comparison is void.
  jobs_pass();
  const std::vector<float> want = y0;
  std::fill(y0.begin(), y0.end(), 0.0f);
  spmd_pass();
  if (want != y0) {
    std::fprintf(stderr, "--spmd: the head's product differs from matmul_multi's\n");
    return 1;
  }
  double bytes = 0;
  for (const Step& s : steps) bytes += s.bytes;
  const AbTotals t = alternate(
      a, pool, [&] { return timed(jobs_pass); }, [&] { return timed(spmd_pass); }, [](double, double) {});
  const double t_jobs = t.a, t_spmd = t.b;
  const int n = t.n;
  if (n > 0)
    std::printf(
        "a job per product: %.1f GB/s (%.3f ms a step) | one region, a barrier per product: %.1f "
        "GB/s (%.3f ms); %d steps each\n",
        bytes / (t_jobs / n) / 1e9, t_jobs / n * 1e3, bytes / (t_spmd / n) / 1e9, t_spmd / n * 1e3,
        n);
  return 0;
}

// --tp: the layer's products as two ranks of tensor parallelism would run them, one job for
// the attention's products and one for the feed-forward's, alternated with a job per product
// (matmul_multi, as the decode runs them today). Part p of a job takes rows [p/P, (p+1)/P) of
// q, k, v (its heads), then its heads' columns of o; rows [p/P, (p+1)/P) of gate and up, then
// the same columns of down; each part's o and down products end in a partial sum that the
// caller adds up (as it would before the next norm). o's and down's column parts are copied
// out (repacked) into memory of their own, each part's rows contiguous: read in place, a
// part's columns are a strided stream, 20-40% slower on this machine (bench/cpu/NOTES.md,
// round 10). What two syncs a layer instead of four would save on the products.
int run_tp(const Args& a, const std::vector<Step>& steps, backend::CpuBackend& be) {
  using backend::cpu::DotKernel;
  ThreadPool& pool = be.pool();
  constexpr int kParts = 2;
  const int layers = static_cast<int>((steps.size() - 1) / 4);
  const auto part_cols = [](int64_t cols, int p) {
    const int64_t nb = cols / 256;
    return std::pair<int64_t, int64_t>{nb * p / kParts * 256, nb * (p + 1) / kParts * 256};
  };
  std::vector<std::array<WeightView, kParts>> o_parts, down_parts;
  // One arena for every part (2 MB pages: a mapping of its own each would be under 2 MB).
  size_t arena_bytes = 0;
  for (int l = 0; l < layers; ++l) {
    for (const WeightView* w : {&steps[static_cast<size_t>(4 * l + 1)].ws[0],
                                &steps[static_cast<size_t>(4 * l + 3)].ws[0]})
      arena_bytes += static_cast<size_t>(w->rows) * w->row_bytes + 2 * kParts * 64;
  }
  auto* arena = static_cast<uint8_t*>(map_huge_pages(arena_bytes, false));
  size_t used = 0;
  const auto repack = [&](const WeightView& w) {
    std::array<WeightView, kParts> out;
    for (int p = 0; p < kParts; ++p) {
      const auto [c0, c1] = part_cols(w.cols, p);
      const size_t off = row_bytes(w.type, c0), rb = row_bytes(w.type, c1 - c0);
      uint8_t* dst = arena + used;
      used += (rb * static_cast<size_t>(w.rows) + 63) / 64 * 64;
      for (int64_t r = 0; r < w.rows; ++r)
        std::memcpy(dst + r * rb, static_cast<const uint8_t*>(w.data) + r * w.row_bytes + off, rb);
      out[static_cast<size_t>(p)] = WeightView{dst, w.type, w.rows, c1 - c0, rb};
    }
    return out;
  };
  for (int l = 0; l < layers; ++l) {
    const WeightView& o = steps[static_cast<size_t>(4 * l + 1)].ws[0];
    const WeightView& down = steps[static_cast<size_t>(4 * l + 3)].ws[0];
    if (o.cols % 256 != 0 || down.cols % 256 != 0 ||
        backend::cpu::dot_kernel(o.type).dot1 == nullptr ||
        backend::cpu::dot_kernel(down.type).dot1 == nullptr) {
      std::fprintf(stderr, "--tp: needs packed one-token kernels and columns in 256s\n");
      return 1;
    }
    o_parts.push_back(repack(o));
    down_parts.push_back(repack(down));
  }
  std::vector<float> x(1 << 15, 0.5f), y0(1 << 18), y1(1 << 15), y2(1 << 15);
  float* const ys[3] = {y0.data(), y1.data(), y2.data()};
  struct alignas(64) Partial {
    std::vector<float> y;
    std::vector<uint8_t> xa, pk;
  };
  std::array<Partial, kParts> parts;
  for (Partial& pt : parts) pt.y.resize(1 << 15);
  // Each job's parts: when they ended after the job began (the caller's clock), summed.
  std::array<double, 2 * kParts> part_end{};
  double job_total = 0;
  std::vector<uint8_t> xa, pk;
  // The caller's token for the next job: x quantized and packed for kernel k.
  const auto prepare = [&](const DotKernel& k, int64_t cols) {
    xa.resize(backend::cpu::act_row_bytes(k.act, cols));
    backend::cpu::quantize_act_row(k.act, x.data(), cols, xa.data());
    pk.resize(k.pack_bytes(cols) + 64);
    k.pack(xa.data(), cols, aligned64(pk));
  };
  // Rows [rows p/P, rows (p+1)/P) of w against the caller's token.
  const auto rows_of = [&](const WeightView& w, int p, float* y) {
    const DotKernel k = backend::cpu::dot_kernel(w.type);
    const int64_t r0 = w.rows * p / kParts, r1 = w.rows * (p + 1) / kParts;
    k.dot1(static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes, w.row_bytes,
           static_cast<int>(r1 - r0), aligned64(pk), xa.data(), w.cols, y + r0);
  };
  // Part p's columns [c0, c1) of in, times its column part of w: its partial sum.
  const auto columns_of = [&](const WeightView& wp, const float* in, int p) {
    Partial& pt = parts[static_cast<size_t>(p)];
    const DotKernel k = backend::cpu::dot_kernel(wp.type);
    pt.xa.resize(backend::cpu::act_row_bytes(k.act, wp.cols));
    backend::cpu::quantize_act_row(k.act, in, wp.cols, pt.xa.data());
    pt.pk.resize(k.pack_bytes(wp.cols) + 64);
    k.pack(pt.xa.data(), wp.cols, aligned64(pt.pk));
    k.dot1(wp.data, wp.row_bytes, static_cast<int>(wp.rows), aligned64(pt.pk), pt.xa.data(),
           wp.cols, pt.y.data());
  };
  const auto reduce = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      float s = 0;
      for (const Partial& pt : parts) s += pt.y[static_cast<size_t>(i)];
      x[static_cast<size_t>(i)] = 0.5f + 1e-6f * s;  // (kept near 0.5: the next token)
    }
  };
  const auto tp_pass = [&] {
    for (int l = 0; l < layers; ++l) {
      const Step& qkv = steps[static_cast<size_t>(4 * l)];
      const Step& gu = steps[static_cast<size_t>(4 * l + 2)];
      const auto& op = o_parts[static_cast<size_t>(l)];
      const auto& dp = down_parts[static_cast<size_t>(l)];
      prepare(backend::cpu::dot_kernel(qkv.ws[0].type), qkv.ws[0].cols);
      double j0 = now_s();
      pool.parallel_for(kParts, 1, [&](int, int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const int pi = static_cast<int>(p);
          for (size_t i = 0; i < 3; ++i) rows_of(qkv.ws[i], pi, ys[i]);
          columns_of(op[p], y0.data() + part_cols(qkv.ws[0].rows, pi).first, pi);
          part_end[static_cast<size_t>(pi)] += now_s() - j0;
        }
      });
      job_total += now_s() - j0;
      reduce(op[0].rows);
      prepare(backend::cpu::dot_kernel(gu.ws[0].type), gu.ws[0].cols);
      j0 = now_s();
      pool.parallel_for(kParts, 1, [&](int, int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const int pi = static_cast<int>(p);
          rows_of(gu.ws[0], pi, y0.data());
          rows_of(gu.ws[1], pi, y1.data());
          const auto [c0, c1] = part_cols(gu.ws[0].rows, pi);
          for (int64_t i = c0; i < c1; ++i)  // (the swiglu's place: a vectorized pass)
            y0[static_cast<size_t>(i)] *= y1[static_cast<size_t>(i)];
          columns_of(dp[p], y0.data() + c0, pi);
          part_end[static_cast<size_t>(kParts + pi)] += now_s() - j0;
        }
      });
      job_total += now_s() - j0;
      reduce(dp[0].rows);
    }
    be.matmul(steps.back().ws[0], x.data(), 1, y0.data());
  };
  // The same parts with no meeting between them: each thread runs its part of every layer
  // back to back (the outputs are noise; only the streams are alike).
  double free_s = 0;
  std::array<std::array<std::vector<float>, 5>, kParts> free_bufs;  // per part: f1, f2, q, k, v
  for (auto& bufs : free_bufs)
    for (auto& b : bufs) b.resize(1 << 15);
  const auto free_pass = [&] {
    prepare(backend::cpu::dot_kernel(steps[0].ws[0].type), steps[0].ws[0].cols);
    const double t0 = now_s();
    pool.parallel_for(kParts, 1, [&](int, int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int pi = static_cast<int>(p);
        auto& [f1, f2, q, k, v] = free_bufs[static_cast<size_t>(pi)];
        for (int l = 0; l < layers; ++l) {
          const Step& qkv = steps[static_cast<size_t>(4 * l)];
          const Step& gu = steps[static_cast<size_t>(4 * l + 2)];
          rows_of(qkv.ws[0], pi, q.data());
          rows_of(qkv.ws[1], pi, k.data());
          rows_of(qkv.ws[2], pi, v.data());
          columns_of(o_parts[static_cast<size_t>(l)][p],
                     q.data() + part_cols(qkv.ws[0].rows, pi).first, pi);
          rows_of(gu.ws[0], pi, f1.data());
          rows_of(gu.ws[1], pi, f2.data());
          const auto [c0, c1] = part_cols(gu.ws[0].rows, pi);
          for (int64_t i = c0; i < c1; ++i)
            f1[static_cast<size_t>(i)] *= f2[static_cast<size_t>(i)];
          columns_of(down_parts[static_cast<size_t>(l)][p], f1.data() + c0, pi);
        }
      }
    });
    free_s += now_s() - t0;
  };
  const auto jobs_pass = [&] {
    for (const Step& s : steps)
      be.matmul_multi(s.ws, x.data(), 1, std::span<float* const>(ys, s.ws.size()));
  };
  double bytes = 0;
  for (const Step& s : steps) bytes += s.bytes;
  const double layer_bytes = bytes - steps.back().bytes;
  const auto tp_then_free = [&] {
    const double tt = timed(tp_pass);
    free_pass();  // (untimed here: it keeps its own time)
    return tt;
  };
  const AbTotals t = alternate(a, pool, [&] { return timed(jobs_pass); }, tp_then_free, [&](double rj, double rt) {
    std::printf(
        "  this round: a job per product %.1f GB/s, two jobs a layer %.1f GB/s; a step's jobs "
        "%.3f ms, their parts end at (attention) %.3f / %.3f, (ffn) %.3f / %.3f ms\n",
        bytes / (rj / 8) / 1e9, bytes / (rt / 8) / 1e9, job_total / 8 * 1e3, part_end[0] / 8 * 1e3,
        part_end[1] / 8 * 1e3, part_end[2] / 8 * 1e3, part_end[3] / 8 * 1e3);
    std::printf("  the layers alone: in two jobs each %.1f GB/s, with no meetings %.1f GB/s\n",
                layer_bytes / (job_total / 8) / 1e9, layer_bytes / (free_s / 8) / 1e9);
    part_end = {};
    job_total = 0;
    free_s = 0;
  });
  const double t_jobs = t.a, t_tp = t.b;
  const int n = t.n;
  if (n > 0)
    std::printf(
        "a job per product: %.1f GB/s (%.3f ms a step) | two jobs a layer (tensor-parallel "
        "halves): %.1f GB/s (%.3f ms); %d steps each\n",
        bytes / (t_jobs / n) / 1e9, t_jobs / n * 1e3, bytes / (t_tp / n) / 1e9, t_tp / n * 1e3, n);
  return 0;
}

// --anon: the same products, a job per product, from the file's mapping and from a copy of
// every weight in anonymous memory in 2 MB pages, alternated: what the page cache's mapping
// costs against memory of the process's own.
int run_anon(const Args& a, const std::vector<Step>& steps, backend::CpuBackend& be) {
  size_t total = 0;
  for (const Step& s : steps)
    for (const WeightView& w : s.ws)
      total += (static_cast<size_t>(w.rows) * w.row_bytes + 63) / 64 * 64;
  auto* arena = static_cast<uint8_t*>(map_huge_pages(total, false));
  size_t used = 0;
  std::vector<Step> copies = steps;
  for (Step& s : copies) {
    for (WeightView& w : s.ws) {
      const size_t bytes = static_cast<size_t>(w.rows) * w.row_bytes;
      std::memcpy(arena + used, w.data, bytes);
      w.data = arena + used;
      used += (bytes + 63) / 64 * 64;
    }
  }
  std::vector<float> x(1 << 15, 0.5f), y0(1 << 18), y1(1 << 15), y2(1 << 15);
  float* const ys[3] = {y0.data(), y1.data(), y2.data()};
  const auto pass = [&](const std::vector<Step>& ss) {
    return timed([&] {
      for (const Step& s : ss)
        be.matmul_multi(s.ws, x.data(), 1, std::span<float* const>(ys, s.ws.size()));
    });
  };
  double bytes = 0;
  for (const Step& s : steps) bytes += s.bytes;
  const AbTotals t = alternate(
      a, be.pool(), [&] { return pass(steps); }, [&] { return pass(copies); },
      [&](double rf, double ra) {
        std::printf("  file's mapping %.1f GB/s, anonymous copy %.1f GB/s\n", bytes / (rf / 8) / 1e9,
                    bytes / (ra / 8) / 1e9);
      });
  const double t_file = t.a, t_anon = t.b;
  const int n = t.n;
  if (n > 0)
    std::printf("file's mapping %.1f GB/s | anonymous copy %.1f GB/s; %d steps each\n",
                bytes / (t_file / n) / 1e9, bytes / (t_anon / n) / 1e9, n);
  return 0;
}

int run_trace(const Args& a, const gguf::File& file, int layers, ThreadPool& pool) {
  using backend::cpu::DotKernel;
  struct Mat {
    const uint8_t* w;
    int64_t rows, cols;
    size_t rb;
    DType type;
  };
  std::vector<Mat> ms;
  int sel = -1;
  for (int i = 0; i < 7; ++i) sel = a.trace == kLayerMats[i] ? i : sel;
  if (sel < 0) {
    std::fprintf(stderr,
                 "--trace: one of attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down\n");
    return 1;
  }
  for (int l = 0; l < layers; ++l) {
    for (const char* nm : kLayerMats) {
      const gguf::TensorInfo* t =
          file.find_tensor("blk." + std::to_string(l) + "." + nm + ".weight");
      ms.push_back(
          {file.tensor_data(*t), t->rows(), t->shape[0], row_bytes(t->type, t->shape[0]), t->type});
    }
  }
  int64_t max_cols = 0;
  for (const Mat& m : ms) max_cols = std::max(max_cols, std::max(m.cols, m.rows));
  std::vector<float> x(static_cast<size_t>(max_cols), 0.25f), y(static_cast<size_t>(max_cols));
  std::vector<uint8_t> xa(static_cast<size_t>(max_cols) * 2 + 4096),
      pk(static_cast<size_t>(max_cols) * 4 + 4096);
  void* const packed = aligned64(pk);
  backend::cpu::BandwidthProbe probe(pool, size_t{512} << 20);
  std::printf("%s: per product, us (threads %d)\n", a.trace.c_str(), pool.num_threads());
  for (int round = 0; round < a.rounds; ++round) {
    const double bw = probe.measure(10);
    struct Sum {
      double total = 0, prologue = 0, w_start = 0, m_end = 0, w_end = 0, m_busy = 0, w_busy = 0;
      int n = 0;
    } sum;
    for (int rep = 0; rep < 5; ++rep) {
      for (size_t mi = 0; mi < ms.size(); ++mi) {
        const Mat& m = ms[mi];
        const DotKernel k = backend::cpu::dot_kernel(m.type);
        if (k.dot1 == nullptr) {
          std::fprintf(stderr, "%s: no packed one-token kernel for %s\n", kLayerMats[mi % 7],
                       dtype_name(m.type));
          return 1;
        }
        const double t0 = now_s();
        backend::cpu::quantize_act_row(k.act, x.data(), m.cols, xa.data());
        k.pack(xa.data(), m.cols, packed);
        const double t1 = now_s();
        struct alignas(64) Marks {  // a line each: the threads never share one
          double first = 0, last = 0, busy = 0;
        } marks[2];
        const bool timed = static_cast<int>(mi % 7) == sel;
        pool.parallel_for(m.rows, 16, [&](int t, int64_t b, int64_t e) {
          const double s = timed ? now_s() : 0;
          k.dot1(m.w + b * m.rb, m.rb, static_cast<int>(e - b), packed, xa.data(), m.cols,
                 y.data() + b);
          if (!timed || t > 1) return;
          Marks& mk = marks[t];
          if (mk.first == 0) mk.first = s;
          mk.last = now_s();
          mk.busy += mk.last - s;
        });
        if (!timed) continue;
        const double t2 = now_s();
        sum.total += t2 - t0;
        sum.prologue += t1 - t0;
        sum.w_start += marks[1].first > 0 ? marks[1].first - t1 : 0;
        sum.m_end += marks[0].last - t1;
        sum.w_end += marks[1].last > 0 ? marks[1].last - t1 : 0;
        sum.m_busy += marks[0].busy;
        sum.w_busy += marks[1].busy;
        ++sum.n;
      }
    }
    const double n = sum.n, bytes = static_cast<double>(ms[static_cast<size_t>(sel)].rows *
                                                        ms[static_cast<size_t>(sel)].rb);
    std::printf(
        "probe %5.1f GB/s: product %6.2f (%5.1f GB/s) | quantize+pack %.2f | worker's first chunk "
        "at %.2f | "
        "caller's last chunk ends %.2f, in kernels %.2f | worker's ends %.2f, in kernels %.2f\n",
        bw, sum.total / n * 1e6, bytes / (sum.total / n) / 1e9, sum.prologue / n * 1e6,
        sum.w_start / n * 1e6, sum.m_end / n * 1e6, sum.m_busy / n * 1e6, sum.w_end / n * 1e6,
        sum.w_busy / n * 1e6);
  }
  return 0;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::atoi(item.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    const bool has = i + 1 < argc;
    if (s == "--threads" && has)
      a.threads = std::atoi(argv[++i]);
    else if (s == "--rounds" && has)
      a.rounds = std::atoi(argv[++i]);
    else if (s == "--min-probe" && has)
      a.min_probe = std::atof(argv[++i]);
    else if (s == "--gaps" && has)
      a.gaps = parse_list(argv[++i]);
    else if (s == "--trace" && has)
      a.trace = argv[++i];
    else if (s == "--spmd")
      a.spmd = true;
    else if (s == "--tp")
      a.tp = true;
    else if (s == "--anon")
      a.anon = true;
    else if (a.model.empty() && s[0] != '-')
      a.model = s;
    else {
      std::fprintf(stderr,
                   "usage: cpu_product_bench MODEL [--threads N] [--rounds N] [--min-probe GB/s] "
                   "[--gaps LIST | --trace NAME | --spmd | --tp | --anon]\n");
      return 1;
    }
  }
  if (a.model.empty()) {
    std::fprintf(stderr,
                 "usage: cpu_product_bench MODEL [--threads N] [--rounds N] [--min-probe GB/s] "
                 "[--gaps LIST | --trace NAME | --spmd | --tp | --anon]\n");
    return 1;
  }
  auto f = gguf::File::open(a.model);
  if (!f.is_ok()) {
    std::fprintf(stderr, "%s\n", f.status().to_string().c_str());
    return 1;
  }
  const gguf::File& file = **f;
  const auto layers = file.get_int(file.arch_key("block_count"));
  const gguf::TensorInfo* head = file.find_tensor("output.weight");
  if (head == nullptr) head = file.find_tensor("token_embd.weight");
  if (!layers || head == nullptr || file.find_tensor("blk.0.attn_q.weight") == nullptr ||
      file.find_tensor("blk.0.ffn_gate.weight") == nullptr) {
    std::fprintf(stderr, "%s: not a dense Llama/Qwen layout\n", a.model.c_str());
    return 1;
  }
  backend::CpuBackend be(a.threads);
  if (!a.trace.empty()) return run_trace(a, file, static_cast<int>(*layers), be.pool());
  const auto view = [&](const gguf::TensorInfo* t) {
    return WeightView{file.tensor_data(*t), t->type, t->rows(), t->shape[0],
                      row_bytes(t->type, t->shape[0])};
  };
  const auto mat = [&](int l, const char* nm) {
    return view(file.find_tensor("blk." + std::to_string(l) + "." + nm + ".weight"));
  };
  std::vector<Step> steps;
  for (int l = 0; l < *layers; ++l) {
    steps.push_back({{mat(l, "attn_q"), mat(l, "attn_k"), mat(l, "attn_v")}, 0, 0});
    steps.push_back({{mat(l, "attn_output")}, 1, 0});
    steps.push_back({{mat(l, "ffn_gate"), mat(l, "ffn_up")}, 2, 0});
    steps.push_back({{mat(l, "ffn_down")}, 3, 0});
  }
  steps.push_back({{view(head)}, 4, 0});
  for (Step& s : steps) {
    for (const WeightView& w : s.ws)
      s.bytes += static_cast<double>(w.rows) * static_cast<double>(w.row_bytes);
  }
  if (a.tp) return run_tp(a, steps, be);
  if (a.anon) return run_anon(a, steps, be);
  return a.spmd ? run_spmd(a, steps, be) : run_gaps(a, steps, be);
}
