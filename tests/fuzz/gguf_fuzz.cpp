// libFuzzer target for the GGUF reader: any byte string must parse or fail cleanly.
// Build with the `fuzz` preset (clang): cmake --preset fuzz && cmake --build --preset fuzz
// Run: build-fuzz/tests/fuzz/gguf_fuzz -max_total_time=60 tests/fuzz/corpus
#include <cstddef>
#include <cstdint>

#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strata::gguf::ReadLimits limits;
  limits.max_array_elems = 1u << 16;
  limits.max_string_bytes = 1u << 16;
  auto f = strata::gguf::File::parse({data, size}, limits);
  if (f.is_ok()) {
    // Touch every tensor's bytes: the reader promised they are in bounds.
    unsigned sum = 0;
    for (const auto& t : (*f)->tensors()) {
      const uint8_t* p = (*f)->tensor_data(t);
      if (t.num_bytes > 0) sum += p[0] + p[t.num_bytes - 1];
    }
    (void)sum;
    (void)(*f)->get_string("general.architecture");
  }
  return 0;
}
