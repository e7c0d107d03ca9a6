// A minimal Engine for protocol tests (`strata serve --script`): one request at a time on one
// thread, each token produced by a Producer (scripted replies), with the engine's contract for
// stop strings, end-of-generation, max_tokens, cancel and drain. No prefix cache:
// Usage.cached_tokens is 0. Real serving uses engine::make_engine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {

class SerialEngine : public engine::Engine {
 public:
  // Calls on_token for each new token until it returns false or generation ends.
  using Producer = std::function<Status(const engine::GenerateRequest&, const std::function<bool(int32_t)>& on_token)>;

  SerialEngine(const tokenizer::Tokenizer& tokenizer, int64_t context_length, Producer producer);
  ~SerialEngine() override;

  Result<engine::RequestId> submit(engine::GenerateRequest request, engine::EventCallback on_event) override;
  void cancel(engine::RequestId id) override;
  engine::EngineStats stats() const override;
  int64_t context_length() const override { return context_length_; }
  void shutdown(bool drain) override;

 private:
  struct Job {
    engine::RequestId id;
    engine::GenerateRequest request;
    engine::EventCallback on_event;
  };
  void loop();
  void run(Job& job);

  const tokenizer::Tokenizer& tokenizer_;
  int64_t context_length_;
  Producer producer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::unordered_set<engine::RequestId> cancelled_;
  engine::RequestId next_id_ = 1;
  engine::RequestId running_id_ = 0;
  bool accepting_ = true;
  bool stop_ = false;
  engine::EngineStats stats_;
  std::thread thread_;
};

}  // namespace strata::cli
