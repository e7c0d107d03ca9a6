// Fast (AVX2, threaded) element-wise and small ops. Semantics: backend.h; twins in ref_ops.h.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu {

void get_rows(ThreadPool& pool, const WeightView& w, const int32_t* ids, int64_t n, float* out);
void rms_norm(ThreadPool& pool, const float* x, const float* weight, int64_t n, int64_t dim,
              float eps, float* out);
void rope(ThreadPool& pool, float* x, int64_t n, int num_heads, int head_dim,
          const int32_t* positions, const RopeTable& table);
void swiglu(ThreadPool& pool, const float* gate, const float* up, int64_t n, int64_t dim,
            float* out);
void add(ThreadPool& pool, float* y, const float* x, int64_t count);
void topk_softmax(ThreadPool& pool, const float* logits, int64_t n, int num_experts, int k,
                  bool renormalize, int32_t* ids, float* weights);
void weighted_sum(ThreadPool& pool, const float* x, const float* weights, int64_t n, int k,
                  int64_t dim, float* out);

}  // namespace strata::backend::cpu
