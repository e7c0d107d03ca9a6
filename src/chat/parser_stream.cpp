// The marker parser: [reasoning block] then content in which tool-call blocks open at
// markers. Every decision depends only on bytes already seen, so any chunking of a stream
// gives the same events once adjacent deltas are merged.
#include <algorithm>

#include "chat/parser_stream.h"
#include "chat/parser_text.h"
#include "core/check.h"

namespace strata::chat::detail {
namespace {

constexpr size_t kEagerParseBytes = 64;

class MarkerParser final : public OutputParser {
 public:
  MarkerParser(const ParserOptions& options, ReasoningMarkers markers,
               std::unique_ptr<ToolCallFormat> format)
      : options_(options),
        markers_(std::move(markers)),
        format_(std::move(format)),
        text_(ParseEventKind::kText, &result_.content),
        reasoning_(ParseEventKind::kReasoning, &result_.reasoning_content) {
    if (options_.reasoning == ReasoningMode::kNone) {
      mode_ = Mode::kContent;
    }
    close_marker_ = {markers_.close};
    if (format_) {
      for (const std::string& h : format_->completion_hints()) {
        max_hint_bytes_ = std::max(max_hint_bytes_, h.size());
      }
    }
  }

  void feed(std::string_view chunk, std::vector<ParseEvent>* events) override {
    buffer_.append(chunk);
    run(/*at_end=*/false, events);
    // Drop what is decided; in a block, pos_ is the block's start and stays put.
    if (pos_ > 0) {
      buffer_.erase(0, pos_);
      hint_from_ -= std::min(hint_from_, pos_);
      pos_ = 0;
    }
  }

  void finish(std::vector<ParseEvent>* events) override {
    run(/*at_end=*/true, events);
    reasoning_.finish(events);
    text_.finish(events);
  }

 private:
  enum class Mode { kStart, kReasoning, kContent, kBlock };

  void run(bool at_end, std::vector<ParseEvent>* events) {
    while (step(at_end, events)) {
    }
  }

  // One decision; false when nothing more can be decided with the bytes at hand.
  bool step(bool at_end, std::vector<ParseEvent>* events) {
    switch (mode_) {
      case Mode::kStart: return step_start(at_end);
      case Mode::kReasoning: return step_reasoning(at_end, events);
      case Mode::kContent: return step_content(at_end, events);
      case Mode::kBlock: return step_block(at_end, events);
    }
    return false;
  }

  // Does the output open a reasoning block? Only at its very start (after whitespace),
  // so a `<think>` quoted later in an answer stays content.
  bool step_start(bool at_end) {
    const std::string_view rest = std::string_view(buffer_).substr(skip_space(buffer_, pos_));
    const bool opens_block = options_.reasoning == ReasoningMode::kStartsOpen;
    if (rest.starts_with(markers_.open)) {
      pos_ = buffer_.size() - rest.size() + markers_.open.size();
      mode_ = Mode::kReasoning;
      return true;
    }
    if (could_become(rest, markers_.open) && !at_end) return false;
    mode_ = opens_block ? Mode::kReasoning : Mode::kContent;
    return true;
  }

  bool step_reasoning(bool at_end, std::vector<ParseEvent>* events) {
    const MarkerScan scan = scan_markers(buffer_, pos_, close_marker_);
    const std::string_view s = buffer_;
    if (scan.pos != std::string_view::npos) {
      reasoning_.append(s.substr(pos_, scan.pos - pos_), events);
      reasoning_.boundary(events);
      pos_ = scan.pos + markers_.close.size();
      mode_ = Mode::kContent;
      return true;
    }
    const size_t end = at_end ? s.size() : scan.safe_end;
    reasoning_.append(s.substr(pos_, end - pos_), events);
    pos_ = end;
    return false;
  }

  bool step_content(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    if (!format_ || !options_.parse_tool_calls) {
      text_.append(s.substr(pos_), events);
      pos_ = s.size();
      return false;
    }
    if (text_.nothing_released()) {
      // Llama 3: a bare JSON object as the first thing in the message.
      const size_t q = skip_space(s, pos_);
      if (q < s.size() && format_->opens_at_content_start(s[q])) {
        text_.append(s.substr(pos_, q - pos_), events);
        enter_block(q);
        return true;
      }
      if (q == s.size() && !at_end && q > pos_) {
        text_.append(s.substr(pos_, q - pos_), events);  // held: only whitespace so far
        pos_ = q;
        return false;
      }
    }
    const MarkerScan scan = scan_markers(s, pos_, format_->start_markers());
    if (scan.pos != std::string_view::npos) {
      text_.append(s.substr(pos_, scan.pos - pos_), events);
      enter_block(scan.pos);
      return true;
    }
    const size_t end = at_end ? s.size() : scan.safe_end;
    text_.append(s.substr(pos_, end - pos_), events);
    pos_ = end;
    return false;
  }

  void enter_block(size_t start) {
    pos_ = start;
    hint_from_ = start;
    mode_ = Mode::kBlock;
  }

  bool step_block(bool at_end, std::vector<ParseEvent>* events) {
    const std::string_view s = buffer_;
    // A short block is parsed on every chunk so that prose like "the <tool_call> tag" is
    // released at once; a long one waits for a completion hint.
    const bool short_block = s.size() - pos_ <= kEagerParseBytes;
    if (!at_end && !short_block && !hint_arrived()) return false;
    BlockParse parsed = format_->parse(s.substr(pos_), at_end);
    switch (parsed.status) {
      case BlockParse::Status::kNeedMore:
        if (!at_end) {
          hint_from_ = s.size() - std::min(s.size(), max_hint_bytes_ - 1);
          hint_from_ = std::max(hint_from_, pos_);
          return false;
        }
        // The stream ended inside a block: give its text back, flagged.
        result_.incomplete_tool_call = true;
        text_.append(s.substr(pos_), events);
        pos_ = s.size();
        mode_ = Mode::kContent;
        return false;
      case BlockParse::Status::kText:
        if (parsed.malformed) result_.malformed_tool_call = true;
        text_.append(s.substr(pos_, parsed.consumed), events);
        break;
      case BlockParse::Status::kCalls:
        text_.boundary(events);
        for (ToolCall& call : parsed.calls) {
          if (call.id.empty()) {
            call.id = make_call_id(options_.call_id_seed,
                                   static_cast<int>(result_.tool_calls.size()));
          }
          emit_tool_call(std::move(call), events, &result_);
        }
        break;
    }
    STRATA_CHECK(parsed.consumed > 0);  // else the loop would not advance
    pos_ += parsed.consumed;
    mode_ = Mode::kContent;
    return true;
  }

  bool hint_arrived() const {
    for (const std::string& h : format_->completion_hints()) {
      if (buffer_.find(h, hint_from_) != std::string::npos) return true;
    }
    return false;
  }

  ParserOptions options_;
  ReasoningMarkers markers_;
  std::vector<std::string> close_marker_;
  std::unique_ptr<ToolCallFormat> format_;
  DeltaSink text_;
  DeltaSink reasoning_;
  Mode mode_ = Mode::kStart;
  std::string buffer_;  // undecided text; buffer_[0, pos_) is decided
  size_t pos_ = 0;
  size_t hint_from_ = 0;  // in a block: where to look for a completion hint next
  size_t max_hint_bytes_ = 1;
};

}  // namespace

std::unique_ptr<OutputParser> make_marker_parser(const ParserOptions& options,
                                                 ReasoningMarkers markers,
                                                 std::unique_ptr<ToolCallFormat> format) {
  return std::make_unique<MarkerParser>(options, std::move(markers), std::move(format));
}

}  // namespace strata::chat::detail
