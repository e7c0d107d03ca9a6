// Scalar reference kernels (see ref_ops.h). Accumulate in double where a sum is long.
#include "backend/cpu/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/check.h"
#include "core/fp16.h"
#include "core/quant.h"

namespace strata::backend::cpu::ref {
namespace {

const uint8_t* weight_row(const WeightView& w, int64_t expert, int64_t row) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(expert) * w.expert_bytes +
         static_cast<size_t>(row) * w.row_bytes;
}

double dot_double(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    STRATA_CHECK(ids[i] >= 0 && ids[i] < w.rows);
    dequantize_row(w.type, weight_row(w, 0, ids[i]), out + i * w.cols, w.cols);
  }
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, weight_row(w, 0, r), row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      y[t * w.rows + r] = static_cast<float>(dot_double(row.data(), x + t * w.cols, w.cols));
    }
  }
}

void matmul_experts(const WeightView& w, const float* x, bool x_per_slot, const int32_t* ids,
                    int64_t n, int k, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t t = 0; t < n; ++t) {
    for (int s = 0; s < k; ++s) {
      const int32_t e = ids[t * k + s];
      STRATA_CHECK(e >= 0 && e < w.num_experts);
      const float* xr = x_per_slot ? x + (t * k + s) * w.cols : x + t * w.cols;
      for (int64_t r = 0; r < w.rows; ++r) {
        dequantize_row(w.type, weight_row(w, e, r), row.data(), w.cols);
        y[(t * k + s) * w.rows + r] = static_cast<float>(dot_double(row.data(), xr, w.cols));
      }
    }
  }
}

void rms_norm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xr = x + t * dim;
    const double ms = dot_double(xr, xr, dim) / static_cast<double>(dim);
    const double inv = 1.0 / std::sqrt(ms + eps);
    for (int64_t i = 0; i < dim; ++i) out[t * dim + i] = static_cast<float>(xr[i] * inv * weight[i]);
  }
}

void rope(float* x, int64_t n, int num_heads, int head_dim, const int32_t* positions,
          const RopeTable& table) {
  const int half = table.n_rot / 2;
  STRATA_CHECK(table.n_rot <= head_dim && table.n_rot % 2 == 0);
  STRATA_CHECK(static_cast<int>(table.freqs.size()) >= half);
  for (int64_t t = 0; t < n; ++t) {
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double theta = static_cast<double>(positions[t]) * table.freqs[i];
        const double c = std::cos(theta) * table.mscale, s = std::sin(theta) * table.mscale;
        const int ia = table.mode == RopeTable::Mode::kNormal ? 2 * i : i;
        const int ib = table.mode == RopeTable::Mode::kNormal ? 2 * i + 1 : i + half;
        const double a = v[ia], b = v[ib];
        v[ia] = static_cast<float>(a * c - b * s);
        v[ib] = static_cast<float>(a * s + b * c);
      }
    }
  }
}

bool kv_type_supported(DType type) {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16 ||
         type == DType::kQ8_0;
}

void kv_encode_row(DType type, const float* src, void* dst, int64_t n) {
  if (type != DType::kQ8_0) {
    quantize_row(type, src, dst, n);
    return;
  }
  STRATA_CHECK(n % 32 == 0);
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / 32; ++b, out += 34) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(src[b * 32 + i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t dh = f32_to_fp16(d);
    std::memcpy(out, &dh, 2);
    for (int i = 0; i < 32; ++i) {
      out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(src[b * 32 + i] * id)));
    }
  }
}

void kv_decode_row(DType type, const void* src, float* dst, int64_t n) {
  if (type != DType::kQ8_0) {
    dequantize_row(type, src, dst, n);
    return;
  }
  const uint8_t* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / 32; ++b, in += 34) {
    uint16_t dh;
    std::memcpy(&dh, in, 2);
    const float d = fp16_to_f32(dh);
    for (int i = 0; i < 32; ++i) dst[b * 32 + i] = d * static_cast<int8_t>(in[2 + i]);
  }
}

void kv_store(const PagedKv& kv, const float* k, const float* v, int64_t n, const int32_t* slots) {
  STRATA_CHECK(kv_type_supported(kv.type));
  STRATA_CHECK(kv.type != DType::kQ8_0 || kv.head_dim % 32 == 0);
  const size_t rb = row_bytes(kv.type, kv.head_dim);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t block = slots[t] / kv.block_tokens, off = slots[t] % kv.block_tokens;
    for (int h = 0; h < kv.num_kv_heads; ++h) {
      const size_t at =
          static_cast<size_t>(block) * kv.block_stride_bytes + kv_row_offset(kv, off, h, rb);
      const int64_t src = (t * kv.num_kv_heads + h) * kv.head_dim;
      kv_encode_row(kv.type, k + src, static_cast<uint8_t*>(kv.k) + at, kv.head_dim);
      kv_encode_row(kv.type, v + src, static_cast<uint8_t*>(kv.v) + at, kv.head_dim);
    }
  }
}

void attention(const float* q, int num_heads, const PagedKv& kv,
               std::span<const SeqAttention> seqs, float scale, float* out) {
  STRATA_CHECK(num_heads % kv.num_kv_heads == 0);
  const int group = num_heads / kv.num_kv_heads, hd = kv.head_dim;
  const size_t rb = row_bytes(kv.type, hd);
  std::vector<float> kr(hd), vr(hd);
  std::vector<double> p, acc(hd);
  for (const SeqAttention& s : seqs) {
    for (int64_t i = 0; i < s.q_count; ++i) {
      const int64_t qpos = s.kv_len - s.q_count + i;
      for (int h = 0; h < num_heads; ++h) {
        const float* qr = q + ((s.q_begin + i) * num_heads + h) * hd;
        const int kvh = h / group;
        p.assign(static_cast<size_t>(qpos + 1), 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= qpos; ++j) {
          kv_decode_row(kv.type, kv_row(kv.k, kv, s.block_table, j, kvh, rb), kr.data(), hd);
          p[j] = dot_double(qr, kr.data(), hd) * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (double& e : p) sum += (e = std::exp(e - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j <= qpos; ++j) {
          kv_decode_row(kv.type, kv_row(kv.v, kv, s.block_table, j, kvh, rb), vr.data(), hd);
          for (int d = 0; d < hd; ++d) acc[d] += p[j] * vr[d];
        }
        float* o = out + ((s.q_begin + i) * num_heads + h) * hd;
        for (int d = 0; d < hd; ++d) o[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
}

void swiglu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) {
  for (int64_t i = 0; i < n * dim; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void add(float* y, const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] += x[i];
}

void topk_softmax(const float* logits, int64_t n, int num_experts, int k, bool renormalize,
                  int32_t* ids, float* weights) {
  STRATA_CHECK(k >= 1 && k <= num_experts);
  std::vector<double> p(num_experts);
  std::vector<int32_t> order(num_experts);
  for (int64_t t = 0; t < n; ++t) {
    const float* l = logits + t * num_experts;
    const double mx = *std::max_element(l, l + num_experts);
    double sum = 0;
    for (int e = 0; e < num_experts; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (double& e : p) e /= sum;
    std::iota(order.begin(), order.end(), 0);
    // Highest weight first; ties go to the lower expert id.
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double ksum = 0;
    for (int s = 0; s < k; ++s) ksum += p[order[s]];
    for (int s = 0; s < k; ++s) {
      ids[t * k + s] = order[s];
      weights[t * k + s] = static_cast<float>(renormalize ? p[order[s]] / ksum : p[order[s]]);
    }
  }
}

void weighted_sum(const float* x, const float* weights, int64_t n, int k, int64_t dim,
                  float* out) {
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < dim; ++i) {
      double s = 0;
      for (int j = 0; j < k; ++j) s += static_cast<double>(weights[t * k + j]) * x[(t * k + j) * dim + i];
      out[t * dim + i] = static_cast<float>(s);
    }
  }
}

}  // namespace strata::backend::cpu::ref
