#include "engine/stop.h"

#include <algorithm>

namespace strata::engine {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Out StopMatcher::add(std::string_view text) {
  Out out;
  if (stopped_) return out;
  held_.append(text);
  // The earliest match wins; at equal starts the longest stop string (what a client listed
  // first is not a better guide than the text itself).
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const std::string& s : stops_) {
    const size_t p = held_.find(s);
    if (p == std::string::npos) continue;
    if (p < best || (p == best && s.size() > best_stop->size())) {
      best = p;
      best_stop = &s;
    }
  }
  if (best_stop != nullptr) {
    out.text = held_.substr(0, best);
    out.stopped = true;
    out.matched = *best_stop;
    stopped_ = true;
    held_.clear();
    return out;
  }
  // Keep the longest suffix that is a proper prefix of a stop string. A stop string starts
  // at a character boundary, so the cut never splits a UTF-8 character.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  out.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return stopped_ ? std::string() : out;
}

}  // namespace strata::engine
