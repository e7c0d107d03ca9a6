// cuda_gemv_bench: what one batch-1 int8 product (gemv_q8) costs inside a decode step. A chain
// of distinct copies of one matrix (together several times the L2) is captured in one graph
// and replayed: each product waits for the one before, as in a step, so the time per product
// holds its launch, ramp, transfer and tail. Reported against device copy bandwidth, for each
// kernel variant, beside a chain of one-CTA kernels (the graph's floor per launch).
// Usage: cuda_gemv_bench [TYPE:ROWS:COLS ...]  (default: the Qwen3.6-35B-A3B and Qwen3-8B
// decode shapes, then the expert products of the MoE shapes).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "bench_util.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/rng.h"

using namespace strata;
using backend::WeightView;

namespace strata::bench {
void read_stream(const void* p, size_t bytes, int variant, unsigned* sink, int sms, cudaStream_t s);
}

namespace {

// A graph of what body issues on s, replayed: median seconds a replay.
template <class F>
double time_chain(cudaStream_t s, F&& body) {
  cudaGraph_t g;
  cudaGraphExec_t e;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  body();
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&e, g, 0));
  const double t = bench::time_it(s, 3, 30, [&] { CK(cudaGraphLaunch(e, s)); });
  CK(cudaGraphExecDestroy(e));
  CK(cudaGraphDestroy(g));
  return t;
}

struct Shape {
  DType type;
  int64_t rows, cols;
};

Shape parse(const std::string& s) {
  const size_t a = s.find(':'), b = s.find(':', a + 1);
  if (a == std::string::npos || b == std::string::npos) {
    fmt::print(stderr, "bad shape '{}' (TYPE:ROWS:COLS)\n", s);
    std::exit(2);
  }
  const auto t = dtype_from_name(s.substr(0, a));
  if (!t) {
    fmt::print(stderr, "unknown type in '{}'\n", s);
    std::exit(2);
  }
  return {*t, std::stoll(s.substr(a + 1, b - a - 1)), std::stoll(s.substr(b + 1))};
}

void run_shape(const Shape& sh, double bw, cudaStream_t s) {
  const size_t rb = row_bytes(sh.type, sh.cols), bytes = rb * static_cast<size_t>(sh.rows);
  // Copies: at least 4x the 50 MB L2 and 16 products.
  const int copies = static_cast<int>(std::max<size_t>(16, (size_t{200} << 20) / bytes + 1));
  Rng rng(7);
  std::vector<uint8_t> host(bytes);
  std::vector<float> src(static_cast<size_t>(sh.cols));
  // 64 distinct rows, repeated: the K-quants' host quantizer would take minutes for a
  // 151936-row output head, and the product's time does not depend on the values.
  for (int64_t r = 0; r < sh.rows; ++r) {
    uint8_t* row = host.data() + rb * static_cast<size_t>(r);
    if (r >= 64) {
      std::memcpy(row, host.data() + rb * static_cast<size_t>(r % 64), rb);
      continue;
    }
    for (float& x : src) x = rng.normal() * 0.02f;
    quantize_row(sh.type, src.data(), row, sh.cols);
  }
  std::vector<void*> mats(static_cast<size_t>(copies));
  for (void*& m : mats) {
    CK(cudaMalloc(&m, bytes + 16));  // the padding upload_weight gives: kernels read words past a row's end
    CK(cudaMemcpy(m, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  std::vector<float> xh(static_cast<size_t>(sh.cols));
  for (float& x : xh) x = rng.normal();
  float *x, *y, *xd;
  int8_t* xq;
  int32_t* xs;
  CK(cudaMalloc(&x, xh.size() * 4));
  CK(cudaMalloc(&y, static_cast<size_t>(sh.rows) * 4));
  CK(cudaMalloc(&xq, xh.size()));
  CK(cudaMalloc(&xd, xh.size() / 32 * 4));
  CK(cudaMalloc(&xs, xh.size() / 16 * 4));
  CK(cudaMemcpy(x, xh.data(), xh.size() * 4, cudaMemcpyHostToDevice));
  backend::cuda::quantize_act_q8(x, sh.cols, xq, xd, xs, s);
  WeightView w;
  w.type = sh.type;
  w.rows = sh.rows;
  w.cols = sh.cols;
  w.row_bytes = rb;
  w.expert_bytes = bytes;
  fmt::print("{} [{} x {}] {:.2f} MB, chains of {}:\n", dtype_name(sh.type), sh.rows, sh.cols, bytes / 1e6,
             copies);
  // q4k / q6k: the Q4_K part's elements, the Q6_K part's groups (restored after: the
  // environment's STRATA_CUDA_Q4K / STRATA_CUDA_Q6K, for the expert products).
  const int q4k0 = backend::cuda::gemv_q4k_elems(), q6k0 = backend::cuda::gemv_q6k_groups();
  struct Variant {
    const char* name;
    int variant, rows, q4k, q6k;
  } variants[] = {{"default", 0, 0, 64, 2}, {"v3 R2", 3, 2, 64, 2}, {"v3 R4", 3, 4, 64, 2},
                  {"v5 R4", 5, 4, 64, 2},   {"v5 R8", 5, 8, 64, 2}, {"q4k32", 0, 0, 32, 2},
                  {"q6k1", 0, 0, 64, 1},       {"v3 R8", 3, 8, 64, 2}};
  // GEMV_BENCH_ONCE=1: each kernel launched once, untimed (for a profiler: ncu -k ...).
  const bool once = std::getenv("GEMV_BENCH_ONCE") != nullptr;
  for (const Variant& v : variants) {
    backend::cuda::set_gemv_q8_variant(v.variant);
    backend::cuda::set_gemv_q8_rows(v.rows);
    backend::cuda::set_gemv_q4k_elems(v.q4k);
    backend::cuda::set_gemv_q6k_groups(v.q6k);
    if (once) {
      w.data = mats[0];
      backend::cuda::gemv_q8(w, xq, xd, xs, y, s);
      CK(cudaStreamSynchronize(s));
      fmt::print("  {} launched\n", v.name);
      continue;
    }
    const double t = time_chain(s, [&] {
                       for (void* m : mats) {
                         w.data = m;
                         backend::cuda::gemv_q8(w, xq, xd, xs, y, s);
                       }
                     }) /
                     copies;
    fmt::print("  {:<10} {:6.2f} us  {:5.0f} GB/s  {:5.1f}% of copy\n", v.name, t * 1e6,
               bytes / t / 1e9, 100.0 * bytes / t / bw);
  }
  backend::cuda::set_gemv_q8_variant(0);
  backend::cuda::set_gemv_q8_rows(0);
  backend::cuda::set_gemv_q4k_elems(q4k0);
  backend::cuda::set_gemv_q6k_groups(q6k0);
  // The ceiling: the same chain of kernels that only read the bytes.
  int dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  unsigned* sink;
  CK(cudaMalloc(&sink, 4));
  for (int variant = 0; variant < 2; ++variant) {
    if (once) {
      bench::read_stream(mats[0], bytes, variant, sink, sms, s);
      CK(cudaStreamSynchronize(s));
      continue;
    }
    const double t = time_chain(s,
                                [&] {
                                  for (void* m : mats)
                                    bench::read_stream(m, bytes, variant, sink, sms, s);
                                }) /
                     copies;
    fmt::print("  {:<10} {:6.2f} us  {:5.0f} GB/s  {:5.1f}% of copy\n",
               variant == 0 ? "read 32K" : "read grd", t * 1e6, bytes / t / 1e9,
               100.0 * bytes / t / bw);
  }
  CK(cudaFree(sink));
  for (void* m : mats) CK(cudaFree(m));
  CK(cudaFree(x));
  CK(cudaFree(y));
  CK(cudaFree(xq));
  CK(cudaFree(xd));
  CK(cudaFree(xs));
}

// Expert products of one token (gemv_q8_experts): k routed slots of 256 experts plus the
// shared expert as slot k, `count` weights of [rows x cols] (2: gate and up of one x; 1: down,
// x per slot). Product i of the chain takes experts 8i .. 8i + k - 1 (mod 256): no repeats
// within 32 products, so L2 serves none.
void run_experts(DType type, int64_t rows, int64_t cols, int k, int count, double bw, cudaStream_t s) {
  const int experts = 256, chain = 32;
  const size_t rb = row_bytes(type, cols), one = rb * static_cast<size_t>(rows);
  Rng rng(11);
  std::vector<uint8_t> host(one);
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& x : src) x = rng.normal() * 0.02f;
    quantize_row(type, src.data(), host.data() + rb * static_cast<size_t>(r), cols);
  }
  WeightView ws[2], sh[2];
  std::vector<void*> bufs;
  for (int i = 0; i < count; ++i) {
    void *all, *shared;
    CK(cudaMalloc(&all, one * experts + 16));
    CK(cudaMalloc(&shared, one + 16));
    for (int e = 0; e < experts; ++e)
      CK(cudaMemcpy(static_cast<uint8_t*>(all) + one * e, host.data(), one, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(shared, host.data(), one, cudaMemcpyHostToDevice));
    bufs.push_back(all);
    bufs.push_back(shared);
    WeightView w;
    w.type = type;
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = rb;
    w.expert_bytes = one;
    w.num_experts = experts;
    w.data = all;
    ws[i] = w;
    w.num_experts = 1;
    w.data = shared;
    sh[i] = w;
  }
  const bool per_slot = count == 1;
  const int64_t xrows = per_slot ? k + 1 : 1;
  std::vector<float> xh(static_cast<size_t>(xrows * cols));
  for (float& x : xh) x = rng.normal();
  std::vector<int32_t> ids(static_cast<size_t>(chain * k));
  for (int i = 0; i < chain; ++i)
    for (int j = 0; j < k; ++j) ids[static_cast<size_t>(i * k + j)] = (8 * i + j) % experts;
  float *x, *xd, *y0, *y1;
  int8_t* xq;
  int32_t *xs, *d_ids;
  CK(cudaMalloc(&x, xh.size() * 4));
  CK(cudaMalloc(&xq, xh.size()));
  CK(cudaMalloc(&xd, xh.size() / 32 * 4));
  CK(cudaMalloc(&xs, xh.size() / 16 * 4));
  CK(cudaMalloc(&y0, static_cast<size_t>((k + 1) * rows) * 4));
  CK(cudaMalloc(&y1, static_cast<size_t>((k + 1) * rows) * 4));
  CK(cudaMalloc(&d_ids, ids.size() * 4));
  CK(cudaMemcpy(x, xh.data(), xh.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_ids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  backend::cuda::quantize_act_q8(x, xrows * cols, xq, xd, xs, s);
  const backend::cuda::Q8Buf xb{xq, xd, xs};
  float* const ys[2] = {y0, y1};
  const double bytes = static_cast<double>(one) * (k + 1) * count;
  fmt::print("experts {} [{} x {}] x{} (k {} + shared){}: {:.2f} MB a product\n", dtype_name(type), rows, cols,
             count, k, per_slot ? ", x per slot" : "", bytes / 1e6);
  const double t = time_chain(s, [&] {
                     for (int i = 0; i < chain; ++i)
                       backend::cuda::gemv_q8_experts(ws, ys, count, xb, per_slot, d_ids + i * k, 1, k, s, sh);
                   }) /
                   chain;
  fmt::print("  {:6.2f} us  {:5.0f} GB/s  {:5.1f}% of copy\n", t * 1e6, bytes / t / 1e9, 100.0 * bytes / t / bw);
  for (void* b : bufs) CK(cudaFree(b));
  for (void* b : {static_cast<void*>(x), static_cast<void*>(xq), static_cast<void*>(xd), static_cast<void*>(xs),
                  static_cast<void*>(y0), static_cast<void*>(y1), static_cast<void*>(d_ids)})
    CK(cudaFree(b));
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "cuda_gemv_bench: no CUDA device\n");
    return 1;
  }
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const double bw = bench::copy_bandwidth(s);
  // The floor: a chain of the smallest kernel at hand (one CTA quantizing 32 floats).
  const int n_small = 512;
  float *sx, *sd;
  int8_t* sq;
  int32_t* ss;
  CK(cudaMalloc(&sx, 128));
  CK(cudaMalloc(&sd, 16));
  CK(cudaMalloc(&sq, 32));
  CK(cudaMalloc(&ss, 16));
  CK(cudaMemset(sx, 0, 128));
  const double t_small = time_chain(s, [&] {
                           for (int i = 0; i < n_small; ++i) backend::cuda::quantize_act_q8(sx, 32, sq, sd, ss, s);
                         }) /
                         n_small;
  fmt::print("copy bandwidth {:.0f} GB/s; a one-CTA kernel in a graph chain: {:.2f} us\n", bw / 1e9,
             t_small * 1e6);
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) shapes.push_back(parse(argv[i]));
  if (shapes.empty()) {
    for (const char* d : {"Q4_K:12352:2048", "Q4_K:9216:2048", "Q4_K:2048:4096", "Q6_K:2048:4096",
                          "Q8_0:12352:2048", "Q4_K:6144:4096", "Q4_K:24576:4096", "Q6_K:4096:12288",
                          "Q8_0:24576:4096"})
      shapes.push_back(parse(d));
  }
  for (const Shape& sh : shapes) run_shape(sh, bw, s);
  if (argc == 1 ||
      std::getenv("GEMV_BENCH_EXPERTS") !=
          nullptr) {  // the Qwen3.6-35B-A3B expert products (k 8, 512 of 2048), Qwen3-30B-A3B's
    run_experts(DType::kQ4_K, 512, 2048, 8, 2, bw, s);
    run_experts(DType::kQ6_K, 2048, 512, 8, 1, bw, s);
    run_experts(DType::kQ4_K, 2048, 512, 8, 1, bw, s);
    run_experts(DType::kQ4_K, 768, 2048, 8, 2, bw, s);
  }
  return 0;
}
