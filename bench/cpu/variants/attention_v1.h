// Variant 1 of paged attention: one query row and one key at a time.
#pragma once

#include <span>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu::v1 {

void attention(ThreadPool& pool, const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out);

}  // namespace strata::backend::cpu::v1
