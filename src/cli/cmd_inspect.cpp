// strata inspect FILE [--json]: what a GGUF file holds, without loading weights.
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gguf/gguf.h"

namespace strata::cli {
namespace {

nlohmann::ordered_json value_to_json(const gguf::Value& v, size_t max_array) {
  using gguf::ValueType;
  if (v.type == ValueType::kArray) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    size_t n = 0;
    for (const auto& s : v.strings) { if (n++ >= max_array) break; a.push_back(s); }
    for (double f : v.floats) { if (n++ >= max_array) break; a.push_back(f); }
    for (int64_t i : v.ints) { if (n++ >= max_array) break; a.push_back(i); }
    for (const auto& x : v.arrays) { if (n++ >= max_array) break; a.push_back(value_to_json(x, max_array)); }
    return a;
  }
  if (v.type == ValueType::kString) return v.s;
  if (v.type == ValueType::kBool) return v.i != 0;
  if (v.is_float()) return v.f;
  if (v.type == ValueType::kU64) return static_cast<uint64_t>(v.i);
  return v.i;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(b);
  int u = 0;
  while (x >= 1024 && u < 4) { x /= 1024; ++u; }
  return fmt::format("{:.2f} {}", x, units[u]);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int run_inspect(const std::string& path, bool as_json) {
  auto file = gguf::File::open(path);
  if (!file.is_ok()) {
    std::fprintf(stderr, "strata inspect: %s\n", file.status().to_string().c_str());
    return 1;
  }
  const gguf::File& f = **file;
  const std::string arch = f.architecture();
  uint64_t tensor_bytes = 0;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const auto& t : f.tensors()) {
    tensor_bytes += t.num_bytes;
    bytes_by_type[dtype_name(t.type)] += t.num_bytes;
  }
  int64_t params = 0;
  for (const auto& t : f.tensors()) params += t.num_elements();

  nlohmann::ordered_json hyper = nlohmann::ordered_json::object();
  nlohmann::ordered_json general = nlohmann::ordered_json::object();
  for (const auto& kv : f.metadata()) {
    if (!arch.empty() && kv.key.rfind(arch + ".", 0) == 0) hyper[kv.key.substr(arch.size() + 1)] = value_to_json(kv.value, 16);
    else if (kv.key.rfind("general.", 0) == 0) general[kv.key.substr(8)] = value_to_json(kv.value, 16);
  }
  nlohmann::ordered_json tok = nlohmann::ordered_json::object();
  if (auto m = f.get_string("tokenizer.ggml.model")) tok["model"] = *m;
  if (auto p = f.get_string("tokenizer.ggml.pre")) tok["pre"] = *p;
  if (const auto* t = f.find("tokenizer.ggml.tokens")) tok["vocab_size"] = t->array_size();
  if (const auto* m = f.find("tokenizer.ggml.merges")) tok["merges"] = m->array_size();
  for (const char* k : {"bos_token_id", "eos_token_id", "eot_token_id", "padding_token_id", "unknown_token_id"}) {
    if (auto v = f.get_int(std::string("tokenizer.ggml.") + k)) tok[k] = *v;
  }
  if (auto ct = f.get_string("tokenizer.chat_template")) tok["chat_template_bytes"] = ct->size();

  if (as_json) {
    nlohmann::ordered_json j;
    j["path"] = path;
    j["gguf_version"] = f.version();
    j["architecture"] = arch;
    j["general"] = general;
    j["hyperparameters"] = hyper;
    j["tokenizer"] = tok;
    j["num_tensors"] = f.tensors().size();
    j["num_parameters"] = params;
    j["tensor_bytes"] = tensor_bytes;
    j["file_bytes"] = f.file_bytes();
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& t : f.tensors()) {
      ts.push_back({{"name", t.name}, {"type", dtype_name(t.type)}, {"shape", t.shape}, {"bytes", t.num_bytes}});
    }
    j["tensors"] = ts;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("file:          %s (GGUF v%u, %s)\n", path.c_str(), f.version(), human_bytes(f.file_bytes()).c_str());
  std::printf("architecture:  %s\n", arch.empty() ? "(none)" : arch.c_str());
  if (general.contains("name")) std::printf("name:          %s\n", general["name"].get<std::string>().c_str());
  std::printf("parameters:    %.3f B (%lld)\n", static_cast<double>(params) / 1e9, static_cast<long long>(params));
  std::printf("hyperparameters:\n");
  for (const auto& [k, v] : hyper.items()) std::printf("  %-36s %s\n", k.c_str(), v.dump().c_str());
  std::printf("tokenizer:\n");
  for (const auto& [k, v] : tok.items()) std::printf("  %-36s %s\n", k.c_str(), v.dump().c_str());
  std::printf("tensors: %zu, %s\n", f.tensors().size(), human_bytes(tensor_bytes).c_str());
  for (const auto& [type, b] : bytes_by_type) std::printf("  %-8s %s\n", type.c_str(), human_bytes(b).c_str());
  for (const auto& t : f.tensors()) {
    std::printf("  %-40s %-7s %-22s %s\n", t.name.c_str(), dtype_name(t.type), shape_str(t.shape).c_str(),
                human_bytes(t.num_bytes).c_str());
  }
  return 0;
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show a GGUF file's architecture, hyperparameters, tokenizer and tensors");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("file", *path, "GGUF file")->required();
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([path, json] { set_exit_code(run_inspect(*path, *json)); });
}

}  // namespace strata::cli
