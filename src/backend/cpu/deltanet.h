// Fast Gated DeltaNet kernels: causal conv, the gated delta rule (chunked for prefill,
// recurrent for decode), sigmoid gates. Semantics: backend.h; twins in ref_ops.h.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu {

void ssm_conv(ThreadPool& pool, const float* x, int64_t channels, const float* weight, int kernel,
              std::span<const RecurrentSeg> segs, float* out);
void gated_delta_rule(ThreadPool& pool, const float* qkv, const float* alpha, const float* beta,
                      const float* dt_bias, const float* a, const DeltaNetShape& shape,
                      std::span<const RecurrentSeg> segs, float* out);
void sigmoid_mul(ThreadPool& pool, float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim);

}  // namespace strata::backend::cpu
