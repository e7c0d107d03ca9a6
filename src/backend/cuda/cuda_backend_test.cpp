// Every CUDA op against the CPU reference (CpuBackend reference mode) on fresh random inputs,
// odd sizes included; then a tiny synthesized model's greedy output, CUDA vs CPU. Label gpu:
// skipped where no CUDA device is present.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"
#include "core/quant.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "engine/generator.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/recipe.h"
#include "model/synth.h"

namespace strata::backend::cuda {
namespace {

using cpu::testing::normal;
using cpu::testing::random_weights;

#define REQUIRE_GPU() \
  if (!CudaBackend::available()) GTEST_SKIP() << "no CUDA device"

// ||a - b|| / ||b||
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Device copies of host vectors, freed with the fixture; outputs poisoned with NaN.
class Gpu {
 public:
  CudaBackend be;
  ~Gpu() {
    for (void* p : bufs_) be.free(p);
  }
  float* up(const std::vector<float>& v) {
    float* d = be.alloc_f32(v.size());
    be.copy_from_host(v.data(), v.size(), d);
    bufs_.push_back(d);
    return d;
  }
  int32_t* up_i32(const std::vector<int32_t>& v) {
    std::vector<float> f(v.size());
    std::memcpy(f.data(), v.data(), v.size() * 4);
    return reinterpret_cast<int32_t*>(up(f));
  }
  float* out(size_t n) { return up(std::vector<float>(n, NAN)); }
  std::vector<float> down(const float* d, size_t n) {
    std::vector<float> h(n);
    be.copy_to_host(d, n, h.data());
    return h;
  }

 private:
  std::vector<void*> bufs_;
};

WeightView host_view(const std::vector<uint8_t>& bytes, DType t, int64_t rows, int64_t cols,
                     int64_t experts = 1) {
  WeightView w;
  w.data = bytes.data();
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = row_bytes(t, cols);
  w.num_experts = experts;
  w.expert_bytes = w.row_bytes * static_cast<size_t>(rows);
  return w;
}

// Tolerance of one product: the matrix-vector kernels accumulate in f32 (error ~ 2^-24
// sqrt(cols) relative); the prefill path rounds x and w to bf16 (2^-9 each, random signs).
// Types without a native kernel are held as F16 (2^-11).
double matmul_tol(DType t, int64_t n) {
  const bool native = t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 ||
                      t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_K ||
                      t == DType::kQ6_K;
  if (n > CudaBackend::kGemvMaxTokens && t != DType::kF32) return 8e-3;
  // Batch 1 of Q8_0/Q4_0/Q4_K/Q6_K: x rounded to int8 per 32 (step amax/127: ~0.5% rms).
  const bool int8_act =
      t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_K || t == DType::kQ6_K;
  if (n == 1 && int8_act) return 1.5e-2;
  return native ? 1e-5 : 2e-3;
}

TEST(CudaBackend, MatmulMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(11);
  const DType types[] = {DType::kF32,  DType::kF16,  DType::kBF16,   DType::kQ8_0,
                         DType::kQ4_0, DType::kQ4_K, DType::kQ6_K,   DType::kQ5_K,
                         DType::kQ2_K, DType::kQ3_K, DType::kIQ4_XS, DType::kQ5_0};
  for (DType t : types) {
    for (int64_t n : {1, 2, 3, 8, 37}) {
      const int64_t rows = 67, cols = 512 + 256;
      const auto wb = random_weights(rng, t, rows, cols);
      const WeightView hw = host_view(wb, t, rows, cols);
      const auto x = normal(rng, static_cast<size_t>(n * cols));
      std::vector<float> ref(static_cast<size_t>(n * rows));
      cpu::ref::matmul(hw, x.data(), n, ref.data());
      const WeightView dw = g.be.upload_weight(hw);
      float* y = g.out(ref.size());
      g.be.matmul(dw, g.up(x), n, y);
      const double e = rel_err(g.down(y, ref.size()), ref);
      EXPECT_LT(e, matmul_tol(t, n)) << dtype_name(t) << " n=" << n;
    }
  }
}

// Several products of one x in one launch (q/k/v, gate/up), mixed formats, as one product each.
TEST(CudaBackend, MatmulMultiMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(21);
  const int64_t cols = 1024 + 256;
  const DType types[3] = {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0};
  const int64_t rows[3] = {4099, 67, 1030};
  for (int64_t n : {1, 3}) {
    std::vector<std::vector<uint8_t>> wb;
    WeightView dw[3];
    std::vector<std::vector<float>> ref(3);
    float* ys[3];
    const auto x = normal(rng, static_cast<size_t>(n * cols));
    for (int i = 0; i < 3; ++i) {
      wb.push_back(random_weights(rng, types[i], rows[i], cols));
      const WeightView hw = host_view(wb.back(), types[i], rows[i], cols);
      ref[i].resize(static_cast<size_t>(n * rows[i]));
      cpu::ref::matmul(hw, x.data(), n, ref[i].data());
      dw[i] = g.be.upload_weight(hw);
      ys[i] = g.out(ref[i].size());
    }
    g.be.matmul_multi(dw, g.up(x), n, ys);
    for (int i = 0; i < 3; ++i) {
      EXPECT_LT(rel_err(g.down(ys[i], ref[i].size()), ref[i]), matmul_tol(types[i], n))
          << dtype_name(types[i]) << " n=" << n;
    }
  }
}

// The fusions inside the backend: an add held back and run inside the next RMSNorm of its
// output, and RMSNorm / SwiGLU of one token quantizing their output for the next int8 product.
TEST(CudaBackend, FusedOpsMatchReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(22);
  for (int64_t n : {1, 4}) {
    const int64_t dim = 2048 + 96;
    const auto x = normal(rng, n * dim), y0 = normal(rng, n * dim), w = normal(rng, dim);
    std::vector<float> y = y0, ref(n * dim);
    cpu::ref::add(y.data(), x.data(), n * dim);
    cpu::ref::rms_norm(y.data(), w.data(), n, dim, 1e-6f, ref.data());
    float* dy = g.up(y0);
    float* dx = g.up(x);
    g.be.add(dy, dx, n * dim);
    g.be.rms_norm(dy, g.up(w), n, dim, 1e-6f, dx);  // out over the addend, as the decoder does
    EXPECT_LT(rel_err(g.down(dy, y.size()), y), 1e-7) << n;
    EXPECT_LT(rel_err(g.down(dx, ref.size()), ref), 1e-6) << n;
  }
  const int64_t dim = 1024, rows = 300;
  const auto wb = random_weights(rng, DType::kQ4_K, rows, dim);
  const WeightView hw = host_view(wb, DType::kQ4_K, rows, dim);
  const WeightView dw = g.be.upload_weight(hw);
  const auto x = normal(rng, dim), w = normal(rng, dim), u = normal(rng, dim);
  std::vector<float> h(dim), ref(rows);
  float* dh = g.out(dim);
  float* y = g.out(rows);
  // RMSNorm -> product
  cpu::ref::rms_norm(x.data(), w.data(), 1, dim, 1e-6f, h.data());
  cpu::ref::matmul(hw, h.data(), 1, ref.data());
  g.be.rms_norm(g.up(x), g.up(w), 1, dim, 1e-6f, dh);
  g.be.matmul(dw, dh, 1, y);
  EXPECT_LT(rel_err(g.down(y, ref.size()), ref), matmul_tol(DType::kQ4_K, 1));
  // SwiGLU -> product
  cpu::ref::swiglu(x.data(), u.data(), 1, dim, h.data());
  cpu::ref::matmul(hw, h.data(), 1, ref.data());
  g.be.swiglu(g.up(x), g.up(u), 1, dim, dh);
  EXPECT_LT(rel_err(g.down(dh, h.size()), h), 1e-6);
  g.be.matmul(dw, dh, 1, y);
  EXPECT_LT(rel_err(g.down(y, ref.size()), ref), matmul_tol(DType::kQ4_K, 1));
}

// The per-head chain (q/k RMSNorm, RoPE, K/V store: held back, one launch at the store) and
// its partial forms (rope only; a chain cut by another op) against the reference ops.
TEST(CudaBackend, HeadChainMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(23);
  struct Case {
    DType kv_type;
    int hd, n_rot;
    bool neox, norm, cut;
    int n;
  };
  const Case cases[] = {{DType::kF16, 128, 128, true, true, false, 1},
                        {DType::kQ8_0, 128, 128, true, true, false, 3},
                        {DType::kBF16, 64, 32, false, true, false, 2},
                        {DType::kF32, 64, 64, false, false, false, 1},
                        {DType::kF16, 256, 256, true, true, false, 1},
                        {DType::kF16, 128, 96, true, true, true, 2}};
  for (const Case& c : cases) {
    const int heads = 6, kvh = 2, bt = 16, blocks = 4;
    PagedKv kv;
    kv.type = c.kv_type;
    kv.block_tokens = bt;
    kv.num_kv_heads = kvh;
    kv.head_dim = c.hd;
    kv.block_stride_bytes = row_bytes(c.kv_type, c.hd) * kvh * bt;
    const size_t kv_bytes = kv.block_stride_bytes * blocks;
    std::vector<uint8_t> hk((kv_bytes + 3) / 4 * 4, 0), hv(hk.size(), 0);
    PagedKv hkv = kv, dkv = kv;
    hkv.k = hk.data();
    hkv.v = hv.data();
    dkv.k = g.up(std::vector<float>(hk.size() / 4, 0.0f));
    dkv.v = g.up(std::vector<float>(hv.size() / 4, 0.0f));
    RopeTable table;
    table.mode = c.neox ? RopeTable::Mode::kNeox : RopeTable::Mode::kNormal;
    table.n_rot = c.n_rot;
    for (int i = 0; i < c.n_rot / 2; ++i)
      table.freqs.push_back(std::pow(1e4f, -2.0f * static_cast<float>(i) / c.n_rot));
    const std::vector<int32_t> pos_all = {5, 17, 40}, slot_all = {3 * bt + 2, 7, 2 * bt + 15};
    const std::vector<int32_t> pos(pos_all.begin(), pos_all.begin() + c.n),
        slots(slot_all.begin(), slot_all.begin() + c.n);
    auto q = normal(rng, static_cast<size_t>(c.n * heads * c.hd));
    auto k = normal(rng, static_cast<size_t>(c.n * kvh * c.hd));
    const auto v = normal(rng, k.size()), qw = normal(rng, c.hd), kw = normal(rng, c.hd);
    float *dq = g.up(q), *dk = g.up(k), *dv = g.up(v), *dqw = g.up(qw), *dkw = g.up(kw);
    float* other = g.out(4);
    if (c.norm) {
      cpu::ref::rms_norm(q.data(), qw.data(), c.n * heads, c.hd, 1e-6f, q.data());
      cpu::ref::rms_norm(k.data(), kw.data(), c.n * kvh, c.hd, 1e-6f, k.data());
      g.be.rms_norm(dq, dqw, c.n * heads, c.hd, 1e-6f, dq);
      g.be.rms_norm(dk, dkw, c.n * kvh, c.hd, 1e-6f, dk);
    }
    if (c.cut) g.be.add(other, other, 4);  // another op: what is held runs first
    cpu::ref::rope(q.data(), c.n, heads, c.hd, pos.data(), table);
    cpu::ref::rope(k.data(), c.n, kvh, c.hd, pos.data(), table);
    cpu::ref::kv_store(hkv, k.data(), v.data(), c.n, slots.data());
    g.be.rope(dq, c.n, heads, c.hd, pos.data(), table);
    g.be.rope(dk, c.n, kvh, c.hd, pos.data(), table);
    g.be.kv_store(dkv, dk, dv, c.n, slots.data());
    const std::string what = std::string(dtype_name(c.kv_type)) + " hd " + std::to_string(c.hd);
    EXPECT_LT(rel_err(g.down(dq, q.size()), q), 1e-5) << what;
    EXPECT_LT(rel_err(g.down(dk, k.size()), k), 1e-5) << what;
    // The stored rows decode to the reference's (Q8_0 may round one step differently).
    for (int which = 0; which < 2; ++which) {
      std::vector<uint8_t> got(hk.size());
      g.be.copy_to_host(static_cast<const float*>(which == 0 ? dkv.k : dkv.v), got.size() / 4,
                        reinterpret_cast<float*>(got.data()));
      const std::vector<uint8_t>& want = which == 0 ? hk : hv;
      std::vector<float> a(static_cast<size_t>(blocks * bt * kvh * c.hd)), b(a.size());
      const size_t rb = row_bytes(c.kv_type, c.hd);
      for (int64_t r = 0; r < blocks * bt * kvh; ++r) {
        cpu::ref::kv_decode_row(c.kv_type, got.data() + r * rb, a.data() + r * c.hd, c.hd);
        cpu::ref::kv_decode_row(c.kv_type, want.data() + r * rb, b.data() + r * c.hd, c.hd);
      }
      EXPECT_LT(rel_err(a, b), c.kv_type == DType::kQ8_0 ? 1e-2 : 4e-3) << what << " " << which;
    }
  }
}

// Step graphs: the same ops over host arrays whose contents change every step (measured,
// captured, then replayed) give what the reference gives for each step's arrays.
TEST(CudaBackend, StepGraphsReplayWithNewHostArrays) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(23);
  const int heads = 2, hd = 64;
  const int64_t n = 3;
  RopeTable table;
  table.mode = RopeTable::Mode::kNeox;
  table.n_rot = hd;
  for (int i = 0; i < hd / 2; ++i) table.freqs.push_back(std::pow(10000.0f, -2.0f * i / hd));
  const auto emb = normal(rng, 50 * static_cast<size_t>(heads * hd));
  std::vector<uint8_t> emb_bytes(emb.size() * 4);
  std::memcpy(emb_bytes.data(), emb.data(), emb_bytes.size());
  const WeightView hw = host_view(emb_bytes, DType::kF32, 50, heads * hd);
  const WeightView dw = g.be.upload_weight(hw);
  float* dq = g.out(n * heads * hd);
  for (int step = 0; step < 6; ++step) {
    std::vector<int32_t> ids(n), pos(n);
    for (int64_t i = 0; i < n; ++i) {
      ids[i] = static_cast<int32_t>(rng.below(50));
      pos[i] = static_cast<int32_t>(rng.below(4000));
    }
    std::vector<float> ref(n * heads * hd);
    cpu::ref::get_rows(hw, ids.data(), n, ref.data());
    cpu::ref::rope(ref.data(), n, heads, hd, pos.data(), table);
    g.be.begin_step({77, n, 100 * step});
    g.be.get_rows(dw, ids.data(), n, dq);
    g.be.rope(dq, n, heads, hd, pos.data(), table);
    g.be.end_step();
    EXPECT_LT(rel_err(g.down(dq, ref.size()), ref), 1e-6) << "step " << step;
  }
}

TEST(CudaBackend, ExpertsAndRowsMatchReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(12);
  for (DType t : {DType::kQ4_K, DType::kQ8_0, DType::kF32, DType::kQ5_K}) {
    const int64_t experts = 5, rows = 33, cols = 256, n = 7;
    const int k = 2;
    std::vector<uint8_t> wb;
    for (int64_t e = 0; e < experts; ++e) {
      auto one = random_weights(rng, t, rows, cols);
      wb.insert(wb.end(), one.begin(), one.end());
    }
    const WeightView hw = host_view(wb, t, rows, cols, experts);
    const WeightView dw = g.be.upload_weight(hw);
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    for (auto& i : ids) i = static_cast<int32_t>(rng.below(experts));
    for (bool per_slot : {false, true}) {
      const auto x = normal(rng, static_cast<size_t>(n * (per_slot ? k : 1) * cols));
      std::vector<float> ref(static_cast<size_t>(n * k * rows));
      cpu::ref::matmul_experts(hw, x.data(), per_slot, ids.data(), n, k, ref.data());
      float* y = g.out(ref.size());
      g.be.matmul_experts(dw, g.up(x), per_slot, g.up_i32(ids), n, k, y);
      EXPECT_LT(rel_err(g.down(y, ref.size()), ref), t == DType::kQ5_K ? 2e-3 : 1e-5)
          << dtype_name(t);
    }
    // Embedding rows (host ids, as the model passes token ids).
    const WeightView h1 = host_view(wb, t, rows, cols);
    const WeightView d1 = g.be.upload_weight(h1);
    std::vector<int32_t> rid = {3, 0, 32, 3, 17};
    std::vector<float> ref(rid.size() * cols);
    cpu::ref::get_rows(h1, rid.data(), static_cast<int64_t>(rid.size()), ref.data());
    float* out = g.out(ref.size());
    g.be.get_rows(d1, rid.data(), static_cast<int64_t>(rid.size()), out);
    EXPECT_LT(rel_err(g.down(out, ref.size()), ref), t == DType::kQ5_K ? 1e-3 : 1e-7)
        << dtype_name(t);
  }
}

// Prefill expert products (more tokens than a step graph takes): grouped by expert, bf16
// operands through one batched cuBLAS GEMM; device ids (the router's) and host ids, an
// expert no slot uses.
TEST(CudaBackend, ExpertsGroupedPrefillMatchReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(19);
  for (DType t : {DType::kQ4_K, DType::kQ8_0, DType::kQ5_K}) {
    const int64_t experts = 6, rows = 33, cols = 256, n = 131;
    const int k = 3;
    std::vector<uint8_t> wb;
    for (int64_t e = 0; e < experts; ++e) {
      auto one = random_weights(rng, t, rows, cols);
      wb.insert(wb.end(), one.begin(), one.end());
    }
    const WeightView hw = host_view(wb, t, rows, cols, experts);
    const WeightView dw = g.be.upload_weight(hw);
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    for (auto& i : ids) i = static_cast<int32_t>(rng.below(experts - 1));  // expert 5 unused
    ids[7] = 0;
    for (bool per_slot : {false, true}) {
      for (bool dev_ids : {true, false}) {
        const auto x = normal(rng, static_cast<size_t>(n * (per_slot ? k : 1) * cols));
        std::vector<float> ref(static_cast<size_t>(n * k * rows));
        cpu::ref::matmul_experts(hw, x.data(), per_slot, ids.data(), n, k, ref.data());
        float* y = g.out(ref.size());
        g.be.matmul_experts(dw, g.up(x), per_slot, dev_ids ? g.up_i32(ids) : ids.data(), n, k, y);
        EXPECT_LT(rel_err(g.down(y, ref.size()), ref), 8e-3)
            << dtype_name(t) << " per_slot " << per_slot << " dev_ids " << dev_ids;
      }
    }
  }
}

// Batch 1 expert products on int8 activations, as a MoE block runs them: gate and up of the
// same x and ids (one launch: the gate is held back until the up arrives), SwiGLU writing
// the int8 copy of its k slots, down per slot; and a lone product of odd rows, both x kinds.
TEST(CudaBackend, ExpertsInt8MatchReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(15);
  auto experts_of = [&](DType t, int64_t experts, int64_t rows, int64_t cols,
                        std::vector<uint8_t>& wb) {
    for (int64_t e = 0; e < experts; ++e) {
      auto one = random_weights(rng, t, rows, cols);
      wb.insert(wb.end(), one.begin(), one.end());
    }
    return host_view(wb, t, rows, cols, experts);
  };
  for (DType t : {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t cols : {768, 2048}) {
      const int64_t experts = 9, ffn = 256;
      const int k = 3;
      std::vector<uint8_t> gb, ub, db, ob;
      const WeightView hg = experts_of(t, experts, ffn, cols, gb);
      const WeightView hu = experts_of(t, experts, ffn, cols, ub);
      const WeightView hd = experts_of(t, experts, cols, ffn, db);
      const WeightView dg = g.be.upload_weight(hg), du = g.be.upload_weight(hu),
                       dd = g.be.upload_weight(hd);
      std::vector<int32_t> ids = {7, 0, 4};
      const auto x = normal(rng, static_cast<size_t>(cols));
      std::vector<float> rg(k * ffn), ru(k * ffn), rs(k * ffn), rd(k * cols);
      cpu::ref::matmul_experts(hg, x.data(), false, ids.data(), 1, k, rg.data());
      cpu::ref::matmul_experts(hu, x.data(), false, ids.data(), 1, k, ru.data());
      cpu::ref::swiglu(rg.data(), ru.data(), k, ffn, rs.data());
      cpu::ref::matmul_experts(hd, rs.data(), true, ids.data(), 1, k, rd.data());
      float* dx = g.up(x);
      int32_t* di = g.up_i32(ids);
      float *yg = g.out(rg.size()), *yu = g.out(ru.size()), *yd = g.out(rd.size());
      g.be.matmul_experts(dg, dx, false, di, 1, k, yg);
      g.be.matmul_experts(du, dx, false, di, 1, k, yu);
      const auto got_g = g.down(yg, rg.size()), got_u = g.down(yu, ru.size());
      g.be.swiglu(yg, yu, k, ffn, yg);
      g.be.matmul_experts(dd, yg, true, di, 1, k, yd);
      // x rounded to int8 per 32 (~0.5% rms a product); down adds its own on top.
      EXPECT_LT(rel_err(got_g, rg), 1.5e-2) << dtype_name(t) << " gate cols " << cols;
      EXPECT_LT(rel_err(got_u, ru), 1.5e-2) << dtype_name(t) << " up cols " << cols;
      EXPECT_LT(rel_err(g.down(yd, rd.size()), rd), 3e-2) << dtype_name(t) << " down cols " << cols;
      // A lone product (nothing to join), 37 rows, host ids; x shared and per slot.
      const WeightView ho = experts_of(t, experts, 37, cols, ob);
      const WeightView d_o = g.be.upload_weight(ho);
      for (bool per_slot : {false, true}) {
        const auto xo = normal(rng, static_cast<size_t>((per_slot ? k : 1) * cols));
        std::vector<float> ref(k * 37);
        cpu::ref::matmul_experts(ho, xo.data(), per_slot, ids.data(), 1, k, ref.data());
        float* y = g.out(ref.size());
        g.be.matmul_experts(d_o, g.up(xo), per_slot, ids.data(), 1, k, y);
        EXPECT_LT(rel_err(g.down(y, ref.size()), ref), 1.5e-2)
            << dtype_name(t) << " lone, per_slot " << per_slot << " cols " << cols;
      }
    }
  }
}

TEST(CudaBackend, ElementwiseOpsMatchReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(13);
  const int64_t n = 5, dim = 4096 + 64;
  const auto x = normal(rng, n * dim), w = normal(rng, dim), u = normal(rng, n * dim);
  std::vector<float> ref(n * dim);
  cpu::ref::rms_norm(x.data(), w.data(), n, dim, 1e-6f, ref.data());
  float* out = g.out(ref.size());
  g.be.rms_norm(g.up(x), g.up(w), n, dim, 1e-6f, out);
  EXPECT_LT(rel_err(g.down(out, ref.size()), ref), 1e-6);

  cpu::ref::swiglu(x.data(), u.data(), n, dim, ref.data());
  g.be.swiglu(g.up(x), g.up(u), n, dim, out);
  EXPECT_LT(rel_err(g.down(out, ref.size()), ref), 1e-6);

  std::vector<float> y = u;
  cpu::ref::add(y.data(), x.data(), n * dim);
  float* dy = g.up(u);
  g.be.add(dy, g.up(x), n * dim);
  EXPECT_LT(rel_err(g.down(dy, y.size()), y), 1e-7);

  const int k = 3;
  const auto xs = normal(rng, n * k * dim), ws = normal(rng, n * k);
  cpu::ref::weighted_sum(xs.data(), ws.data(), n, k, dim, ref.data());
  g.be.weighted_sum(g.up(xs), g.up(ws), n, k, dim, out);
  EXPECT_LT(rel_err(g.down(out, ref.size()), ref), 1e-6);

  for (auto mode : {RopeTable::Mode::kNormal, RopeTable::Mode::kNeox}) {
    RopeTable table;
    table.mode = mode;
    table.n_rot = 96;
    table.mscale = 1.1f;
    for (int i = 0; i < table.n_rot / 2; ++i)
      table.freqs.push_back(std::pow(10000.0f, -2.0f * i / table.n_rot));
    const int heads = 3, hd = 128;
    std::vector<int32_t> pos = {0, 7, 4095, 123456, 5};
    auto q = normal(rng, n * heads * hd);
    float* dq = g.up(q);
    cpu::ref::rope(q.data(), n, heads, hd, pos.data(), table);
    g.be.rope(dq, n, heads, hd, pos.data(), table);
    EXPECT_LT(rel_err(g.down(dq, q.size()), q), 1e-6);
  }

  for (bool renorm : {false, true}) {
    const int experts = 37, kk = 5;
    auto logits = normal(rng, n * experts);
    logits[3] = logits[4];  // a tie: the lower id first
    std::vector<int32_t> ids(n * kk);
    std::vector<float> wts(n * kk);
    cpu::ref::topk_softmax(logits.data(), n, experts, kk, renorm, ids.data(), wts.data());
    float* dw = g.out(n * kk);
    auto* di = reinterpret_cast<int32_t*>(g.out(n * kk));
    g.be.topk_softmax(g.up(logits), n, experts, kk, renorm, di, dw);
    const auto gi = g.down(reinterpret_cast<float*>(di), n * kk);
    std::vector<int32_t> got(n * kk);
    std::memcpy(got.data(), gi.data(), got.size() * 4);
    EXPECT_EQ(got, ids);
    EXPECT_LT(rel_err(g.down(dw, wts.size()), wts), 1e-6);
  }
}

// Several sequences (prefill chunks and decode rows) over shuffled block tables.
void check_attention(Gpu& g, Rng& rng, DType kv_type, int head_dim, int heads, int kv_heads,
                     int block_tokens,
                     const std::vector<std::pair<int, int>>& seq_shapes /* (q_count, kv_len) */) {
  PagedKv kv;
  kv.type = kv_type;
  kv.block_tokens = block_tokens;
  kv.num_kv_heads = kv_heads;
  kv.head_dim = head_dim;
  kv.block_stride_bytes = row_bytes(kv_type, head_dim) * kv_heads * block_tokens;
  int total_blocks = 0;
  for (auto [qc, kl] : seq_shapes) total_blocks += (kl + block_tokens - 1) / block_tokens;
  std::vector<int32_t> perm(total_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = total_blocks - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  const size_t kv_bytes = kv.block_stride_bytes * total_blocks;
  // Both backends start from the same bytes, so slots that no store touches compare too.
  std::vector<uint8_t> hk((kv_bytes + 3) / 4 * 4), hv((kv_bytes + 3) / 4 * 4);
  for (auto& b : hk) b = static_cast<uint8_t>(rng.below(256));
  for (auto& b : hv) b = static_cast<uint8_t>(rng.below(256));
  PagedKv hkv = kv;
  hkv.k = hk.data();
  hkv.v = hv.data();
  PagedKv dkv = kv;
  auto as_f32 = [](const std::vector<uint8_t>& b) {
    std::vector<float> f(b.size() / 4);
    std::memcpy(f.data(), b.data(), b.size());
    return f;
  };
  dkv.k = g.up(as_f32(hk));
  dkv.v = g.up(as_f32(hv));
  std::vector<std::vector<int32_t>> tables;
  std::vector<SeqAttention> seqs;
  int64_t q_rows = 0, next_block = 0;
  for (auto [qc, kl] : seq_shapes) {
    const int blocks = (kl + block_tokens - 1) / block_tokens;
    tables.emplace_back(perm.begin() + next_block, perm.begin() + next_block + blocks);
    next_block += blocks;
    // Store all kl tokens of this sequence (through kv_store on both backends).
    std::vector<int32_t> slots(kl);
    for (int p = 0; p < kl; ++p)
      slots[p] = tables.back()[p / block_tokens] * block_tokens + p % block_tokens;
    const auto k = normal(rng, static_cast<size_t>(kl) * kv_heads * head_dim);
    const auto v = normal(rng, k.size());
    cpu::ref::kv_store(hkv, k.data(), v.data(), kl, slots.data());
    g.be.kv_store(dkv, g.up(k), g.up(v), kl, slots.data());
    seqs.push_back({q_rows, qc, kl, nullptr});
    q_rows += qc;
  }
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].block_table = tables[i].data();
  // The stored bytes must decode to the same values (Q8_0 may differ by one step).
  std::vector<uint8_t> got_k(kv_bytes);
  g.be.synchronize();
  g.be.copy_to_host(static_cast<const float*>(dkv.k), kv_bytes / 4,
                    reinterpret_cast<float*>(got_k.data()));
  if (kv_type != DType::kQ8_0) {
    EXPECT_EQ(std::memcmp(got_k.data(), hk.data(), kv_bytes / 4 * 4), 0) << dtype_name(kv_type);
  }
  const auto q = normal(rng, static_cast<size_t>(q_rows) * heads * head_dim);
  std::vector<float> ref(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  cpu::ref::attention(q.data(), heads, hkv, seqs, scale, ref.data());
  float* out = g.out(ref.size());
  g.be.attention(g.up(q), heads, dkv, seqs, scale, out);
  // f32 softmax and sums: well under 1e-5; Q8_0 K/V may round one step differently (1/254).
  // Batches with a sequence of 16+ queries (head_dim 64/128/256, K/V not F32) take the
  // tensor-core kernel: Q, K, V and P in bf16 (2^-9 each) -> a few 1e-3.
  int64_t max_q = 0;
  for (const auto& sq : seqs) max_q = std::max(max_q, sq.q_count);
  const bool tiled = max_q >= 16 && (head_dim == 64 || head_dim == 128 || head_dim == 256) &&
                     kv_type != DType::kF32;
  const double tol = tiled ? 1e-2 : kv_type == DType::kQ8_0 ? 2e-3 : 1e-5;
  EXPECT_LT(rel_err(g.down(out, ref.size()), ref), tol)
      << dtype_name(kv_type) << " head_dim " << head_dim << " block_tokens " << block_tokens;
}

TEST(CudaBackend, AttentionMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(14);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    check_attention(g, rng, t, 128, 8, 2, 16, {{1, 1}, {5, 37}, {1, 700}, {33, 33}});
    check_attention(g, rng, t, 64, 4, 4, 64, {{1, 3000}});  // split-K decode
    check_attention(g, rng, t, 64, 8, 2, 16,
                    {{130, 200}, {1, 50}, {64, 64}});  // tiled prefill, mixed
    check_attention(g, rng, t, 128, 4, 1, 32, {{200, 333}});
    if (t != DType::kQ8_0) check_attention(g, rng, t, 16, 4, 2, 4, {{3, 9}, {1, 20}});
    if (t == DType::kF32) continue;
    // Tiled prefill over KV groups of 1, 7 (9 positions a CTA, one row idle) and 8 heads; a
    // prefill chunk after 900 cached keys (8-warp CTAs, the default); then with 4-warp CTAs.
    check_attention(g, rng, t, 64, 4, 4, 16, {{70, 90}, {17, 17}});
    check_attention(g, rng, t, 128, 7, 1, 16, {{100, 150}, {20, 20}});
    check_attention(g, rng, t, 128, 16, 2, 16, {{40, 940}, {1, 33}});
    check_attention(g, rng, t, 256, 16, 2, 16, {{150, 300}, {17, 17}});  // head_dim 256, 8 warps
    set_attention_prefill_warps(4);
    check_attention(g, rng, t, 128, 8, 2, 16, {{130, 200}, {1, 50}, {64, 64}});
    check_attention(g, rng, t, 256, 16, 2, 64, {{100, 180}, {1, 40}});  // qwen3.5/3.6 heads
    check_attention(g, rng, t, 64, 7, 1, 32, {{100, 150}});
    set_attention_prefill_warps(8);
  }
}

// --- Gated DeltaNet: against the scalar twins (deltanet_ref.cpp, double), mirroring
// backend/cpu/deltanet_test.cpp: odd sizes, chained segments, unaligned starts.

// max |a - b| / rms(b)
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0, ss = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
    ss += double(b[i]) * b[i];
  }
  return mx / std::sqrt(ss / static_cast<double>(b.size()));
}

TEST(CudaBackend, DeltaNetConvMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  for (int kernel : {2, 4}) {
    for (int64_t channels : {5, 300, 777}) {
      Rng rng(static_cast<uint64_t>(kernel * 1000 + channels));
      const int64_t n = 23;
      const size_t st = static_cast<size_t>((kernel - 1) * channels);
      const auto x = normal(rng, n * channels), w = normal(rng, channels * kernel, 0.5f);
      const auto st0 = normal(rng, st);
      // Fresh start, then chained through the state (in place, then to a new buffer), with a
      // 1-row segment shorter than the conv history.
      std::vector<float> h1(st), h2(st), a(x.size());
      cpu::ref::ssm_conv(x.data(), channels, w.data(), kernel,
                    std::vector<RecurrentSeg>{{0, 10, 0, nullptr, h1.data()},
                                              {10, 1, 10, h1.data(), h1.data()},
                                              {11, 12, 11, h1.data(), h2.data()}},
                    a.data());
      float* d1 = g.out(st);
      float* d2 = g.out(st);
      float* dx = g.up(x);
      float* dw = g.up(w);
      float* out = g.out(x.size());
      g.be.ssm_conv(dx, channels, dw, kernel,
                    std::vector<RecurrentSeg>{{0, 10, 0, nullptr, d1}, {10, 1, 10, d1, d1}, {11, 12, 11, d1, d2}},
                    out);
      EXPECT_LT(rel_err(g.down(out, x.size()), a), 1e-6) << kernel << " " << channels;
      EXPECT_EQ(g.down(d2, st), h2);  // the state is a copy of inputs
      // Two independent sequences in one call: one from a given state, in place (3 rows), one
      // of a single row from another state into a fresh buffer.
      std::vector<float> s3 = st0, s4 = normal(rng, st), s5(st);
      cpu::ref::ssm_conv(x.data(), channels, w.data(), kernel,
                    std::vector<RecurrentSeg>{{0, 3, 40, s3.data(), s3.data()}, {5, 1, 7, s4.data(), s5.data()}},
                    a.data());
      float* d3 = g.up(st0);
      float* d4 = g.up(s4);
      float* d5 = g.out(st);
      float* out2 = g.up(std::vector<float>(x.size(), 0.0f));
      g.be.ssm_conv(dx, channels, dw, kernel,
                    std::vector<RecurrentSeg>{{0, 3, 40, d3, d3}, {5, 1, 7, d4, d5}}, out2);
      const auto got = g.down(out2, x.size());
      for (int64_t r : {0, 1, 2, 5}) {
        for (int64_t c = 0; c < channels; ++c) {
          const size_t i = static_cast<size_t>(r * channels + c);
          ASSERT_NEAR(got[i], a[i], 1e-5 * (1 + std::fabs(a[i]))) << r << " " << c;
        }
      }
      EXPECT_EQ(g.down(d3, st), s3);
      EXPECT_EQ(g.down(d5, st), s5);
    }
  }
}

struct DeltaSeq {
  std::vector<int64_t> seg_rows;  // one sequence cut into these segments
  int64_t pos0;                   // position of its first token (0: no initial state)
};
struct DeltaCase {
  DeltaNetShape shape;
  std::vector<DeltaSeq> seqs;  // batched in one call, rows in this order
};

TEST(CudaBackend, DeltaRuleMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  const std::vector<DeltaCase> cases = {
      {{1, 1, 8, 8}, {{{1, 1, 1}, 0}}},                      // decode steps
      {{2, 4, 16, 12}, {{{150}, 0}}},                        // one long segment
      {{2, 4, 16, 12}, {{{30, 100, 1, 7}, 37}}},             // unaligned start, chained
      {{3, 3, 5, 7}, {{{65, 2, 129}, 63}}},                  // odd head dims
      {{1, 2, 32, 32}, {{{64, 64}, 64}}},                    // chunk-aligned
      {{2, 4, 48, 40}, {{{3}, 5}, {{17, 16}, 0}, {{1}, 9}}}, // three sequences, two column tiles
      {{16, 32, 128, 128}, {{{70, 58}, 200}, {{1}, 12}}},    // the Qwen3.5/3.6 shape
      {{2, 2, 256, 64}, {{{40, 1}, 3}}},                     // head_k_dim 256
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const DeltaCase& c = cases[ci];
    const auto& sh = c.shape;
    int64_t n = 0;
    for (const auto& q : c.seqs)
      for (int64_t r : q.seg_rows) n += r;
    const int64_t row = 2 * int64_t{sh.num_k_heads} * sh.head_k_dim + int64_t{sh.num_v_heads} * sh.head_v_dim;
    Rng rng(ci + 7);
    const auto qkv = normal(rng, n * row);
    const auto alpha = normal(rng, n * sh.num_v_heads), beta = normal(rng, n * sh.num_v_heads);
    const auto dt = normal(rng, sh.num_v_heads, 0.5f);
    std::vector<float> A(static_cast<size_t>(sh.num_v_heads));
    for (float& x : A) x = -std::exp(rng.normal());
    const size_t state = static_cast<size_t>(sh.num_v_heads) * sh.head_k_dim * sh.head_v_dim;
    // Per sequence two state buffers; each segment reads the one the previous wrote.
    const size_t nseq = c.seqs.size();
    std::vector<std::vector<float>> host(2 * nseq);
    std::vector<float*> dev(2 * nseq);
    std::vector<RecurrentSeg> hs, ds;
    std::vector<size_t> final_buf(nseq);
    int64_t r0 = 0;
    for (size_t q = 0; q < nseq; ++q) {
      host[2 * q] = normal(rng, state, 0.3f);
      host[2 * q + 1].assign(state, 0.0f);
      dev[2 * q] = g.up(host[2 * q]);
      dev[2 * q + 1] = g.out(state);
      const auto& sq = c.seqs[q];
      for (size_t i = 0; i < sq.seg_rows.size(); ++i) {
        const size_t in = 2 * q + i % 2, o = 2 * q + (i + 1) % 2;
        const bool fresh = i == 0 && sq.pos0 == 0;
        hs.push_back({r0, sq.seg_rows[i], sq.pos0 + r0, fresh ? nullptr : host[in].data(), host[o].data()});
        ds.push_back({r0, sq.seg_rows[i], sq.pos0 + r0, fresh ? nullptr : dev[in], dev[o]});
        r0 += sq.seg_rows[i];
        final_buf[q] = o;
      }
    }
    std::vector<float> want(static_cast<size_t>(n * sh.num_v_heads * sh.head_v_dim));
    cpu::ref::gated_delta_rule(qkv.data(), alpha.data(), beta.data(), dt.data(), A.data(), sh, hs, want.data());
    float* out = g.out(want.size());
    g.be.gated_delta_rule(g.up(qkv), g.up(alpha), g.up(beta), g.up(dt), g.up(A), sh, ds, out);
    const double eo = max_rel(g.down(out, want.size()), want);
    double es = 0;
    for (size_t q = 0; q < nseq; ++q)
      es = std::max(es, max_rel(g.down(dev[final_buf[q]], state), host[final_buf[q]]));
    std::printf("[deltanet-cuda] case %zu: out max err/rms %.3g, state %.3g\n", ci, eo, es);
    EXPECT_LT(eo, 5e-5) << "case " << ci;
    EXPECT_LT(es, 5e-5) << "case " << ci;
  }
}

// Decode steps in step graphs (measured, captured, replayed): the segments' state pointers
// change every step (a new block's blob, or in place), and one step starts a sequence.
TEST(CudaBackend, DeltaNetInStepGraphs) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(41);
  const DeltaNetShape sh{2, 4, 32, 32};
  const int kernel = 4;
  const int64_t n = 2, row = 2 * 2 * 32 + 4 * 32;
  const size_t dstate = 4 * 32 * 32, cstate = static_cast<size_t>((kernel - 1) * row);
  const auto w = normal(rng, row * kernel, 0.5f), dt = normal(rng, 4, 0.5f);
  std::vector<float> A(4);
  for (float& x : A) x = -std::exp(rng.normal());
  float* dw = g.up(w);
  float* ddt = g.up(dt);
  float* dA = g.up(A);
  // Three state slots per sequence (a block's blob each), host twins for the reference.
  std::vector<std::vector<float>> hd(6), hc(6);
  std::vector<float*> dd(6), dc(6);
  for (int i = 0; i < 6; ++i) {
    hd[i] = normal(rng, dstate, 0.3f);
    hc[i] = normal(rng, cstate);
    dd[i] = g.up(hd[i]);
    dc[i] = g.up(hc[i]);
  }
  float* dx = g.out(n * row);
  float* dconv = g.out(n * row);
  float* dal = g.out(n * 4);
  float* dbe = g.out(n * 4);
  float* dout = g.out(n * 4 * 32);
  for (int step = 0; step < 7; ++step) {
    const auto x = normal(rng, n * row), al = normal(rng, n * 4), bt = normal(rng, n * 4);
    // Sequence 0 moves to the next slot every other step (in place in between); sequence 1
    // moves every step and starts over (no input state) at step 4.
    const int in0 = (step / 2) % 3, out0 = ((step + 1) / 2) % 3;
    const int in1 = 3 + step % 3, out1 = 3 + (step + 1) % 3;
    const bool fresh1 = step == 4;
    auto segs = [&](bool device, bool conv) {
      auto p = [&](int i) { return device ? (conv ? dc[i] : dd[i]) : (conv ? hc[i] : hd[i]).data(); };
      return std::vector<RecurrentSeg>{{0, 1, 10 + step, p(in0), p(out0)},
                                       {1, 1, 20 + step, fresh1 ? nullptr : p(in1), p(out1)}};
    };
    std::vector<float> conv(n * row), want(n * 4 * 32);
    cpu::ref::ssm_conv(x.data(), row, w.data(), kernel, segs(false, true), conv.data());
    cpu::ref::gated_delta_rule(conv.data(), al.data(), bt.data(), dt.data(), A.data(), sh, segs(false, false), want.data());
    g.be.copy_from_host(x.data(), x.size(), dx);
    g.be.copy_from_host(al.data(), al.size(), dal);
    g.be.copy_from_host(bt.data(), bt.size(), dbe);
    g.be.begin_step({91, n, 64});
    g.be.ssm_conv(dx, row, dw, kernel, segs(true, true), dconv);
    g.be.gated_delta_rule(dconv, dal, dbe, ddt, dA, sh, segs(true, false), dout);
    g.be.sigmoid_mul(dout, dal, n, 4 * 32, 1);
    g.be.end_step();
    std::vector<float> gated = want;
    cpu::ref::sigmoid_mul(gated.data(), al.data(), n, 4 * 32, 1);
    EXPECT_LT(max_rel(g.down(dout, want.size()), gated), 5e-5) << "step " << step;
    for (int i : {out0, out1}) {
      EXPECT_LT(max_rel(g.down(dd[i], dstate), hd[i]), 5e-5) << "step " << step << " slot " << i;
      EXPECT_LT(max_rel(g.down(dc[i], cstate), hc[i]), 1e-7) << "step " << step << " slot " << i;
    }
  }
}

TEST(CudaBackend, SigmoidMulMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(3);
  for (int64_t gate_dim : {int64_t{1}, int64_t{37}}) {
    const int64_t n = 1000, dim = 37;
    const auto x = normal(rng, n * dim), gt = normal(rng, n * gate_dim, 3.0f);
    std::vector<float> a = x;
    cpu::ref::sigmoid_mul(a.data(), gt.data(), n, dim, gate_dim);
    float* dx = g.up(x);
    g.be.sigmoid_mul(dx, g.up(gt), n, dim, gate_dim);
    const auto b = g.down(dx, a.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 4 * cpu::testing::kF32Eps * std::fabs(a[i]) + 1e-30);
    // Followed by the add of the gated x (the shared expert's output): one kernel when
    // gate_dim is 1; both x and y as the two ops give.
    const auto y0 = normal(rng, n * dim);
    std::vector<float> ya = y0;
    cpu::ref::add(ya.data(), a.data(), n * dim);
    float* dx2 = g.up(x);
    float* dy = g.up(y0);
    g.be.sigmoid_mul(dx2, g.up(gt), n, dim, gate_dim);
    g.be.add(dy, dx2, n * dim);
    const auto yb = g.down(dy, ya.size()), xb = g.down(dx2, a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(xb[i], a[i], 4 * cpu::testing::kF32Eps * std::fabs(a[i]) + 1e-30);
      ASSERT_NEAR(yb[i], ya[i], 8 * cpu::testing::kF32Eps * (std::fabs(ya[i]) + std::fabs(a[i])) + 1e-30);
    }
  }
}

// A tiny synthesized model in F32: greedy tokens identical to the CPU reference; logits close.
void check_model(const std::string& preset, const std::string& recipe_name,
                 bool expect_same_tokens) {
  ThreadPool pool(2);
  model::SynthOptions opts;
  opts.hp = *model::preset_hparams(preset);
  opts.recipe = *model::find_recipe(recipe_name);
  auto w = model::synthesize(opts, pool);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  const std::vector<uint8_t> bytes = w->write_to_buffer();
  const std::vector<int32_t> prompt = {1, 17, 300, 42, 99, 7, 256, 3, 11, 5, 77, 200, 150};
  engine::GenerateOptions go;
  go.max_tokens = 24;
  go.stop_at_eog = false;
  go.prefill_chunk = 9;  // a prefill chunk (cuBLAS path), then a short one (matrix-vector path)
  std::vector<int32_t> toks[2];
  std::vector<float> logits[2];
  for (int b = 0; b < 2; ++b) {
    std::unique_ptr<Backend> be;
    if (b == 0)
      be = std::make_unique<CpuBackend>(2, true);
    else
      be = std::make_unique<CudaBackend>();
    auto file = gguf::File::parse(bytes);
    ASSERT_TRUE(file.is_ok());
    auto m = model::Model::from_file(std::move(file).value(), *be);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    engine::Generator gen(**m, 128, DType::kF32, 4);
    auto r = gen.generate(prompt, go, [](const engine::SampleResult&) { return true; });
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    toks[b] = *r;
    engine::Generator gen2(**m, 128, DType::kF32, 16);
    auto l = gen2.logits_per_position(prompt, 10, 5);
    ASSERT_TRUE(l.is_ok());
    logits[b] = *l;
  }
  EXPECT_EQ(toks[1].size(), 24u);
  if (expect_same_tokens) {
    EXPECT_EQ(toks[1], toks[0]) << preset << " " << recipe_name;
  }
  // F32: f32 rounding only. Quantized: batch-1 products on int8 activations (0.5% rms per
  // product), compounded over layers and amplified by random weights, as the CPU fast path
  // (tests/golden: rms 5%).
  EXPECT_LT(rel_err(logits[1], logits[0]), expect_same_tokens ? 1e-4 : 0.1)
      << preset << " " << recipe_name;
}

TEST(CudaBackend, TinyModelGreedyMatchesCpu) {
  REQUIRE_GPU();
  check_model("tiny", "F32", true);
  check_model("tiny-moe", "F32", true);
  check_model("tiny", "Q4_K_M", false);
  check_model("tiny", "Q8_0", false);
  check_model("tiny-moe", "Q8_0", false);  // int8 expert products, gate/up joined
}

TEST(CudaBackend, TinyHybridGreedyMatchesCpu) {
  REQUIRE_GPU();
  check_model("qwen3.5-tiny", "F32", true);
  check_model("qwen3.5-tiny-moe", "F32", true);
}

}  // namespace
}  // namespace strata::backend::cuda
