// Hugging Face tokenizer.json + tokenizer_config.json -> Vocab. Supports the BPE model with
// a ByteLevel pipeline (Split regexes, Digits, ByteLevel) or the SentencePiece-style
// pipeline (Replace ' ' -> U+2581, optional Prepend, byte_fallback).
#include <nlohmann/json.hpp>

#include <unordered_map>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace strata::tokenizer {

namespace {

using nlohmann::json;

// Visits a normalizer / pre-tokenizer / decoder and the members of its Sequence.
template <typename F>
void visit_sequence(const json& node, const char* list_key, F&& f) {
  if (!node.is_object()) return;
  if (node.value("type", "") == "Sequence" && node.contains(list_key)) {
    for (const auto& child : node[list_key]) visit_sequence(child, list_key, f);
    return;
  }
  f(node);
}

std::string escape_regex(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// A token named by tokenizer_config.json: a string or an AddedToken object.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  const json& t = cfg[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return {};
}

Status read_pre_tokenizer(const json& pre, Vocab& v) {
  Status st = Status::ok();
  visit_sequence(pre, "pretokenizers", [&](const json& p) {
    const std::string type = p.value("type", "");
    if (type == "Split") {
      const json& pat = p["pattern"];
      const std::string behavior = p.value("behavior", "Isolated");
      if (p.value("invert", false) || behavior != "Isolated") {
        if (v.algorithm == Algorithm::kSentencePiece) return;  // Gemma's no-op split on ' '
        st = error(ErrorCode::kUnsupported, "tokenizer.json Split behaviour '" + behavior + "' is not supported");
        return;
      }
      if (pat.contains("Regex")) {
        v.pre_regexes.push_back(pat["Regex"].get<std::string>());
      } else if (pat.contains("String")) {
        v.pre_regexes.push_back(escape_regex(pat["String"].get<std::string>()));
      }
    } else if (type == "ByteLevel") {
      if (p.value("add_prefix_space", false)) {
        st = error(ErrorCode::kUnsupported, "tokenizer.json ByteLevel pre-tokenizer with add_prefix_space is not supported");
        return;
      }
      if (p.value("use_regex", true)) v.pre_regexes.push_back(kGpt2Regex);
    } else if (type == "Digits") {
      v.pre_regexes.push_back(p.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    } else if (type == "Punctuation") {
      v.pre_regexes.push_back("[\\p{P}\\$\\+<=>\\^~\\|`]");
    } else if (!type.empty()) {
      st = error(ErrorCode::kUnsupported, "tokenizer.json pre-tokenizer '" + type + "' is not supported");
    }
  });
  return st;
}

// Tokens: the model's vocab, then the added tokens (which may extend it).
void read_tokens(const json& model, const json& added, Vocab& v) {
  const bool spm = v.algorithm == Algorithm::kSentencePiece;
  size_t n = 0;
  for (const auto& [text, id] : model["vocab"].items()) n = std::max(n, id.get<size_t>() + 1);
  for (const auto& a : added) n = std::max(n, a.value("id", size_t{0}) + 1);
  v.tokens.assign(n, {});
  v.types.assign(n, TokenType::kUnused);
  for (const auto& [text, id] : model["vocab"].items()) {
    const size_t i = id.get<size_t>();
    v.tokens[i] = text;
    const bool byte_token = spm && text.size() == 6 && text.rfind("<0x", 0) == 0 && text.back() == '>';
    v.types[i] = byte_token ? TokenType::kByte : TokenType::kNormal;
  }
  for (const auto& a : added) {
    const size_t i = a.value("id", size_t{0});
    v.tokens[i] = a.value("content", "");
    v.types[i] = a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined;
    const uint8_t flags = (a.value("lstrip", false) ? 1 : 0) | (a.value("rstrip", false) ? 2 : 0);
    if (flags) {
      v.strip_flags.resize(n, 0);
      v.strip_flags[i] = flags;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (v.tokens[i].empty()) v.tokens[i] = "<unused_id_" + std::to_string(i) + ">";
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    v.merges.reserve(model["merges"].size());
    for (const auto& m : model["merges"]) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {  // the newer [left, right] form
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      }
    }
  }
}

// BOS/EOS/PAD/UNK, add_bos/add_eos and the chat template from tokenizer_config.json.
void read_config(const json& j, const json& cfg, Vocab& v) {
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
  auto lookup = [&](const std::string& text) -> int32_t {
    const auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };
  v.bos_id = lookup(config_token(cfg, "bos_token"));
  v.eos_id = lookup(config_token(cfg, "eos_token"));
  v.pad_id = lookup(config_token(cfg, "pad_token"));
  std::string unk = config_token(cfg, "unk_token");
  const json& model = j["model"];
  if (unk.empty() && model.contains("unk_token") && model["unk_token"].is_string()) unk = model["unk_token"].get<std::string>();
  v.unk_id = lookup(unk);
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    v.add_bos = cfg["add_bos_token"].get<bool>();
  } else if (j.contains("post_processor") && j["post_processor"].is_object()) {
    // TemplateProcessing that starts the single sequence with the BOS token.
    const json& pp = j["post_processor"];
    v.add_bos = pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
                !pp["single"].empty() && pp["single"][0].contains("SpecialToken") && v.bos_id >= 0 &&
                pp["single"][0]["SpecialToken"].value("id", "") == v.tokens[static_cast<size_t>(v.bos_id)];
  }
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) v.add_eos = cfg["add_eos_token"].get<bool>();
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      v.chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {  // named templates: take "default"
      for (const auto& t : ct) {
        if (t.value("name", "") == "default") v.chat_template = t.value("template", "");
      }
    }
  }
}

}  // namespace

Result<Vocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  const json j = json::parse(tokenizer_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error(ErrorCode::kCorrupt, "tokenizer.json is not a JSON object");
  json cfg = json::object();
  if (!tokenizer_config_json.empty()) {
    cfg = json::parse(tokenizer_config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) return error(ErrorCode::kCorrupt, "tokenizer_config.json is not a JSON object");
  }
  if (!j.contains("model") || !j["model"].is_object()) return error(ErrorCode::kCorrupt, "tokenizer.json has no model");
  const json& model = j["model"];
  const std::string model_type = model.value("type", "BPE");
  if (model_type != "BPE") {
    return error(ErrorCode::kUnsupported, "tokenizer.json model '" + model_type + "' is not supported (BPE is)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) return error(ErrorCode::kCorrupt, "tokenizer.json model has no vocab");

  Vocab v;
  // SentencePiece-style when the text's spaces become U+2581 or bytes fall back to <0xNN>.
  bool spm = model.value("byte_fallback", false);
  const json null_json;
  visit_sequence(j.contains("normalizer") ? j["normalizer"] : null_json, "normalizers", [&](const json& n) {
    const std::string type = n.value("type", "");
    if (type == "NFC") v.normalize_nfc = true;
    if (type == "Replace" && n["content"] == "\u2581") spm = true;
    if (type == "Prepend" && n["prepend"] == "\u2581") v.add_space_prefix = true;
  });
  v.algorithm = spm ? Algorithm::kSentencePiece : Algorithm::kByteLevelBpe;
  v.ignore_merges = model.value("ignore_merges", false);
  read_tokens(model, j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"] : json::array(), v);

  if (j.contains("pre_tokenizer")) STRATA_RETURN_IF_ERROR(read_pre_tokenizer(j["pre_tokenizer"], v));
  if (spm) {
    v.pre_regexes.clear();
    v.pre = "default";
  } else {
    if (v.pre_regexes.empty()) v.pre_regexes.push_back(kGpt2Regex);
    v.pre = "custom";  // written to GGUF with its regexes unless a known family matches
    for (const auto& f : known_pre_families()) {
      if (f.regexes == v.pre_regexes && f.ignore_merges == v.ignore_merges && f.normalize_nfc == v.normalize_nfc) {
        v.pre = f.names[0];
        break;
      }
    }
  }
  read_config(j, cfg, v);
  return v;
}

}  // namespace strata::tokenizer
