// Transport: cpp-httplib server, routing by path (query strings such as Claude Code's
// ?beta=true are ignored), API key check, body limit, JSON parsing, SSE streaming with
// keep-alives, the small GET endpoints, and per-request metrics.
#include <fmt/format.h>
#include <httplib.h>

#include <csignal>

#include "core/log.h"
#include "server/context.h"
#include "server/sse.h"

namespace strata::server {
namespace {

Dialect dialect_for(const std::string& path) {
  return path.rfind("/v1/messages", 0) == 0 ? Dialect::kAnthropic : Dialect::kOpenAI;
}

// httplib's DataSink as an SseSink; a failed write means the client went away.
class DataSinkWriter : public SseSink {
 public:
  explicit DataSinkWriter(httplib::DataSink& sink) : sink_(sink) {}
  bool write(std::string_view bytes) override {
    if (!ok_) return false;
    ok_ = sink_.is_writable() && sink_.write(bytes.data(), bytes.size());
    return ok_;
  }

 private:
  httplib::DataSink& sink_;
  bool ok_ = true;
};

void send(const HttpReply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [k, v] : reply.headers) res.set_header(k.c_str(), v.c_str());
  if (!reply.stream) {
    res.set_content(reply.body, reply.content_type.c_str());
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto stream = reply.stream;
  res.set_chunked_content_provider("text/event-stream", [stream](size_t, httplib::DataSink& sink) {
    DataSinkWriter writer(sink);
    try {
      stream(writer);
    } catch (const std::exception& e) {  // a bug in a stream writer must not end the server
      STRATA_LOG_ERROR("stream writer failed: {}", e.what());
    }
    sink.done();
    return true;
  });
}

class HttpServer : public Server {
 public:
  HttpServer(ServerOptions options, engine::Engine& engine, std::unique_ptr<PromptFormat> format)
      : ctx_(std::move(options), engine, std::move(format)) {
    ctx_.created_unix = unix_now();
    const int threads = std::max(4, ctx_.options.num_http_threads);
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http_.set_payload_max_length(ctx_.options.max_body_bytes);
    http_.set_read_timeout(600, 0);
    http_.set_write_timeout(600, 0);
    http_.set_keep_alive_max_count(1000);
    // Token-sized SSE writes: without this, Nagle + delayed ACK hold each one ~40 ms.
    http_.set_tcp_nodelay(true);
    routes();
  }

  Status bind() override {
    port_ = ctx_.options.port == 0 ? http_.bind_to_any_port(ctx_.options.host.c_str())
                                   : (http_.bind_to_port(ctx_.options.host.c_str(), ctx_.options.port) ? ctx_.options.port : -1);
    if (port_ < 0) {
      return error(ErrorCode::kIo, fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)",
                                               ctx_.options.host, ctx_.options.port));
    }
    return Status::ok();
  }

  Status serve() override {
    if (!http_.listen_after_bind()) return error(ErrorCode::kIo, "the HTTP server stopped unexpectedly");
    return Status::ok();
  }

  void stop() override {
    ctx_.stopping = true;
    http_.stop();
  }

  int port() const override { return port_; }

 private:
  bool authorized(const httplib::Request& req) const {
    const std::string& key = ctx_.options.api_key;
    if (key.empty()) return true;
    if (req.get_header_value("x-api-key") == key) return true;
    return req.get_header_value("Authorization") == "Bearer " + key;
  }

  // Wraps a handler: auth, JSON body, metrics, errors in the path's dialect.
  template <typename F>
  httplib::Server::Handler json_route(const char* endpoint, F handler) {
    return [this, endpoint, handler](const httplib::Request& req, httplib::Response& res) {
      const Dialect dialect = dialect_for(req.path);
      HttpReply reply;
      if (!authorized(req)) {
        reply = error_reply(dialect, ApiError{ErrorKind::kAuthentication, "Incorrect API key provided.", ""});
      } else {
        Json body = Json::parse(req.body, nullptr, false);
        if (body.is_discarded()) {
          reply = error_reply(dialect, invalid_request("We could not parse the JSON body of your request: it is not valid JSON."));
        } else if (!body.is_object()) {
          reply = error_reply(dialect, invalid_request("The request body must be a JSON object."));
        } else {
          try {
            ClientProbe client(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
            reply = handler(ctx_, body, client);
          } catch (const std::exception& e) {  // nlohmann type errors on shapes we did not foresee
            reply = error_reply(dialect, invalid_request(std::string("invalid request: ") + e.what()));
          }
        }
      }
      ctx_.metrics.count_request(endpoint, reply.status);
      send(reply, res);
    };
  }

  template <typename F>
  httplib::Server::Handler get_route(const char* endpoint, F handler) {
    return [this, endpoint, handler](const httplib::Request& req, httplib::Response& res) {
      HttpReply reply = authorized(req) ? handler(req)
                                        : error_reply(dialect_for(req.path), ApiError{ErrorKind::kAuthentication, "Incorrect API key provided.", ""});
      ctx_.metrics.count_request(endpoint, reply.status);
      send(reply, res);
    };
  }

  void routes() {
    http_.Post("/v1/chat/completions", json_route("chat_completions", handle_chat_completions));
    http_.Post("/v1/completions", json_route("completions", handle_completions));
    http_.Post("/v1/responses", json_route("responses", handle_responses));
    http_.Post("/v1/messages", json_route("messages", handle_messages));
    http_.Post("/v1/messages/count_tokens", json_route("count_tokens", handle_count_tokens));
    http_.Get("/v1/models", get_route("models", [this](const httplib::Request&) { return handle_models(ctx_); }));
    http_.Get(R"(/v1/models/(.+))", get_route("models", [this](const httplib::Request& req) {
      return handle_model(ctx_, req.matches[1], req.has_header("anthropic-version") ? Dialect::kAnthropic : Dialect::kOpenAI);
    }));
    http_.Get(R"(/v1/responses/([^/]+))", get_route("responses", [this](const httplib::Request& req) {
      return handle_get_response(ctx_, req.matches[1]);
    }));
    http_.Delete(R"(/v1/responses/([^/]+))", get_route("responses", [this](const httplib::Request& req) {
      return handle_delete_response(ctx_, req.matches[1]);
    }));
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const engine::EngineStats s = ctx_.engine.stats();
      Json body{{"status", ctx_.stopping ? "stopping" : "ok"}, {"model", ctx_.options.model_name},
                {"engine", ctx_.options.engine_name}, {"context_length", ctx_.engine.context_length()}, {"running", s.running}, {"waiting", s.waiting}};
      res.status = ctx_.stopping ? 503 : 200;
      res.set_content(dump(body), "application/json");
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(ctx_.metrics.render(ctx_.engine.stats()), "text/plain; version=0.0.4");
    });
    // Bodies over the limit (413) and unknown routes (404) end here with no body yet.
    http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const Dialect dialect = dialect_for(req.path);
      ApiError e{ErrorKind::kNotFound, fmt::format("Unknown route: {} {}", req.method, req.path), ""};
      if (res.status == 413) {
        e = ApiError{ErrorKind::kTooLarge, fmt::format("The request body is over the server's limit of {} bytes.", ctx_.options.max_body_bytes), ""};
      } else if (res.status == 405) {
        e = invalid_request(fmt::format("Method {} is not allowed on {}", req.method, req.path));
      } else if (res.status != 404) {
        e = invalid_request(fmt::format("Bad request ({})", res.status));
      }
      HttpReply reply = error_reply(dialect, e);
      const int status = res.status == 405 ? 405 : reply.status;
      res.status = status;
      ctx_.metrics.count_request("other", status);
      res.set_content(reply.body, "application/json");
    });
  }

  ServerContext ctx_;
  httplib::Server http_;
  int port_ = -1;
};

}  // namespace

HttpReply handle_models(ServerContext& ctx) {
  // One list both SDKs read: OpenAI's {object, data[{id, object, created, owned_by}]} and
  // Anthropic's {data[{type, id, display_name, created_at}], has_more, first_id, last_id}.
  const std::string& id = ctx.options.model_name;
  Json model{{"id", id}, {"object", "model"}, {"created", ctx.created_unix}, {"owned_by", "strata"},
             {"type", "model"}, {"display_name", id}, {"created_at", "1970-01-01T00:00:00Z"},
             {"context_length", ctx.engine.context_length()}};
  return HttpReply::json({{"object", "list"}, {"data", Json::array({model})}, {"has_more", false}, {"first_id", id}, {"last_id", id}});
}

HttpReply handle_model(ServerContext& ctx, const std::string& id, Dialect dialect) {
  if (!ctx.model_known(id)) {
    return error_reply(dialect, ApiError{ErrorKind::kModelNotFound, fmt::format("The model '{}' does not exist", id), ""});
  }
  return HttpReply::json({{"id", id}, {"object", "model"}, {"created", ctx.created_unix}, {"owned_by", "strata"},
                          {"type", "model"}, {"display_name", id}, {"created_at", "1970-01-01T00:00:00Z"}});
}

Result<std::unique_ptr<Server>> Server::create(ServerOptions options, engine::Engine& engine,
                                               const tokenizer::Tokenizer& tokenizer) {
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the process
  STRATA_ASSIGN_OR_RETURN(auto format, PromptFormat::create(tokenizer, options.chat_template,
                                                            options.parser_family, options.architecture));
  return std::unique_ptr<Server>(new HttpServer(std::move(options), engine, std::move(format)));
}

}  // namespace strata::server
