// Stop strings over a token stream: text is withheld while it could still be the start of a
// stop string, so a client never sees the stop string or anything after it.
#pragma once

#include <string>
#include <vector>

namespace strata::engine {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Out {
    std::string text;  // newly decided text (safe to stream)
    bool stopped = false;
    std::string matched;  // the stop string that matched (when stopped)
  };
  // Feeds newly decoded text. Once stopped, everything after the match is dropped.
  Out add(std::string_view text);
  // The end of the stream: what was withheld is decided (no stop string can complete now).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // a suffix of the text so far that is a prefix of some stop string
  bool stopped_ = false;
};

}  // namespace strata::engine
