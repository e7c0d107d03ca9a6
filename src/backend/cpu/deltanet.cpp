// Fast Gated DeltaNet kernels (semantics: backend.h; scalar twins: deltanet_ref.cpp).
//
// gated_delta_rule runs each value head on its own task, walking the segments in order. Inside
// a segment, tokens go in chunks of kChunk aligned to absolute positions (so a sequence cut at
// other places, e.g. resumed from a cached block, computes every token the same way):
//  - one token: the recurrent form (decode);
//  - more: the chunked form (the WY / "UT transform" representation of DeltaNet, Yang et al.
//    2024, as in HF transformers' torch_chunk_gated_delta_rule): with G the cumulative log
//    decay inside the chunk, L[i][j] = b_i (k_i.k_j) exp(G_i - G_j) for j < i,
//      u = (I + L)^-1 (b v),  w = (I + L)^-1 (b exp(G) k)    (forward substitution)
//      v' = u - w S,  out_i = exp(G_i) q_i S + sum_{j<=i} (q_i.k_j) exp(G_i - G_j) v'_j,
//      S <- exp(G_last) S + sum_j exp(G_last - G_j) k_j v'_j^T.
//    Its products are matrix-shaped (L x dk x dv) where the recurrent form is L rank-1 updates.
#include "backend/cpu/deltanet.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"

namespace strata::backend::cpu {
namespace {

constexpr int kChunk = 64;

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// Per-task scratch for one chunk of one head.
struct ChunkScratch {
  std::vector<float> q, k, v, g, b;  // [L, dk], [L, dk], [L, dv], [L], [L]
  std::vector<float> kk, u, w;       // [L, L], [L, dv], [L, dk]
  void resize(int dk, int dv) {
    q.resize(static_cast<size_t>(kChunk) * dk);
    k.resize(static_cast<size_t>(kChunk) * dk);
    v.resize(static_cast<size_t>(kChunk) * dv);
    g.resize(kChunk);
    b.resize(kChunk);
    kk.resize(static_cast<size_t>(kChunk) * kChunk);
    u.resize(static_cast<size_t>(kChunk) * dv);
    w.resize(static_cast<size_t>(kChunk) * dk);
  }
};

inline float dot(const float* x, const float* y, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// One token: S [dk, dv] in place; o [dv].
void recurrent_step(float* S, const float* q, const float* k, const float* v, float decay, float b, int dk,
                    int dv, float* kv, float* o) {
  std::fill(kv, kv + dv, 0.0f);
  for (int i = 0; i < dk; ++i) {
    float* s = S + static_cast<size_t>(i) * dv;
    const float ki = k[i];
    for (int j = 0; j < dv; ++j) {
      s[j] *= decay;
      kv[j] += s[j] * ki;
    }
  }
  for (int j = 0; j < dv; ++j) kv[j] = b * (v[j] - kv[j]);
  std::fill(o, o + dv, 0.0f);
  for (int i = 0; i < dk; ++i) {
    float* s = S + static_cast<size_t>(i) * dv;
    const float ki = k[i], qi = q[i];
    for (int j = 0; j < dv; ++j) {
      s[j] += ki * kv[j];
      o[j] += s[j] * qi;
    }
  }
}

// L tokens of one head, already normalised (c.q, c.k, c.v, c.g = log decay, c.b); S in place;
// out rows `out_stride` apart.
void chunk_step(ChunkScratch& c, float* S, int L, int dk, int dv, float* out, int64_t out_stride) {
  float* G = c.g.data();
  for (int i = 1; i < L; ++i) G[i] += G[i - 1];  // cumulative log decay
  const float* q = c.q.data();
  const float* k = c.k.data();
  float* kk = c.kk.data();
  for (int i = 0; i < L; ++i) {
    for (int j = 0; j <= i; ++j) kk[i * kChunk + j] = dot(k + i * dk, k + j * dk, dk);
  }
  // Forward substitution: u_i = b_i v_i - sum_{j<i} L_ij u_j; w likewise with b_i exp(G_i) k_i.
  for (int i = 0; i < L; ++i) {
    float* ui = c.u.data() + static_cast<size_t>(i) * dv;
    float* wi = c.w.data() + static_cast<size_t>(i) * dk;
    const float bi = c.b[i], eg = std::exp(G[i]);
    for (int j = 0; j < dv; ++j) ui[j] = bi * c.v[static_cast<size_t>(i) * dv + j];
    for (int j = 0; j < dk; ++j) wi[j] = bi * eg * k[i * dk + j];
    for (int m = 0; m < i; ++m) {
      const float l = bi * kk[i * kChunk + m] * std::exp(G[i] - G[m]);
      const float* um = c.u.data() + static_cast<size_t>(m) * dv;
      const float* wm = c.w.data() + static_cast<size_t>(m) * dk;
      for (int j = 0; j < dv; ++j) ui[j] -= l * um[j];
      for (int j = 0; j < dk; ++j) wi[j] -= l * wm[j];
    }
  }
  // v' = u - w S (into u); out_i = exp(G_i) q_i S + sum_{j<=i} (q_i.k_j) exp(G_i - G_j) v'_j.
  for (int i = 0; i < L; ++i) {
    float* ui = c.u.data() + static_cast<size_t>(i) * dv;
    float* o = out + i * out_stride;
    std::fill(o, o + dv, 0.0f);
    const float eg = std::exp(G[i]);
    for (int r = 0; r < dk; ++r) {
      const float* s = S + static_cast<size_t>(r) * dv;
      const float wr = c.w[static_cast<size_t>(i) * dk + r], qr = q[i * dk + r] * eg;
      for (int j = 0; j < dv; ++j) {
        ui[j] -= wr * s[j];
        o[j] += qr * s[j];
      }
    }
  }
  for (int i = 0; i < L; ++i) {
    float* o = out + i * out_stride;
    for (int m = 0; m <= i; ++m) {
      const float a = dot(q + i * dk, k + m * dk, dk) * std::exp(G[i] - G[m]);
      const float* um = c.u.data() + static_cast<size_t>(m) * dv;
      for (int j = 0; j < dv; ++j) o[j] += a * um[j];
    }
  }
  // S <- exp(G_last) S + sum_m exp(G_last - G_m) k_m v'_m^T.
  const float last = G[L - 1], el = std::exp(last);
  for (int r = 0; r < dk; ++r) {
    float* s = S + static_cast<size_t>(r) * dv;
    for (int j = 0; j < dv; ++j) s[j] *= el;
    for (int m = 0; m < L; ++m) {
      const float km = k[m * dk + r] * std::exp(last - G[m]);
      const float* um = c.u.data() + static_cast<size_t>(m) * dv;
      for (int j = 0; j < dv; ++j) s[j] += km * um[j];
    }
  }
}

}  // namespace

void ssm_conv(ThreadPool& pool, const float* x, int64_t channels, const float* weight, int kernel,
              std::span<const RecurrentSeg> segs, float* out) {
  const int64_t hist = kernel - 1;
  // Weight as [kernel, channels] so the inner loops run along channels.
  std::vector<float> wt(static_cast<size_t>(kernel * channels));
  for (int64_t c = 0; c < channels; ++c) {
    for (int j = 0; j < kernel; ++j) wt[static_cast<size_t>(j * channels + c)] = weight[c * kernel + j];
  }
  constexpr int64_t kBlock = 256;  // channels per task
  const int64_t num_blocks = (channels + kBlock - 1) / kBlock;
  pool.parallel_for(num_blocks, 1, [&](int, int64_t b0, int64_t b1) {
    std::vector<float> xs;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = blk * kBlock, nc = std::min(kBlock, channels - c0);
      for (const RecurrentSeg& s : segs) {
        // xs [hist + rows, nc]: previous inputs, then this segment's rows.
        xs.assign(static_cast<size_t>((hist + s.num_rows) * nc), 0.0f);
        if (s.state_in != nullptr) {
          for (int64_t r = 0; r < hist; ++r) std::memcpy(&xs[static_cast<size_t>(r * nc)], s.state_in + r * channels + c0, nc * 4);
        }
        for (int64_t t = 0; t < s.num_rows; ++t) {
          std::memcpy(&xs[static_cast<size_t>((hist + t) * nc)], x + (s.row_begin + t) * channels + c0, nc * 4);
        }
        for (int64_t t = 0; t < s.num_rows; ++t) {
          float* o = out + (s.row_begin + t) * channels + c0;
          std::fill(o, o + nc, 0.0f);
          for (int j = 0; j < kernel; ++j) {
            const float* xr = &xs[static_cast<size_t>((t + j) * nc)];
            const float* wr = &wt[static_cast<size_t>(j * channels + c0)];
            for (int64_t c = 0; c < nc; ++c) o[c] += wr[c] * xr[c];
          }
          for (int64_t c = 0; c < nc; ++c) o[c] = silu(o[c]);
        }
        for (int64_t r = 0; r < hist; ++r) {
          std::memcpy(s.state_out + r * channels + c0, &xs[static_cast<size_t>((s.num_rows + r) * nc)], nc * 4);
        }
      }
    }
  });
}

void gated_delta_rule(ThreadPool& pool, const float* qkv, const float* alpha, const float* beta,
                      const float* dt_bias, const float* a, const DeltaNetShape& sh,
                      std::span<const RecurrentSeg> segs, float* out) {
  const int hk = sh.num_k_heads, hv = sh.num_v_heads, dk = sh.head_k_dim, dv = sh.head_v_dim;
  STRATA_CHECK(hv % hk == 0);
  const int64_t key_dim = int64_t{hk} * dk, row = 2 * key_dim + int64_t{hv} * dv;
  const size_t head_state = static_cast<size_t>(dk) * dv;
  const float qscale = 1.0f / std::sqrt(static_cast<float>(dk));
  pool.parallel_for(hv, 1, [&](int, int64_t h0, int64_t h1) {
    ChunkScratch c;
    c.resize(dk, dv);
    std::vector<float> kv(static_cast<size_t>(dv));
    for (int64_t h = h0; h < h1; ++h) {
      const int kh = static_cast<int>(h % hk);
      for (const RecurrentSeg& s : segs) {
        float* S = s.state_out + h * head_state;
        if (s.state_in == nullptr) std::fill(S, S + head_state, 0.0f);
        else if (s.state_in != s.state_out) std::memcpy(S, s.state_in + h * head_state, head_state * 4);
        int64_t t = 0;
        while (t < s.num_rows) {
          // Chunks end at absolute multiples of kChunk.
          const int64_t pos = s.pos_begin + t;
          const int L = static_cast<int>(std::min<int64_t>(s.num_rows - t, kChunk - pos % kChunk));
          for (int i = 0; i < L; ++i) {
            const int64_t r = s.row_begin + t + i;
            const float* src = qkv + r * row;
            float* qi = c.q.data() + static_cast<size_t>(i) * dk;
            float* ki = c.k.data() + static_cast<size_t>(i) * dk;
            std::memcpy(qi, src + kh * dk, dk * 4);
            std::memcpy(ki, src + key_dim + kh * dk, dk * 4);
            std::memcpy(c.v.data() + static_cast<size_t>(i) * dv, src + 2 * key_dim + h * dv, dv * 4);
            const float qs = qscale / std::sqrt(dot(qi, qi, dk) + 1e-6f), ks = 1.0f / std::sqrt(dot(ki, ki, dk) + 1e-6f);
            for (int j = 0; j < dk; ++j) {
              qi[j] *= qs;
              ki[j] *= ks;
            }
            c.g[i] = a[h] * softplus(alpha[r * hv + h] + dt_bias[h]);
            c.b[i] = sigmoid(beta[r * hv + h]);
          }
          float* o = out + ((s.row_begin + t) * hv + h) * dv;
          if (L == 1) {
            recurrent_step(S, c.q.data(), c.k.data(), c.v.data(), std::exp(c.g[0]), c.b[0], dk, dv, kv.data(), o);
          } else {
            chunk_step(c, S, L, dk, dv, o, int64_t{hv} * dv);
          }
          t += L;
        }
      }
    }
  });
}

void sigmoid_mul(ThreadPool& pool, float* x, const float* gate, int64_t n, int64_t dim, int64_t gate_dim) {
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* xr = x + t * dim;
      const float* gr = gate + t * gate_dim;
      if (gate_dim == 1) {
        const float s = sigmoid(gr[0]);
        for (int64_t i = 0; i < dim; ++i) xr[i] *= s;
      } else {
        for (int64_t i = 0; i < dim; ++i) xr[i] *= sigmoid(gr[i]);
      }
    }
  };
  if (n * dim < (1 << 15) || n < 2) run(0, n);
  else pool.parallel_for(n, 1, [&](int, int64_t b, int64_t e) { run(b, e); });
}

}  // namespace strata::backend::cpu
