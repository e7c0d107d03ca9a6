// Fast paged attention and KV store (AVX2, threaded). Semantics: backend.h; reference twins:
// ref::attention (naive softmax in double) and ref::kv_store.
#pragma once

#include <span>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace strata::backend::cpu {

// Flash-style: per work item (sequence, kv head, tile of up to 32 queries) all query heads of
// the group and all queries of the tile walk the visible KV blocks once, with an online
// softmax (running max per query row); items go out longest first, in a decode step as the
// pool's per-thread runs, otherwise through one shared counter. Prefill items decode each K/V block
// to f32 once; decode items (<= 4 rows) read K/V in their stored type directly. Decode items over
// F16 K/V take 512-bit inner loops where the AVX-512 kernels are enabled (dot_kernels.h); off: the
// AVX2 loops (benches compare the two).
void set_decode_attention_avx512(bool on);
// Prefill items likewise: 8 query rows at a time in 512-bit form (head_dim a multiple of 32);
// off: the AVX2 blocks of 4 rows (benches).
void set_prefill_attention_avx512(bool on);
// One-query sequences of at least 1024 keys (128 for groups of 8 query heads a KV head) are
// split into chunks of KV blocks read for all heads at once (default on); off: per-head items
// like the others (tests and benches).
void set_long_decode_attention(bool on);
// The context from which a one-query sequence takes it (default 1024 keys; groups of 8 take
// the smaller of this and 128); tests and benches.
void set_long_decode_min_keys(int64_t keys);
// Steps where every sequence brings one query: the work units go out as the pool's per-thread
// runs (ThreadPool::parallel_for; default on); off: through one shared counter, as prefill's do.
void set_decode_attention_runs(bool on);
void attention(ThreadPool& pool, const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out);

void kv_store(ThreadPool& pool, const PagedKv& kv, const float* k, const float* v, int64_t n,
              const int32_t* slots);

// One row of head_dim values of kv.type <-> f32 (AVX2 twins of ref::kv_encode_row/decode_row).
void kv_encode_row_fast(DType type, const float* src, void* dst, int64_t n);
void kv_decode_row_fast(DType type, const void* src, float* dst, int64_t n);

}  // namespace strata::backend::cpu
