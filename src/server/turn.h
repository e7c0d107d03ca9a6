// One generation turn: the rendered prompt goes to the engine; engine events come back on
// the engine thread into a channel; the handler thread drains the channel through the
// output parser, sending keep-alives while nothing arrives and cancelling when the client
// goes away.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "chat/parser.h"
#include "engine/engine.h"
#include "server/client_probe.h"
#include "server/context.h"

namespace strata::server {

struct TurnResult {
  chat::ParseResult parsed;
  engine::FinishReason finish = engine::FinishReason::kNone;
  std::string stop_matched;
  engine::Usage usage;
  Status error;              // finish == kError
  bool client_gone = false;  // a write failed: the request was cancelled
};

class Turn {
 public:
  // Renders, checks the context, submits. Errors come back before any byte is written.
  static ApiResult<std::shared_ptr<Turn>> start(ServerContext& ctx, const ChatRequest& request);
  ~Turn();

  int prompt_tokens() const { return prompt_tokens_; }
  // Runs to the end. on_events gets each batch of parse events and returns false when the
  // client is gone; on_idle is called every keepalive interval without events (same
  // contract; every idle_seconds instead when given). Either returning false cancels the
  // request.
  TurnResult run(const std::function<bool(const std::vector<chat::ParseEvent>&)>& on_events,
                 const std::function<bool()>& on_idle, double idle_seconds = 0);
  // Runs to the end without writing anything (a non-streaming reply), cancelling when the
  // client closes its connection.
  TurnResult run_to_end(ClientProbe& client) {
    auto alive = [&client] { return client.alive(); };
    return run([&](const std::vector<chat::ParseEvent>&) { return alive(); }, alive, 0.25);
  }

 private:
  struct Channel {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<engine::Event> events;
  };
  Turn(ServerContext& ctx) : ctx_(ctx) {}

  ServerContext& ctx_;
  std::shared_ptr<Channel> channel_ = std::make_shared<Channel>();
  std::unique_ptr<chat::OutputParser> parser_;
  engine::RequestId id_ = 0;
  int prompt_tokens_ = 0;
  bool done_ = false;
};

// Whether the reply ends in tool calls (finish "tool_calls" / "tool_use").
inline bool ended_in_tool_calls(const TurnResult& r) {
  return !r.parsed.tool_calls.empty() && r.finish == engine::FinishReason::kStop;
}

}  // namespace strata::server
