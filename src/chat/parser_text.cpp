// Byte-level helpers shared by the output parsers (see parser_text.h).
#include "chat/parser_text.h"

#include <algorithm>

namespace strata::chat::detail {

size_t skip_space(std::string_view s, size_t pos) {
  while (pos < s.size() && is_space(s[pos])) ++pos;
  return pos;
}

MarkerScan scan_markers(std::string_view s, size_t from, const std::vector<std::string>& markers) {
  MarkerScan scan;
  for (size_t i = 0; i < markers.size(); ++i) {
    const size_t p = s.find(markers[i], from);
    if (p != std::string_view::npos && p < scan.pos) {
      scan.pos = p;
      scan.marker_idx = static_cast<int>(i);
    }
  }
  if (scan.pos != std::string_view::npos) return scan;
  // No full marker: the earliest suffix that could still grow into one is withheld.
  scan.safe_end = s.size();
  for (const std::string& m : markers) {
    const size_t max_len = std::min(m.size() - 1, s.size() - from);
    for (size_t len = max_len; len > 0; --len) {
      if (s.substr(s.size() - len) == std::string_view(m).substr(0, len)) {
        scan.safe_end = std::min(scan.safe_end, s.size() - len);
        break;
      }
    }
  }
  return scan;
}

size_t json_extent(std::string_view s, size_t pos) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = pos; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped byte (a quote or backslash) never ends the string
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;  // the value was a string
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return need > back ? n - back : n;
  }
  return n;  // only continuation bytes (invalid): nothing to wait for
}

nlohmann::ordered_json parse_json(std::string_view text) {
  return nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr,
                                       /*allow_exceptions=*/false);
}

std::string dump_json(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string make_call_id(uint64_t seed, int idx) {
  static constexpr char kAlnum[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(idx + 1);
  std::string id = "call_";
  for (int i = 0; i < 16; ++i) {
    // splitmix64 steps: every character gets fresh bits
    z += 0x9e3779b97f4a7c15ull;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    id += kAlnum[x % 62];
  }
  return id;
}

void DeltaSink::append(std::string_view text, std::vector<ParseEvent>* events) {
  if (text.empty()) return;
  held_.append(text);
  const std::string_view held = held_;
  const size_t complete = utf8_complete_prefix(held);
  size_t cut = complete;
  while (cut > 0 && is_space(held[cut - 1])) --cut;
  if (cut == 0) return;
  const std::string rest(held.substr(cut));
  release(held.substr(0, cut), events);
  held_ = rest;
}

void DeltaSink::boundary(std::vector<ParseEvent>* events) {
  size_t cut = held_.size();
  while (cut > 0 && is_space(held_[cut - 1])) --cut;
  if (cut > 0) release(std::string_view(held_).substr(0, cut), events);
  held_.clear();
}

void DeltaSink::release(std::string_view text, std::vector<ParseEvent>* events) {
  if (out_->empty()) {  // a section's leading whitespace is dropped
    const size_t start = skip_space(text, 0);
    text.remove_prefix(start);
    if (text.empty()) return;
  }
  std::string joined;
  if (!separator_.empty()) {
    if (!out_->empty()) {
      joined = separator_ + std::string(text);
      text = joined;
    }
    separator_.clear();
  }
  out_->append(text);
  if (!events->empty() && events->back().kind == kind_) {
    events->back().text.append(text);  // one event per kind per feed is enough
  } else {
    ParseEvent event;
    event.kind = kind_;
    event.text = std::string(text);
    events->push_back(std::move(event));
  }
}

void emit_tool_call(ToolCall call, std::vector<ParseEvent>* events, ParseResult* result) {
  const int idx = static_cast<int>(result->tool_calls.size());
  ParseEvent start;
  start.kind = ParseEventKind::kToolCallStart;
  start.tool_call_idx = idx;
  start.id = call.id;
  start.name = call.name;
  events->push_back(std::move(start));
  ParseEvent args;
  args.kind = ParseEventKind::kToolCallArgs;
  args.tool_call_idx = idx;
  args.text = call.arguments;
  events->push_back(std::move(args));
  ParseEvent end;
  end.kind = ParseEventKind::kToolCallEnd;
  end.tool_call_idx = idx;
  events->push_back(std::move(end));
  result->tool_calls.push_back(std::move(call));
}

}  // namespace strata::chat::detail
