// Fast matmul / matmul_experts against the scalar reference (dequantize + double dot), every
// weight type core can quantize, odd sizes; bounds derived from activation quantization and
// f32 roundoff; threaded results equal single-threaded ones bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/blocks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/ref_ops.h"
#include "backend/cpu/test_util.h"
#include "core/fp16.h"

namespace strata::backend::cpu {
namespace {

using testing::kF32Eps;

constexpr DType kAllTypes[] = {DType::kF32,  DType::kF16,    DType::kBF16,   DType::kQ4_0,
                               DType::kQ4_1, DType::kQ5_0,   DType::kQ5_1,   DType::kQ8_0,
                               DType::kQ2_K, DType::kQ3_K,   DType::kQ4_K,   DType::kQ5_K,
                               DType::kQ6_K, DType::kIQ4_NL, DType::kIQ4_XS, DType::kMXFP4};

// |fast - exact| bound for one output: the activation quantization error (|x - x~| <= amax/254
// per quant block, times sum |w| over the block) plus f32 roundoff of the block-wise sums.
double error_bound(ActFormat act, const float* w, const float* x, int64_t cols) {
  const int64_t qb = act == ActFormat::kQ8_0 ? kQK : act == ActFormat::kQ8K ? kQKK : 0;
  double quant = 0, abs_dot = 0;
  for (int64_t i = 0; i < cols; ++i) abs_dot += std::fabs(static_cast<double>(w[i]) * x[i]);
  if (qb > 0) {
    for (int64_t b = 0; b < cols / qb; ++b) {
      double amax = 0, wsum = 0;
      for (int64_t i = b * qb; i < (b + 1) * qb; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        wsum += std::fabs(w[i]);
      }
      quant += amax / 254.0 * wsum;
    }
  }
  // f32 roundoff: at most cols/8 + 32 rounded additions along any lane's path
  const double roundoff = (static_cast<double>(cols) / 8 + 32) * 2 * kF32Eps * abs_dot;
  return quant * (1 + 1e-5) + roundoff + 1e-30;
}

// Expected variance of the same error: activation rounding errors are independent and uniform
// within +-d/2 (d = amax / 127 of their block), so Var = sum_i w_i^2 d_i^2 / 12; plus f32
// roundoff, ~cols * eps^2 * sum (w_i x_i)^2.
double error_variance(ActFormat act, const float* w, const float* x, int64_t cols) {
  const int64_t qb = act == ActFormat::kQ8_0 ? kQK : act == ActFormat::kQ8K ? kQKK : 0;
  double var = 0, sq = 0;
  for (int64_t i = 0; i < cols; ++i) sq += std::pow(static_cast<double>(w[i]) * x[i], 2);
  if (qb > 0) {
    for (int64_t b = 0; b < cols / qb; ++b) {
      double amax = 0, w2 = 0;
      for (int64_t i = b * qb; i < (b + 1) * qb; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        w2 += static_cast<double>(w[i]) * w[i];
      }
      var += w2 * std::pow(amax / 127.0, 2) / 12.0;
    }
  }
  return var + static_cast<double>(cols) * kF32Eps * kF32Eps * sq + 1e-60;
}

struct Case {
  int64_t rows, blocks, n;
};

// Sums of squared errors and of their expected variances, over all outputs of a type: the
// worst-case bound above is loose (errors cancel), this one catches a wrong scale.
struct ErrorStats {
  double err2 = 0, var = 0;
};

void check_matmul(DType type, const Case& c, uint64_t seed, ErrorStats& stats) {
  Rng rng(seed);
  const int64_t block = dtype_info(type).block_elems;
  // plain types get an odd column count; block types an odd number of blocks
  const int64_t cols = block == 1 ? c.blocks * 8 + 5 : c.blocks * (block == 32 ? 32 : 256);
  const std::vector<uint8_t> wbytes = testing::random_weights(rng, type, c.rows, cols);
  const std::vector<float> x = testing::normal(rng, static_cast<size_t>(c.n * cols));
  const WeightView w{wbytes.data(), type, c.rows, cols, row_bytes(type, cols)};

  std::vector<float> y_ref(static_cast<size_t>(c.n * c.rows)), y1(y_ref.size()), y3(y_ref.size());
  ref::matmul(w, x.data(), c.n, y_ref.data());
  CpuBackend one(1), three(3);
  one.matmul(w, x.data(), c.n, y1.data());
  three.matmul(w, x.data(), c.n, y3.data());

  std::vector<float> wrow(static_cast<size_t>(cols));
  const ActFormat act = dot_kernel(type).act;
  for (int64_t r = 0; r < c.rows; ++r) {
    dequantize_row(type, wbytes.data() + r * w.row_bytes, wrow.data(), cols);
    for (int64_t t = 0; t < c.n; ++t) {
      const size_t i = static_cast<size_t>(t * c.rows + r);
      const double bound = error_bound(act, wrow.data(), x.data() + t * cols, cols);
      const double err = static_cast<double>(y1[i]) - y_ref[i];
      stats.err2 += err * err;
      stats.var += error_variance(act, wrow.data(), x.data() + t * cols, cols);
      ASSERT_LE(std::fabs(err), bound)
          << dtype_name(type) << " rows " << c.rows << " cols " << cols << " n " << c.n << " r " << r << " t " << t;
      ASSERT_EQ(y1[i], y3[i]) << "threaded differs: " << dtype_name(type);
    }
  }
}

// Every build of the integer kernels: 0 AVX2, 1 AVX-VNNI, 2 AVX-512 (each where the CPU has it),
// 3 AVX-512 with the Q4_K one-token kernel's four-super-block path (AVX512-VBMI) switched off,
// 4 AVX-512 with that path's shift-and-blend block sums instead of the GFNI form, 5 AVX-512 with
// the tiles of 2-4 tokens of Q4_K, Q6_K and Q8_0 in the VNNI templates instead of the one-token
// kernels' 512-bit forms, 6 AVX-512 with one token's rows in kernel calls of 16 rows
// (set_one_token_runs off), 7 AVX-512 with the token packed at each one-token call
// (set_one_token_packed off).
class CpuMatmulIsa : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (GetParam() == 1 && !vnni_kernels_available()) GTEST_SKIP() << "no avx_vnni on this CPU";
    if (GetParam() >= 2 && !avx512_kernels_available()) GTEST_SKIP() << "no avx512 (f, bw, vl, vnni) on this CPU";
    if (GetParam() == 3 && !q4k_four_blocks_available()) GTEST_SKIP() << "no avx512vbmi on this CPU (q4k_row only)";
    if ((GetParam() == 4 || GetParam() == 5) && !q4k_gfni_available())
      GTEST_SKIP() << "no gfni on this CPU (shift-and-blend form, VNNI tiles only)";
    saved_vnni_ = vnni_kernels_enabled();
    saved_avx512_ = avx512_kernels_enabled();
    set_vnni_kernels(GetParam() == 1);
    set_avx512_kernels(GetParam() >= 2);
    set_q4k_four_blocks(GetParam() != 3);
    set_q4k_gfni(GetParam() != 4);
    set_q4k_tokens(GetParam() != 5);
    set_tile_tokens_avx512(GetParam() != 5);
    set_one_token_runs(GetParam() != 6);
    set_one_token_packed(GetParam() != 7);
  }
  void TearDown() override {
    set_vnni_kernels(saved_vnni_);
    set_avx512_kernels(saved_avx512_);
    set_q4k_four_blocks(true);
    set_q4k_gfni(true);
    set_q4k_tokens(true);
    set_tile_tokens_avx512(true);
    set_one_token_runs(true);
    set_one_token_packed(true);
  }
  bool saved_vnni_ = false, saved_avx512_ = false;
};

TEST_P(CpuMatmulIsa, EveryTypeMatchesReference) {
  // one-token cases: 1-7 blocks, and 67 and 261: past the chunks of the AVX-512 kernels that
  // repack the token (64 Q4_K or Q6_K super-blocks, 256 Q8_0 blocks); tiles of tokens on rows
  // of 4, 8, 68 and 264 blocks (the AVX-512 tiles take blocks in fours; 68 and 264 past their
  // chunks)
  const Case cases[] = {{1, 1, 1},  {13, 3, 3}, {67, 3, 7}, {37, 5, 33}, {9, 1, 5},
                        {29, 4, 1}, {5, 7, 1},  {3, 67, 1}, {2, 261, 1}, {7, 4, 5},
                        {4, 8, 3},  {3, 68, 6}, {2, 264, 3}};
  int tested = 0;
  uint64_t seed = 100;
  for (DType type : kAllTypes) {
    if (!can_quantize(type) || !can_dequantize(type)) continue;
    ++tested;
    ErrorStats stats;
    for (const Case& c : cases) {
      // the long rows test those chunks; other types' quantizers are slow there
      if (c.blocks > 7 && type != DType::kQ8_0 && type != DType::kQ4_K && type != DType::kQ6_K) continue;
      check_matmul(type, c, ++seed, stats);
    }
    // mean squared error within 4x its expectation (about 1x when right; hundreds of outputs)
    EXPECT_LE(stats.err2, 4 * stats.var) << dtype_name(type) << ": rms error " << std::sqrt(stats.err2 / stats.var)
                                         << " x the expected";
  }
  EXPECT_GE(tested, 3);
}

std::string isa_name(const ::testing::TestParamInfo<int>& i) {
  static const char* const kNames[] = {"Avx2",          "Vnni",
                                       "Avx512",        "Avx512NoVbmi",
                                       "Avx512NoGfni",  "Avx512VnniTiles",
                                       "Avx512Chunk16", "Avx512PackEachCall"};
  return kNames[i.param];
}
INSTANTIATE_TEST_SUITE_P(Builds, CpuMatmulIsa, ::testing::Values(0, 1, 2, 3, 4, 5, 6, 7), isa_name);

// The backend's product of w and x [n, cols] against the reference, each element within the
// bound of the activations' rounding (act) for its row and token.
void expect_within_act_bound(const WeightView& w, const std::vector<float>& x, int64_t n, ActFormat act,
                             const std::string& what) {
  const int64_t rows = w.rows, cols = w.cols;
  std::vector<float> y_ref(static_cast<size_t>(n * rows)), y(y_ref.size()), wrow(static_cast<size_t>(cols));
  ref::matmul(w, x.data(), n, y_ref.data());
  CpuBackend(2).matmul(w, x.data(), n, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes, wrow.data(), cols);
    for (int64_t t = 0; t < n; ++t) {
      const double bound = error_bound(act, wrow.data(), x.data() + t * cols, cols);
      ASSERT_LE(std::fabs(y[t * rows + r] - y_ref[t * rows + r]), bound) << what << " row " << r << " token " << t;
    }
  }
}

// Q8_0 rows of raw random bytes (including -128, which quantizers never write).
TEST_P(CpuMatmulIsa, Q8_0RawBytes) {
  Rng rng(7);
  const int64_t rows = 19, cols = 32 * 7, n = 6;
  std::vector<WQ8_0> blocks(static_cast<size_t>(rows * cols / 32));
  for (WQ8_0& b : blocks) {
    b.d = f32_to_fp16(rng.uniform(-0.02f, 0.02f) + 0.001f);
    for (int8_t& q : b.qs) q = static_cast<int8_t>(rng.next_u64());
  }
  const WeightView w{blocks.data(), DType::kQ8_0, rows, cols, row_bytes(DType::kQ8_0, cols)};
  expect_within_act_bound(w, testing::normal(rng, static_cast<size_t>(n * cols)), n, ActFormat::kQ8_0, "Q8_0");
}

// Q4_K rows of raw random bytes: every 6-bit scale and min pattern (quantizers leave most
// high bits of the packed scales alone), one token (the AVX-512 kernel's four-super-block
// groups and the rest) and tiles; 1-9 super-blocks and 67 (past a 64-block pack chunk).
TEST_P(CpuMatmulIsa, Q4_KRawBytes) {
  Rng rng(8);
  for (const int64_t nb : {1, 3, 4, 5, 8, 9, 67}) {
    for (const int64_t n : {1, 3}) {
      const int64_t rows = 21, cols = 256 * nb;
      std::vector<WQ4_K> blocks(static_cast<size_t>(rows * nb));
      for (WQ4_K& b : blocks) {
        b.d = f32_to_fp16(rng.uniform(0.0005f, 0.004f));
        b.dmin = f32_to_fp16(rng.uniform(0.0005f, 0.004f));
        for (uint8_t& s : b.scales) s = static_cast<uint8_t>(rng.next_u64());
        for (uint8_t& q : b.qs) q = static_cast<uint8_t>(rng.next_u64());
      }
      const WeightView w{blocks.data(), DType::kQ4_K, rows, cols, row_bytes(DType::kQ4_K, cols)};
      expect_within_act_bound(w, testing::normal(rng, static_cast<size_t>(n * cols)), n, ActFormat::kQ8K,
                              "blocks " + std::to_string(nb) + " n " + std::to_string(n));
    }
  }
}

// One token's products are the same floats on 1, 2 or 3 threads, and for a matrix that starts
// 1-3 rows later: a row's sum does not depend on where a kernel call's rows begin and end (a
// thread's rows go to the kernel in one call, set_one_token_runs).
TEST(CpuMatmul, OneTokenSameFloatsOnAnyThreadCount) {
  Rng rng(12);
  for (DType type : {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0}) {
    const int64_t rows = 203, cols = 1024;
    const std::vector<uint8_t> bytes = testing::random_weights(rng, type, rows, cols);
    const WeightView w{bytes.data(), type, rows, cols, row_bytes(type, cols)};
    const std::vector<float> x = testing::normal(rng, static_cast<size_t>(cols));
    std::vector<float> y1(static_cast<size_t>(rows)), y(y1.size());
    CpuBackend(1).matmul(w, x.data(), 1, y1.data());
    for (int threads : {2, 3}) {
      CpuBackend(threads).matmul(w, x.data(), 1, y.data());
      EXPECT_EQ(y, y1) << dtype_name(type) << " on " << threads << " threads";
    }
    // the same rows from the second on: every row lands in another place of its four
    for (int64_t skip = 1; skip < 4; ++skip) {
      const WeightView tail{bytes.data() + skip * w.row_bytes, type, rows - skip, cols,
                            w.row_bytes};
      std::vector<float> yt(static_cast<size_t>(rows - skip));
      CpuBackend(2).matmul(tail, x.data(), 1, yt.data());
      EXPECT_TRUE(std::equal(yt.begin(), yt.end(), y1.begin() + skip))
          << dtype_name(type) << " from row " << skip;
    }
  }
}

// Several products of one input in one pass (q/k/v, gate/up): exactly the separate products,
// for types sharing an activation format (fused) and mixed formats (one at a time).
TEST(CpuMatmul, MultiEqualsSeparateProducts) {
  Rng rng(11);
  const int64_t cols = 512;
  const std::vector<std::vector<DType>> groups = {
      {DType::kQ4_K, DType::kQ4_K, DType::kQ6_K}, {DType::kQ8_0, DType::kQ4_0}, {DType::kQ8_0, DType::kQ4_K, DType::kF16}};
  const int64_t rows[] = {37, 16, 5};
  for (const auto& types : groups) {
    for (int64_t n : {1, 3, 9}) {
      std::vector<std::vector<uint8_t>> bytes;
      std::vector<WeightView> ws;
      for (size_t i = 0; i < types.size(); ++i) {
        bytes.push_back(testing::random_weights(rng, types[i], rows[i], cols));
        ws.push_back(WeightView{bytes.back().data(), types[i], rows[i], cols, row_bytes(types[i], cols)});
      }
      const std::vector<float> x = testing::normal(rng, static_cast<size_t>(n * cols));
      std::vector<std::vector<float>> multi(types.size()), alone(types.size());
      std::vector<float*> ys;
      for (size_t i = 0; i < types.size(); ++i) {
        multi[i].assign(static_cast<size_t>(n * rows[i]), 0.0f);
        alone[i].assign(multi[i].size(), 0.0f);
        ys.push_back(multi[i].data());
      }
      CpuBackend be(2);
      be.matmul_multi(ws, x.data(), n, ys);
      for (size_t i = 0; i < types.size(); ++i) {
        be.matmul(ws[i], x.data(), n, alone[i].data());
        EXPECT_EQ(multi[i], alone[i]) << dtype_name(types[i]) << " n " << n;
      }
    }
  }
}

TEST(CpuMatmul, ActivationQuantizationMatchesScalarTwin) {
  Rng rng(3);
  for (ActFormat act : {ActFormat::kQ8_0, ActFormat::kQ8K}) {
    for (int64_t cols : {256, 768, 2816}) {
      std::vector<float> x = testing::normal(rng, static_cast<size_t>(cols), 3.0f);
      x[5] = 0.5f;  // a tie for some scales is fine: both round to even
      std::vector<uint8_t> a(act_row_bytes(act, cols)), b(a.size());
      quantize_act_row(act, x.data(), cols, a.data());
      quantize_act_row_scalar(act, x.data(), cols, b.data());
      EXPECT_EQ(a, b) << static_cast<int>(act) << " " << cols;
    }
  }
}

TEST(CpuMatmul, ExpertsMatchReference) {
  for (DType type : {DType::kF16, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0}) {
    if (!can_quantize(type) || !can_dequantize(type)) continue;
    for (bool per_slot : {false, true}) {
      Rng rng(40 + static_cast<int>(type) + per_slot);
      const int64_t ne = 5, rows = 21, n = 7;
      const int k = 2;
      const int64_t cols = dtype_info(type).block_elems == 256 ? 512 : 96;
      const size_t rb = row_bytes(type, cols);
      const std::vector<uint8_t> wb = testing::random_weights(rng, type, ne * rows, cols);
      const WeightView w{wb.data(), type, rows, cols, rb, ne, rb * rows};
      const std::vector<float> x = testing::normal(rng, static_cast<size_t>(n * (per_slot ? k : 1) * cols));
      std::vector<int32_t> ids(static_cast<size_t>(n * k));
      for (int64_t t = 0; t < n; ++t) {
        ids[t * k] = static_cast<int32_t>(rng.below(ne));
        ids[t * k + 1] = static_cast<int32_t>((ids[t * k] + 1 + rng.below(ne - 1)) % ne);
      }
      std::vector<float> y_ref(static_cast<size_t>(n * k * rows)), y(y_ref.size()), wrow(cols);
      ref::matmul_experts(w, x.data(), per_slot, ids.data(), n, k, y_ref.data());
      CpuBackend(2).matmul_experts(w, x.data(), per_slot, ids.data(), n, k, y.data());
      const ActFormat act = dot_kernel(type).act;
      for (int64_t s = 0; s < n * k; ++s) {
        const float* xr = x.data() + (per_slot ? s : s / k) * cols;
        for (int64_t r = 0; r < rows; ++r) {
          dequantize_row(type, wb.data() + (ids[s] * rows + r) * rb, wrow.data(), cols);
          ASSERT_LE(std::fabs(y[s * rows + r] - y_ref[s * rows + r]), error_bound(act, wrow.data(), xr, cols))
              << dtype_name(type) << " slot " << s << " row " << r;
        }
      }
    }
  }
}

TEST(CpuGetRows, MatchesReference) {
  for (DType type : kAllTypes) {
    if (!can_quantize(type) || !can_dequantize(type)) continue;
    Rng rng(9 + static_cast<int>(type));
    const int64_t rows = 11, cols = dtype_info(type).block_elems == 256 ? 512 : 64;
    const std::vector<uint8_t> wb = testing::random_weights(rng, type, rows, cols);
    const WeightView w{wb.data(), type, rows, cols, row_bytes(type, cols)};
    const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
    std::vector<float> a(ids.size() * cols), b(a.size());
    ref::get_rows(w, ids.data(), 5, a.data());
    CpuBackend(2).get_rows(w, ids.data(), 5, b.data());
    EXPECT_EQ(a, b) << dtype_name(type);
  }
}

}  // namespace
}  // namespace strata::backend::cpu
