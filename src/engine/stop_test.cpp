#include "engine/stop.h"

#include <gtest/gtest.h>

namespace strata::engine {
namespace {

// Feeds pieces one by one; returns everything streamed and whether it stopped.
std::string stream(StopMatcher& m, const std::vector<std::string>& pieces, bool* stopped,
                   std::string* matched) {
  std::string out;
  for (const std::string& p : pieces) {
    StopMatcher::Out o = m.add(p);
    out += o.text;
    if (o.stopped) {
      *stopped = true;
      *matched = o.matched;
      return out;
    }
  }
  out += m.flush();
  *stopped = false;
  return out;
}

TEST(StopMatcher, SplitAcrossPiecesIsWithheldAndCut) {
  StopMatcher m({"</end>"});
  EXPECT_EQ(m.add("hello </").text, "hello ");  // "</" could start the stop string
  EXPECT_EQ(m.add("en").text, "");
  StopMatcher::Out o = m.add("d> trailing");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "");
  EXPECT_EQ(o.matched, "</end>");
  EXPECT_EQ(m.add("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FalseStartIsReleased) {
  StopMatcher m({"STOP"});
  bool stopped = false;
  std::string matched;
  EXPECT_EQ(stream(m, {"a S", "T", "x", "ST"}, &stopped, &matched), "a STxST");
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, EarliestOfSeveralWins) {
  StopMatcher m({"cd", "b"});
  bool stopped = false;
  std::string matched;
  EXPECT_EQ(stream(m, {"a", "bcd"}, &stopped, &matched), "a");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(matched, "b");
}

TEST(StopMatcher, RandomSplitsGiveTheSameResult) {
  const std::string text = "one two <stop> three";
  for (int seed = 1; seed < 50; ++seed) {
    std::vector<std::string> pieces;
    size_t i = 0;
    unsigned x = static_cast<unsigned>(seed);
    while (i < text.size()) {
      x = x * 1103515245u + 12345u;
      const size_t len = 1 + (x >> 16) % 4;
      pieces.push_back(text.substr(i, len));
      i += len;
    }
    StopMatcher m({"<stop>", "zz"});
    bool stopped = false;
    std::string matched;
    EXPECT_EQ(stream(m, pieces, &stopped, &matched), "one two ") << seed;
    EXPECT_TRUE(stopped);
  }
}

TEST(StopMatcher, NoStopsPassesEverything) {
  StopMatcher m({});
  EXPECT_EQ(m.add("abc").text, "abc");
  EXPECT_EQ(m.flush(), "");
}

}  // namespace
}  // namespace strata::engine
