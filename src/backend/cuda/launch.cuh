// Kernel launches with programmatic dependent launch (PDL, bench/cuda/NOTES.md round 8).
//
// Every kernel of the backend is launched through launch_kernel and begins with pdl_begin()
// (or, for the int8 products, an optional L2 prefetch of its own weight rows, then
// pdl_wait()): with PDL on, a kernel's CTAs may be scheduled as the CTAs of the one ahead of it
// in the stream exit, so that its launch and CTA ramp overlap that kernel's tail. The small
// one-token kernels between the products (pdl_begin_small) also trigger their dependents at
// their start (griddepcontrol.launch_dependents): the next product's CTAs are launched and
// resident, waiting, while the small kernel runs (+2.4-3.4% Qwen3-8B Q4_K_M decode, run 66-67).
// The products and attention do not: the small kernel after them would then trigger the next
// product while they still stream, whose resident CTAs take their SM slots (-5%, run 63).
// Resident early, the Q8_0 products load their first part's weights into registers before
// their wait (+5.4% Qwen3-8B Q8_0, run 70; the other types lost with it, run 69).
//
// The rule that keeps this correct: a kernel touches nothing another kernel writes or reads
// (activations, caches, outputs) before pdl_wait(), which returns once every kernel ahead of it
// has completed and its memory is visible; only weights (written by uploads, never by
// kernels) may be read before it. Every CTA calls pdl_wait() before it can return, so a
// kernel's completion implies the completion of every kernel ahead of it. pdl_wait() is a
// no-op when the kernel was launched without the attribute.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace strata::backend::cuda {

// Waits until the kernels ahead of this one have completed and their writes are visible.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_begin() { pdl_wait(); }
// Lets the kernel after this one launch once every CTA of this one has called it (or exited).
__device__ __forceinline__ void pdl_trigger() {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}
// A small kernel's start: where `early` (pdl_early()), the kernel after it may launch now: its
// CTAs become resident and wait in their own pdl_wait while this one runs.
__device__ __forceinline__ void pdl_begin_small(bool early) {
  if (early) pdl_trigger();
  pdl_wait();
}
// One thread asks for bytes [p, p + n) to be brought into L2 (p 16-byte aligned, n a multiple
// of 16, n < 2^32); the CTA does not wait for them.
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t n) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(n) : "memory");
}

// kernel<<<grid, block, smem, s>>>(args...), with programmatic stream serialization allowed
// when pdl_mode() != 0; the launch is checked.
template <class... KArgs, class... Args>
void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_mode() != 0 ? 1 : 0;
  STRATA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<Args&&>(args)...));
}

}  // namespace strata::backend::cuda
