// strata serve: load a model, start the engine, serve the OpenAI and Anthropic APIs until
// SIGINT/SIGTERM, then drain the requests in flight and shut the engine down.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <chrono>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "cli/backend_choice.h"
#include "cli/commands.h"
#include "cli/model_loading.h"
#include "cli/serial_engine.h"
#include "engine/engine_impl.h"
#include "server/server.h"

namespace strata::cli {
namespace {

// "Not given on the command line": the budget is derived from this machine.
constexpr uint64_t kAuto = UINT64_MAX;

struct CacheBudgets {
  uint64_t ram_bytes = 0;
  uint64_t disk_bytes = 0;
};

// Defaults derived from free memory and disk: the host-RAM tier takes a quarter of the
// memory available now (at most 16 GiB); the SSD tier half the free space of the cache
// directory's filesystem (at most 64 GiB). Explicit flags win; 0 turns a tier off.
CacheBudgets derive_cache_budgets(uint64_t ram, uint64_t disk, const std::string& dir) {
  CacheBudgets b;
  if (ram != kAuto) {
    b.ram_bytes = ram;
  } else {
    uint64_t avail_kb = 0;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t value = 0;
    std::string unit;
    while (meminfo >> key >> value >> unit) {
      if (key == "MemAvailable:") avail_kb = value;
    }
    b.ram_bytes = std::min<uint64_t>(avail_kb * 1024 / 4, uint64_t{16} << 30);
  }
  if (dir.empty()) return b;
  if (disk != kAuto) {
    b.disk_bytes = disk;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto space = std::filesystem::space(dir, ec);
    b.disk_bytes = ec ? (uint64_t{16} << 30) : std::min<uint64_t>(space.available / 2, uint64_t{64} << 30);
  }
  return b;
}


struct ServeArgs {
  std::string model;
  std::string alias;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  int ctx = 0;
  int parallel = 4;
  uint64_t cache_ram = kAuto;
  uint64_t cache_disk = kAuto;
  std::string cache_dir;
  int threads = 0;
  std::string chat_template_file;
  std::string parser;
  bool keep_billing_header = false;
  bool any_model = false;
  uint64_t max_body = 16u << 20;
  int max_tokens = 0;
  double keepalive = 5.0;
  int max_waiting = 64;
  std::string backend = "cpu";
  std::string script;  // testing: replies from a JSON file instead of the model
};

int fail(const Status& st) {
  std::fprintf(stderr, "strata serve: %s\n", st.to_string().c_str());
  return st.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(ErrorCode::kNotFound, fmt::format("cannot open '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string default_alias(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (base.size() > 5 && base.ends_with(".gguf")) base.resize(base.size() - 5);
  return base;
}

// Script mode, for protocol tests: the reply is the first script entry whose "when" occurs in
// the prompt text (an entry without "when" always matches), streamed token by token.
struct ScriptEntry {
  std::string when;
  std::string reply;
  int delay_ms = 0;  // before the first token, as a long prefill would take
  int token_ms = 0;  // between tokens, as a slow decode would take
};

Result<std::vector<ScriptEntry>> read_script(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array() || j.empty()) return error(ErrorCode::kInvalidArgument, "--script must be a JSON array of {when, reply}");
  std::vector<ScriptEntry> out;
  for (const auto& e : j) {
    if (e.is_string()) {
      out.push_back({"", e.get<std::string>()});
    } else if (e.is_object() && e.contains("reply") && e["reply"].is_string()) {
      out.push_back({e.value("when", ""), e["reply"].get<std::string>(), e.value("delay_ms", 0), e.value("token_ms", 0)});
    } else {
      return error(ErrorCode::kInvalidArgument, "--script entries must be strings or {when, reply}");
    }
  }
  return out;
}

SerialEngine::Producer script_producer(const tokenizer::Tokenizer& tok, std::vector<ScriptEntry> script) {
  return [&tok, script = std::move(script)](const engine::GenerateRequest& req, const std::function<bool(int32_t)>& on_token) {
    const std::string prompt = tok.decode(req.prompt);
    const ScriptEntry* hit = &script.back();
    for (const ScriptEntry& e : script) {
      if (e.when.empty() || prompt.find(e.when) != std::string::npos) {
        hit = &e;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(hit->delay_ms));
    for (int32_t t : tok.encode(hit->reply, false, true)) {
      if (hit->token_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hit->token_ms));
      if (!on_token(t)) return Status::ok();
    }
    if (!tok.eog_ids().empty()) on_token(*tok.eog_ids().begin());
    return Status::ok();
  };
}

// The model's identity for the cache fingerprint: path, size and modification time.
std::string model_identity(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return path;
  return fmt::format("{}:{}:{}", path, static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtime));
}

int run_serve(const ServeArgs& a) {
  // Signals go to one waiting thread, so every other thread (engine, HTTP pool) is spared.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto made_backend = make_backend(a.backend, a.threads);
  if (!made_backend.is_ok()) return fail(made_backend.status());
  backend::Backend& be = **made_backend;
  auto loaded = load_model(a.model, be, false);
  if (!loaded.is_ok()) return fail(loaded.status());
  if (!loaded->tokenizer) return fail(error(ErrorCode::kInvalidArgument, "the model has no vocabulary; strata serve needs one"));
  model::Model& m = *loaded->model;
  const tokenizer::Tokenizer& tok = *loaded->tokenizer;
  const int64_t ctx = a.ctx > 0 ? std::min<int64_t>(a.ctx, m.hparams().context_length) : m.hparams().context_length;
  if (a.cache_disk != kAuto && a.cache_disk > 0 && a.cache_dir.empty()) {
    return fail(error(ErrorCode::kInvalidArgument, "--cache-disk needs --cache-dir"));
  }
  const CacheBudgets budgets = derive_cache_budgets(a.cache_ram, a.cache_disk, a.cache_dir);
  std::unique_ptr<engine::Engine> engine;
  if (!a.script.empty()) {
    auto text = read_file(a.script);
    if (!text.is_ok()) return fail(text.status());
    auto script = read_script(*text);
    if (!script.is_ok()) return fail(script.status());
    engine = std::make_unique<SerialEngine>(tok, ctx, script_producer(tok, std::move(*script)));
  } else {
    engine::EngineOptions eo;
    eo.parallel = std::max(1, a.parallel);
    eo.ctx = ctx;
    eo.host_bytes = budgets.ram_bytes;
    eo.ssd_dir = a.cache_dir;
    eo.ssd_bytes = budgets.disk_bytes;
    eo.device_memory = kv_device_memory(be);
    std::fprintf(stderr, "strata serve: cache tiers: host RAM %.2f GiB%s, SSD %s\n",
                 static_cast<double>(budgets.ram_bytes) / (1u << 30), a.cache_ram == kAuto ? " (auto)" : "",
                 a.cache_dir.empty() ? "off (--cache-dir DIR)"
                                     : fmt::format("{:.2f} GiB in {}{}", static_cast<double>(budgets.disk_bytes) / (1u << 30),
                                                   a.cache_dir, a.cache_disk == kAuto ? " (auto)" : "").c_str());
    eo.model_id = model_identity(a.model);
    eo.tokenizer_id = eo.model_id;
    auto made = engine::make_engine(m, tok, std::move(eo));
    if (!made.is_ok()) return fail(made.status());
    engine = std::move(*made);
  }

  server::ServerOptions opts;
  opts.host = a.host;
  opts.port = a.port;
  opts.api_key = a.api_key;
  opts.model_name = a.alias.empty() ? default_alias(a.model) : a.alias;
  opts.model_path = a.model;
  opts.architecture = m.hparams().arch;
  opts.parser_family = a.parser;
  opts.keep_billing_header = a.keep_billing_header;
  opts.any_model = a.any_model;
  opts.max_body_bytes = a.max_body;
  opts.max_output_tokens = a.max_tokens;
  opts.keepalive_seconds = a.keepalive;
  opts.max_waiting = a.max_waiting;
  opts.engine_name = a.script.empty() ? "strata" : "script";
  opts.num_http_threads = std::max(16, a.parallel * 4);
  if (!a.chat_template_file.empty()) {
    auto t = read_file(a.chat_template_file);
    if (!t.is_ok()) return fail(t.status());
    opts.chat_template = *t;
  }
  auto srv = server::Server::create(opts, *engine, tok);
  if (!srv.is_ok()) return fail(srv.status());
  server::Server& server = **srv;
  if (Status st = server.bind(); !st.is_ok()) return fail(st);
  std::printf("strata serve: listening on http://%s:%d (model '%s', context %lld tokens)\n", a.host.c_str(), server.port(),
              opts.model_name.c_str(), static_cast<long long>(ctx));
  std::fflush(stdout);

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "strata serve: %s, finishing the requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  Status st = server.serve();
  if (!st.is_ok()) {
    kill(getpid(), SIGTERM);  // release the waiter
  }
  waiter.join();
  engine->shutdown(/*drain=*/true);  // finishes what runs and flushes the cache tiers
  std::fprintf(stderr, "strata serve: stopped\n");
  return st.is_ok() ? 0 : fail(st);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Serve the OpenAI and Anthropic APIs over HTTP");
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--alias", a->alias, "Model name clients use (default: the file name)");
  cmd->add_option("--host", a->host, "Address to bind (loopback by default)")->capture_default_str();
  cmd->add_option("--port", a->port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", a->api_key, "Require this key (x-api-key or Authorization: Bearer)");
  cmd->add_option("--ctx", a->ctx, "Context length (default: the model's)");
  cmd->add_option("--parallel", a->parallel, "Requests run at once")->capture_default_str();
  cmd->add_option("--cache-ram", a->cache_ram, "Host-RAM cache tier budget, bytes (default: a quarter of available memory, at most 16 GiB; 0: off)");
  cmd->add_option("--cache-disk", a->cache_disk, "SSD cache tier budget, bytes (default: half the free space of --cache-dir's filesystem, at most 64 GiB)");
  cmd->add_option("--cache-dir", a->cache_dir, "SSD cache directory");
  cmd->add_option("--threads", a->threads, "CPU threads (0 = all)");
  cmd->add_option("--backend", a->backend, "cpu or cuda (the KV cache's device tier in GPU memory)")->capture_default_str();
  cmd->add_option("--chat-template", a->chat_template_file, "Chat template file (Jinja) instead of the model's");
  cmd->add_option("--parser", a->parser, "Output parser family (qwen3, hermes, llama3, mistral, deepseek, gpt-oss, none)");
  cmd->add_flag("--keep-billing-header", a->keep_billing_header, "Keep Claude Code's per-request billing line in the system prompt");
  cmd->add_flag("--any-model", a->any_model, "Serve requests whatever model they name");
  cmd->add_option("--max-body", a->max_body, "Largest request body, bytes")->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens, "Clamp for max_tokens (0: the context)");
  cmd->add_option("--keepalive", a->keepalive, "Seconds between SSE keep-alive comments")->capture_default_str();
  cmd->add_option("--max-waiting", a->max_waiting, "Queued requests beyond which new ones get 429")->capture_default_str();
  cmd->add_option("--script", a->script, "Testing: reply with the strings of this JSON array instead of the model")->group("");
  cmd->callback([a] { set_exit_code(run_serve(*a)); });
}

}  // namespace strata::cli
