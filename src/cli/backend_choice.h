// The one place that picks a concrete backend: --backend cpu|cuda.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"

namespace strata::cli {

// "cpu" (default) or "cuda" (when built with STRATA_CUDA and a GPU is present).
Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name, int threads);

}  // namespace strata::cli
