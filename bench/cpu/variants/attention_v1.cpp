// VARIANT 1 of paged attention (kept for comparison; the product: src/backend/cpu/attention.cpp):
// per query row, one key at a time (dot + hsum), then p * v accumulated per row.
#include "backend/cpu/attention.h"
#include "variants/attention_v1.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/ref_ops.h"
#include "backend/cpu/simd.h"
#include "core/check.h"
#include "core/fp16.h"

namespace strata::backend::cpu::v1 {
namespace {

constexpr int kQueryTile = 8;  // queries of one sequence per work item (prefill)

float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = simd::hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y = y * c + sum_j p[j] * v[j], v rows hd apart
void scale_accumulate(float* y, float c, const float* p, const float* v, int nj, int hd) {
  int i = 0;
  for (; i + 8 <= hd; i += 8) {
    __m256 a = _mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_set1_ps(c));
    for (int j = 0; j < nj; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * hd + i), a);
    _mm256_storeu_ps(y + i, a);
  }
  for (; i < hd; ++i) {
    float a = y[i] * c;
    for (int j = 0; j < nj; ++j) a += p[j] * v[j * hd + i];
    y[i] = a;
  }
}

struct Item {
  int32_t seq;
  int32_t kv_head;
  int64_t q0, q1;  // query indices within the sequence
};

struct ItemScratch {
  std::vector<float> qs, acc, m, l, kt, vt, p;
};

void run_item(const Item& it, const float* q, int num_heads, const PagedKv& kv,
              const SeqAttention& s, float scale, float* out, ItemScratch& sc) {
  const int group = num_heads / kv.num_kv_heads, hd = kv.head_dim, bt = kv.block_tokens;
  const int nq = static_cast<int>(it.q1 - it.q0), rows = nq * group;
  const int bt_pad = (bt + 7) & ~7;
  const size_t rb = row_bytes(kv.type, hd);
  sc.qs.resize(static_cast<size_t>(rows) * hd);
  sc.acc.assign(static_cast<size_t>(rows) * hd, 0.0f);
  sc.m.assign(rows, -INFINITY);
  sc.l.assign(rows, 0.0f);
  sc.kt.resize(static_cast<size_t>(bt) * hd);
  sc.vt.resize(static_cast<size_t>(bt) * hd);
  sc.p.resize(bt_pad);
  // row r = query i * group + head-in-group; q pre-scaled
  for (int i = 0; i < nq; ++i) {
    for (int gh = 0; gh < group; ++gh) {
      const float* src = q + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
      float* dst = sc.qs.data() + (i * group + gh) * hd;
      for (int d = 0; d < hd; ++d) dst[d] = src[d] * scale;
    }
  }
  const int64_t pos0 = s.kv_len - s.q_count + it.q0;  // position of the tile's first query
  const int64_t last = pos0 + nq - 1;                 // last visible key of the tile
  for (int64_t p0 = 0; p0 <= last; p0 += bt) {
    const int nj = static_cast<int>(std::min<int64_t>(bt, last + 1 - p0));
    const int64_t block = s.block_table[p0 / bt];
    const uint8_t* kb = static_cast<const uint8_t*>(kv.k) + static_cast<size_t>(block) * kv.block_stride_bytes;
    const uint8_t* vb = static_cast<const uint8_t*>(kv.v) + static_cast<size_t>(block) * kv.block_stride_bytes;
    for (int j = 0; j < nj; ++j) {
      const size_t at =
          kv_row_offset(kv, j, it.kv_head, rb);  // (the blocks heads major since round 12)
      kv_decode_row_fast(kv.type, kb + at, sc.kt.data() + j * hd, hd);
      kv_decode_row_fast(kv.type, vb + at, sc.vt.data() + j * hd, hd);
    }
    for (int r = 0; r < rows; ++r) {
      const int64_t qpos = pos0 + r / group;
      const int vis = static_cast<int>(std::clamp<int64_t>(qpos + 1 - p0, 0, nj));  // keys j < vis
      if (vis == 0) continue;
      float* p = sc.p.data();
      const float* qr = sc.qs.data() + r * hd;
      float mx = sc.m[r];
      for (int j = 0; j < vis; ++j) {
        p[j] = dot(qr, sc.kt.data() + j * hd, hd);
        mx = std::max(mx, p[j]);
      }
      for (int j = vis; j < bt_pad; ++j) p[j] = -INFINITY;
      const __m256 mv = _mm256_set1_ps(mx);
      __m256 sum = _mm256_setzero_ps();
      for (int j = 0; j < vis; j += 8) {
        const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(p + j), mv));
        _mm256_storeu_ps(p + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      const float corr = sc.m[r] == -INFINITY ? 0.0f : std::exp(sc.m[r] - mx);
      sc.l[r] = sc.l[r] * corr + simd::hsum(sum);
      sc.m[r] = mx;
      scale_accumulate(sc.acc.data() + r * hd, corr, p, sc.vt.data(), vis, hd);
    }
  }
  for (int r = 0; r < rows; ++r) {
    const int i = r / group, gh = r % group;
    float* o = out + ((s.q_begin + it.q0 + i) * num_heads + it.kv_head * group + gh) * hd;
    const float inv = 1.0f / sc.l[r];
    for (int d = 0; d < hd; ++d) o[d] = sc.acc[r * hd + d] * inv;
  }
}

}  // namespace

void attention(ThreadPool& pool, const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out) {
  STRATA_CHECK(num_heads % kv.num_kv_heads == 0);
  STRATA_CHECK(ref::kv_type_supported(kv.type));
  std::vector<Item> items;
  for (size_t si = 0; si < seqs.size(); ++si) {
    STRATA_CHECK(seqs[si].q_count <= seqs[si].kv_len);
    for (int64_t q0 = 0; q0 < seqs[si].q_count; q0 += kQueryTile) {
      for (int g = 0; g < kv.num_kv_heads; ++g) {
        items.push_back({static_cast<int32_t>(si), g, q0, std::min(seqs[si].q_count, q0 + kQueryTile)});
      }
    }
  }
  // Largest items first (later query tiles see more keys), handed out dynamically.
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    return seqs[a.seq].kv_len - seqs[a.seq].q_count + a.q1 > seqs[b.seq].kv_len - seqs[b.seq].q_count + b.q1;
  });
  std::atomic<size_t> next{0};
  pool.run_on_all([&](int) {
    thread_local ItemScratch scratch;
    for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1)) {
      run_item(items[i], q, num_heads, kv, seqs[items[i].seq], scale, out, scratch);
    }
  });
}

}  // namespace strata::backend::cpu::v1
