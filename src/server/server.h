// `strata serve`'s HTTP server: the OpenAI (chat, completions, responses) and Anthropic
// (messages) dialects over one Engine. The CLI builds the engine and tokenizer and hands
// them here; this module owns transport, dialect adapters, errors and metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace strata::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Server::port())
  std::string api_key;                   // empty: no key required
  std::string model_name = "strata";     // the id /v1/models lists and requests must name
  bool any_model = false;                // serve requests naming any model (agents' defaults)
  std::string model_path;                // for /v1/models metadata
  std::string chat_template;             // empty: the GGUF's tokenizer.chat_template
  std::string parser_family;             // empty: guessed from the template and architecture
  std::string architecture;              // GGUF general.architecture (parser family guess)
  size_t max_body_bytes = 16u << 20;     // larger bodies get 413
  int max_output_tokens = 0;             // clamp for max_tokens (0: context length)
  int num_http_threads = 16;             // concurrent connections served
  double keepalive_seconds = 5.0;        // SSE comment when no event came for this long
  int max_waiting = 64;                  // queue depth beyond which requests get 429/503
  bool keep_billing_header = false;      // keep Claude Code's per-request billing line
  size_t max_stored_responses = 1024;    // /v1/responses store (LRU)
  std::string engine_name;               // reported by /health
};

class Server {
 public:
  // engine and tokenizer must outlive the server.
  static Result<std::unique_ptr<Server>> create(ServerOptions options, engine::Engine& engine,
                                                const tokenizer::Tokenizer& tokenizer);
  virtual ~Server() = default;
  // Binds; after this, port() is the bound port.
  virtual Status bind() = 0;
  // Serves until stop(); blocks.
  virtual Status serve() = 0;
  // Stops accepting connections; requests in flight finish when the engine drains them.
  virtual void stop() = 0;
  virtual int port() const = 0;
};

}  // namespace strata::server
