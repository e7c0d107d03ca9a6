// Variant 1 of the dot kernels: one weight row against a tile of NT activation rows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/dot_kernels.h"

namespace strata::backend::cpu::v1 {

using DotTileFnV1 = void (*)(const void* w_row, const void* x, size_t x_row_bytes, int nt,
                             int64_t cols, float* y, int64_t y_stride);
struct DotKernelV1 {
  ActFormat act = ActFormat::kF32;
  DotTileFnV1 dot = nullptr;
};
DotKernelV1 dot_kernel(DType weight_type);

}  // namespace strata::backend::cpu::v1
