// Request fields the OpenAI endpoints share: tools (both the chat and the Responses shape,
// namespaces flattened, hosted tools ignored), tool_choice, sampling, stop, stream,
// reasoning switches.
#pragma once

#include <optional>

#include "server/chat_request.h"

namespace strata::server {

// Appends the function tools of body["tools"] to req->tools (OpenAI chat shape).
std::optional<ApiError> read_openai_tools(const Json& body, bool responses_shape, ChatRequest* req);
// Function tools in `tools` appended to *out; used for Anthropic too.
std::optional<ApiError> flatten_tools(const Json& tools, Json* out);
std::optional<ApiError> read_openai_common(const Json& body, ChatRequest* req);

}  // namespace strata::server
