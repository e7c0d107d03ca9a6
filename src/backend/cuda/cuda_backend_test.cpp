// Every CUDA op against the CPU reference (CpuBackend reference mode) on fresh random inputs,
// odd sizes included (the Gated DeltaNet ops and the tiny models' greedy output are in
// cuda_deltanet_test.cpp). Label gpu: skipped where no CUDA device is present.
#include "backend/cuda/cuda_test_util.h"
#include "backend/cuda/kernels.h"

namespace strata::backend::cuda {
namespace {

using namespace testing;

// A key no step has used: each step here has its own ops (a key seen again would replay).
uint64_t next_step_key() {
  static uint64_t key = 0xdec0de00;
  return ++key;
}

TEST(CudaBackend, MatmulMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(11);
  const DType types[] = {DType::kF32,  DType::kF16,  DType::kBF16,   DType::kQ8_0,
                         DType::kQ4_0, DType::kQ4_K, DType::kQ6_K,   DType::kQ5_K,
                         DType::kQ2_K, DType::kQ3_K, DType::kIQ4_XS, DType::kQ5_0};
  // Every type with the default int8 parts, then Q6_K with one group of 16 a part as well.
  std::vector<std::pair<DType, int>> cases;
  for (DType t : types) cases.push_back({t, 2});
  cases.push_back({DType::kQ6_K, 1});
  for (const auto& [t, groups] : cases) {
    set_gemv_q6k_groups(groups);
    for (int64_t n : {1, 2, 3, 8, 13, 16, 37}) {
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
      EXPECT_LT(e, matmul_tol(t, n)) << dtype_name(t) << " n=" << n << " groups " << groups;
      // The same inside a decode step (one token of each of n sequences): up to
      // kQ8MaxTokens tokens take the int8 products there.
      float* yd = g.out(ref.size());
      g.be.begin_step({next_step_key(), n, 0, /*decode_only=*/true});
      g.be.matmul(dw, g.up(x), n, yd);
      g.be.end_step();
      const double ed = rel_err(g.down(yd, ref.size()), ref);
      EXPECT_LT(ed, matmul_tol(t, n, /*decode_step=*/true))
          << dtype_name(t) << " n=" << n << " groups " << groups << " decode step";
    }
  }
  set_gemv_q6k_groups(2);
}

// Int8 products on rows of 2048 and 4096 columns, where a CTA's threads split into groups of
// rows (fewer parts a row than threads), with every kernel the dispatch can pick: both Q4_K
// parts, v3 at 2 and 4 rows a CTA, v5, the default rule, and 5 tokens of a decode step.
TEST(CudaBackend, Int8ProductsEveryKernel) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(31);
  struct Kernel {
    int variant, rows;
  };
  for (DType t : {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0}) {
    for (int64_t cols : {2048, 4096}) {
      const int64_t rows = 67;
      const auto wb = random_weights(rng, t, rows, cols);
      const WeightView hw = host_view(wb, t, rows, cols);
      const auto x = normal(rng, static_cast<size_t>(cols));
      std::vector<float> ref(static_cast<size_t>(rows));
      cpu::ref::matmul(hw, x.data(), 1, ref.data());
      const WeightView dw = g.be.upload_weight(hw);
      for (int elems : {64, 32}) {  // the new and old parts of Q4_K (and of Q6_K: 2 groups, 1)
        set_gemv_q4k_elems(elems);
        set_gemv_q6k_groups(elems == 64 ? 2 : 1);
        for (Kernel k : {Kernel{0, 0}, Kernel{3, 2}, Kernel{3, 4}, Kernel{5, 4}, Kernel{5, 8}}) {
          set_gemv_q8_variant(k.variant);
          set_gemv_q8_rows(k.rows);
          float* y = g.out(ref.size());
          g.be.matmul(dw, g.up(x), 1, y);
          EXPECT_LT(rel_err(g.down(y, ref.size()), ref), matmul_tol(t, 1))
              << dtype_name(t) << " cols " << cols << " Q4_K part " << elems << " variant "
              << k.variant << " rows " << k.rows;
        }
        // 5 sequences a token each in a decode step: the multi-token kernel (v12).
        set_gemv_q8_variant(0);
        set_gemv_q8_rows(0);
        const int64_t n = 5;
        const auto x5 = normal(rng, static_cast<size_t>(n * cols));
        std::vector<float> ref5(static_cast<size_t>(n * rows));
        cpu::ref::matmul(hw, x5.data(), n, ref5.data());
        float* y5 = g.out(ref5.size());
        g.be.begin_step({next_step_key(), n, 0, /*decode_only=*/true});
        g.be.matmul(dw, g.up(x5), n, y5);
        g.be.end_step();
        EXPECT_LT(rel_err(g.down(y5, ref5.size()), ref5), matmul_tol(t, n, /*decode_step=*/true))
            << dtype_name(t) << " cols " << cols << " Q4_K part " << elems << " decode step";
      }
    }
  }
  set_gemv_q4k_elems(64);
  set_gemv_q6k_groups(2);
  set_gemv_q8_variant(0);
  set_gemv_q8_rows(0);
}

// Several products of one x in one launch (q/k/v, gate/up), mixed formats, as one product each.
TEST(CudaBackend, MatmulMultiMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(21);
  const int64_t cols = 1024 + 256;
  const DType types[3] = {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0};
  const int64_t rows[3] = {4099, 67, 1030};
  for (const auto& [groups, n] :
       {std::pair{2, 1}, std::pair{2, 3}, std::pair{1, 1}, std::pair{1, 3}}) {
    set_gemv_q6k_groups(groups);
    set_gemv_q4k_elems(groups == 1 ? 32 : 64);  // the old Q4_K part with the old Q6_K one
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
          << dtype_name(types[i]) << " n=" << n << " Q6_K groups " << groups;
    }
    // Inside a decode step (n sequences, a token each).
    g.be.begin_step({next_step_key(), n, 0, /*decode_only=*/true});
    g.be.matmul_multi(dw, g.up(x), n, ys);
    g.be.end_step();
    for (int i = 0; i < 3; ++i) {
      EXPECT_LT(rel_err(g.down(ys[i], ref[i].size()), ref[i]), matmul_tol(types[i], n, true))
          << dtype_name(types[i]) << " n=" << n << " Q6_K groups " << groups << " decode step";
    }
  }
  set_gemv_q6k_groups(2);
  set_gemv_q4k_elems(64);
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

// One token's residual as the MoE decoder issues it (the shared expert's gate product,
// sigmoid_mul, add; weighted sum, add) held and run inside the next RMSNorm, whose int8 copy
// feeds a product; every intermediate buffer ends as the unfused ops leave it. Dims 2048 (a
// float4 a thread) and 6144 (two), and a norm with no held residual.
TEST(CudaBackend, DecodeResidualFusionMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(31);
  for (const int64_t dim : {int64_t{2048}, int64_t{6144}}) {
    const int k = 8, rows = 160;
    const auto x0 = normal(rng, dim), h = normal(rng, dim), sh0 = normal(rng, dim);
    const auto wg = normal(rng, dim, 0.02f), fo = normal(rng, k * dim), fw = normal(rng, k);
    const auto nw = normal(rng, dim);
    const auto wb = random_weights(rng, DType::kQ8_0, rows, dim);
    const WeightView hw = host_view(wb, DType::kQ8_0, rows, dim);
    const WeightView dw = g.be.upload_weight(hw);
    // Reference: the unfused ops in the decoder's order.
    std::vector<float> x = x0, sh = sh0, hs(dim), g1(1), out(dim), ref(rows);
    WeightView gv{wg.data(), DType::kF32, 1, dim, static_cast<size_t>(dim) * 4};
    cpu::ref::matmul(gv, h.data(), 1, g1.data());
    cpu::ref::sigmoid_mul(sh.data(), g1.data(), 1, dim, 1);
    cpu::ref::add(x.data(), sh.data(), dim);
    cpu::ref::weighted_sum(fo.data(), fw.data(), 1, k, dim, hs.data());
    cpu::ref::add(x.data(), hs.data(), dim);
    cpu::ref::rms_norm(x.data(), nw.data(), 1, dim, 1e-6f, out.data());
    cpu::ref::matmul(hw, out.data(), 1, ref.data());
    float* dx = g.up(x0);
    float* dh = g.up(h);
    float* dsh = g.up(sh0);
    float* dg = g.out(1);
    float* dy = g.out(rows);
    const WeightView dgw = g.be.upload_weight(gv);
    g.be.matmul(dgw, dh, 1, dg);
    g.be.sigmoid_mul(dsh, dg, 1, dim, 1);
    g.be.add(dx, dsh, dim);
    g.be.weighted_sum(g.up(fo), g.up(fw), 1, k, dim, dh);
    g.be.add(dx, dh, dim);
    g.be.rms_norm(dx, g.up(nw), 1, dim, 1e-6f, dh);
    g.be.matmul(dw, dh, 1, dy);
    EXPECT_LT(rel_err(g.down(dx, x.size()), x), 1e-6) << dim;
    EXPECT_LT(rel_err(g.down(dh, out.size()), out), 1e-6) << dim;
    EXPECT_LT(rel_err(g.down(dsh, sh.size()), sh), 1e-6) << dim;
    EXPECT_NEAR(g.down(dg, 1)[0], g1[0], 1e-4 * (1 + std::fabs(g1[0]))) << dim;
    EXPECT_LT(rel_err(g.down(dy, ref.size()), ref), matmul_tol(DType::kQ8_0, 1)) << dim;
    // The same terms flushed by another op (no norm): x, the gated sh and the sum as above.
    float* dx2 = g.up(x0);
    float* dh2 = g.up(h);
    float* dsh2 = g.up(sh0);
    g.be.matmul(dgw, dh2, 1, dg);
    g.be.sigmoid_mul(dsh2, dg, 1, dim, 1);
    g.be.add(dx2, dsh2, dim);
    g.be.weighted_sum(g.up(fo), g.up(fw), 1, k, dim, dh2);
    g.be.add(dx2, dh2, dim);
    g.be.swiglu(dx2, dx2, 1, dim, g.out(dim));  // any other op
    EXPECT_LT(rel_err(g.down(dx2, x.size()), x), 1e-6) << dim;
    EXPECT_LT(rel_err(g.down(dh2, hs.size()), hs), 1e-6) << dim;
    EXPECT_LT(rel_err(g.down(dsh2, sh.size()), sh), 1e-6) << dim;
    // A norm of one token with nothing held: out and its int8 copy.
    g.be.rms_norm(g.up(x), g.up(nw), 1, dim, 1e-6f, dh);
    g.be.matmul(dw, dh, 1, dy);
    EXPECT_LT(rel_err(g.down(dh, out.size()), out), 1e-6) << dim;
    EXPECT_LT(rel_err(g.down(dy, ref.size()), ref), matmul_tol(DType::kQ8_0, 1)) << dim;
  }
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

// Greedy sampling on the device (argmax_rows) against the host's first argmax: ties to the
// lower index, NaN never chosen (an all-NaN row: 0), -inf, a 248k-entry row; and the host
// buffers it is read into are page-locked memory that copies work with.
TEST(CudaBackend, ArgmaxRowsMatchesHost) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(31);
  for (int64_t cols : {1, 5, 1000, 4097, 248320}) {
    const int64_t rows = 4;
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (auto& v : x) {
      const double u = rng.uniform();
      v = u < 0.05 ? NAN : u < 0.1 ? -INFINITY : static_cast<float>(static_cast<int>(rng.uniform() * 50)) - 25.0f;
    }
    for (int64_t i = 0; i < cols; ++i) x[static_cast<size_t>(cols + i)] = NAN;  // row 1: all NaN
    if (cols > 2) x[static_cast<size_t>(3 * cols + cols - 1)] = 1e30f;           // row 3: the last wins
    std::vector<int32_t> got(static_cast<size_t>(rows), -7);
    g.be.argmax_rows(g.up(x), rows, cols, got.data());
    for (int64_t r = 0; r < rows; ++r) {
      const std::span<const float> row(x.data() + r * cols, static_cast<size_t>(cols));
      EXPECT_EQ(got[static_cast<size_t>(r)], first_argmax(row)) << "row " << r << " cols " << cols;
    }
    EXPECT_EQ(got[1], 0);
  }
  float* h = g.be.alloc_host_f32(1000);
  const auto v = normal(rng, 1000);
  g.be.copy_to_host(g.up(v), 1000, h);
  EXPECT_EQ(std::vector<float>(h, h + 1000), v);
  g.be.free_host(h);
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
  // Every type with the default int8 parts, then Q6_K with one group of 16 a part and Q4_K
  // with 32 elements a part (groups 1 stands for the old part of either).
  for (const auto& [t, groups] :
       {std::pair{DType::kQ4_K, 2}, std::pair{DType::kQ6_K, 2}, std::pair{DType::kQ8_0, 2},
        std::pair{DType::kQ4_0, 2}, std::pair{DType::kQ6_K, 1}, std::pair{DType::kQ4_K, 1}}) {
    set_gemv_q6k_groups(groups);
    set_gemv_q4k_elems(groups == 1 ? 32 : 64);
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
      // gate, up and SwiGLU with nothing between (the pair in one launch, the SwiGLU writing
      // the int8 copy that down reads), twice.
      for (int rep = 0; rep < 2; ++rep) {
        float *yg2 = g.out(rg.size()), *yu2 = g.out(ru.size()), *yd2 = g.out(rd.size());
        g.be.matmul_experts(dg, dx, false, di, 1, k, yg2);
        g.be.matmul_experts(du, dx, false, di, 1, k, yu2);
        g.be.swiglu(yg2, yu2, k, ffn, yg2);
        g.be.matmul_experts(dd, yg2, true, di, 1, k, yd2);
        EXPECT_LT(rel_err(g.down(yu2, ru.size()), ru), 1.5e-2) << dtype_name(t) << " up (fused) " << cols;
        EXPECT_LT(rel_err(g.down(yg2, rs.size()), rs), 3e-2) << dtype_name(t) << " swiglu (fused) " << cols;
        EXPECT_LT(rel_err(g.down(yd2, rd.size()), rd), 3e-2) << dtype_name(t) << " down (fused) " << cols;
      }
      // The shared expert as slot k (gate and up joined, SwiGLU over k + 1 slots, down per
      // slot); its weights in another type.
      {
        const DType st = t == DType::kQ8_0 ? DType::kQ4_K : DType::kQ8_0;
        std::vector<uint8_t> sgb, sub, sdb;
        const WeightView hsg = experts_of(st, 1, ffn, cols, sgb), hsu = experts_of(st, 1, ffn, cols, sub),
                         hsd = experts_of(st, 1, cols, ffn, sdb);
        const WeightView dsg = g.be.upload_weight(hsg), dsu = g.be.upload_weight(hsu),
                         dsd = g.be.upload_weight(hsd);
        std::vector<float> sg(ffn), su(ffn), sd(cols);
        cpu::ref::matmul(hsg, x.data(), 1, sg.data());
        cpu::ref::matmul(hsu, x.data(), 1, su.data());
        std::vector<float> eg(rg), eu(ru);  // [k + 1, ffn]
        eg.insert(eg.end(), sg.begin(), sg.end());
        eu.insert(eu.end(), su.begin(), su.end());
        std::vector<float> es((k + 1) * ffn), ed(k * cols);
        cpu::ref::swiglu(eg.data(), eu.data(), k + 1, ffn, es.data());
        cpu::ref::matmul_experts(hd, es.data(), true, ids.data(), 1, k, ed.data());
        cpu::ref::matmul(hsd, es.data() + k * ffn, 1, sd.data());
        ed.insert(ed.end(), sd.begin(), sd.end());
        float *zg = g.out(eg.size()), *zu = g.out(eu.size()), *zd = g.out(ed.size());
        g.be.matmul_experts_shared(dg, dsg, dx, false, di, k, zg);
        g.be.matmul_experts_shared(du, dsu, dx, false, di, k, zu);
        const auto got_sg = g.down(zg, eg.size()), got_su = g.down(zu, eu.size());
        g.be.swiglu(zg, zu, k + 1, ffn, zg);
        g.be.matmul_experts_shared(dd, dsd, zg, true, di, k, zd);
        EXPECT_LT(rel_err(got_sg, eg), 1.5e-2) << dtype_name(t) << " shared slot gate " << cols;
        EXPECT_LT(rel_err(got_su, eu), 1.5e-2) << dtype_name(t) << " shared slot up " << cols;
        EXPECT_LT(rel_err(g.down(zd, ed.size()), ed), 3e-2) << dtype_name(t) << " shared slot down " << cols;
      }
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
            << dtype_name(t) << " lone, per_slot " << per_slot << " cols " << cols << " groups "
            << groups;
      }
    }
  }
  set_gemv_q6k_groups(2);
  set_gemv_q4k_elems(64);
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

  for (int c = 0; c < 4; ++c) {
    const bool renorm = c % 2 == 1;
    const int experts = c < 2 ? 37 : 256, kk = c < 2 ? 5 : 8;
    auto logits = normal(rng, n * experts);
    logits[3] = logits[4];  // a tie: the lower id first
    if (experts == 256) logits[40] = logits[9] = 10.0f;  // the top two tied: id 9 (lane 9) before 40 (lane 8)
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
  // One query row (decode): the split-K merge writes the int8 copy of the output that the
  // output projection reads next (no quantize of its own); the product as from the output.
  if (q_rows == 1 && head_dim % 32 == 0) {
    const int64_t cols = static_cast<int64_t>(heads) * head_dim, rows = 40;
    const auto wb = random_weights(rng, DType::kQ8_0, rows, cols);
    const WeightView hw = host_view(wb, DType::kQ8_0, rows, cols);
    std::vector<float> yref(rows);
    cpu::ref::matmul(hw, ref.data(), 1, yref.data());
    float* out2 = g.out(ref.size());
    float* y = g.out(rows);
    g.be.attention(g.up(q), heads, dkv, seqs, scale, out2);
    g.be.matmul(g.be.upload_weight(hw), out2, 1, y);
    EXPECT_LT(rel_err(g.down(y, yref.size()), yref), matmul_tol(DType::kQ8_0, 1) + tol)
        << dtype_name(kv_type) << " head_dim " << head_dim << " then a product";
  }
}

TEST(CudaBackend, AttentionMatchesReference) {
  REQUIRE_GPU();
  Gpu g;
  Rng rng(14);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    check_attention(g, rng, t, 128, 8, 2, 16, {{1, 1}, {5, 37}, {1, 700}, {33, 33}});
    check_attention(g, rng, t, 64, 4, 4, 64, {{1, 3000}});  // split-K decode
    if (t == DType::kF16) check_attention(g, rng, t, 64, 1, 1, 64, {{1, 9000}});  // 128 splits
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

}  // namespace
}  // namespace strata::backend::cuda
