#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

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

bool thp_enabled() {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  const std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

int64_t file_pmd_mapped_bytes(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t at = reinterpret_cast<uintptr_t>(start);
  bool ours = false;
  for (std::string line; std::getline(smaps, line);) {
    // a mapping's first line: "lo-hi perms ..."; then its "Key: value kB" lines
    const size_t dash = line.find('-');
    if (dash != std::string::npos && dash > 0 &&
        std::isxdigit(static_cast<unsigned char>(line[0])) && line.find(' ') > dash) {
      ours = std::strtoull(line.substr(0, dash).c_str(), nullptr, 16) == at;
      continue;
    }
    if (ours && line.rfind("FilePmdMapped:", 0) == 0)
      return static_cast<int64_t>(std::strtoull(line.c_str() + 14, nullptr, 10) * 1024);
  }
  return -1;
}

}  // namespace strata
