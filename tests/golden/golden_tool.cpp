// golden_tool OUT_DIR: synthesizes every case of tests/golden/cases.json, exports each as a
// Hugging Face checkpoint (OUT_DIR/<case>/) and writes OUT_DIR/prompts.json, the input of
// scripts/golden/hf_golden.py.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <xxhash.h>

#include "golden_cases.h"
#include "model/export_hf.h"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: golden_tool OUT_DIR [CASE_PREFIX] | --hashes (run from the repository root)\n");
    return 2;
  }
  const std::string out = argv[1];
  strata::ThreadPool pool(0);
  if (out == "--hashes") {
    // XXH3-64 of each synthesized model: the golden test checks synthesis did not change.
    nlohmann::ordered_json h;
    for (const auto& c : strata::golden::load_cases("tests/golden/cases.json")) {
      const auto bytes = strata::model::synthesize(c.synth, pool)->write_to_buffer();
      h[c.name] = strata::golden::weights_hash(bytes);
    }
    std::printf("%s\n", h.dump(1).c_str());
    return 0;
  }
  nlohmann::json prompts;
  const std::string prefix = argc == 3 ? argv[2] : "";
  for (const auto& c : strata::golden::load_cases("tests/golden/cases.json")) {
    if (c.name.rfind(prefix, 0) != 0) continue;  // only the cases named CASE_PREFIX*
    auto w = strata::model::synthesize(c.synth, pool);
    if (!w.is_ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), w.status().to_string().c_str());
      return 1;
    }
    const std::string gguf_path = out + "/" + c.name + ".gguf";
    std::filesystem::create_directories(out);
    if (auto st = w->write_file(gguf_path); !st.is_ok()) {
      std::fprintf(stderr, "%s\n", st.to_string().c_str());
      return 1;
    }
    auto f = strata::gguf::File::open(gguf_path);
    if (auto st = strata::model::export_hf(**f, out + "/" + c.name); !st.is_ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), st.to_string().c_str());
      return 1;
    }
    std::filesystem::remove(gguf_path);
    prompts[c.name] = c.prompts;
    std::printf("exported %s\n", c.name.c_str());
  }
  std::ofstream(out + "/prompts.json") << prompts.dump() << "\n";
  return 0;
}
