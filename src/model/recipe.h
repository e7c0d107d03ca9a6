// Weight-type recipes: which GGUF type each tensor gets for a named file type ("Q4_K_M",
// "Q8_0", "F16", ...). Used by `strata synth` and `strata quantize`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace strata::model {

struct Recipe {
  std::string name;        // "Q4_K_M"
  DType base = DType::kF32;
  uint32_t file_type = 0;  // general.file_type, as the GGUF ecosystem numbers it
};

Result<Recipe> find_recipe(std::string_view name);
std::vector<std::string> recipe_names();

// The type for one tensor. `shape` is in GGUF order (shape[0] = row length). 1-D tensors
// (norms, biases) and the MoE router stay F32; a row length that does not fit the chosen
// type's block falls back to a type whose block fits.
DType tensor_type(const Recipe& recipe, std::string_view tensor_name, const std::vector<int64_t>& shape,
                  int num_layers);

}  // namespace strata::model
