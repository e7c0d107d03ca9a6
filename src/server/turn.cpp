#include "server/turn.h"

#include "core/log.h"

#include <fmt/format.h>
#include <algorithm>
#include <chrono>

namespace strata::server {
namespace {

const char* finish_name(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kStop: return "stop";
    case engine::FinishReason::kLength: return "length";
    case engine::FinishReason::kCancelled: return "cancelled";
    case engine::FinishReason::kError: return "error";
    default: return "none";
  }
}

}  // namespace

ApiResult<std::shared_ptr<Turn>> Turn::start(ServerContext& ctx, const ChatRequest& request) {
  if (ctx.stopping.load()) {
    return ApiError{ErrorKind::kOverloaded, "the server is shutting down", "", 0, 0, 5};
  }
  auto rendered = ctx.format->render(request);
  if (!rendered.is_ok()) return rendered.error();
  const int prompt = static_cast<int>(rendered->tokens.size());
  const int context = static_cast<int>(ctx.engine.context_length());
  if (prompt == 0) return invalid_request("the prompt is empty", "messages");
  if (prompt >= context) {
    ApiError e{ErrorKind::kContextExceeded, "", ""};
    e.prompt_tokens = prompt;
    e.context_tokens = context;
    return e;
  }
  const engine::EngineStats stats = ctx.engine.stats();
  if (stats.waiting >= ctx.options.max_waiting) {
    return ApiError{ErrorKind::kRateLimited,
                    fmt::format("{} requests are waiting; retry shortly", stats.waiting), "", 0, 0, 1};
  }
  engine::GenerateRequest gen;
  gen.prompt = rendered->tokens;
  gen.sampling = request.sampling;
  const int room = context - prompt;
  int max_tokens = request.max_tokens.value_or(room);
  if (ctx.options.max_output_tokens > 0) max_tokens = std::min(max_tokens, ctx.options.max_output_tokens);
  gen.max_tokens = std::clamp(max_tokens, 1, room);
  gen.stop = request.stop;
  gen.ignore_eos = request.ignore_eos;

  std::shared_ptr<Turn> turn(new Turn(ctx));
  turn->parser_ = ctx.format->make_parser(request, *rendered);
  turn->prompt_tokens_ = prompt;
  std::shared_ptr<Channel> channel = turn->channel_;
  auto id = ctx.engine.submit(std::move(gen), [channel](const engine::Event& ev) {
    {
      std::lock_guard lock(channel->mu);
      channel->events.push_back(ev);
    }
    channel->cv.notify_one();
  });
  if (!id.is_ok()) {
    turn->done_ = true;
    const Status& st = id.status();
    switch (st.code()) {
      case ErrorCode::kOutOfRange: {
        ApiError e{ErrorKind::kContextExceeded, st.message(), ""};
        e.prompt_tokens = prompt;
        e.context_tokens = context;
        return e;
      }
      case ErrorCode::kInvalidArgument: return invalid_request(st.message());
      case ErrorCode::kResourceExhausted: return ApiError{ErrorKind::kOverloaded, st.message(), "", 0, 0, 2};
      case ErrorCode::kCancelled: return ApiError{ErrorKind::kOverloaded, st.message(), "", 0, 0, 5};
      default: return ApiError{ErrorKind::kInternal, st.to_string(), ""};
    }
  }
  turn->id_ = *id;
  return turn;
}

Turn::~Turn() {
  if (!done_) ctx_.engine.cancel(id_);
}

TurnResult Turn::run(const std::function<bool(const std::vector<chat::ParseEvent>&)>& on_events,
                     const std::function<bool()>& on_idle, double idle_seconds) {
  TurnResult result;
  const auto keepalive = std::chrono::duration<double>(idle_seconds > 0 ? idle_seconds : ctx_.options.keepalive_seconds);
  std::vector<engine::Event> batch;
  std::vector<chat::ParseEvent> events;
  while (!done_) {
    batch.clear();
    {
      std::unique_lock lock(channel_->mu);
      channel_->cv.wait_for(lock, keepalive, [&] { return !channel_->events.empty(); });
      while (!channel_->events.empty()) {
        batch.push_back(std::move(channel_->events.front()));
        channel_->events.pop_front();
      }
    }
    if (batch.empty()) {
      if (on_idle && !on_idle()) {
        ctx_.engine.cancel(id_);
        done_ = true;
        result.client_gone = true;
        result.finish = engine::FinishReason::kCancelled;
        return result;
      }
      continue;
    }
    events.clear();
    for (const engine::Event& ev : batch) {
      if (!ev.text.empty()) parser_->feed(ev.text, &events);
      if (ev.kind == engine::Event::Kind::kDone) {
        parser_->finish(&events);
        done_ = true;
        result.finish = ev.finish;
        result.stop_matched = ev.stop_matched;
        result.usage = ev.usage;
        result.error = ev.error;
        if (result.usage.prompt_tokens == 0) result.usage.prompt_tokens = prompt_tokens_;
        ctx_.metrics.count_turn(result.usage);
        const engine::Usage& u = result.usage;
        STRATA_LOG_INFO("request {}: {} prompt tokens ({} cached), {} generated, {} ({:.2f} s to first token, {:.2f} s decode)",
                        id_, u.prompt_tokens, u.cached_tokens, u.completion_tokens, finish_name(ev.finish),
                        u.queue_seconds + u.prefill_seconds, u.decode_seconds);
      }
    }
    if (on_events && !events.empty() && !on_events(events)) {
      if (!done_) ctx_.engine.cancel(id_);
      done_ = true;
      result.client_gone = true;
      result.finish = engine::FinishReason::kCancelled;
      return result;
    }
  }
  result.parsed = parser_->result();
  return result;
}

}  // namespace strata::server
