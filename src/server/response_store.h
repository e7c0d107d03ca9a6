// Stored /v1/responses results for previous_response_id: the conversation so far (neutral
// messages) and the response object, most recent first, bounded (LRU).
#pragma once

#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "server/chat_request.h"

namespace strata::server {

struct StoredResponse {
  Json messages;  // the conversation including this response's output, without instructions
  Json response;  // the response object as returned
};

class ResponseStore {
 public:
  explicit ResponseStore(size_t capacity) : capacity_(capacity) {}
  void put(const std::string& id, StoredResponse value);
  std::optional<StoredResponse> get(const std::string& id);
  bool erase(const std::string& id);

 private:
  std::mutex mu_;
  size_t capacity_;
  std::list<std::string> order_;  // most recent first
  std::unordered_map<std::string, std::pair<StoredResponse, std::list<std::string>::iterator>> items_;
};

}  // namespace strata::server
