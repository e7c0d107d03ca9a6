// Server-sent events framing, and the loop that streams a Turn through a dialect's event
// writer with keep-alive comments.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/chat_request.h"
#include "server/turn.h"

namespace strata::server {

// "data: {json}\n\n"
std::string sse_data(const Json& data);
// "event: NAME\ndata: {json}\n\n"
std::string sse_event(const std::string& name, const Json& data);
// A comment line: clients ignore it; it keeps proxies and idle timers from closing the stream
// during a long prefill, and tells us when the client has gone.
inline constexpr const char* kSseKeepAlive = ": keep-alive\n\n";

// Runs the turn, calling on_events for each batch and writing what it returns.
TurnResult stream_turn(Turn& turn, SseSink& sink,
                       const std::function<std::string(const std::vector<chat::ParseEvent>&)>& on_events);

// Compact JSON text that never throws on invalid UTF-8.
std::string dump(const Json& j);

// The handlers, one per endpoint (one file per dialect). `client` tells a non-streaming turn
// when its client has gone.
HttpReply handle_chat_completions(ServerContext& ctx, const Json& body, ClientProbe& client);
HttpReply handle_completions(ServerContext& ctx, const Json& body, ClientProbe& client);
HttpReply handle_responses(ServerContext& ctx, const Json& body, ClientProbe& client);
HttpReply handle_get_response(ServerContext& ctx, const std::string& id);
HttpReply handle_delete_response(ServerContext& ctx, const std::string& id);
HttpReply handle_messages(ServerContext& ctx, const Json& body, ClientProbe& client);
HttpReply handle_count_tokens(ServerContext& ctx, const Json& body, ClientProbe& client);
HttpReply handle_models(ServerContext& ctx);
HttpReply handle_model(ServerContext& ctx, const std::string& id, Dialect dialect);

// Checks "model" against what the server serves; the error is kModelNotFound.
std::optional<ApiError> check_model(ServerContext& ctx, const Json& body, std::string* model);

}  // namespace strata::server
