// Memory at 2 MB boundaries, for what decode streams (weights, K/V blocks, the bandwidth probe
// that judges them): where the kernel gives transparent huge pages (MADV_HUGEPAGE), each 2 MB
// is one TLB entry instead of 512, and this project's VM streams 5-11% faster from it
// (bench/cpu/NOTES.md, rounds 4 and 9).
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// An anonymous mapping of `bytes` (rounded up to 4 KB) at a 2 MB boundary, with mmap's prot and
// extra flags (MAP_PRIVATE | MAP_ANONYMOUS are added); MAP_FAILED on failure, like mmap. Give
// it back with munmap(p, the rounded bytes).
void* map_at_huge_boundary(size_t bytes, int prot, int flags);

// Read-write memory of `bytes` at a 2 MB boundary with MADV_HUGEPAGE (a hint: where THP is off,
// 4 KB pages); noreserve: MAP_NORESERVE. MAP_FAILED on failure; munmap as above.
void* map_huge_pages(size_t bytes, bool noreserve);

// Whether transparent huge pages are on (/sys/kernel/mm/transparent_hugepage/enabled is
// `always` or `madvise`).
bool thp_enabled();

// FilePmdMapped of the mapping that starts at `start` (/proc/self/smaps): the bytes of its
// file mapped from 2 MB folios, one PMD each; -1 where no such mapping or no smaps.
int64_t file_pmd_mapped_bytes(const void* start);

}  // namespace strata
