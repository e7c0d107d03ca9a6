// The one place that picks a concrete backend: --backend cpu|cuda.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "kv/block_pool.h"

namespace strata::cli {

// "cpu" (default) or "cuda" (when built with STRATA_CUDA and a GPU is present).
Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name, int threads);

// Memory for the KV cache's device tier on `backend` (made by make_backend): null for the
// CPU (plain RAM); on CUDA, managed memory the kernels read and the cache's tier copies touch.
using BlockMemoryFactory = std::function<Result<std::unique_ptr<kv::BlockMemory>>(size_t)>;
BlockMemoryFactory kv_device_memory(backend::Backend& backend);

}  // namespace strata::cli
