// Test helpers for the output parsers: run a text through a parser in given chunks, merge
// adjacent deltas, and check that every chunking gives the same events and result.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "chat/parser.h"
#include "core/rng.h"

namespace strata::chat {

// Readable gtest failure messages.
inline void PrintTo(const ToolCall& c, std::ostream* os) {
  *os << "{id=" << c.id << " name=" << c.name << " args=" << c.arguments << "}";
}
inline void PrintTo(const ParseEvent& e, std::ostream* os) {
  *os << parse_event_kind_name(e.kind) << "[" << e.tool_call_idx << "] text=" << ::testing::PrintToString(e.text);
  if (!e.name.empty()) *os << " name=" << e.name << " id=" << e.id;
}
inline void PrintTo(const ParseResult& r, std::ostream* os) {
  *os << "{content=" << ::testing::PrintToString(r.content)
      << " reasoning=" << ::testing::PrintToString(r.reasoning_content) << " calls=[";
  for (const ToolCall& c : r.tool_calls) PrintTo(c, os);
  *os << "] incomplete=" << r.incomplete_tool_call << " malformed=" << r.malformed_tool_call << "}";
}

}  // namespace strata::chat

namespace strata::chat::testing {

struct Run {
  ParseResult result;
  std::vector<ParseEvent> events;  // adjacent deltas of one kind merged
};

inline std::unique_ptr<OutputParser> make(std::string_view family, const ParserOptions& options) {
  auto parser = make_output_parser(family, options);
  EXPECT_TRUE(parser.is_ok()) << parser.status().to_string();
  return std::move(parser).value();
}

inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

inline void merge_into(std::vector<ParseEvent>* merged, const ParseEvent& e) {
  const bool delta = e.kind == ParseEventKind::kText || e.kind == ParseEventKind::kReasoning ||
                     e.kind == ParseEventKind::kToolCallArgs;
  if (delta && !merged->empty() && merged->back().kind == e.kind &&
      merged->back().tool_call_idx == e.tool_call_idx) {
    merged->back().text += e.text;
  } else {
    merged->push_back(e);
  }
}

// cuts: strictly increasing byte offsets inside text where one chunk ends.
inline Run run_chunks(std::string_view family, const ParserOptions& options, std::string_view text,
                      const std::vector<size_t>& cuts) {
  auto parser = make(family, options);
  Run run;
  size_t from = 0;
  std::vector<ParseEvent> events;
  const bool check_utf8 = valid_utf8(text);
  auto take = [&] {
    for (const ParseEvent& e : events) {
      if (check_utf8) {
        EXPECT_TRUE(valid_utf8(e.text)) << "delta splits a character: " << e.text;
      }
      if (e.kind == ParseEventKind::kText || e.kind == ParseEventKind::kReasoning) {
        EXPECT_FALSE(e.text.empty()) << "empty delta";
      }
      merge_into(&run.events, e);
    }
    events.clear();
  };
  for (size_t cut : cuts) {
    parser->feed(text.substr(from, cut - from), &events);
    take();
    from = cut;
  }
  parser->feed(text.substr(from), &events);
  take();
  parser->finish(&events);
  take();
  run.result = parser->result();
  return run;
}

inline Run run_whole(std::string_view family, const ParserOptions& options, std::string_view text) {
  return run_chunks(family, options, text, {});
}

inline ParseResult parse(std::string_view family, std::string_view text,
                         const ParserOptions& options = {}) {
  return run_whole(family, options, text).result;
}

// The result agrees with its own deltas.
inline void expect_consistent(const Run& run) {
  std::string content, reasoning;
  std::vector<ToolCall> calls;
  for (const ParseEvent& e : run.events) {
    switch (e.kind) {
      case ParseEventKind::kText: content += e.text; break;
      case ParseEventKind::kReasoning: reasoning += e.text; break;
      case ParseEventKind::kToolCallStart: calls.push_back({e.id, e.name, ""}); break;
      case ParseEventKind::kToolCallArgs:
        ASSERT_EQ(e.tool_call_idx + 1, static_cast<int>(calls.size()));
        calls.back().arguments += e.text;
        break;
      case ParseEventKind::kToolCallEnd:
        ASSERT_EQ(e.tool_call_idx + 1, static_cast<int>(calls.size()));
        break;
    }
  }
  EXPECT_EQ(content, run.result.content);
  EXPECT_EQ(reasoning, run.result.reasoning_content);
  EXPECT_EQ(calls, run.result.tool_calls);
}

inline void expect_same(const Run& whole, const Run& split, const std::string& what) {
  EXPECT_EQ(whole.result, split.result) << what;
  ASSERT_EQ(whole.events.size(), split.events.size()) << what;
  for (size_t i = 0; i < whole.events.size(); ++i) {
    EXPECT_EQ(whole.events[i], split.events[i]) << what << " event " << i;
  }
}

inline std::string cuts_string(const std::vector<size_t>& cuts) {
  std::string s = "cuts:";
  for (size_t c : cuts) s += " " + std::to_string(c);
  return s;
}

// Every single cut, every pair of cuts for short texts, 1-byte chunks, and random
// multi-cuts all give the whole text's events and result.
inline void expect_split_invariant(std::string_view family, const ParserOptions& options,
                                   std::string_view text, uint64_t seed = 1) {
  const Run whole = run_whole(family, options, text);
  expect_consistent(whole);
  const size_t n = text.size();
  for (size_t a = 1; a < n; ++a) {
    expect_same(whole, run_chunks(family, options, text, {a}), cuts_string({a}));
    if (::testing::Test::HasFailure()) return;
    if (n <= 90) {
      for (size_t b = a + 1; b < n; ++b) {
        expect_same(whole, run_chunks(family, options, text, {a, b}), cuts_string({a, b}));
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
  std::vector<size_t> bytes;
  for (size_t a = 1; a < n; ++a) bytes.push_back(a);
  expect_same(whole, run_chunks(family, options, text, bytes), "1-byte chunks");
  Rng rng(seed);
  for (int trial = 0; trial < 300 && !::testing::Test::HasFailure(); ++trial) {
    std::vector<size_t> cuts;
    size_t at = 0;
    const uint32_t max_chunk = 1 + rng.below(12);
    while (true) {
      at += 1 + rng.below(max_chunk);
      if (at >= n) break;
      cuts.push_back(at);
    }
    expect_same(whole, run_chunks(family, options, text, cuts), cuts_string(cuts));
  }
}

}  // namespace strata::chat::testing
