// Mixed recipes follow the shape of the GGUF ecosystem's *_M/_S mixes: the output matrix
// and, in some layers, attn_v and ffn_down get more bits (the layers where quantization
// error hurts most: the first and last eighth and every third layer between).
#include "model/recipe.h"

#include <fmt/format.h>

#include <cctype>

namespace strata::model {
namespace {

struct RecipeDef {
  const char* name;
  DType base;
  uint32_t file_type;
};

constexpr RecipeDef kRecipes[] = {
    {"F32", DType::kF32, 0},       {"F16", DType::kF16, 1},       {"BF16", DType::kBF16, 32},
    {"Q8_0", DType::kQ8_0, 7},     {"Q4_0", DType::kQ4_0, 2},     {"Q4_1", DType::kQ4_1, 3},
    {"Q5_0", DType::kQ5_0, 8},     {"Q5_1", DType::kQ5_1, 9},     {"Q2_K", DType::kQ2_K, 10},
    {"Q3_K_M", DType::kQ3_K, 12},  {"Q4_K_S", DType::kQ4_K, 14},  {"Q4_K_M", DType::kQ4_K, 15},
    {"Q5_K_S", DType::kQ5_K, 16},  {"Q5_K_M", DType::kQ5_K, 17},  {"Q6_K", DType::kQ6_K, 18},
    {"IQ4_NL", DType::kIQ4_NL, 25}, {"IQ4_XS", DType::kIQ4_XS, 30}, {"MXFP4_MOE", DType::kMXFP4, 38},
};

bool use_more_bits(int layer, int num_layers) {
  return layer < num_layers / 8 || layer >= 7 * num_layers / 8 || (layer - num_layers / 8) % 3 == 2;
}

int layer_of(std::string_view name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int v = 0;
  for (size_t i = 4; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) v = v * 10 + (name[i] - '0');
  return v;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

DType fit_block(DType t, int64_t row) {
  if (row % dtype_info(t).block_elems == 0) return t;
  if (row % 32 == 0) {
    switch (t) {
      case DType::kQ2_K: case DType::kQ3_K: return DType::kQ4_0;
      case DType::kQ4_K: case DType::kIQ4_XS: return DType::kQ5_0;
      case DType::kQ5_K: return DType::kQ5_1;
      default: return DType::kQ8_0;
    }
  }
  return DType::kF16;
}

}  // namespace

Result<Recipe> find_recipe(std::string_view name) {
  std::string up;
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& r : kRecipes) {
    if (up == r.name) return Recipe{r.name, r.base, r.file_type};
  }
  std::string all;
  for (const auto& r : kRecipes) all += std::string(all.empty() ? "" : ", ") + r.name;
  return error(ErrorCode::kInvalidArgument, fmt::format("unknown weight recipe '{}' (known: {})", name, all));
}

std::vector<std::string> recipe_names() {
  std::vector<std::string> v;
  for (const auto& r : kRecipes) v.push_back(r.name);
  return v;
}

DType tensor_type(const Recipe& recipe, std::string_view name, const std::vector<int64_t>& shape,
                  int num_layers) {
  if (shape.size() < 2) return DType::kF32;
  if (contains(name, "ffn_gate_inp")) return DType::kF32;  // MoE router: tiny, precision-critical
  if (contains(name, "ssm_conv1d")) return DType::kF32;    // [kernel, channels]: rows of 4, as the ecosystem keeps it
  const std::string_view r = recipe.name;
  DType t = recipe.base;
  const int layer = layer_of(name);
  const bool is_expert = contains(name, "_exps");
  if (r == "MXFP4_MOE") {
    t = is_expert ? DType::kMXFP4 : DType::kQ8_0;
  } else if (r == "Q4_K_M" || r == "Q5_K_M" || r == "Q3_K_M") {
    const DType more = r == "Q3_K_M" ? DType::kQ4_K : DType::kQ6_K;
    if (name == "output.weight") t = DType::kQ6_K;
    else if ((contains(name, "attn_v") || contains(name, "ffn_down")) && layer >= 0 &&
             use_more_bits(layer, num_layers)) t = more;
  } else if (r == "Q4_K_S" || r == "Q5_K_S") {
    if (name == "output.weight") t = DType::kQ6_K;
  } else if (r == "Q2_K") {
    if (name == "output.weight") t = DType::kQ6_K;
    else if (contains(name, "attn_v") || contains(name, "ffn_down")) t = DType::kQ3_K;
  } else if (recipe.base != DType::kF32 && recipe.base != DType::kF16 && recipe.base != DType::kBF16) {
    if (name == "output.weight" && dtype_info(recipe.base).block_elems == 32 && recipe.base != DType::kQ8_0) t = DType::kQ6_K;
  }
  return fit_block(t, shape[0]);
}

}  // namespace strata::model
