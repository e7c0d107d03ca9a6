// cuda_bench: a Qwen3-8B-shaped decode step and prefill on the CUDA backend, judged against
// the roofs measured first on the same card: device-to-device copy bandwidth (decode is
// weight-streaming) and bf16 cuBLAS peak (prefill). Self-contained: random quantized weights
// at the real shapes (a pool of quantized rows tiled into distinct device buffers per layer),
// no GGUF file. Usage: cuda_bench [recipe ...]   (default: Q4_K_M Q8_0 moe:Q4_K_M; moe:R is the
// Qwen3-30B-A3B shape in recipe R)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "bench_util.h"
#include "backend/cuda/kernels.h"
#include "core/quant.h"
#include "core/rng.h"
#include "model/recipe.h"

using namespace strata;
using backend::WeightView;
using bench::copy_bandwidth;
using bench::time_it;

namespace {

// bf16 x bf16 -> bf16 (f32 accumulation) 8192^3 through cuBLAS, random data.
double bf16_peak(cudaStream_t s) {
  const int n = 8192;
  const size_t count = size_t{n} * n;
  std::vector<__nv_bfloat16> h(count);
  Rng rng(5);
  for (auto& v : h) v = __float2bfloat16(static_cast<float>(rng.uniform()) - 0.5f);
  void *a, *b, *c;
  CK(cudaMalloc(&a, count * 2));
  CK(cudaMalloc(&b, count * 2));
  CK(cudaMalloc(&c, count * 2));
  CK(cudaMemcpy(a, h.data(), count * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b, h.data(), count * 2, cudaMemcpyHostToDevice));
  cublasHandle_t hd;
  cublasCreate(&hd);
  cublasSetStream(hd, s);
  const float one = 1, zero = 0;
  const double t = time_it(s, 3, 10, [&] {
    if (cublasGemmEx(hd, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF,
                     n, &zero, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "cublasGemmEx failed\n");
      std::exit(1);
    }
  });
  cublasDestroy(hd);
  CK(cudaFree(a));
  CK(cudaFree(b));
  CK(cudaFree(c));
  return 2.0 * n * static_cast<double>(n) * n / t;
}

struct Shape {
  int64_t dim = 4096, heads = 32, kv_heads = 8, head_dim = 128, ffn = 12288, vocab = 151936,
          layers = 36;
};

struct Layer {
  WeightView q, k, v, o, gate, up, down;
};

// Host matrices: a pool of 64 distinct quantized rows tiled to `rows`, cached per shape.
class HostWeights {
 public:
  const std::vector<uint8_t>& get(DType t, int64_t rows, int64_t cols) {
    auto key = std::make_tuple(static_cast<int>(t), rows, cols);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const size_t rb = row_bytes(t, cols);
    const int pool = 64;
    std::vector<uint8_t> p(rb * pool);
    std::vector<float> src(static_cast<size_t>(cols));
    for (int r = 0; r < pool; ++r) {
      for (float& x : src) x = rng_.normal() * 0.02f;
      quantize_row(t, src.data(), p.data() + rb * r, cols);
    }
    std::vector<uint8_t> m(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(m.data() + rb * r, p.data() + rb * (r % pool), rb);
    return cache_[key] = std::move(m);
  }

 private:
  Rng rng_{9};
  std::map<std::tuple<int, int64_t, int64_t>, std::vector<uint8_t>> cache_;
};

WeightView upload(backend::CudaBackend& be, HostWeights& hw, const model::Recipe& recipe,
                  const std::string& name, int64_t rows, int64_t cols, int layers, size_t* bytes) {
  const DType t = model::tensor_type(recipe, name, {cols, rows}, layers);
  const auto& m = hw.get(t, rows, cols);
  WeightView w;
  w.data = m.data();
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = row_bytes(t, cols);
  w.expert_bytes = w.row_bytes * static_cast<size_t>(rows);
  *bytes += w.expert_bytes;
  return be.upload_weight(w);
}

float* dev_f32(backend::CudaBackend& be, size_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> h(n);
  for (float& x : h) x = rng.normal() * scale;
  float* d = be.alloc_f32(n);
  be.copy_from_host(h.data(), n, d);
  return d;
}

void run_recipe(const std::string& recipe_name, double bw, double peak) {
  const Shape S;
  auto recipe = model::find_recipe(recipe_name);
  if (!recipe.is_ok()) {
    fmt::print("unknown recipe {}\n", recipe_name);
    return;
  }
  backend::CudaBackend be;
  auto s = static_cast<cudaStream_t>(be.stream());
  HostWeights hw;
  size_t weight_bytes = 0;
  std::vector<Layer> L(static_cast<size_t>(S.layers));
  const int nl = static_cast<int>(S.layers);
  const int64_t qd = S.heads * S.head_dim, kvd = S.kv_heads * S.head_dim;
  for (int l = 0; l < nl; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& y = L[static_cast<size_t>(l)];
    y.q = upload(be, hw, *recipe, p + "attn_q.weight", qd, S.dim, nl, &weight_bytes);
    y.k = upload(be, hw, *recipe, p + "attn_k.weight", kvd, S.dim, nl, &weight_bytes);
    y.v = upload(be, hw, *recipe, p + "attn_v.weight", kvd, S.dim, nl, &weight_bytes);
    y.o = upload(be, hw, *recipe, p + "attn_output.weight", S.dim, qd, nl, &weight_bytes);
    y.gate = upload(be, hw, *recipe, p + "ffn_gate.weight", S.ffn, S.dim, nl, &weight_bytes);
    y.up = upload(be, hw, *recipe, p + "ffn_up.weight", S.ffn, S.dim, nl, &weight_bytes);
    y.down = upload(be, hw, *recipe, p + "ffn_down.weight", S.dim, S.ffn, nl, &weight_bytes);
  }
  const WeightView out_w =
      upload(be, hw, *recipe, "output.weight", S.vocab, S.dim, nl, &weight_bytes);
  fmt::print("\n== {}: weights {:.3f} GB (output {} {:.3f} GB, ffn_down[0] {}, attn_q {})\n",
             recipe_name, weight_bytes / 1e9, dtype_name(out_w.type), out_w.expert_bytes / 1e9,
             dtype_name(L[0].down.type), dtype_name(L[0].q.type));

  Rng rng(3);
  const int64_t nmax = 2048;
  float* x = dev_f32(be, nmax * S.dim, rng);
  float* h = dev_f32(be, nmax * S.dim, rng);
  float* q = dev_f32(be, nmax * qd, rng);
  float* k = dev_f32(be, nmax * kvd, rng);
  float* v = dev_f32(be, nmax * kvd, rng);
  float* att = dev_f32(be, nmax * qd, rng);
  float* f1 = dev_f32(be, nmax * S.ffn, rng);
  float* f2 = dev_f32(be, nmax * S.ffn, rng);
  float* logits = dev_f32(be, 16 * S.vocab, rng);
  float* norm_w = dev_f32(be, S.dim, rng);
  float* head_norm_w = dev_f32(be, S.head_dim, rng);

  // 1. The weight GEMVs of one token, captured in a graph: the kernels' bandwidth.
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  be.matmul(L[0].down, f1, 1, x);  // sizes the backend's scratch outside the capture
  be.matmul(out_w, x, 1, logits);
  be.synchronize();
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  for (const Layer& y : L) {
    be.matmul(y.q, h, 1, q);
    be.matmul(y.k, h, 1, k);
    be.matmul(y.v, h, 1, v);
    be.matmul(y.o, att, 1, h);
    be.matmul(y.gate, h, 1, f1);
    be.matmul(y.up, h, 1, f2);
    be.matmul(y.down, f1, 1, x);
  }
  be.matmul(out_w, x, 1, logits);
  CK(cudaStreamEndCapture(s, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  const double t_gemv = time_it(s, 3, 20, [&] { CK(cudaGraphLaunch(exec, s)); });
  fmt::print(
      "decode GEMVs (graph, n=1): {:.3f} ms/token, {:.0f} GB/s = {:.1f}% of copy bandwidth -> "
      "{:.0f} tok/s "
      "(roofline {:.0f} tok/s)\n",
      t_gemv * 1e3, weight_bytes / t_gemv / 1e9, 100.0 * weight_bytes / t_gemv / bw, 1.0 / t_gemv,
      bw / weight_bytes);
  // Per-shape: which GEMV falls short.
  struct One {
    const char* name;
    WeightView w;
  } ones[] = {{"attn_q", L[0].q},
              {"attn_k", L[0].k},
              {"ffn_up", L[0].up},
              {"ffn_down", L[0].down},
              {"output", out_w}};
  for (const One& o : ones) {
    // Rotate over the 36 layers' copies so L2 (50 MB) does not serve repeats.
    int li = 0;
    const bool per_layer = o.w.data != out_w.data;
    const double t = time_it(s, 3, 30, [&] {
      WeightView w = o.w;
      if (per_layer) {
        const Layer& y = L[static_cast<size_t>(li++ % nl)];
        w = std::string(o.name) == "attn_q"   ? y.q
            : std::string(o.name) == "attn_k" ? y.k
            : std::string(o.name) == "ffn_up" ? y.up
                                              : y.down;
      }
      be.matmul(w, std::string(o.name) == "ffn_down" ? f1 : x, 1, f2);
    });
    fmt::print("  gemv {:<8} {} [{} x {}]: {:.1f} us, {:.0f} GB/s ({:.1f}%)\n", o.name,
               dtype_name(o.w.type), o.w.rows, o.w.cols, t * 1e6, o.w.expert_bytes / t / 1e9,
               100.0 * o.w.expert_bytes / t / bw);
  }
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  {
    // v4: q/k/v and gate/up each as one launch over their concatenated rows, captured as one
    // graph (a graph bakes the launch shapes: each kernel choice below is captured anew).
    auto fused_graph_seconds = [&] {
      be.matmul(L[0].down, f1, 1, x);
      be.synchronize();
      CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
      for (const Layer& y : L) {
        const WeightView qkv[3] = {y.q, y.k, y.v};
        float* const qkv_y[3] = {q, k, v};
        be.matmul_multi(qkv, h, 1, qkv_y);
        be.matmul(y.o, att, 1, h);
        const WeightView gu[2] = {y.gate, y.up};
        float* const gu_y[2] = {f1, f2};
        be.matmul_multi(gu, h, 1, gu_y);
        be.matmul(y.down, f1, 1, x);
      }
      be.matmul(out_w, x, 1, logits);
      CK(cudaStreamEndCapture(s, &graph));
      CK(cudaGraphInstantiate(&exec, graph, 0));
      const double t = time_it(s, 3, 20, [&] { CK(cudaGraphLaunch(exec, s)); });
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(graph));
      return t;
    };
    const double t_fused = fused_graph_seconds();
    fmt::print(
        "decode GEMVs fused q/k/v, gate/up (graph, n=1): {:.3f} ms/token, {:.1f}% of copy "
        "bandwidth -> {:.0f} tok/s\n",
        t_fused * 1e3, 100.0 * weight_bytes / t_fused / bw, 1.0 / t_fused);
    // Kernel and rows per CTA forced: v3 (the CTA over R rows' parts) at 2 and 4 rows, v5 (a
    // warp per row or two) at 4 and 8. (The default choice by shape is the line above.)
    const std::pair<int, int> forced[] = {{3, 2}, {3, 4}, {5, 4}, {5, 8}};
    for (const auto& [variant, rows_per_cta] : forced) {
      backend::cuda::set_gemv_q8_variant(variant);
      backend::cuda::set_gemv_q8_rows(rows_per_cta);
      const double t_r = fused_graph_seconds();
      fmt::print("  fused GEMVs, v{} with {} rows per CTA: {:.3f} ms/token ({:.1f}%)\n", variant,
                 rows_per_cta, t_r * 1e3, 100.0 * weight_bytes / t_r / bw);
    }
    backend::cuda::set_gemv_q8_rows(0);
    backend::cuda::set_gemv_q8_variant(0);
  }

  // 2. A whole decode step through the Backend API (eager launches), context 1024, F16 K/V.
  const int ctx = 1024, bt = 64;
  backend::PagedKv kv;
  kv.type = DType::kF16;
  kv.block_tokens = bt;
  kv.num_kv_heads = static_cast<int>(S.kv_heads);
  kv.head_dim = static_cast<int>(S.head_dim);
  kv.block_stride_bytes = static_cast<size_t>(bt) * kvd * 2;
  const int blocks = 16 * (ctx / bt) + 1;
  std::vector<void*> kv_mem;
  std::vector<backend::PagedKv> kvs;
  for (int l = 0; l < nl; ++l) {
    backend::PagedKv p = kv;
    p.k = be.alloc_f32(kv.block_stride_bytes * blocks / 4);
    p.v = be.alloc_f32(kv.block_stride_bytes * blocks / 4);
    CK(cudaMemset(p.k, 0x33, kv.block_stride_bytes * blocks));
    CK(cudaMemset(p.v, 0x33, kv.block_stride_bytes * blocks));
    kvs.push_back(p);
  }
  std::vector<int32_t> table(blocks);
  for (int i = 0; i < blocks; ++i) table[static_cast<size_t>(i)] = blocks - 1 - i;
  std::vector<int32_t> pos1 = {ctx - 1}, slot1 = {table[(ctx - 1) / bt] * bt + (ctx - 1) % bt};
  backend::RopeTable rope;
  rope.mode = backend::RopeTable::Mode::kNeox;
  rope.n_rot = static_cast<int>(S.head_dim);
  for (int i = 0; i < rope.n_rot / 2; ++i)
    rope.freqs.push_back(std::pow(1e6f, -2.0f * i / rope.n_rot));
  const float scale = 1.0f / std::sqrt(static_cast<float>(S.head_dim));
  auto layer_step = [&](int l, int64_t n, const int32_t* pos, const int32_t* slots,
                        std::span<const backend::SeqAttention> seqs) {
    const Layer& y = L[static_cast<size_t>(l)];
    be.rms_norm(x, norm_w, n, S.dim, 1e-6f, h);
    const WeightView qkv[3] = {y.q, y.k, y.v};
    float* const qkv_y[3] = {q, k, v};
    be.matmul_multi(qkv, h, n, qkv_y);
    be.rms_norm(q, head_norm_w, n * S.heads, S.head_dim, 1e-6f, q);
    be.rms_norm(k, head_norm_w, n * S.kv_heads, S.head_dim, 1e-6f, k);
    be.rope(q, n, static_cast<int>(S.heads), static_cast<int>(S.head_dim), pos, rope);
    be.rope(k, n, static_cast<int>(S.kv_heads), static_cast<int>(S.head_dim), pos, rope);
    be.kv_store(kvs[static_cast<size_t>(l)], k, v, n, slots);
    be.attention(q, static_cast<int>(S.heads), kvs[static_cast<size_t>(l)], seqs, scale, att);
    be.matmul(y.o, att, n, h);
    be.add(x, h, n * S.dim);
    be.rms_norm(x, norm_w, n, S.dim, 1e-6f, h);
    const WeightView gu[2] = {y.gate, y.up};
    float* const gu_y[2] = {f1, f2};
    be.matmul_multi(gu, h, n, gu_y);
    be.swiglu(f1, f2, n, S.ffn, f1);
    be.matmul(y.down, f1, n, h);
    be.add(x, h, n * S.dim);
  };
  const backend::SeqAttention seq1{0, 1, ctx, table.data()};
  auto decode_step = [&](bool use_graph) {
    if (use_graph) be.begin_step({0x5eed, 1, ctx});
    for (int l = 0; l < nl; ++l) layer_step(l, 1, pos1.data(), slot1.data(), {&seq1, 1});
    be.rms_norm(x, norm_w, 1, S.dim, 1e-6f, h);
    be.matmul(out_w, h, 1, logits);
    if (use_graph) be.end_step();
  };
  const double kv_bytes = 2.0 * ctx * kvd * 2 * nl;
  const double step_bytes = weight_bytes + kv_bytes;
  for (const bool use_graph : {false, true}) {
    const double t_step = time_it(s, 3, 15, [&] { decode_step(use_graph); });
    fmt::print(
        "decode step ({}, ctx {}, F16 K/V): {:.3f} ms/token = {:.0f} tok/s, {:.1f}% of roofline "
        "({:.3f} GB weights+K/V per token)\n",
        use_graph ? "step graph" : "eager", ctx, t_step * 1e3, 1.0 / t_step,
        100.0 * step_bytes / t_step / bw, step_bytes / 1e9);
  }
  for (const int nseq : {2, 4, 8, 16}) {
    // nseq sequences of context 1024 decoding together (one token each), as one step graph.
    std::vector<std::vector<int32_t>> tables(nseq);
    std::vector<backend::SeqAttention> seqs;
    std::vector<int32_t> pos16, slot16;
    for (int i = 0; i < nseq; ++i) {
      // Each sequence's own blocks: a disjoint shuffled slice of a larger pool.
      for (int b = 0; b < ctx / bt; ++b) tables[i].push_back(i * (ctx / bt) + (b * 7) % (ctx / bt));
      seqs.push_back({i, 1, ctx, tables[i].data()});
      pos16.push_back(ctx - 1);
      slot16.push_back(tables[i][(ctx - 1) / bt] * bt + (ctx - 1) % bt);
    }
    const double t16 = time_it(s, 3, 10, [&] {
      be.begin_step({0xb00 + static_cast<uint64_t>(nseq), nseq, ctx, /*decode_only=*/true});
      for (int l = 0; l < nl; ++l) layer_step(l, nseq, pos16.data(), slot16.data(), seqs);
      be.rms_norm(x, norm_w, nseq, S.dim, 1e-6f, h);
      be.matmul(out_w, h, nseq, logits);
      be.end_step();
    });
    fmt::print("decode step, {} sequences (step graph, ctx {} each): {:.3f} ms = {:.0f} tok/s aggregate\n",
               nseq, ctx, t16 * 1e3, nseq / t16);
  }

  // 3. Prefill of 2048 tokens: matmuls (dequantize to bf16 + cuBLAS) and one whole layer.
  const int64_t n = 2048;
  const double layer_flops = 2.0 * n * static_cast<double>(S.dim) * (qd + 2 * kvd + qd + 3 * S.ffn);
  int li = 0;
  const double t_mm = time_it(s, 2, 10, [&] {
    const Layer& y = L[static_cast<size_t>(li++ % nl)];
    be.matmul(y.q, h, n, q);
    be.matmul(y.k, h, n, k);
    be.matmul(y.v, h, n, v);
    be.matmul(y.o, att, n, h);
    be.matmul(y.gate, h, n, f1);
    be.matmul(y.up, h, n, f2);
    be.matmul(y.down, f1, n, h);
  });
  fmt::print(
      "prefill {} tokens, one layer's matmuls: {:.3f} ms = {:.0f} TFLOP/s, {:.1f}% of bf16 peak\n",
      n, t_mm * 1e3, layer_flops / t_mm / 1e12, 100.0 * layer_flops / t_mm / peak);
  {
    // Where the prefill time goes: dequantizing ffn_up to bf16, and cuBLAS alone on it.
    __nv_bfloat16 *wb, *xb;
    float* yb;
    CK(cudaMalloc(&wb, static_cast<size_t>(S.ffn * S.dim) * 2));
    CK(cudaMalloc(&xb, static_cast<size_t>(n * S.dim) * 2));
    CK(cudaMalloc(&yb, static_cast<size_t>(n * S.ffn) * 4));
    int lj = 0;
    const double t_deq = time_it(s, 2, 10, [&] {
      backend::cuda::dequantize_bf16(L[static_cast<size_t>(lj++ % nl)].up, wb, s);
    });
    backend::cuda::f32_to_bf16(h, static_cast<size_t>(n * S.dim), xb, s);
    cublasHandle_t hd;
    cublasCreate(&hd);
    cublasSetStream(hd, s);
    const float one = 1, zero = 0;
    const int m = static_cast<int>(S.ffn), nn = static_cast<int>(n), kk = static_cast<int>(S.dim);
    const double t_gemm = time_it(s, 2, 10, [&] {
      cublasGemmEx(hd, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, kk, &one, wb, CUDA_R_16BF, kk, xb,
                   CUDA_R_16BF, kk, &zero, yb, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                   CUBLAS_GEMM_DEFAULT);
    });
    const double fl = 2.0 * n * static_cast<double>(S.ffn) * S.dim;
    const double deq_bytes = static_cast<double>(L[0].up.expert_bytes) + 2.0 * S.ffn * S.dim;
    fmt::print(
        "  ffn_up [{} x {}] {}: dequantize to bf16 {:.1f} us ({:.0f} GB/s moved, {:.1f}% of copy "
        "bw); cuBLAS "
        "bf16->f32 {:.1f} us = {:.0f} TFLOP/s ({:.1f}% of peak)\n",
        S.ffn, S.dim, dtype_name(L[0].up.type), t_deq * 1e6, deq_bytes / t_deq / 1e9,
        100.0 * deq_bytes / t_deq / bw, t_gemm * 1e6, fl / t_gemm / 1e12,
        100.0 * fl / t_gemm / peak);
    cublasDestroy(hd);
    CK(cudaFree(wb));
    CK(cudaFree(xb));
    CK(cudaFree(yb));
  }
  std::vector<int32_t> posn(n), slotn(n);
  for (int64_t i = 0; i < n; ++i) {
    posn[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    slotn[static_cast<size_t>(i)] =
        table[static_cast<size_t>(i / bt)] * bt + static_cast<int32_t>(i % bt);
  }
  const backend::SeqAttention seqn{0, n, n, table.data()};
  const double t_layer =
      time_it(s, 1, 5, [&] { layer_step(0, n, posn.data(), slotn.data(), {&seqn, 1}); });
  const double attn_flops = 4.0 * S.heads * S.head_dim * (static_cast<double>(n) * (n + 1) / 2);
  fmt::print(
      "prefill {} tokens, one whole layer: {:.3f} ms = {:.0f} TFLOP/s incl. attention ({:.1f}% of "
      "peak); "
      "model estimate {:.0f} tok/s\n",
      n, t_layer * 1e3, (layer_flops + attn_flops) / t_layer / 1e12,
      100.0 * (layer_flops + attn_flops) / t_layer / peak, n / (t_layer * nl));
  // The attention of that layer alone (causal, 32 heads over 8 KV heads), CTAs of 4 and 8 warps.
  for (const int warps : {4, 8}) {
    backend::cuda::set_attention_prefill_warps(warps);
    const double t_attn = time_it(s, 2, 10, [&] {
      be.attention(q, static_cast<int>(S.heads), kvs[0], {&seqn, 1}, scale, att);
    });
    fmt::print("  prefill attention alone ({} warps a CTA): {:.1f} us = {:.0f} TFLOP/s\n", warps,
               t_attn * 1e6, attn_flops / t_attn / 1e12);
  }
  backend::cuda::set_attention_prefill_warps(8);
  be.synchronize();
  for (auto& p : kvs) {
    be.free(p.k);
    be.free(p.v);
  }
  for (float* p : {x, h, q, k, v, att, f1, f2, logits, norm_w, head_norm_w}) be.free(p);
}

// A Qwen3-30B-A3B-shaped decode step (48 layers, dim 2048, 32/4 heads of 128, 128 experts of
// 768, top-8), batch 1, context 1024: roofline = weights a token reads (attention, router, the
// 8 chosen experts, output) + K/V, over the copy bandwidth. Routing stays on the device.
void run_moe(const std::string& recipe_name, double bw) {
  auto recipe = model::find_recipe(recipe_name);
  if (!recipe.is_ok()) return;
  const int64_t dim = 2048, heads = 32, kv_heads = 4, hd = 128, nexp = 128, ef = 768,
                vocab = 151936;
  const int nl = 48, topk = 8, ctx = 1024, bt = 64;
  const int64_t qd = heads * hd, kvd = kv_heads * hd;
  backend::CudaBackend be;
  auto s = static_cast<cudaStream_t>(be.stream());
  HostWeights hw;
  size_t bytes = 0, expert_bytes_all = 0;
  struct MoeLayer {
    WeightView q, k, v, o, router, gate, up, down;
  };
  std::vector<MoeLayer> L(nl);
  auto experts = [&](const std::string& name, int64_t rows, int64_t cols) {
    const DType t = model::tensor_type(*recipe, name, {cols, rows, nexp}, nl);
    const auto& m = hw.get(t, rows * nexp, cols);
    WeightView w;
    w.data = m.data();
    w.type = t;
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = row_bytes(t, cols);
    w.num_experts = nexp;
    w.expert_bytes = w.row_bytes * static_cast<size_t>(rows);
    bytes += w.expert_bytes * topk;  // read per token: the chosen experts
    expert_bytes_all += w.expert_bytes * nexp;
    return be.upload_weight(w);
  };
  for (int l = 0; l < nl; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    MoeLayer& y = L[static_cast<size_t>(l)];
    y.q = upload(be, hw, *recipe, p + "attn_q.weight", qd, dim, nl, &bytes);
    y.k = upload(be, hw, *recipe, p + "attn_k.weight", kvd, dim, nl, &bytes);
    y.v = upload(be, hw, *recipe, p + "attn_v.weight", kvd, dim, nl, &bytes);
    y.o = upload(be, hw, *recipe, p + "attn_output.weight", dim, qd, nl, &bytes);
    y.router = upload(be, hw, *recipe, p + "ffn_gate_inp.weight", nexp, dim, nl, &bytes);
    y.gate = experts(p + "ffn_gate_exps.weight", ef, dim);
    y.up = experts(p + "ffn_up_exps.weight", ef, dim);
    y.down = experts(p + "ffn_down_exps.weight", dim, ef);
  }
  const WeightView out_w = upload(be, hw, *recipe, "output.weight", vocab, dim, nl, &bytes);
  const double kv_bytes = 2.0 * ctx * kvd * 2 * nl;
  const double step_bytes = static_cast<double>(bytes) + kv_bytes;
  fmt::print("\n== Qwen3-30B-A3B shape {}: {:.2f} GB of experts on the device; {:.3f} GB read per "
             "token (8 experts/layer) + {:.3f} GB K/V -> roofline {:.0f} tok/s\n",
             recipe_name, expert_bytes_all / 1e9, bytes / 1e9, kv_bytes / 1e9, bw / step_bytes);
  Rng rng(4);
  float* x = dev_f32(be, dim, rng);
  float* h = dev_f32(be, dim, rng);
  float* q = dev_f32(be, qd, rng);
  float* k = dev_f32(be, kvd, rng);
  float* v = dev_f32(be, kvd, rng);
  float* att = dev_f32(be, qd, rng);
  float* rl = dev_f32(be, nexp, rng);
  float* tw = dev_f32(be, topk, rng);
  auto* ti = reinterpret_cast<int32_t*>(dev_f32(be, topk, rng));
  float* f1 = dev_f32(be, topk * ef, rng);
  float* f2 = dev_f32(be, topk * ef, rng);
  float* fo = dev_f32(be, topk * dim, rng);
  float* logits = dev_f32(be, vocab, rng);
  float* norm_w = dev_f32(be, dim, rng);
  float* head_norm_w = dev_f32(be, hd, rng);
  backend::PagedKv kv;
  kv.type = DType::kF16;
  kv.block_tokens = bt;
  kv.num_kv_heads = static_cast<int>(kv_heads);
  kv.head_dim = static_cast<int>(hd);
  kv.block_stride_bytes = static_cast<size_t>(bt) * kvd * 2;
  const int blocks = ctx / bt;
  std::vector<backend::PagedKv> kvs;
  for (int l = 0; l < nl; ++l) {
    backend::PagedKv p = kv;
    p.k = be.alloc_f32(kv.block_stride_bytes * blocks / 4);
    p.v = be.alloc_f32(kv.block_stride_bytes * blocks / 4);
    CK(cudaMemset(p.k, 0x33, kv.block_stride_bytes * blocks));
    CK(cudaMemset(p.v, 0x33, kv.block_stride_bytes * blocks));
    kvs.push_back(p);
  }
  std::vector<int32_t> table(blocks);
  for (int i = 0; i < blocks; ++i) table[static_cast<size_t>(i)] = blocks - 1 - i;
  std::vector<int32_t> pos = {ctx - 1}, slot = {table[(ctx - 1) / bt] * bt + (ctx - 1) % bt};
  backend::RopeTable rope;
  rope.mode = backend::RopeTable::Mode::kNeox;
  rope.n_rot = static_cast<int>(hd);
  for (int i = 0; i < rope.n_rot / 2; ++i) rope.freqs.push_back(std::pow(1e6f, -2.0f * i / rope.n_rot));
  const backend::SeqAttention seq{0, 1, ctx, table.data()};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto step = [&](bool use_graph) {
    if (use_graph) be.begin_step({0x30b, 1, ctx});
    for (int l = 0; l < nl; ++l) {
      const MoeLayer& y = L[static_cast<size_t>(l)];
      be.rms_norm(x, norm_w, 1, dim, 1e-6f, h);
      const WeightView qkv[3] = {y.q, y.k, y.v};
      float* const qkv_y[3] = {q, k, v};
      be.matmul_multi(qkv, h, 1, qkv_y);
      be.rms_norm(q, head_norm_w, heads, hd, 1e-6f, q);
      be.rms_norm(k, head_norm_w, kv_heads, hd, 1e-6f, k);
      be.rope(q, 1, static_cast<int>(heads), static_cast<int>(hd), pos.data(), rope);
      be.rope(k, 1, static_cast<int>(kv_heads), static_cast<int>(hd), pos.data(), rope);
      be.kv_store(kvs[static_cast<size_t>(l)], k, v, 1, slot.data());
      be.attention(q, static_cast<int>(heads), kvs[static_cast<size_t>(l)], {&seq, 1}, scale, att);
      be.matmul(y.o, att, 1, h);
      be.add(x, h, dim);
      be.rms_norm(x, norm_w, 1, dim, 1e-6f, h);
      be.matmul(y.router, h, 1, rl);
      be.topk_softmax(rl, 1, static_cast<int>(nexp), topk, true, ti, tw);
      be.matmul_experts(y.gate, h, false, ti, 1, topk, f1);
      be.matmul_experts(y.up, h, false, ti, 1, topk, f2);
      be.swiglu(f1, f2, topk, ef, f1);
      be.matmul_experts(y.down, f1, true, ti, 1, topk, fo);
      be.weighted_sum(fo, tw, 1, topk, dim, h);
      be.add(x, h, dim);
    }
    be.rms_norm(x, norm_w, 1, dim, 1e-6f, h);
    be.matmul(out_w, h, 1, logits);
    if (use_graph) be.end_step();
  };
  for (const bool use_graph : {false, true}) {
    const double t = time_it(s, 3, 15, [&] { step(use_graph); });
    fmt::print("moe decode step ({}, ctx {}): {:.3f} ms/token = {:.0f} tok/s, {:.1f}% of roofline\n",
               use_graph ? "step graph" : "eager", ctx, t * 1e3, 1.0 / t,
               100.0 * step_bytes / t / bw);
  }
  be.synchronize();
}

}  // namespace

int main(int argc, char** argv) {
  if (!backend::CudaBackend::available()) {
    std::fprintf(stderr, "cuda_bench: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  const double bw = copy_bandwidth(s);
  const double peak = bf16_peak(s);
  fmt::print("device: {} ({} SMs, {:.0f} MB L2)\n", prop.name, prop.multiProcessorCount,
             prop.l2CacheSize / 1e6);
  fmt::print("roofs: device copy {:.0f} GB/s (read+write), bf16 cuBLAS 8192^3 {:.0f} TFLOP/s\n",
             bw / 1e9, peak / 1e12);
  CK(cudaStreamDestroy(s));
  std::vector<std::string> recipes;
  for (int i = 1; i < argc; ++i) recipes.emplace_back(argv[i]);
  if (recipes.empty()) recipes = {"Q4_K_M", "Q8_0", "moe:Q4_K_M"};
  for (const auto& r : recipes) {
    if (r.rfind("moe:", 0) == 0)
      run_moe(r.substr(4), bw);
    else
      run_recipe(r, bw, peak);
  }
  return 0;
}
