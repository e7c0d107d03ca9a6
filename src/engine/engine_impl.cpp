// The Engine implementation: one engine thread owns the scheduler, the KV cache and the
// runner; submit() and cancel() talk to it through one locked command queue, and events go
// out through each request's callback on the engine thread.
#include "engine/engine_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine/runner.h"
#include "engine/scheduler.h"
#include "engine/stop.h"
#include "kv/kv_cache.h"

namespace strata::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One request on the engine thread.
struct Request {
  Request(GenerateRequest r, EventCallback callback, const tokenizer::Tokenizer& tok)
      : req(std::move(r)),
        cb(std::move(callback)),
        sampler(req.sampling),
        decoder(tok),
        stop(req.stop) {}
  SeqState st;
  GenerateRequest req;
  EventCallback cb;
  Sampler sampler;
  tokenizer::IncrementalDecoder decoder;
  StopMatcher stop;
  int max_new = 0;  // max_tokens clamped to what the context leaves
  int num_generated = 0;
  Clock::time_point submitted, scheduled, first_token;
  bool was_scheduled = false;
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(model::Model& model, const tokenizer::Tokenizer& tok, EngineOptions opt,
             std::unique_ptr<kv::KvCache> kv)
      : model_(model),
        tok_(tok),
        opt_(std::move(opt)),
        kv_(std::move(kv)),
        device_blocks_(kv_->num_free_blocks()),
        sched_(*kv_, SchedulerOptions{.parallel = opt_.parallel,
                                      .batch_tokens = opt_.batch_tokens,
                                      .prefix_cache = opt_.prefix_cache,
                                      .min_load_wait_seconds = opt_.min_ssd_wait_seconds}),
        runner_(model, *kv_, opt_.batch_tokens, opt_.parallel),
        vocab_(model.hparams().vocab_size) {
    kv_->set_on_io_done([this] {
      std::lock_guard lk(mu_);
      io_ready_ = true;
      cv_.notify_one();
    });
    publish_stats();
    thread_ = std::thread([this] { loop(); });
  }
  ~EngineImpl() override { shutdown(false); }

  Result<RequestId> submit(GenerateRequest request, EventCallback on_event) override;
  void cancel(RequestId id) override;
  EngineStats stats() const override {
    std::lock_guard lk(stats_mu_);
    EngineStats s = stats_;
    s.steps = steps_.load();
    return s;
  }
  int64_t context_length() const override { return opt_.ctx; }
  void shutdown(bool drain) override;

 private:
  struct Command {
    std::unique_ptr<Request> submit;  // null: cancel
    RequestId id = 0;
  };

  void loop();
  bool step();  // false: nothing could run this step
  void take(std::unique_ptr<Request> r);
  void on_token(Request& r, const SampleResult& res);
  void finish(Request& r, FinishReason reason, std::string matched = {},
              Status status = Status::ok());
  void publish_stats();

  model::Model& model_;
  const tokenizer::Tokenizer& tok_;
  const EngineOptions opt_;

  // Engine thread only.
  std::unique_ptr<kv::KvCache> kv_;
  const int32_t device_blocks_;  // the device tier's size (all free at the start)
  Scheduler sched_;
  PrefillRate prefill_rate_;  // the bar an SSD read has to beat
  Runner runner_;
  const int64_t vocab_;
  std::unordered_map<RequestId, std::unique_ptr<Request>> live_;
  uint64_t next_arrival_ = 1;
  EngineStats totals_;

  // Shared with other threads.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Command> inbox_;
  bool stopping_ = false;
  bool drain_ = false;
  bool io_ready_ = false;
  std::atomic<RequestId> next_id_{1};
  std::thread thread_;
  std::mutex shutdown_mu_;
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::atomic<uint64_t> steps_{0};
};

Result<RequestId> EngineImpl::submit(GenerateRequest request, EventCallback on_event) {
  const auto n = static_cast<int64_t>(request.prompt.size());
  if (n == 0) return error(ErrorCode::kInvalidArgument, "the prompt is empty");
  if (n >= opt_.ctx) {
    return error(
        ErrorCode::kOutOfRange,
        fmt::format(
            "prompt has {} tokens; the context is {} (leave room for at least one new token)", n,
            opt_.ctx));
  }
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= vocab_) {
      return error(ErrorCode::kInvalidArgument,
                   fmt::format("token id {} is outside the vocabulary of {}", t, vocab_));
    }
  }
  if (!on_event) return error(ErrorCode::kInvalidArgument, "no event callback");
  auto r = std::make_unique<Request>(std::move(request), std::move(on_event), tok_);
  const int64_t room = opt_.ctx - n;
  r->max_new =
      static_cast<int>(r->req.max_tokens <= 0 ? room : std::min<int64_t>(r->req.max_tokens, room));
  r->submitted = Clock::now();
  const RequestId id = next_id_++;
  r->st.request_id = id;
  std::lock_guard lk(mu_);
  if (stopping_) return error(ErrorCode::kResourceExhausted, "the engine is shutting down");
  inbox_.push_back({std::move(r), id});
  cv_.notify_one();
  return id;
}

void EngineImpl::cancel(RequestId id) {
  std::lock_guard lk(mu_);
  inbox_.push_back({nullptr, id});
  cv_.notify_one();
}

void EngineImpl::shutdown(bool drain) {
  std::lock_guard sl(shutdown_mu_);
  {
    std::lock_guard lk(mu_);
    if (!stopping_) drain_ = drain;
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void EngineImpl::take(std::unique_ptr<Request> r) {
  Request& q = *r;
  q.st.arrival = next_arrival_++;
  q.st.tokens = q.req.prompt;
  q.st.num_prompt = static_cast<int32_t>(q.req.prompt.size());
  q.st.extra = kv::make_extra_key(q.req.cache_salt);
  totals_.requests_total++;
  totals_.prompt_tokens_total += q.req.prompt.size();
  live_.emplace(q.st.request_id, std::move(r));
  sched_.add(&q.st);
}

void EngineImpl::loop() {
  bool idle = false;
  while (true) {
    std::vector<Command> cmds;
    bool stopping = false, drain = false;
    {
      std::unique_lock lk(mu_);
      if (sched_.empty()) {
        cv_.wait(lk, [&] { return !inbox_.empty() || stopping_; });
      } else if (idle) {  // only SSD reads to wait for
        cv_.wait_for(lk, std::chrono::milliseconds(1),
                     [&] { return !inbox_.empty() || stopping_ || io_ready_; });
      }
      cmds.swap(inbox_);
      io_ready_ = false;
      stopping = stopping_;
      drain = drain_;
    }
    for (Command& c : cmds) {
      if (c.submit) {
        take(std::move(c.submit));
      } else if (auto it = live_.find(c.id); it != live_.end()) {
        finish(*it->second, FinishReason::kCancelled);
      }
    }
    if (stopping && !drain) {
      std::vector<Request*> all;
      for (auto& [id, r] : live_) all.push_back(r.get());
      for (Request* r : all) finish(*r, FinishReason::kCancelled);
    }
    if (stopping && sched_.empty()) break;
    idle = !step();
    publish_stats();
  }
  kv_->flush();
  publish_stats();
}

bool EngineImpl::step() {
  if (sched_.empty()) return false;
  steps_++;
  StepPlan plan = sched_.schedule();
  for (SeqState* s : plan.failed) {
    finish(*live_.at(s->request_id), FinishReason::kError, {},
           error(ErrorCode::kResourceExhausted,
                 fmt::format("the request needs more K/V than the whole device tier holds ({} "
                             "blocks of {} tokens); "
                             "give the engine more device blocks or a shorter context",
                             device_blocks_, kv_->layout().block_tokens)));
  }
  if (plan.items.empty()) return false;
  const auto t0 = Clock::now();
  for (const StepItem& it : plan.items) {
    Request& r = *live_.at(it.seq->request_id);
    if (!r.was_scheduled) {
      r.was_scheduled = true;
      r.scheduled = t0;
    }
  }
  // Every sampling sequence greedy: the argmax on the device, the logits stay there.
  bool greedy = true;
  for (const StepItem& it : plan.items) {
    if (!it.sample) continue;
    const Request& r = *live_.at(it.seq->request_id);
    greedy = greedy && r.sampler.plain_greedy(r.st.tokens);
  }
  Result<Runner::Output> logits = runner_.run(plan, greedy);
  if (!logits.is_ok()) {
    for (const StepItem& it : plan.items)
      finish(*live_.at(it.seq->request_id), FinishReason::kError, {}, logits.status());
    return true;
  }
  const auto t1 = Clock::now();
  // How long a prompt token takes to compute: the bar an SSD read has to beat.
  if (plan.num_prefill_tokens >= 64) {
    prefill_rate_.observe(seconds(t0, t1), plan.num_tokens);
    sched_.options().load_seconds_per_token = prefill_rate_.seconds_per_token();
  }
  sched_.commit(plan);
  size_t row = 0;
  std::vector<std::pair<RequestId, SampleResult>> sampled;
  for (const StepItem& it : plan.items) {
    if (!it.sample) continue;
    Request& r = *live_.at(it.seq->request_id);
    if (greedy) {
      SampleResult res;
      res.token = logits->argmax[row++];
      sampled.emplace_back(r.st.request_id, res);
      continue;
    }
    std::span<const float> l =
        logits->logits.subspan(row++ * static_cast<size_t>(vocab_), static_cast<size_t>(vocab_));
    sampled.emplace_back(r.st.request_id, r.sampler.sample(l, r.st.tokens));
  }
  // Events after sampling every row: a callback may not see a half-updated step.
  for (auto& [id, res] : sampled) {
    if (auto it = live_.find(id); it != live_.end()) on_token(*it->second, res);
  }
  return true;
}

void EngineImpl::on_token(Request& r, const SampleResult& res) {
  const int32_t tok = res.token;
  r.st.tokens.push_back(tok);
  r.num_generated++;
  if (r.num_generated == 1) r.first_token = Clock::now();
  totals_.generated_tokens_total++;
  Event ev;
  ev.kind = Event::Kind::kDelta;
  ev.id = r.st.request_id;
  ev.tokens.push_back(tok);
  if (r.req.sampling.logprobs || r.req.sampling.top_logprobs > 0) ev.logprobs.push_back(res);
  FinishReason fin = FinishReason::kNone;
  std::string matched;
  if (tok_.is_eog(tok) && !r.req.ignore_eos) {
    fin = FinishReason::kStop;  // the end-of-generation token itself is no text
  } else {
    StopMatcher::Out o = r.stop.add(r.decoder.add(tok));
    ev.text = std::move(o.text);
    if (o.stopped) {
      fin = FinishReason::kStop;
      matched = std::move(o.matched);
    }
  }
  if (fin == FinishReason::kNone &&
      (r.num_generated >= r.max_new || static_cast<int64_t>(r.st.tokens.size()) >= opt_.ctx)) {
    fin = FinishReason::kLength;
  }
  if (fin != FinishReason::kNone && !r.stop.stopped()) {
    StopMatcher::Out o = r.stop.add(r.decoder.flush());
    ev.text += o.text;
    if (o.stopped) {
      fin = FinishReason::kStop;
      matched = std::move(o.matched);
    } else {
      ev.text += r.stop.flush();
    }
  }
  r.cb(ev);
  if (fin != FinishReason::kNone) finish(r, fin, std::move(matched));
}

void EngineImpl::finish(Request& r, FinishReason reason, std::string matched, Status status) {
  sched_.remove(&r.st);  // blocks back to the pool before anyone hears of it
  const auto now = Clock::now();
  Event done;
  done.kind = Event::Kind::kDone;
  done.id = r.st.request_id;
  done.finish = reason;
  done.stop_matched = std::move(matched);
  done.error = std::move(status);
  Usage& u = done.usage;
  u.prompt_tokens = r.st.num_prompt;
  if (r.st.has_stats) {
    u.cached_tokens_device = static_cast<int>(r.st.first_stats.tokens_from_device);
    u.cached_tokens_host = static_cast<int>(r.st.first_stats.tokens_from_host);
    u.cached_tokens_disk = static_cast<int>(r.st.first_stats.tokens_from_ssd);
    u.cached_tokens = u.cached_tokens_device + u.cached_tokens_host + u.cached_tokens_disk;
  }
  u.completion_tokens = r.num_generated;
  const auto start = r.was_scheduled ? r.scheduled : now;
  u.queue_seconds = seconds(r.submitted, start);
  if (r.num_generated > 0) {
    u.prefill_seconds = seconds(start, r.first_token);
    u.decode_seconds = seconds(r.first_token, now);
  }
  totals_.cached_tokens_total += static_cast<uint64_t>(u.cached_tokens);
  const RequestId id = r.st.request_id;
  EventCallback cb = std::move(r.cb);
  live_.erase(id);  // r is gone
  publish_stats();  // whoever hears of the end sees the blocks back in the pool
  cb(done);
}

void EngineImpl::publish_stats() {
  EngineStats s = totals_;
  s.running = sched_.num_running();
  s.waiting = sched_.num_waiting();
  s.preemptions = sched_.num_preemptions();
  const kv::CacheStats cs = kv_->stats();
  s.device_blocks_total = static_cast<uint64_t>(device_blocks_);
  s.device_blocks_used = static_cast<uint64_t>(device_blocks_ - kv_->num_free_blocks());
  s.host_bytes_used = cs.host_bytes_used;
  s.disk_bytes_used = cs.ssd.used_bytes;
  std::lock_guard lk(stats_mu_);
  stats_ = s;
}

}  // namespace

Result<std::unique_ptr<Engine>> make_engine(model::Model& model,
                                            const tokenizer::Tokenizer& tokenizer,
                                            EngineOptions options) {
  const model::Hparams& hp = model.hparams();
  if (options.parallel < 1 || options.batch_tokens < 1 || options.block_tokens < 1 ||
      options.ctx < 2) {
    return error(ErrorCode::kInvalidArgument,
                 "parallel, batch_tokens, block_tokens must be >= 1 and ctx >= 2");
  }
  if (hp.context_length > 0 && options.ctx > hp.context_length) {
    return error(ErrorCode::kOutOfRange,
                 fmt::format("context {} exceeds the model's {}", options.ctx, hp.context_length));
  }
  kv::KvCacheOptions ko;
  ko.layout.num_layers = static_cast<int32_t>(hp.num_attention_layers());
  ko.layout.state_bytes = hp.recurrent_state_bytes();  // hybrids: DeltaNet state per block
  ko.layout.num_kv_heads = static_cast<int32_t>(hp.num_kv_heads);
  ko.layout.head_dim = static_cast<int32_t>(hp.head_dim);
  ko.layout.dtype = options.kv_dtype;
  ko.layout.block_tokens = options.block_tokens;
  STRATA_RETURN_IF_ERROR(ko.layout.validate());
  ko.fingerprint = kv::make_fingerprint(options.model_id, options.tokenizer_id, ko.layout);
  const auto bt = static_cast<int64_t>(options.block_tokens);
  int64_t blocks = options.device_blocks;
  if (blocks <= 0 && options.device_bytes > 0)
    blocks = static_cast<int64_t>(options.device_bytes / ko.layout.block_bytes());
  if (blocks <= 0) blocks = options.parallel * ((options.ctx + bt - 1) / bt);
  if (blocks < 1) return error(ErrorCode::kInvalidArgument, "the device tier holds no block");
  ko.device_blocks = static_cast<int32_t>(blocks);
  ko.host_bytes = options.host_bytes;
  ko.ssd_dir = options.ssd_dir;
  ko.ssd_bytes = options.ssd_bytes;
  ko.lower_tier_int8 = options.lower_tier_int8;
  ko.device_memory = options.device_memory;
  ko.host_memory = options.host_memory;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<kv::KvCache> kv, kv::KvCache::create(std::move(ko)));
  return std::unique_ptr<Engine>(
      new EngineImpl(model, tokenizer, std::move(options), std::move(kv)));
}

}  // namespace strata::engine
