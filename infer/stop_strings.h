// Stop strings for streamed text: the text ends exactly before the first occurrence of any of them,
// and nothing that might turn out to be the start of one is released early. A stop string can span
// several tokens ("\n\n" from two newlines), so the tail of the text that is a prefix of some stop
// string waits until the next piece tells whether it completes one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace inkstone {

class StopStringFilter {
 public:
  // Empty strings are not allowed (they would stop before any text); throws inkstone::Error.
  explicit StopStringFilter(std::vector<std::string> stops = {});

  // Appends generated text; returns the part now safe to emit. Once a stop string is complete,
  // returns the text before it, stopped() turns true and later pushes return nothing.
  std::string push(std::string_view text);
  // The held-back tail at the end of the text (it completed no stop string).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace inkstone
