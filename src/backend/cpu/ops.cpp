// Fast element-wise and small ops (see ops.h). Small calls stay on the caller's thread: a
// parallel_for costs a few microseconds, more than a 1024-element add.
#include "backend/cpu/ops.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/simd.h"
#include "core/check.h"
#include "core/quant.h"

namespace strata::backend::cpu {
namespace {

constexpr int64_t kParallelElems = 1 << 15;  // below this many elements: one thread

// fn(begin, end) over [0, n) units of `unit_elems` elements each.
template <typename F>
void maybe_parallel(ThreadPool& pool, int64_t n, int64_t unit_elems, F&& fn) {
  if (n * unit_elems < kParallelElems || n < 2) {
    fn(int64_t{0}, n);
    return;
  }
  pool.parallel_for(n, 1, [&](int, int64_t b, int64_t e) { fn(b, e); });
}

}  // namespace

void get_rows(ThreadPool& pool, const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  const bool plain = w.type == DType::kF32 || w.type == DType::kF16 || w.type == DType::kBF16;
  maybe_parallel(pool, n, w.cols, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      STRATA_CHECK(ids[i] >= 0 && ids[i] < w.rows);
      const void* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(ids[i]) * w.row_bytes;
      if (plain) {
        kv_decode_row_fast(w.type, row, out + i * w.cols, w.cols);
      } else {
        dequantize_row(w.type, row, out + i * w.cols, w.cols);
      }
    }
  });
}

void rms_norm(ThreadPool& pool, const float* x, const float* weight, int64_t n, int64_t dim,
              float eps, float* out) {
  maybe_parallel(pool, n, dim, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* xr = x + t * dim;
      float* o = out + t * dim;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= dim; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(xr + i), v1 = _mm256_loadu_ps(xr + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
      }
      for (; i + 8 <= dim; i += 8) {
        const __m256 v0 = _mm256_loadu_ps(xr + i);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
      }
      float ss = simd::hsum(_mm256_add_ps(a0, a1));
      for (; i < dim; ++i) ss += xr[i] * xr[i];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
      const __m256 iv = _mm256_set1_ps(inv);
      for (i = 0; i + 8 <= dim; i += 8) {
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), iv), _mm256_loadu_ps(weight + i)));
      }
      for (; i < dim; ++i) o[i] = xr[i] * inv * weight[i];
    }
  });
}

namespace {

// cos and sin of each pair's angle at `position` (double angle: position * freq loses bits in
// float), laid out for rope_rotate. Kept per thread for the last table and position asked for:
// a decode step asks the same for every layer, and the trigonometry cost more than the
// rotation.
struct RopeCoefs {
  RopeTable::Mode mode = RopeTable::Mode::kNormal;
  int n_rot = -1;
  float mscale = 0;
  std::vector<float> freqs;
  int32_t position = 0;
  std::vector<float> cs, sn;
};

const RopeCoefs& rope_coefs(const RopeTable& table, int32_t position) {
  thread_local RopeCoefs c;
  const int nr = table.n_rot, half = nr / 2;
  if (c.n_rot == nr && c.position == position && c.mode == table.mode && c.mscale == table.mscale &&
      std::equal(c.freqs.begin(), c.freqs.end(), table.freqs.begin(), table.freqs.begin() + half) &&
      static_cast<int>(c.freqs.size()) == half)
    return c;
  c.mode = table.mode;
  c.n_rot = nr;
  c.mscale = table.mscale;
  c.freqs.assign(table.freqs.begin(), table.freqs.begin() + half);
  c.position = position;
  c.cs.resize(static_cast<size_t>(nr));
  c.sn.resize(static_cast<size_t>(nr));
  const bool neox = table.mode == RopeTable::Mode::kNeox;
  for (int i = 0; i < half; ++i) {
    const double th = static_cast<double>(position) * table.freqs[i];
    const float co = static_cast<float>(std::cos(th) * table.mscale);
    const float si = static_cast<float>(std::sin(th) * table.mscale);
    if (neox) {
      c.cs[i] = co;
      c.sn[i] = si;
    } else {  // interleaved pairs: (c, c), (-s, s)
      c.cs[2 * i] = c.cs[2 * i + 1] = co;
      c.sn[2 * i] = -si;
      c.sn[2 * i + 1] = si;
    }
  }
  return c;
}

// num_heads heads of one token at x rotated by c.
void rope_rotate(float* x, int num_heads, int head_dim, const RopeCoefs& c) {
  const int nr = c.n_rot, half = nr / 2;
  const float* cs = c.cs.data();
  const float* sn = c.sn.data();
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    int i = 0;
    if (c.mode == RopeTable::Mode::kNeox) {
      for (; i + 8 <= half; i += 8) {
        const __m256 a = _mm256_loadu_ps(v + i), bb = _mm256_loadu_ps(v + i + half);
        const __m256 co = _mm256_loadu_ps(cs + i), si = _mm256_loadu_ps(sn + i);
        _mm256_storeu_ps(v + i, _mm256_fmsub_ps(a, co, _mm256_mul_ps(bb, si)));
        _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(a, si, _mm256_mul_ps(bb, co)));
      }
      for (; i < half; ++i) {
        const float a = v[i], bb = v[i + half];
        v[i] = a * cs[i] - bb * sn[i];
        v[i + half] = a * sn[i] + bb * cs[i];
      }
    } else {
      for (; i + 8 <= nr; i += 8) {
        const __m256 a = _mm256_loadu_ps(v + i);
        const __m256 sw = _mm256_permute_ps(a, 0xB1);  // (b, a) per pair
        _mm256_storeu_ps(v + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(cs + i),
                                                _mm256_mul_ps(sw, _mm256_loadu_ps(sn + i))));
      }
      for (; i < nr; i += 2) {
        const float a = v[i], bb = v[i + 1];
        v[i] = a * cs[i] + bb * sn[i];
        v[i + 1] = bb * cs[i + 1] + a * sn[i + 1];
      }
    }
  }
}

}  // namespace

void rope(ThreadPool& pool, float* x, int64_t n, int num_heads, int head_dim,
          const int32_t* positions, const RopeTable& table) {
  const int nr = table.n_rot;
  STRATA_CHECK(nr <= head_dim && nr % 2 == 0 && static_cast<int>(table.freqs.size()) >= nr / 2);
  maybe_parallel(pool, n, int64_t{num_heads} * head_dim, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      rope_rotate(x + t * num_heads * head_dim, num_heads, head_dim,
                  rope_coefs(table, positions[t]));
    }
  });
}

void swiglu(ThreadPool& pool, const float* gate, const float* up, int64_t n, int64_t dim,
            float* out) {
  maybe_parallel(pool, n, dim, [&](int64_t b, int64_t e) {
    const int64_t end = e * dim;
    int64_t i = b * dim;
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= end; i += 8) {
      const __m256 g = _mm256_loadu_ps(gate + i);
      const __m256 den = _mm256_add_ps(one, simd::exp(_mm256_xor_ps(g, sign)));
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, den), _mm256_loadu_ps(up + i)));
    }
    for (; i < end; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  });
}

void add(ThreadPool& pool, float* y, const float* x, int64_t count) {
  constexpr int64_t kUnit = 1024;
  maybe_parallel(pool, (count + kUnit - 1) / kUnit, kUnit, [&](int64_t b, int64_t e) {
    const int64_t end = std::min(count, e * kUnit);
    int64_t i = b * kUnit;
    for (; i + 8 <= end; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < end; ++i) y[i] += x[i];
  });
}

void topk_softmax(ThreadPool& pool, const float* logits, int64_t n, int num_experts, int k,
                  bool renormalize, int32_t* ids, float* weights) {
  // A few hundred experts per token at most: the scalar twin is fast enough; threads only.
  maybe_parallel(pool, n, int64_t{num_experts} * 16, [&](int64_t b, int64_t e) {
    ref::topk_softmax(logits + b * num_experts, e - b, num_experts, k, renormalize, ids + b * k,
                      weights + b * k);
  });
}

void weighted_sum(ThreadPool& pool, const float* x, const float* weights, int64_t n, int k,
                  int64_t dim, float* out) {
  maybe_parallel(pool, n, dim * k, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* o = out + t * dim;
      int64_t i = 0;
      for (; i + 8 <= dim; i += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int j = 0; j < k; ++j) {
          a = _mm256_fmadd_ps(_mm256_set1_ps(weights[t * k + j]), _mm256_loadu_ps(x + (t * k + j) * dim + i), a);
        }
        _mm256_storeu_ps(o + i, a);
      }
      for (; i < dim; ++i) {
        float a = 0;
        for (int j = 0; j < k; ++j) a += weights[t * k + j] * x[(t * k + j) * dim + i];
        o[i] = a;
      }
    }
  });
}

}  // namespace strata::backend::cpu
