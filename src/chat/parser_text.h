// Byte-level helpers the output parsers share: marker search that withholds a possible
// marker prefix, JSON value extents, UTF-8 boundaries, and the delta sinks that trim
// whitespace around blocks. Internal to strata_chat.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "chat/parser.h"

namespace strata::chat::detail {

inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
size_t skip_space(std::string_view s, size_t pos);

// Where the earliest of `markers` occurs in s[from:], or where a suffix of s that is a
// proper prefix of some marker begins (the text before it is safe to release).
struct MarkerScan {
  size_t pos = std::string_view::npos;  // start of the full marker found, or npos
  int marker_idx = -1;                  // which marker, when found
  size_t safe_end = 0;                  // without a match: text in [from, safe_end) is plain
};
MarkerScan scan_markers(std::string_view s, size_t from, const std::vector<std::string>& markers);

// True when s (possibly empty) is a prefix of `marker`: more text could still complete it.
inline bool could_become(std::string_view s, std::string_view marker) {
  return s.size() < marker.size() && marker.substr(0, s.size()) == s;
}
inline bool starts_with(std::string_view s, size_t pos, std::string_view marker) {
  return pos <= s.size() && s.substr(pos).starts_with(marker);
}

// s[pos] is '{', '[' or '"'. Returns one past the matching close bracket (or quote),
// skipping strings and escapes, or npos when the value is not closed yet. Brackets only: validity is checked by
// a real JSON parse afterwards.
size_t json_extent(std::string_view s, size_t pos);

// The length of s without a trailing UTF-8 sequence that is still missing bytes.
size_t utf8_complete_prefix(std::string_view s);

// Parses JSON without exceptions; discarded() on failure.
nlohmann::ordered_json parse_json(std::string_view text);
// Compact JSON text; invalid UTF-8 is replaced rather than thrown on.
std::string dump_json(const nlohmann::ordered_json& value);

// "call_" + 16 alphanumerics from (seed, idx).
std::string make_call_id(uint64_t seed, int idx);

// Releases text deltas of one kind into events and the result, holding back trailing
// whitespace (dropped before a block boundary and at the end) and an unfinished UTF-8
// character. Leading whitespace of a section is dropped.
class DeltaSink {
 public:
  DeltaSink(ParseEventKind kind, std::string* accumulated) : kind_(kind), out_(accumulated) {}
  void append(std::string_view text, std::vector<ParseEvent>* events);
  // A block (tool call, end of reasoning) follows: drop the held whitespace.
  void boundary(std::vector<ParseEvent>* events);
  // End of stream.
  void finish(std::vector<ParseEvent>* events) { boundary(events); }
  bool nothing_released() const { return out_->empty(); }
  // The next release starts a new message: put `sep` first if text came before.
  void separate(std::string sep) { separator_ = std::move(sep); }

 private:
  void release(std::string_view text, std::vector<ParseEvent>* events);
  ParseEventKind kind_;
  std::string* out_;
  std::string held_;
  std::string separator_;
};

// Appends start/args/end for one call to events and result.
void emit_tool_call(ToolCall call, std::vector<ParseEvent>* events, ParseResult* result);

}  // namespace strata::chat::detail
