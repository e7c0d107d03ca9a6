// Scalar twins of the Gated DeltaNet ops (semantics: backend.h): the recurrent form, token by
// token, in double. The fast kernels (deltanet.cpp) are tested against these.
#include <cmath>
#include <vector>

#include "backend/cpu/ref_ops.h"
#include "core/check.h"

namespace strata::backend::cpu::ref {

void ssm_conv(const float* x, int64_t channels, const float* weight, int kernel,
              std::span<const RecurrentSeg> segs, float* out) {
  const int64_t hist = kernel - 1;
  for (const RecurrentSeg& s : segs) {
    // xs [hist + rows, channels]: the previous inputs, then this segment's rows.
    std::vector<double> xs(static_cast<size_t>((hist + s.num_rows) * channels), 0.0);
    if (s.state_in != nullptr) {
      for (int64_t i = 0; i < hist * channels; ++i) xs[static_cast<size_t>(i)] = s.state_in[i];
    }
    for (int64_t t = 0; t < s.num_rows; ++t) {
      for (int64_t c = 0; c < channels; ++c) {
        xs[static_cast<size_t>((hist + t) * channels + c)] = x[(s.row_begin + t) * channels + c];
      }
    }
    for (int64_t t = 0; t < s.num_rows; ++t) {
      for (int64_t c = 0; c < channels; ++c) {
        double acc = 0;
        for (int j = 0; j < kernel; ++j) acc += weight[c * kernel + j] * xs[static_cast<size_t>((t + j) * channels + c)];
        out[(s.row_begin + t) * channels + c] = static_cast<float>(acc / (1.0 + std::exp(-acc)));
      }
    }
    for (int64_t i = 0; i < hist * channels; ++i) {
      s.state_out[i] = static_cast<float>(xs[static_cast<size_t>(s.num_rows * channels + i)]);
    }
  }
}

void gated_delta_rule(const float* qkv, const float* alpha, const float* beta, const float* dt_bias,
                      const float* a, const DeltaNetShape& sh, std::span<const RecurrentSeg> segs,
                      float* out) {
  const int hk = sh.num_k_heads, hv = sh.num_v_heads, dk = sh.head_k_dim, dv = sh.head_v_dim;
  STRATA_CHECK(hv % hk == 0);
  const int64_t key_dim = int64_t{hk} * dk, row = 2 * key_dim + int64_t{hv} * dv;
  const size_t head_state = static_cast<size_t>(dk) * dv;
  std::vector<double> S(head_state), q(dk), k(dk), kv(dv);
  for (const RecurrentSeg& s : segs) {
    for (int h = 0; h < hv; ++h) {
      const int kh = h % hk;
      for (size_t i = 0; i < head_state; ++i) S[i] = s.state_in != nullptr ? s.state_in[h * head_state + i] : 0.0;
      for (int64_t t = s.row_begin; t < s.row_begin + s.num_rows; ++t) {
        const float* r = qkv + t * row;
        double qq = 0, kk = 0;
        for (int i = 0; i < dk; ++i) {
          q[i] = r[kh * dk + i];
          k[i] = r[key_dim + kh * dk + i];
          qq += q[i] * q[i];
          kk += k[i] * k[i];
        }
        const double qs = 1.0 / std::sqrt(qq + 1e-6) / std::sqrt(static_cast<double>(dk));
        const double ks = 1.0 / std::sqrt(kk + 1e-6);
        for (int i = 0; i < dk; ++i) {
          q[i] *= qs;
          k[i] *= ks;
        }
        const double x = static_cast<double>(alpha[t * hv + h]) + dt_bias[h];
        const double softplus = x > 20 ? x : std::log1p(std::exp(x));
        const double decay = std::exp(static_cast<double>(a[h]) * softplus);
        const double b = 1.0 / (1.0 + std::exp(-static_cast<double>(beta[t * hv + h])));
        const float* v = r + 2 * key_dim + int64_t{h} * dv;
        for (int j = 0; j < dv; ++j) kv[j] = 0;
        for (int i = 0; i < dk; ++i) {
          for (int j = 0; j < dv; ++j) {
            S[i * dv + j] *= decay;
            kv[j] += S[i * dv + j] * k[i];
          }
        }
        for (int j = 0; j < dv; ++j) kv[j] = b * (v[j] - kv[j]);  // the delta
        float* o = out + (t * hv + h) * dv;
        for (int j = 0; j < dv; ++j) {
          double acc = 0;
          for (int i = 0; i < dk; ++i) {
            S[i * dv + j] += k[i] * kv[j];
            acc += S[i * dv + j] * q[i];
          }
          o[j] = static_cast<float>(acc);
        }
      }
      for (size_t i = 0; i < head_state; ++i) s.state_out[h * head_state + i] = static_cast<float>(S[i]);
    }
  }
}

void sigmoid_mul(float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim) {
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < dim; ++i) {
      const double g = gate[t * gate_dim + (gate_dim == 1 ? 0 : i)];
      x[t * dim + i] = static_cast<float>(x[t * dim + i] / (1.0 + std::exp(-g)));
    }
  }
}

}  // namespace strata::backend::cpu::ref
