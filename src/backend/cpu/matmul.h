// Threaded matmul driver: quantizes activations once per call, splits weight rows across
// threads (each streams its rows once), and walks row chunks x token tiles so a weight block
// decoded into registers serves kMaxTile tokens. Types without a fast kernel are dequantized
// a row chunk at a time to f32 and go through the F32 kernel.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/dot_kernels.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu {

// Buffers reused across calls (one CpuBackend, one caller at a time).
struct MatmulScratch {
  std::vector<uint8_t> act;                   // quantized activations
  std::vector<std::vector<float>> dequant;    // per thread: a row chunk dequantized to f32
  std::vector<float> gathered_x, gathered_y;  // matmul_experts: one expert's rows
  std::vector<int64_t> expert_slots;
  std::vector<int64_t> expert_offsets;
  std::vector<DotKernel> multi_kernels;  // matmul_multi
  std::vector<int64_t> multi_first_chunk;
  std::vector<std::vector<uint8_t>> packed;  // one token packed for a kernel's one-token path
  std::vector<const void*> multi_packed;     // matmul_multi: each product's packed token
  // One-token products (keyed by their first weight's address): where each thread's run of
  // it starts, and the product that followed it last time, for the threads to prefetch while
  // they wait (set_wait_prefetch).
  struct Product {
    WaitPrefetch starts;
    Product* next = nullptr;
  };
  std::unordered_map<const void*, Product> products;  // (nodes stay put: `next` stays valid)
  Product* last_product = nullptr;
};

// y[n, w.rows] = x[n, w.cols] . w^T
void matmul(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x,
            int64_t n, float* y);
// ys[i][n, ws[i].rows] = x . ws[i]^T for each i, x quantized once and all rows in one pass
// when the products share an activation format and column count.
void matmul_multi(ThreadPool& pool, MatmulScratch& scratch, std::span<const WeightView> ws, const float* x,
                  int64_t n, std::span<float* const> ys);
void matmul_experts(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w,
                    const float* x, bool x_per_slot, const int32_t* ids, int64_t n, int k,
                    float* y);
// Bytes of the start of its run of the next one-token product (the one that followed this
// product in the last decode step) each thread prefetches while it waits: for the others to
// finish this product, or for the next job; 0 = none. Benches.
void set_wait_prefetch(int64_t bytes);
// Tests and benches: false = one token's rows in kernel calls of a row chunk (16 rows) each,
// as for token tiles; true (default) = a thread's rows in one call.
void set_one_token_runs(bool on);
// Tests and benches: false = the one-token kernels pack the token at each call instead of once
// per product (DotKernel::pack, dot1; default true).
void set_one_token_packed(bool on);

}  // namespace strata::backend::cpu
