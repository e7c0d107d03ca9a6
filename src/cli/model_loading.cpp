#include "cli/model_loading.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "gguf/gguf.h"

namespace strata::cli {

namespace {

// Touches every page of the file's tensor data from several threads, each taking 2 MB pieces
// of the file in turn: on a cold page cache their reads overlap (a fault of the mapping reads
// its own 2 MB piece and nothing ahead: gguf/reader.cpp), where one thread waited for each in
// turn. The caller's thread draws the bar.
void page_in(const gguf::File& file, bool draw) {
  constexpr uint64_t kPiece = uint64_t{2} << 20;
  const uint8_t* base = file.bytes().data();
  const uint64_t size = file.bytes().size(), first = file.data_offset();
  if (first >= size) return;
  const uint64_t p0 = first / kPiece, pieces = (size + kPiece - 1) / kPiece - p0;
  const uint64_t total = size - first;
  std::atomic<uint64_t> next{0}, done{0};
  int last_pct = -1;
  const auto work = [&](bool drawer) {
    volatile uint8_t sink = 0;
    for (uint64_t i = next++; i < pieces; i = next++) {
      const uint64_t b = std::max(first, (p0 + i) * kPiece),
                     e = std::min(size, (p0 + i + 1) * kPiece);
      for (uint64_t off = b; off < e; off += 4096) sink = sink + base[off];
      done += e - b;
      if (!drawer) continue;
      const uint64_t d = done.load();
      const int pct = static_cast<int>(100 * d / total);
      if (pct != last_pct) {
        const int w = 40, fill = pct * w / 100;
        std::fprintf(stderr, "\rloading [%.*s%*s] %3d%% %.2f GB", fill,
                     "########################################", w - fill, "", pct,
                     static_cast<double>(d) / 1e9);
        last_pct = pct;
      }
    }
  };
  const unsigned hw = std::thread::hardware_concurrency();
  const int n = static_cast<int>(std::clamp<unsigned>(hw, 1, 8));
  std::vector<std::thread> helpers;
  for (int t = 1; t < n; ++t) helpers.emplace_back(work, false);
  work(draw);
  for (std::thread& t : helpers) t.join();
  if (draw) {
    std::fprintf(stderr, "\rloading [########################################] 100%% %.2f GB\n",
                 static_cast<double>(total) / 1e9);
  }
}

}  // namespace

Result<LoadedModel> load_model(const std::string& path, backend::Backend& backend, bool progress) {
  STRATA_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
  page_in(*file, progress && isatty(STDERR_FILENO));
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
