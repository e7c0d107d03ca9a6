#include "cli/backend_choice.h"

#include <fmt/format.h>

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

#ifdef STRATA_HAVE_CUDA
namespace {
class SharedBlockMemory final : public kv::BlockMemory {
 public:
  SharedBlockMemory(backend::cuda::CudaBackend& be, void* p, size_t bytes) : be_(be), p_(p), bytes_(bytes) {}
  ~SharedBlockMemory() override { be_.free_shared(p_); }
  uint8_t* data() override { return static_cast<uint8_t*>(p_); }
  size_t bytes() const override { return bytes_; }

 private:
  backend::cuda::CudaBackend& be_;
  void* p_;
  size_t bytes_;
};
}  // namespace
#endif

BlockMemoryFactory kv_device_memory(backend::Backend& backend) {
#ifdef STRATA_HAVE_CUDA
  if (auto* cuda = dynamic_cast<backend::cuda::CudaBackend*>(&backend)) {
    return [cuda](size_t bytes) -> Result<std::unique_ptr<kv::BlockMemory>> {
      void* p = cuda->alloc_shared(bytes);
      if (p == nullptr) {
        return error(ErrorCode::kResourceExhausted,
                     fmt::format("cannot allocate {:.2f} GiB of GPU memory for the KV cache (lower --ctx or --parallel)",
                                 static_cast<double>(bytes) / (1u << 30)));
      }
      return std::unique_ptr<kv::BlockMemory>(std::make_unique<SharedBlockMemory>(*cuda, p, bytes));
    };
  }
#endif
  (void)backend;
  return nullptr;
}

}  // namespace strata::cli
