#include "cli/model_loading.h"

#include <unistd.h>

#include <cstdio>

#include "gguf/gguf.h"

namespace strata::cli {

Result<LoadedModel> load_model(const std::string& path, backend::Backend& backend, bool progress) {
  STRATA_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
  const bool draw = progress && isatty(STDERR_FILENO);
  uint64_t total = 0, done = 0;
  for (const auto& t : file->tensors()) total += t.num_bytes;
  volatile uint8_t sink = 0;
  int last_pct = -1;
  for (const auto& t : file->tensors()) {
    const uint8_t* p = file->tensor_data(t);
    for (uint64_t off = 0; off < t.num_bytes; off += 4096) sink = sink + p[off];
    done += t.num_bytes;
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    if (draw && pct != last_pct) {
      const int w = 40, fill = pct * w / 100;
      std::fprintf(stderr, "\rloading [%.*s%*s] %3d%% %.2f GB", fill, "########################################", w - fill, "",
                   pct, static_cast<double>(done) / 1e9);
      last_pct = pct;
    }
  }
  if (draw) std::fprintf(stderr, "\n");
  LoadedModel out;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (file->find("tokenizer.ggml.tokens") != nullptr) {
    STRATA_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::from_gguf(*file));
  }
  STRATA_ASSIGN_OR_RETURN(out.model, model::Model::from_file(std::move(file), backend));
  out.tokenizer = std::move(tok);
  return out;
}

}  // namespace strata::cli
