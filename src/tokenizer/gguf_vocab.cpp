// GGUF <-> Vocab: reads the tokenizer.ggml.* keys into the in-memory model and writes a
// Vocab back as the key/values a GGUF file carries.
#include <algorithm>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace strata::tokenizer {

namespace {

int32_t get_id(const gguf::File& f, std::string_view key) {
  const auto v = f.get_int(key);
  return v ? static_cast<int32_t>(*v) : -1;
}

// The byte-level pre-tokenizer: regexes written by to_gguf_metadata for a family no table
// knows, else the family tokenizer.ggml.pre names.
Status read_pre_tokenizer(const gguf::File& file, Vocab& v) {
  if (const gguf::Value* re = file.find("tokenizer.strata.pre_regexes")) {
    v.pre_regexes = re->strings;
    v.ignore_merges = file.get_bool("tokenizer.strata.ignore_merges").value_or(false);
    v.normalize_nfc = file.get_bool("tokenizer.strata.normalize_nfc").value_or(false);
    return Status::ok();
  }
  const PreFamily* family = find_pre_family(v.pre);
  if (!family) {
    return error(ErrorCode::kUnsupported,
                 "tokenizer.ggml.pre '" + v.pre + "' is not a known pre-tokenizer; add its regexes to "
                 "src/tokenizer/pre_tokenizer.cpp");
  }
  v.pre_regexes = family->regexes;
  v.ignore_merges = family->ignore_merges;
  v.normalize_nfc = family->normalize_nfc;
  return Status::ok();
}

}  // namespace

Result<Vocab> vocab_from_gguf(const gguf::File& file) {
  Vocab v;
  const std::string model = file.get_string("tokenizer.ggml.model").value_or("");
  if (model == "gpt2") {
    v.algorithm = Algorithm::kByteLevelBpe;
  } else if (model == "llama") {
    v.algorithm = Algorithm::kSentencePiece;
  } else if (model.empty()) {
    return error(ErrorCode::kNotFound, "GGUF file " + file.path() + " has no tokenizer.ggml.model");
  } else {
    return error(ErrorCode::kUnsupported,
                 "tokenizer.ggml.model '" + model + "' is not supported (gpt2 and llama are)");
  }
  const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != gguf::ValueType::kArray || tokens->elem_type != gguf::ValueType::kString) {
    return error(ErrorCode::kCorrupt, "tokenizer.ggml.tokens is missing or not a string array");
  }
  v.tokens = tokens->strings;
  const size_t n = v.tokens.size();
  if (const gguf::Value* types = file.find("tokenizer.ggml.token_type")) {
    if (types->ints.size() != n) return error(ErrorCode::kCorrupt, "tokenizer.ggml.token_type size differs from tokens");
    v.types.reserve(n);
    for (int64_t t : types->ints) v.types.push_back(static_cast<TokenType>(t));
  }
  if (const gguf::Value* scores = file.find("tokenizer.ggml.scores")) {
    if (scores->floats.size() != n) return error(ErrorCode::kCorrupt, "tokenizer.ggml.scores size differs from tokens");
    v.scores.assign(scores->floats.begin(), scores->floats.end());
  }
  if (const gguf::Value* merges = file.find("tokenizer.ggml.merges")) v.merges = merges->strings;

  v.pre = file.get_string("tokenizer.ggml.pre").value_or("default");
  if (v.algorithm == Algorithm::kByteLevelBpe) STRATA_RETURN_IF_ERROR(read_pre_tokenizer(file, v));

  v.bos_id = get_id(file, "tokenizer.ggml.bos_token_id");
  v.eos_id = get_id(file, "tokenizer.ggml.eos_token_id");
  v.unk_id = get_id(file, "tokenizer.ggml.unknown_token_id");
  v.pad_id = get_id(file, "tokenizer.ggml.padding_token_id");
  v.eot_id = get_id(file, "tokenizer.ggml.eot_token_id");
  v.eom_id = get_id(file, "tokenizer.ggml.eom_token_id");
  // llama.cpp's defaults: SentencePiece adds BOS and the space prefix unless told otherwise.
  const bool spm = v.algorithm == Algorithm::kSentencePiece;
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(spm);
  v.add_eos = file.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  v.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  if (!spm) v.add_space_prefix = false;
  // Gemma's SentencePiece models never add a prefix space.
  const std::string arch = file.architecture();
  if (spm && arch.rfind("gemma", 0) == 0 && !file.find("tokenizer.ggml.add_space_prefix")) {
    v.add_space_prefix = false;
  }
  v.chat_template = file.get_string("tokenizer.chat_template").value_or("");
  if (arch == "phi3") {
    // Phi-3's tokenizer.json gives its chat tokens rstrip (the newline after <|user|> is
    // eaten); GGUF has no field for it, so restore it by name as llama.cpp does.
    v.strip_flags.assign(n, 0);
    for (size_t i = 0; i < n && i < v.types.size(); ++i) {
      const std::string& t = v.tokens[i];
      const bool special = v.types[i] == TokenType::kControl || v.types[i] == TokenType::kUserDefined;
      if (special && t != "<unk>" && t != "<s>" && t != "<|endoftext|>") v.strip_flags[i] = 2;
    }
  }
  return v;
}

std::vector<gguf::KeyValue> to_gguf_metadata(const Vocab& v) {
  using gguf::Value;
  std::vector<gguf::KeyValue> kv;
  const bool spm = v.algorithm == Algorithm::kSentencePiece;
  kv.push_back({"tokenizer.ggml.model", Value::string(spm ? "llama" : "gpt2")});
  kv.push_back({"tokenizer.ggml.pre", Value::string(v.pre.empty() ? "default" : v.pre)});
  kv.push_back({"tokenizer.ggml.tokens", Value::string_array(v.tokens)});
  std::vector<int32_t> types;
  types.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    types.push_back(static_cast<int32_t>(i < v.types.size() ? v.types[i] : TokenType::kNormal));
  }
  kv.push_back({"tokenizer.ggml.token_type", Value::i32_array(types)});
  if (!v.scores.empty()) {
    kv.push_back({"tokenizer.ggml.scores", Value::f32_array(v.scores)});
  } else if (spm) {
    // Readers that merge by score (llama.cpp) get scores that order tokens like the merges:
    // a token made by merge r scores -(r + 1); tokens no merge makes score below them all,
    // so such a reader forms them last (HF never forms them; our reader uses the merges).
    const float unmerged = -static_cast<float>(v.merges.size() + 1);
    std::vector<float> scores(v.tokens.size(), unmerged);
    std::unordered_map<std::string, size_t> ids;
    for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], i);
    for (size_t r = 0; r < v.merges.size(); ++r) {
      const size_t sp = v.merges[r].find(' ', 1);
      if (sp == std::string::npos) continue;
      const auto it = ids.find(v.merges[r].substr(0, sp) + v.merges[r].substr(sp + 1));
      if (it != ids.end() && scores[it->second] == unmerged) scores[it->second] = -static_cast<float>(r + 1);
    }
    kv.push_back({"tokenizer.ggml.scores", Value::f32_array(scores)});
  }
  if (!v.merges.empty()) kv.push_back({"tokenizer.ggml.merges", Value::string_array(v.merges)});
  const PreFamily* family = find_pre_family(v.pre);
  const bool custom = !spm && (!family || family->regexes != v.pre_regexes ||
                               family->ignore_merges != v.ignore_merges ||
                               family->normalize_nfc != v.normalize_nfc);
  if (custom) {
    kv.push_back({"tokenizer.strata.pre_regexes", Value::string_array(v.pre_regexes)});
    kv.push_back({"tokenizer.strata.ignore_merges", Value::boolean(v.ignore_merges)});
    kv.push_back({"tokenizer.strata.normalize_nfc", Value::boolean(v.normalize_nfc)});
  }
  auto add_id = [&](const char* key, int32_t id) {
    if (id >= 0) kv.push_back({key, Value::u32(static_cast<uint32_t>(id))});
  };
  add_id("tokenizer.ggml.bos_token_id", v.bos_id);
  add_id("tokenizer.ggml.eos_token_id", v.eos_id);
  add_id("tokenizer.ggml.unknown_token_id", v.unk_id);
  add_id("tokenizer.ggml.padding_token_id", v.pad_id);
  add_id("tokenizer.ggml.eot_token_id", v.eot_id);
  add_id("tokenizer.ggml.eom_token_id", v.eom_id);
  kv.push_back({"tokenizer.ggml.add_bos_token", Value::boolean(v.add_bos)});
  kv.push_back({"tokenizer.ggml.add_eos_token", Value::boolean(v.add_eos)});
  if (spm) kv.push_back({"tokenizer.ggml.add_space_prefix", Value::boolean(v.add_space_prefix)});
  if (!v.chat_template.empty()) kv.push_back({"tokenizer.chat_template", Value::string(v.chat_template)});
  return kv;
}

}  // namespace strata::tokenizer
