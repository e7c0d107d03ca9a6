// Matmul driver (see matmul.h).
#include "backend/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "backend/cpu/dot_kernels.h"
#include "core/check.h"
#include "core/quant.h"

namespace strata::backend::cpu {
namespace {

constexpr int64_t kRowChunk = 16;  // weight rows kept hot while token tiles pass over them

const uint8_t* weight_row(const WeightView& w, int64_t row) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row) * w.row_bytes;
}

std::atomic<bool> g_one_token_runs{true};    // set_one_token_runs
std::atomic<bool> g_one_token_packed{true};  // set_one_token_packed
std::atomic<int64_t> g_wait_prefetch{192 << 10};  // set_wait_prefetch

// Rows [r0, r1) of w against all n activation rows (format of `k`), x_t at xa + t * xs. One
// token (decode) takes the rows in one kernel call, through k.dot1 where the token was packed
// for it once per product (packed: packed_token's, or nullptr): a row chunk keeps nothing hot
// for a single token, and the one-token kernels repack it at every call of k.dot
// (bench/cpu/NOTES.md, round 6: +7-9% decode in fast minutes for the calls, +2% for the pack).
void run_rows(const DotKernel& k, const WeightView& w, const uint8_t* xa, size_t xs, int64_t n,
              int64_t r0, int64_t r1, float* y, const void* packed = nullptr) {
  if (n == 1 && g_one_token_runs.load(std::memory_order_relaxed)) {
    if (r1 <= r0) return;
    const int nr = static_cast<int>(r1 - r0);
    if (packed != nullptr)
      k.dot1(weight_row(w, r0), w.row_bytes, nr, packed, xa, w.cols, y + r0);
    else
      k.dot(weight_row(w, r0), w.row_bytes, nr, xa, xs, 1, w.cols, y + r0, w.rows);
    return;
  }
  for (int64_t c0 = r0; c0 < r1; c0 += kRowChunk) {
    const int64_t c1 = std::min(r1, c0 + kRowChunk);
    for (int64_t t0 = 0; t0 < n; t0 += kMaxTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kMaxTile, n - t0));
      k.dot(weight_row(w, c0), w.row_bytes, static_cast<int>(c1 - c0), xa + t0 * xs, xs, nt, w.cols,
            y + t0 * w.rows + c0, w.rows);
    }
  }
}

// No fast kernel: dequantize a chunk of rows to f32 (per thread), then the F32 kernel.
void run_rows_generic(std::vector<float>& buf, const WeightView& w, const float* x, int64_t n,
                      int64_t r0, int64_t r1, float* y) {
  const DotKernel k = dot_kernel(DType::kF32);
  const size_t f32_row_bytes = static_cast<size_t>(w.cols) * sizeof(float);
  buf.resize(static_cast<size_t>(kRowChunk * w.cols));  // [kRowChunk, cols] f32
  for (int64_t c0 = r0; c0 < r1; c0 += kRowChunk) {
    const int64_t c1 = std::min(r1, c0 + kRowChunk);
    for (int64_t r = c0; r < c1; ++r) dequantize_row(w.type, weight_row(w, r), buf.data() + (r - c0) * w.cols, w.cols);
    for (int64_t t0 = 0; t0 < n; t0 += kMaxTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kMaxTile, n - t0));
      k.dot(buf.data(), f32_row_bytes, static_cast<int>(c1 - c0), x + t0 * w.cols, f32_row_bytes, nt, w.cols,
            y + t0 * w.rows + c0, w.rows);
    }
  }
}

}  // namespace

namespace {

// x quantized once into scratch.act for kernel k (rows of `cols`); returns the rows' base.
const uint8_t* quantized_activations(ThreadPool& pool, MatmulScratch& scratch, const DotKernel& k, const float* x,
                                     int64_t cols, int64_t n) {
  if (k.act == ActFormat::kF32) return reinterpret_cast<const uint8_t*>(x);
  const size_t xs = act_row_bytes(k.act, cols);
  scratch.act.resize(xs * static_cast<size_t>(n));
  uint8_t* dst = scratch.act.data();
  const auto quantize = [&](int, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) quantize_act_row(k.act, x + t * cols, cols, dst + t * xs);
  };
  if (n >= 8) {
    pool.parallel_for(n, 1, quantize);
  } else {
    quantize(0, 0, n);
  }
  return dst;
}

// One token (xa, k's format) packed once for k's one-token path into scratch slot `slot`, 64-byte
// aligned; nullptr where k has no such path or it is switched off.
const void* packed_token(MatmulScratch& scratch, const DotKernel& k, const uint8_t* xa,
                         int64_t cols, size_t slot) {
  if (k.dot1 == nullptr || !g_one_token_runs.load(std::memory_order_relaxed) ||
      !g_one_token_packed.load(std::memory_order_relaxed))
    return nullptr;
  if (scratch.packed.size() <= slot) scratch.packed.resize(slot + 1);
  std::vector<uint8_t>& buf = scratch.packed[slot];
  buf.resize(k.pack_bytes(cols) + 64);
  const auto base = reinterpret_cast<uintptr_t>(buf.data());
  void* p = buf.data() + ((64 - base % 64) % 64);
  k.pack(xa, cols, p);
  return p;
}

// A one-token product keyed by `key` (its first weight's address) comes now: records it as the
// successor of the product before it and where each thread's run of it starts (run_start(t):
// nullptr where t has none), and returns what the threads may prefetch while they wait: the
// start of their runs of the product that followed this one last time.
template <class RunStart>
const WaitPrefetch* next_product_prefetch(ThreadPool& pool, MatmulScratch& s, const void* key,
                                          RunStart run_start) {
  MatmulScratch::Product& p = s.products[key];
  if (s.last_product != nullptr && s.last_product != &p) s.last_product->next = &p;
  s.last_product = &p;
  // (written at every call, so that a product at a reused address is never stale for long)
  for (int t = 0; t < std::min(pool.num_threads(), WaitPrefetch::kMaxThreads); ++t)
    p.starts.at[t] = run_start(t);
  const int64_t bytes = g_wait_prefetch.load(std::memory_order_relaxed);
  if (p.next == nullptr || bytes <= 0) return nullptr;
  p.next->starts.bytes = static_cast<size_t>(bytes);
  return &p.next->starts;
}

// The product of matmul_multi's plan that row chunk c (numbered across them) belongs to.
size_t product_of_chunk(const std::vector<int64_t>& first, int64_t c) {
  return static_cast<size_t>(std::upper_bound(first.begin(), first.end(), c) - first.begin() - 1);
}

// matmul; track: a product of the step's sequence (not one expert's rows, whose order changes
// from token to token).
void matmul_tracked(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x,
                    int64_t n, float* y, bool track) {
  if (n <= 0 || w.rows <= 0) return;
  const DotKernel k = dot_kernel(w.type);
  if (k.dot == nullptr) {
    STRATA_CHECK_MSG(can_dequantize(w.type), "matmul: weight type cannot be dequantized");
    scratch.dequant.resize(static_cast<size_t>(pool.num_threads()));
    pool.parallel_for(w.rows, kRowChunk, [&](int ti, int64_t b, int64_t e) {
      run_rows_generic(scratch.dequant[ti], w, x, n, b, e, y);
    });
    return;
  }
  const uint8_t* xa = quantized_activations(pool, scratch, k, x, w.cols, n);
  const size_t xs = act_row_bytes(k.act, w.cols);
  const void* packed = n == 1 ? packed_token(scratch, k, xa, w.cols, 0) : nullptr;
  const WaitPrefetch* then = nullptr;
  if (n == 1 && track) {
    then = next_product_prefetch(pool, scratch, w.data, [&](int t) -> const char* {
      int64_t b = 0, e = 0;
      return pool.run_of(t, w.rows, kRowChunk, b, e)
                 ? reinterpret_cast<const char*>(weight_row(w, b))
                 : nullptr;
    });
  }
  // Rows in chunks handed out to the threads (grain: a row chunk).
  pool.parallel_for(
      w.rows, kRowChunk,
      [&](int, int64_t b, int64_t e) { run_rows(k, w, xa, xs, n, b, e, y, packed); }, then);
}

}  // namespace

void set_wait_prefetch(int64_t bytes) {
  g_wait_prefetch.store(std::max<int64_t>(0, bytes), std::memory_order_relaxed);
}

void set_one_token_runs(bool on) { g_one_token_runs.store(on, std::memory_order_relaxed); }
void set_one_token_packed(bool on) { g_one_token_packed.store(on, std::memory_order_relaxed); }

void matmul(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w, const float* x,
            int64_t n, float* y) {
  matmul_tracked(pool, scratch, w, x, n, y, true);
}

void matmul_multi(ThreadPool& pool, MatmulScratch& scratch, std::span<const WeightView> ws, const float* x,
                  int64_t n, std::span<float* const> ys) {
  STRATA_CHECK(ws.size() == ys.size());
  // One quantization of x and one pass over the concatenated rows when every product takes
  // the same activation format (q/k/v, gate/up of one layer); otherwise one product at a time.
  std::vector<DotKernel>& ks = scratch.multi_kernels;
  ks.clear();
  bool fused = n > 0 && !ws.empty();
  for (const WeightView& w : ws) {
    ks.push_back(dot_kernel(w.type));
    fused = fused && ks.back().dot != nullptr && ks.back().act == ks.front().act && w.cols == ws[0].cols;
  }
  if (!fused) {
    for (size_t i = 0; i < ws.size(); ++i) matmul(pool, scratch, ws[i], x, n, ys[i]);
    return;
  }
  const uint8_t* xa = quantized_activations(pool, scratch, ks[0], x, ws[0].cols, n);
  const size_t xs = act_row_bytes(ks[0].act, ws[0].cols);
  // One token: packed once for each kind of kernel among the products.
  std::vector<const void*>& packed = scratch.multi_packed;
  packed.assign(ws.size(), nullptr);
  for (size_t i = 0; n == 1 && i < ws.size(); ++i) {
    size_t j = 0;
    while (j < i && ks[j].pack != ks[i].pack) ++j;
    packed[i] = j < i ? packed[j] : packed_token(scratch, ks[i], xa, ws[i].cols, i);
  }
  // Chunks of whole row chunks of each product, numbered across the products in order.
  std::vector<int64_t>& first = scratch.multi_first_chunk;
  first.assign(1, 0);
  for (const WeightView& w : ws) first.push_back(first.back() + (w.rows + kRowChunk - 1) / kRowChunk);
  const WaitPrefetch* then = nullptr;
  if (n == 1) {
    then = next_product_prefetch(pool, scratch, ws[0].data, [&](int t) -> const char* {
      int64_t b = 0, e = 0;
      if (!pool.run_of(t, first.back(), 1, b, e)) return nullptr;
      const size_t i = product_of_chunk(first, b);
      return reinterpret_cast<const char*>(weight_row(ws[i], (b - first[i]) * kRowChunk));
    });
  }
  // A pool chunk [b, e) may span products: one run_rows per product it covers.
  pool.parallel_for(
      first.back(), 1,
      [&](int, int64_t b, int64_t e) {
        for (int64_t c = b; c < e;) {
          const size_t i = product_of_chunk(first, c);
          const WeightView& w = ws[i];
          const int64_t c_end = std::min(e, first[i + 1]);
          const int64_t r0 = (c - first[i]) * kRowChunk;
          run_rows(ks[i], w, xa, xs, n, r0, std::min(w.rows, (c_end - first[i]) * kRowChunk), ys[i],
                   packed[i]);
          c = c_end;
        }
      },
      then);
}

void matmul_experts(ThreadPool& pool, MatmulScratch& scratch, const WeightView& w,
                    const float* x, bool x_per_slot, const int32_t* ids, int64_t n, int k,
                    float* y) {
  const int64_t num_slots = n * k;
  const int64_t ne = w.num_experts;
  // Counting sort of slots by expert.
  auto& off = scratch.expert_offsets;
  auto& slots = scratch.expert_slots;
  off.assign(static_cast<size_t>(ne + 1), 0);
  for (int64_t s = 0; s < num_slots; ++s) {
    STRATA_CHECK(ids[s] >= 0 && ids[s] < ne);
    ++off[ids[s] + 1];
  }
  for (int64_t e = 0; e < ne; ++e) off[e + 1] += off[e];
  slots.resize(static_cast<size_t>(num_slots));
  std::vector<int64_t> fill(off.begin(), off.end() - 1);
  for (int64_t s = 0; s < num_slots; ++s) slots[fill[ids[s]]++] = s;

  for (int64_t e = 0; e < ne; ++e) {
    const int64_t cnt = off[e + 1] - off[e];
    if (cnt == 0) continue;
    scratch.gathered_x.resize(static_cast<size_t>(cnt * w.cols));
    scratch.gathered_y.resize(static_cast<size_t>(cnt * w.rows));
    for (int64_t i = 0; i < cnt; ++i) {
      const int64_t s = slots[off[e] + i];
      const float* src = x_per_slot ? x + s * w.cols : x + (s / k) * w.cols;
      std::memcpy(scratch.gathered_x.data() + i * w.cols, src, static_cast<size_t>(w.cols) * sizeof(float));
    }
    WeightView we = w;
    we.data = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(e) * w.expert_bytes;
    we.num_experts = 1;
    // gathered_x/y are not touched by matmul's own scratch use (act, dequant).
    matmul_tracked(pool, scratch, we, scratch.gathered_x.data(), cnt, scratch.gathered_y.data(),
                   false);
    for (int64_t i = 0; i < cnt; ++i) {
      const int64_t s = slots[off[e] + i];
      std::memcpy(y + s * w.rows, scratch.gathered_y.data() + i * w.rows, static_cast<size_t>(w.rows) * sizeof(float));
    }
  }
}

}  // namespace strata::backend::cpu
