#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace strata {

void* map_at_huge_boundary(size_t bytes, int prot, int flags) {
  const size_t rounded = (bytes + 4095) & ~size_t{4095};
  // Reserve rounded + 2 MB, keep the aligned part, give back the rest.
  void* r =
      mmap(nullptr, rounded + kHugePageBytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (r == MAP_FAILED) return r;
  const uintptr_t base = reinterpret_cast<uintptr_t>(r);
  const uintptr_t aligned = (base + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
  if (aligned > base) munmap(r, aligned - base);
  munmap(reinterpret_cast<void*>(aligned + rounded), base + kHugePageBytes - aligned);
  return reinterpret_cast<void*>(aligned);
}

void* map_huge_pages(size_t bytes, bool noreserve) {
  void* p = map_at_huge_boundary(bytes, PROT_READ | PROT_WRITE, noreserve ? MAP_NORESERVE : 0);
  if (p != MAP_FAILED) madvise(p, (bytes + 4095) & ~size_t{4095}, MADV_HUGEPAGE);
  return p;
}

}  // namespace strata
