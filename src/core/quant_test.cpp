// Block formats: layouts, scale packing helpers, and quantize -> dequantize round trips on
// fresh random data (normal, outliers, odd magnitudes, zero and constant blocks).
// Bit-exactness against the GGUF ecosystem is tested in tests/quant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/quant_blocks.h"
#include "core/rng.h"

namespace strata {
namespace {

TEST(QuantBlocks, SizesMatchDtypeTable) {
  EXPECT_EQ(sizeof(BlockQ4_0), dtype_info(DType::kQ4_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4_1), dtype_info(DType::kQ4_1).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5_0), dtype_info(DType::kQ5_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5_1), dtype_info(DType::kQ5_1).block_bytes);
  EXPECT_EQ(sizeof(BlockQ8_0), dtype_info(DType::kQ8_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ2_K), dtype_info(DType::kQ2_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ3_K), dtype_info(DType::kQ3_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4_K), dtype_info(DType::kQ4_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ5_K), dtype_info(DType::kQ5_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ6_K), dtype_info(DType::kQ6_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ8_K), dtype_info(DType::kQ8_K).block_bytes);
  EXPECT_EQ(sizeof(BlockIQ4_NL), dtype_info(DType::kIQ4_NL).block_bytes);
  EXPECT_EQ(sizeof(BlockIQ4_XS), dtype_info(DType::kIQ4_XS).block_bytes);
  EXPECT_EQ(sizeof(BlockMXFP4), dtype_info(DType::kMXFP4).block_bytes);
}

TEST(QuantBlocks, K4ScalePackingRoundTrips) {
  Rng rng(1);
  for (int trial = 0; trial < 1000; ++trial) {
    uint8_t sc[8], m[8], packed[kK4ScaleBytes];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(rng.below(64));
      m[j] = static_cast<uint8_t>(rng.below(64));
    }
    k4_pack_scale_min(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      uint8_t s2, m2;
      k4_scale_min(j, packed, &s2, &m2);
      ASSERT_EQ(s2, sc[j]);
      ASSERT_EQ(m2, m[j]);
    }
  }
}

TEST(QuantBlocks, Q3KScalePackingRoundTrips) {
  Rng rng(2);
  for (int trial = 0; trial < 1000; ++trial) {
    int8_t sc[16];
    uint8_t packed[12];
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(static_cast<int>(rng.below(64)) - 32);
    q3_k_pack_scales(sc, packed);
    for (int j = 0; j < 16; ++j) ASSERT_EQ(q3_k_scale(j, packed), sc[j]);
  }
}

TEST(QuantBlocks, E8M0HalfIsAPowerOfTwo) {
  EXPECT_EQ(bits_to_f32(e8m0_to_f32_half_bits(128)), 1.0f);
  EXPECT_EQ(bits_to_f32(e8m0_to_f32_half_bits(127)), 0.5f);
  EXPECT_EQ(bits_to_f32(e8m0_to_f32_half_bits(1)), std::ldexp(1.0f, -127));
  EXPECT_EQ(bits_to_f32(e8m0_to_f32_half_bits(0)), std::ldexp(1.0f, -128));
  EXPECT_EQ(bits_to_f32(e8m0_to_f32_half_bits(254)), std::ldexp(1.0f, 126));
}

std::vector<float> round_trip(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(type, static_cast<int64_t>(x.size())));
  std::vector<float> y(x.size());
  quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
  dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
  return y;
}

// Relative RMS error of y against x over [begin, end).
double rel_rms(const std::vector<float>& x, const std::vector<float>& y, size_t begin, size_t end) {
  double num = 0, den = 0;
  for (size_t i = begin; i < end; ++i) {
    num += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
    den += static_cast<double>(x[i]) * x[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Relative RMS error bounds on standard normal data. A uniform grid of step D has RMS error
// about D / sqrt(12) = D / 3.46; D is the span a block's scale must cover over the number of
// steps. For n normals, E[max |x|] is 2.07 (n = 16), 2.35 (n = 32), 3.05 (n = 256), and the
// range max - min is about 3.5 (n = 16) and 4.1 (n = 32). Estimates, before the scale search
// (which clips tails and only lowers them):
//   Q8_0  2 * 2.35 / 254 / 3.46 = 0.0053     Q8_K  2 * 3.05 / 254 / 3.46 = 0.0069
//   Q6_K  2 * 2.07 / 63 / 3.46 = 0.019       Q5_0  2 * 2.35 / 31 / 3.46 = 0.044
//   Q5_1, Q5_K  4.1 / 31 / 3.46 = 0.038      Q4_0, IQ4_NL, IQ4_XS  2 * 2.35 / 15 / 3.46 = 0.09
//   Q4_1, Q4_K  4.1 / 15 / 3.46 = 0.079      Q3_K  2 * 2.07 / 7 / 3.46 = 0.17
//   Q2_K  3.5 / 3 / 3.46 = 0.34 (clipping the tails brings it to ~0.26)
//   MXFP4: E2M1 keeps 2-3 significant bits under a power-of-two scale: ~0.15.
// Each bound is the estimate with 25-30% headroom for sampling noise; the measured values
// are printed so a regression shows before it fails.
struct Bound {
  DType type;
  double normal;    // relative RMS bound on normal data (per block, for odd magnitudes)
  int scale_group;  // elements whose step one stored scale sets (an outlier stretches it)
};
constexpr Bound kBounds[] = {
    {DType::kQ8_0, 0.007, 32},    {DType::kQ8_K, 0.009, 256},   {DType::kQ6_K, 0.024, 16},
    {DType::kQ5_0, 0.055, 32},    {DType::kQ5_1, 0.048, 32},    {DType::kQ5_K, 0.048, 32},
    {DType::kQ4_0, 0.115, 32},    {DType::kQ4_1, 0.10, 32},     {DType::kQ4_K, 0.10, 32},
    {DType::kIQ4_NL, 0.115, 32},  {DType::kIQ4_XS, 0.115, 32},  {DType::kQ3_K, 0.21, 16},
    {DType::kQ2_K, 0.34, 16},     {DType::kMXFP4, 0.19, 32},
};

constexpr int64_t kRowElems = 256 * 37;  // an odd number of super-blocks

class QuantRoundTrip : public ::testing::TestWithParam<Bound> {};

TEST_P(QuantRoundTrip, NormalData) {
  const Bound b = GetParam();
  Rng rng(100 + static_cast<uint64_t>(b.type));
  std::vector<float> x(kRowElems);
  for (auto& v : x) v = rng.normal();
  const double err = rel_rms(x, round_trip(b.type, x), 0, x.size());
  std::printf("%-7s normal       rel RMS %.5f (bound %.3f)\n", dtype_name(b.type), err, b.normal);
  EXPECT_LE(err, b.normal);
  EXPECT_GT(err, 0.0);  // a quantizer that returns its input would be suspicious
}

// Outliers: a fraction p = 0.005 of values scaled by f ~ U(10, 50), E[f^2] = 1033. They raise
// the total energy by 1 + p (E[f^2] - 1) = 6.2. A group of n values that share one scale holds
// an outlier with probability a = 1 - (1 - p)^n, and there the squared step grows by about
// K = E[f^2] / E[max^2] (E[max^2] = 4.5, 5.7, 9.4 for n = 16, 32, 256) unless the quantizer
// clips the outlier. So the relative error grows by at most about
// sqrt(((1 - a) + K a) / 6.2): 1.7x for n = 16, 2.0x for n = 32, 3.9x for n = 256 (the
// low-bit formats clip and stay near their normal-data error).
double outlier_factor(int n) {
  const double max_sq = n <= 16 ? 4.5 : n <= 32 ? 5.7 : 9.4;
  const double a = 1.0 - std::pow(1.0 - 0.005, n);
  return std::sqrt(((1.0 - a) + 1033.0 / max_sq * a) / 6.2);
}

TEST_P(QuantRoundTrip, Outliers) {
  const Bound b = GetParam();
  Rng rng(200 + static_cast<uint64_t>(b.type));
  std::vector<float> x(kRowElems);
  for (auto& v : x) {
    v = rng.normal();
    if (rng.below(200) == 0) v *= rng.uniform(10.0f, 50.0f);
  }
  const double err = rel_rms(x, round_trip(b.type, x), 0, x.size());
  const double bound = b.normal * outlier_factor(b.scale_group);
  std::printf("%-7s outliers     rel RMS %.5f (bound %.3f)\n", dtype_name(b.type), err, bound);
  EXPECT_LE(err, bound);
}

// Each 256-block has its own magnitude (2^-12 .. 2^12) and mean; the formats are scale-free
// as long as the fp16 scales stay normal, so every block meets the normal bound by itself
// (plus headroom for the mean, which the symmetric formats must spend levels on).
TEST_P(QuantRoundTrip, OddMagnitudesPerBlock) {
  const Bound b = GetParam();
  Rng rng(300 + static_cast<uint64_t>(b.type));
  std::vector<float> x(kRowElems);
  for (int64_t blk = 0; blk < kRowElems / 256; ++blk) {
    const float scale = std::ldexp(rng.uniform(1.0f, 2.0f), static_cast<int>(rng.below(25)) - 12);
    const float mean = rng.uniform(-0.5f, 0.5f);
    for (int j = 0; j < 256; ++j) x[blk * 256 + j] = scale * (mean + rng.normal());
  }
  const std::vector<float> y = round_trip(b.type, x);
  double worst = 0;
  for (int64_t blk = 0; blk < kRowElems / 256; ++blk) {
    worst = std::fmax(worst, rel_rms(x, y, blk * 256, blk * 256 + 256));
  }
  std::printf("%-7s magnitudes   worst block rel RMS %.5f (bound %.3f)\n", dtype_name(b.type), worst,
              1.25 * b.normal);
  EXPECT_LE(worst, 1.25 * b.normal);
}

// All-zero blocks come back as exact zeros. Constant blocks come back within the fp16
// rounding of their scale (2^-11, times a few roundings: 2e-3), since every format can put all
// values on one level; MXFP4 only within its grid: the worst gap is 4..6, so 1/5 relative.
TEST_P(QuantRoundTrip, ZeroAndConstantBlocks) {
  const Bound b = GetParam();
  const int64_t block = dtype_info(b.type).block_elems;
  Rng rng(400 + static_cast<uint64_t>(b.type));
  std::vector<float> x(kRowElems);
  std::vector<float> constant(kRowElems / block);
  for (int64_t blk = 0; blk < kRowElems / block; ++blk) {
    constant[blk] = blk % 3 == 0 ? 0.0f : rng.uniform(-4.0f, 4.0f);
    for (int64_t j = 0; j < block; ++j) x[blk * block + j] = constant[blk];
  }
  const std::vector<float> y = round_trip(b.type, x);
  const double tol = b.type == DType::kMXFP4 ? 0.201 : 2e-3;
  for (int64_t i = 0; i < kRowElems; ++i) {
    const float c = constant[i / block];
    if (c == 0.0f) {
      ASSERT_EQ(y[i], 0.0f) << i;
    } else {
      ASSERT_NEAR(y[i], c, tol * std::fabs(c)) << i;
    }
  }
}

// Where the format pins the scale to the data exactly (Q8_0: the fp16 scale times 127 is
// exact in f32 and divides back exactly; MXFP4: a power-of-two scale whose values the search
// reproduces with zero error), quantizing the dequantized values again gives the same values.
TEST(QuantRoundTrip, RequantizingDequantizedValuesIsStable) {
  for (const DType type : {DType::kQ8_0, DType::kMXFP4}) {
    SCOPED_TRACE(dtype_name(type));
    Rng rng(500);
    std::vector<float> x(kRowElems);
    for (auto& v : x) v = rng.normal() * (rng.below(100) == 0 ? 20.0f : 1.0f);
    const std::vector<float> y = round_trip(type, x);
    const std::vector<float> y2 = round_trip(type, y);
    for (int64_t i = 0; i < kRowElems; ++i) ASSERT_EQ(f32_to_bits(y2[i]), f32_to_bits(y[i])) << i;
  }
}

std::string bound_name(const ::testing::TestParamInfo<Bound>& p) { return dtype_name(p.param.type); }
INSTANTIATE_TEST_SUITE_P(Formats, QuantRoundTrip, ::testing::ValuesIn(kBounds), bound_name);

// F16 / BF16: each value comes back as a nearest representable value (ties to even are
// tested in core_test): neither neighbour of the result is strictly closer.
TEST(QuantRoundTrip, HalfTypesRoundToNearest) {
  Rng rng(600);
  for (const DType type : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(type));
    std::vector<float> x(4096);
    for (auto& v : x) v = std::ldexp(rng.normal(), static_cast<int>(rng.below(30)) - 15);
    std::vector<uint16_t> h(x.size());
    quantize_row(type, x.data(), h.data(), static_cast<int64_t>(x.size()));
    const auto decode = [type](uint16_t bits) {
      return type == DType::kF16 ? fp16_to_f32(bits) : bf16_to_f32(bits);
    };
    std::vector<float> y(x.size());
    dequantize_row(type, h.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(y[i], decode(h[i]));
      const double err = std::fabs(static_cast<double>(y[i]) - x[i]);
      for (const int step : {-1, 1}) {
        const uint16_t nb = static_cast<uint16_t>(h[i] + step);
        const float n = decode(nb);
        if (std::isnan(n) || std::isinf(n) || ((nb ^ h[i]) & 0x8000u)) continue;
        ASSERT_GE(std::fabs(static_cast<double>(n) - x[i]), err) << x[i];
      }
    }
  }
}

TEST(QuantRoundTrip, Q8KBlockSumsMatchQuants) {
  Rng rng(700);
  std::vector<float> x(256 * 5);
  for (auto& v : x) v = rng.normal() * 3.0f;
  std::vector<BlockQ8_K> q(5);
  quantize_row(DType::kQ8_K, x.data(), q.data(), static_cast<int64_t>(x.size()));
  for (const BlockQ8_K& b : q) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      EXPECT_EQ(b.bsums[g], sum);
    }
  }
}

TEST(QuantRoundTrip, EveryBlockFormatIsSupported) {
  for (const Bound& b : kBounds) {
    EXPECT_TRUE(can_dequantize(b.type)) << dtype_name(b.type);
    EXPECT_TRUE(can_quantize(b.type)) << dtype_name(b.type);
  }
  EXPECT_FALSE(can_dequantize(DType::kQ8_1));
  EXPECT_FALSE(can_quantize(DType::kI32));
}

}  // namespace
}  // namespace strata
