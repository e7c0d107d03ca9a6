#include "server/metrics.h"

#include <fmt/format.h>

namespace strata::server {

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::count_turn(const engine::Usage& u) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(u.prompt_tokens);
  cached_tokens_ += static_cast<uint64_t>(u.cached_tokens);
  cached_device_ += static_cast<uint64_t>(u.cached_tokens_device);
  cached_host_ += static_cast<uint64_t>(u.cached_tokens_host);
  cached_disk_ += static_cast<uint64_t>(u.cached_tokens_disk);
  completion_tokens_ += static_cast<uint64_t>(u.completion_tokens);
  prefill_seconds_ += u.prefill_seconds;
  decode_seconds_ += u.decode_seconds;
  prefill_tokens_ += static_cast<uint64_t>(u.prompt_tokens - u.cached_tokens);
}

std::string Metrics::render(const engine::EngineStats& s) const {
  std::lock_guard lock(mu_);
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  metric("strata_http_requests_total", "counter", "HTTP requests by endpoint and status.");
  for (const auto& [key, n] : requests_) {
    out += fmt::format("strata_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  }
  metric("strata_prompt_tokens_total", "counter", "Prompt tokens of finished requests.");
  out += fmt::format("strata_prompt_tokens_total {}\n", prompt_tokens_);
  metric("strata_cached_prompt_tokens_total", "counter", "Prompt tokens restored from the prefix cache, by tier.");
  out += fmt::format("strata_cached_prompt_tokens_total{{tier=\"device\"}} {}\n", cached_device_);
  out += fmt::format("strata_cached_prompt_tokens_total{{tier=\"host\"}} {}\n", cached_host_);
  out += fmt::format("strata_cached_prompt_tokens_total{{tier=\"disk\"}} {}\n", cached_disk_);
  metric("strata_completion_tokens_total", "counter", "Generated tokens of finished requests.");
  out += fmt::format("strata_completion_tokens_total {}\n", completion_tokens_);
  metric("strata_prefill_tokens_per_second", "gauge", "Computed prompt tokens per second of prefill, mean over all requests.");
  out += fmt::format("strata_prefill_tokens_per_second {:.3f}\n",
                     prefill_seconds_ > 0 ? static_cast<double>(prefill_tokens_) / prefill_seconds_ : 0.0);
  metric("strata_decode_tokens_per_second", "gauge", "Generated tokens per second of decode, mean over all requests.");
  out += fmt::format("strata_decode_tokens_per_second {:.3f}\n",
                     decode_seconds_ > 0 ? static_cast<double>(completion_tokens_) / decode_seconds_ : 0.0);
  metric("strata_cache_hit_ratio", "gauge", "Prompt tokens from cache / prompt tokens, all requests.");
  out += fmt::format("strata_cache_hit_ratio {:.6f}\n",
                     prompt_tokens_ > 0 ? static_cast<double>(cached_tokens_) / static_cast<double>(prompt_tokens_) : 0.0);
  metric("strata_requests_running", "gauge", "Requests the engine is running.");
  out += fmt::format("strata_requests_running {}\n", s.running);
  metric("strata_requests_waiting", "gauge", "Requests queued in the engine.");
  out += fmt::format("strata_requests_waiting {}\n", s.waiting);
  metric("strata_engine_requests_total", "counter", "Requests the engine accepted.");
  out += fmt::format("strata_engine_requests_total {}\n", s.requests_total);
  metric("strata_engine_cached_tokens_total", "counter", "Prompt tokens the engine served from cache.");
  out += fmt::format("strata_engine_cached_tokens_total {}\n", s.cached_tokens_total);
  metric("strata_kv_device_blocks", "gauge", "Device-tier KV blocks, used and total.");
  out += fmt::format("strata_kv_device_blocks{{state=\"used\"}} {}\n", s.device_blocks_used);
  out += fmt::format("strata_kv_device_blocks{{state=\"total\"}} {}\n", s.device_blocks_total);
  metric("strata_kv_tier_bytes", "gauge", "Bytes held by the lower cache tiers.");
  out += fmt::format("strata_kv_tier_bytes{{tier=\"host\"}} {}\n", s.host_bytes_used);
  out += fmt::format("strata_kv_tier_bytes{{tier=\"disk\"}} {}\n", s.disk_bytes_used);
  return out;
}

}  // namespace strata::server
