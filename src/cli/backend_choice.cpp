#include "cli/backend_choice.h"

#include "backend/cpu/cpu_backend.h"
#ifdef STRATA_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace strata::cli {

Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name, int threads) {
  if (name == "cpu") return std::unique_ptr<backend::Backend>(std::make_unique<backend::CpuBackend>(threads));
  if (name == "cuda") {
#ifdef STRATA_HAVE_CUDA
    if (!backend::cuda::CudaBackend::available()) return error(ErrorCode::kUnsupported, "no CUDA device found");
    return std::unique_ptr<backend::Backend>(std::make_unique<backend::cuda::CudaBackend>(0));
#else
    return error(ErrorCode::kUnsupported, "this strata was built without CUDA (-DSTRATA_CUDA=ON needs nvcc)");
#endif
  }
  return error(ErrorCode::kInvalidArgument, "--backend must be cpu or cuda");
}

}  // namespace strata::cli
