// Shared by the commands that load a model: open the GGUF, page the weights in with a
// progress bar, build the tokenizer.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {

struct LoadedModel {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when the file has no vocabulary
};

// Maps the file, touches every weight page (so timings do not include page faults; up to 8
// threads, so that a cold page cache is read with overlapping reads) while drawing a progress
// bar on stderr when it is a terminal and `progress` is set.
Result<LoadedModel> load_model(const std::string& path, backend::Backend& backend, bool progress);

}  // namespace strata::cli
