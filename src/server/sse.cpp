#include "server/sse.h"

#include <fmt/format.h>
#include <random>

namespace strata::server {

std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse_data(const Json& data) { return "data: " + dump(data) + "\n\n"; }

std::string sse_event(const std::string& name, const Json& data) {
  return "event: " + name + "\ndata: " + dump(data) + "\n\n";
}

TurnResult stream_turn(Turn& turn, SseSink& sink,
                       const std::function<std::string(const std::vector<chat::ParseEvent>&)>& on_events) {
  return turn.run(
      [&](const std::vector<chat::ParseEvent>& events) {
        std::string bytes = on_events(events);
        return bytes.empty() || sink.write(bytes);
      },
      [&] { return sink.write(kSseKeepAlive); });
}

std::string random_id(const char* prefix) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

bool ServerContext::model_known(const std::string& name) const {
  if (options.any_model || name == options.model_name) return true;
  const std::string& path = options.model_path;
  const size_t slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return !base.empty() && (name == base || name + ".gguf" == base);
}

std::optional<ApiError> check_model(ServerContext& ctx, const Json& body, std::string* model) {
  if (auto e = read_string(body, "model", model, /*required=*/true)) return e;
  if (!ctx.model_known(*model)) {
    return ApiError{ErrorKind::kModelNotFound,
                    fmt::format("The model '{}' does not exist; this server serves '{}'", *model,
                                ctx.options.model_name),
                    "model"};
  }
  return std::nullopt;
}

}  // namespace strata::server
