// gpt-oss "harmony" output: messages of the form [<|start|>assistant]<|channel|>NAME
// [ to=RECIPIENT][ <|constrain|>json]<|message|>BODY(<|end|>|<|call|>|<|return|>).
// analysis -> reasoning, final and commentary without a recipient -> content,
// commentary to=functions.NAME -> a tool call (see testdata/templates/openai-gpt-oss-120b.jinja).
#include <algorithm>

#include "chat/parser_stream.h"
#include "chat/parser_text.h"

namespace strata::chat::detail {
namespace {

constexpr std::string_view kStart = "<|start|>";
constexpr std::string_view kChannel = "<|channel|>";
constexpr std::string_view kMessage = "<|message|>";
constexpr std::string_view kEnd = "<|end|>";
constexpr std::string_view kCall = "<|call|>";
constexpr std::string_view kReturn = "<|return|>";
// A header longer than this without <|message|> is not a header.
constexpr size_t kMaxHeaderBytes = 256;

// The word after `key` in a header, up to a space or the next special token.
std::string header_field(std::string_view header, std::string_view key) {
  const size_t at = header.find(key);
  if (at == std::string_view::npos) return "";
  const size_t from = at + key.size();
  size_t end = from;
  while (end < header.size() && !is_space(header[end]) && header[end] != '<') ++end;
  return std::string(header.substr(from, end - from));
}

class HarmonyParser final : public OutputParser {
 public:
  explicit HarmonyParser(const ParserOptions& options)
      : options_(options),
        text_(ParseEventKind::kText, &result_.content),
        reasoning_(ParseEventKind::kReasoning, &result_.reasoning_content) {}

  void feed(std::string_view chunk, std::vector<ParseEvent>* events) override {
    buffer_.append(chunk);
    run(false, events);
    if (pos_ > 0) {
      buffer_.erase(0, pos_);
      body_start_ -= std::min(body_start_, pos_);
      tool_scan_from_ -= std::min(tool_scan_from_, pos_);
      pos_ = 0;
    }
  }

  void finish(std::vector<ParseEvent>* events) override {
    run(true, events);
    reasoning_.finish(events);
    text_.finish(events);
  }

 private:
  enum class Mode { kHeader, kBody, kToolBody, kStray };

  void run(bool at_end, std::vector<ParseEvent>* events) {
    while (step(at_end, events)) {
    }
  }

  bool step(bool at_end, std::vector<ParseEvent>* events) {
    switch (mode_) {
      case Mode::kHeader: return step_header(at_end, events);
      case Mode::kBody: return step_body(at_end, events);
      case Mode::kToolBody: return step_tool_body(at_end, events);
      case Mode::kStray: return step_stray(at_end, events);
    }
    return false;
  }

  bool step_header(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    const size_t q = skip_space(s, pos_);
    const std::string_view rest = s.substr(q);
    if (rest.empty() && !at_end) return false;
    size_t opener = 0;  // bytes of the header's opening token
    for (std::string_view o : {kStart, kChannel, std::string_view("to=")}) {
      if (rest.starts_with(o)) opener = o.size();
    }
    if (opener == 0) {
      const bool maybe = could_become(rest, kStart) || could_become(rest, kChannel) ||
                         could_become(rest, "to=");
      if (maybe && !at_end) return false;
      mode_ = Mode::kStray;
      return true;
    }
    const size_t m = rest.find(kMessage);
    if (m == std::string_view::npos || m > kMaxHeaderBytes) {
      if (rest.size() <= kMaxHeaderBytes && !at_end) return false;
      // Never completed: plain text. Only the first kMaxHeaderBytes are looked at, which
      // every chunking has seen by the time it decides.
      mode_ = Mode::kStray;
      if (rest.substr(0, kMaxHeaderBytes).find("to=") != std::string_view::npos) {
        result_.incomplete_tool_call = true;
      }
      text_.append(s.substr(pos_, q + opener - pos_), events);  // step past the opener
      pos_ = q + opener;
      return true;
    }
    const std::string_view header = rest.substr(0, m);
    channel_ = header_field(header, kChannel);
    recipient_ = header_field(header, "to=");
    body_start_ = q + m + kMessage.size();
    if (!recipient_.empty() && recipient_ != "assistant") {
      tool_scan_from_ = body_start_;
      mode_ = Mode::kToolBody;  // pos_ stays at the header: its text returns if the call fails
      return true;
    }
    reasoning_.boundary(events);
    // Two analysis (or two content) messages read as two paragraphs, not one run-on.
    (channel_ == "analysis" ? reasoning_ : text_).separate("\n\n");
    pos_ = body_start_;
    mode_ = Mode::kBody;
    return true;
  }

  // Where a message body ends: an end token, or a new message that forgot to end this one.
  const std::vector<std::string>& terminators() const { return terminators_; }

  bool step_body(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    DeltaSink& sink = channel_ == "analysis" ? reasoning_ : text_;
    const MarkerScan scan = scan_markers(s, pos_, terminators());
    if (scan.pos == std::string_view::npos) {
      const size_t end = at_end ? s.size() : scan.safe_end;
      sink.append(s.substr(pos_, end - pos_), events);
      pos_ = end;
      return false;
    }
    sink.append(s.substr(pos_, scan.pos - pos_), events);
    if (&sink == &reasoning_) reasoning_.boundary(events);
    const std::string& marker = terminators()[scan.marker_idx];
    const bool consumed = marker == kEnd || marker == kCall || marker == kReturn;
    pos_ = scan.pos + (consumed ? marker.size() : 0);
    mode_ = Mode::kHeader;
    return true;
  }

  // A call's body is held until it ends; if it does not parse it returns as text.
  bool step_tool_body(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    const MarkerScan scan = scan_markers(s, tool_scan_from_, terminators());
    if (scan.pos == std::string_view::npos && !at_end) {
      tool_scan_from_ = scan.safe_end;  // no terminator starts before here
      return false;
    }
    // <|call|> is a stop token and may be cut off by the engine: the end of the stream
    // ends the body too, if what came is a whole JSON object.
    const size_t body_end = scan.pos == std::string_view::npos ? s.size() : scan.pos;
    size_t block_end = s.size();
    bool consumed_marker = false;
    if (scan.pos != std::string_view::npos) {
      const std::string& marker = terminators()[scan.marker_idx];
      consumed_marker = marker == kEnd || marker == kCall || marker == kReturn;
      block_end = scan.pos + (consumed_marker ? marker.size() : 0);
    }
    const nlohmann::ordered_json args =
        parse_json(s.substr(body_start_, body_end - body_start_));
    if (args.is_object()) {
      ToolCall call;
      call.name = recipient_.starts_with("functions.") ? recipient_.substr(10) : recipient_;
      call.arguments = dump_json(args);
      call.id = make_call_id(options_.call_id_seed, static_cast<int>(result_.tool_calls.size()));
      reasoning_.boundary(events);
      text_.boundary(events);
      emit_tool_call(std::move(call), events, &result_);
    } else {
      if (scan.pos == std::string_view::npos) {
        result_.incomplete_tool_call = true;
      } else {
        result_.malformed_tool_call = true;
      }
      text_.append(s.substr(pos_, block_end - pos_), events);
    }
    pos_ = block_end;
    mode_ = Mode::kHeader;
    return scan.pos != std::string_view::npos;
  }

  // Text outside any message (a model that skipped the header): content up to the next
  // message start.
  bool step_stray(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    const MarkerScan scan = scan_markers(s, pos_, stray_ends_);
    if (scan.pos == std::string_view::npos) {
      const size_t end = at_end ? s.size() : scan.safe_end;
      text_.append(s.substr(pos_, end - pos_), events);
      pos_ = end;
      return false;
    }
    text_.append(s.substr(pos_, scan.pos - pos_), events);
    pos_ = scan.pos;
    mode_ = Mode::kHeader;
    return true;
  }

  ParserOptions options_;
  DeltaSink text_;
  DeltaSink reasoning_;
  Mode mode_ = Mode::kHeader;
  std::string buffer_;
  size_t pos_ = 0;
  size_t body_start_ = 0;
  size_t tool_scan_from_ = 0;
  std::string channel_;
  std::string recipient_;
  std::vector<std::string> terminators_{std::string(kEnd), std::string(kCall),
                                        std::string(kReturn), std::string(kStart),
                                        std::string(kChannel)};
  std::vector<std::string> stray_ends_{std::string(kStart), std::string(kChannel)};
};

}  // namespace

std::unique_ptr<OutputParser> make_harmony_parser(const ParserOptions& options) {
  return std::make_unique<HarmonyParser>(options);
}

}  // namespace strata::chat::detail
