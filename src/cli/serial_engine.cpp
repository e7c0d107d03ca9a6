#include "cli/serial_engine.h"

#include <fmt/format.h>

#include <chrono>

namespace strata::cli {

SerialEngine::SerialEngine(const tokenizer::Tokenizer& tokenizer, int64_t context_length, Producer producer)
    : tokenizer_(tokenizer), context_length_(context_length), producer_(std::move(producer)) {
  thread_ = std::thread([this] { loop(); });
}

SerialEngine::~SerialEngine() { shutdown(false); }

Result<engine::RequestId> SerialEngine::submit(engine::GenerateRequest request, engine::EventCallback on_event) {
  if (request.prompt.empty()) return error(ErrorCode::kInvalidArgument, "the prompt is empty");
  if (static_cast<int64_t>(request.prompt.size()) >= context_length_) {
    return error(ErrorCode::kOutOfRange, fmt::format("prompt has {} tokens; the model's context is {}",
                                                     request.prompt.size(), context_length_));
  }
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= tokenizer_.vocab_size()) return error(ErrorCode::kInvalidArgument, fmt::format("token id {} is not in the vocabulary", t));
  }
  std::lock_guard lock(mu_);
  if (!accepting_) return error(ErrorCode::kCancelled, "the engine is shutting down");
  const engine::RequestId id = next_id_++;
  queue_.push_back(Job{id, std::move(request), std::move(on_event)});
  ++stats_.requests_total;
  cv_.notify_one();
  return id;
}

void SerialEngine::cancel(engine::RequestId id) {
  std::lock_guard lock(mu_);
  cancelled_.insert(id);
}

engine::EngineStats SerialEngine::stats() const {
  std::lock_guard lock(mu_);
  engine::EngineStats s = stats_;
  s.waiting = static_cast<int>(queue_.size());
  s.running = running_id_ != 0 ? 1 : 0;
  return s;
}

void SerialEngine::shutdown(bool drain) {
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    if (!drain) {
      for (const Job& j : queue_) cancelled_.insert(j.id);
      if (running_id_ != 0) cancelled_.insert(running_id_);
    }
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SerialEngine::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      job = std::move(queue_.front());
      queue_.pop_front();
      running_id_ = job.id;
    }
    run(job);
    std::lock_guard lock(mu_);
    running_id_ = 0;
    cancelled_.erase(job.id);
  }
}

void SerialEngine::run(Job& job) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  engine::Event done;
  done.kind = engine::Event::Kind::kDone;
  done.id = job.id;
  done.finish = engine::FinishReason::kLength;
  done.usage.prompt_tokens = static_cast<int>(job.request.prompt.size());
  tokenizer::IncrementalDecoder decoder(tokenizer_, /*skip_special=*/true);
  std::string held;  // decoded text not yet released: it may still become a stop string
  auto first = Clock::time_point{};
  auto is_cancelled = [&] {
    std::lock_guard lock(mu_);
    return cancelled_.count(job.id) != 0;
  };
  // Releases what can no longer start a stop string; true when a stop string matched.
  auto release = [&](bool at_end) {
    size_t cut = std::string::npos;
    for (const std::string& s : job.request.stop) {
      const size_t p = held.find(s);
      if (p != std::string::npos && p < cut) {
        cut = p;
        done.stop_matched = s;
      }
    }
    size_t safe = cut != std::string::npos ? cut : held.size();
    if (cut == std::string::npos && !at_end) {
      for (const std::string& s : job.request.stop) {
        for (size_t k = std::min(s.size() - 1, held.size()); k > 0; --k) {
          if (held.compare(held.size() - k, k, s, 0, k) == 0) {
            safe = std::min(safe, held.size() - k);
            break;
          }
        }
      }
    }
    if (safe > 0) {
      engine::Event ev;
      ev.id = job.id;
      ev.text = held.substr(0, safe);
      job.on_event(ev);
      held.erase(0, safe);
    }
    return cut != std::string::npos;
  };
  Status st = producer_(job.request, [&](int32_t token) {
    if (first == Clock::time_point{}) first = Clock::now();
    if (is_cancelled()) {
      done.finish = engine::FinishReason::kCancelled;
      return false;
    }
    if (!job.request.ignore_eos && tokenizer_.is_eog(token)) {
      done.finish = engine::FinishReason::kStop;
      return false;
    }
    ++done.usage.completion_tokens;
    held += decoder.add(token);
    if (release(false)) {
      done.finish = engine::FinishReason::kStop;
      return false;
    }
    return done.usage.completion_tokens < job.request.max_tokens;
  });
  held += decoder.flush();
  if (done.stop_matched.empty() && release(true)) done.finish = engine::FinishReason::kStop;
  if (!st.is_ok()) {
    done.finish = engine::FinishReason::kError;
    done.error = st;
  }
  const auto t1 = Clock::now();
  if (first == Clock::time_point{}) first = t1;
  done.usage.prefill_seconds = std::chrono::duration<double>(first - t0).count();
  done.usage.decode_seconds = std::chrono::duration<double>(t1 - first).count();
  {
    std::lock_guard lock(mu_);
    stats_.prompt_tokens_total += static_cast<uint64_t>(done.usage.prompt_tokens);
    stats_.generated_tokens_total += static_cast<uint64_t>(done.usage.completion_tokens);
  }
  job.on_event(done);
}

}  // namespace strata::cli
