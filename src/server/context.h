// What every handler shares: options, the engine, the prompt format, metrics and the
// stored responses. Internal to the server module.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/metrics.h"
#include "server/prompt.h"
#include "server/response_store.h"
#include "server/server.h"

namespace strata::server {

struct ServerContext {
  ServerOptions options;
  engine::Engine& engine;
  std::unique_ptr<PromptFormat> format;
  Metrics metrics;
  ResponseStore responses;
  int64_t created_unix = 0;
  std::atomic<bool> stopping{false};

  ServerContext(ServerOptions opts, engine::Engine& e, std::unique_ptr<PromptFormat> f)
      : options(std::move(opts)), engine(e), format(std::move(f)), responses(options.max_stored_responses) {}

  // The alias, the model file's name (with or without .gguf), or anything with --any-model.
  bool model_known(const std::string& name) const;
};

// prefix + 24 random alphanumerics ("chatcmpl-...", "resp_...", "msg_...").
std::string random_id(const char* prefix);
int64_t unix_now();

}  // namespace strata::server
