// Counters for GET /metrics (Prometheus text format): requests by endpoint and status,
// tokens, recent throughput, and the engine's queue and cache figures.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "engine/engine.h"

namespace strata::server {

class Metrics {
 public:
  void count_request(const std::string& endpoint, int status);
  void count_turn(const engine::Usage& usage);
  std::string render(const engine::EngineStats& stats) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, completion_tokens_ = 0;
  uint64_t cached_device_ = 0, cached_host_ = 0, cached_disk_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0;
  uint64_t prefill_tokens_ = 0;  // prompt tokens actually computed (not from cache)
};

}  // namespace strata::server
