// The serving engine's public face: requests go in through submit(), events come out through
// each request's callback. One engine thread owns the scheduler, the KV cache and the model
// runner; this header is all the server sees of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"

namespace strata::engine {

using RequestId = uint64_t;

struct GenerateRequest {
  std::vector<int32_t> prompt;          // token ids (the chat template is applied upstream)
  SamplingParams sampling;
  int max_tokens = 256;                 // clamped to what the context leaves; <= 0: all of it
  std::vector<std::string> stop;        // stop strings: matched across token boundaries, withheld until decided
  bool ignore_eos = false;
  std::string cache_salt;               // extra key of the prefix cache (e.g. per API key); "" = shared
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct Usage {
  int prompt_tokens = 0;
  int cached_tokens = 0;                // prompt tokens served from the prefix cache (any tier)
  int cached_tokens_device = 0;         // ... of which from the device tier
  int cached_tokens_host = 0;           // ... from host RAM
  int cached_tokens_disk = 0;           // ... from SSD
  int completion_tokens = 0;
  double queue_seconds = 0;
  double prefill_seconds = 0;           // until the first token
  double decode_seconds = 0;
};

struct Event {
  enum class Kind { kDelta, kDone };
  Kind kind = Kind::kDelta;
  RequestId id = 0;
  std::string text;                     // newly decided text (valid UTF-8)
  std::vector<int32_t> tokens;          // the tokens this event covers
  std::vector<SampleResult> logprobs;   // per token, when sampling.top_logprobs > 0
  // kDone only (it carries no text or tokens: the last kDelta has them):
  FinishReason finish = FinishReason::kNone;
  std::string stop_matched;             // the stop string that ended it, if any
  Usage usage;
  Status error;                         // set when finish == kError
};

using EventCallback = std::function<void(const Event&)>;

struct EngineStats {
  int running = 0;
  int waiting = 0;
  uint64_t requests_total = 0;
  uint64_t prompt_tokens_total = 0;
  uint64_t cached_tokens_total = 0;
  uint64_t generated_tokens_total = 0;
  // KV cache, bytes and blocks per tier. A used device block is one a running request holds
  // (or an SSD write reads); cached blocks no request holds count as free (evictable).
  uint64_t device_blocks_used = 0, device_blocks_total = 0;
  uint64_t host_bytes_used = 0, disk_bytes_used = 0;
  // Scheduler
  uint64_t steps = 0;        // forward steps run (plus idle polls while SSD reads are in flight)
  uint64_t preemptions = 0;  // requests sent back to waiting because KV blocks ran out
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Validates (prompt fits the context, ids in the vocabulary) before any work: an invalid
  // request gets an error Status and no events. Otherwise the callback receives kDelta
  // events and one final kDone, on the engine thread (keep it short; never block).
  virtual Result<RequestId> submit(GenerateRequest request, EventCallback on_event) = 0;
  // Cancels at any moment; the request's blocks are freed within one step and a kDone with
  // kCancelled follows (unless it already finished).
  virtual void cancel(RequestId id) = 0;
  virtual EngineStats stats() const = 0;
  virtual int64_t context_length() const = 0;
  // Stops accepting work, finishes (drain) or cancels what runs, flushes the cache tiers.
  virtual void shutdown(bool drain) = 0;
};

}  // namespace strata::engine
