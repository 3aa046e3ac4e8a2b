// StopStringFilter: the released text is exactly the text before the first stop string, however the
// text is cut into pieces, and nothing is held back longer than a stop string's prefix needs.
#include "infer/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

// Feeds `text` in pieces of `size` bytes; returns everything released and whether it stopped.
std::pair<std::string, bool> feed(const std::vector<std::string>& stops, const std::string& text,
                                  size_t size) {
  StopStringFilter filter(stops);
  std::string out;
  for (size_t i = 0; i < text.size(); i += size) out += filter.push(text.substr(i, size));
  out += filter.flush();
  return {out, filter.stopped()};
}

TEST(StopStrings, TheTextEndsBeforeTheEarliestStopStringForEveryPieceSize) {
  const std::vector<std::string> stops = {"\n\n", "THE END", "END"};
  const std::string text = "Chapter one.\nIt was night.\nTHE END of it\n\nmore";
  // "END" inside "THE END" starts later than "THE END": the earliest start wins.
  for (size_t size = 1; size <= text.size(); ++size) {
    const auto [out, stopped] = feed(stops, text, size);
    EXPECT_EQ(out, "Chapter one.\nIt was night.\n") << "pieces of " << size;
    EXPECT_TRUE(stopped);
  }
}

TEST(StopStrings, WithoutAMatchEverythingComesOutInOrder) {
  const std::string text = "a\nb\nTHE EN";  // ends in a prefix of a stop string: flush releases it
  for (size_t size = 1; size <= text.size(); ++size) {
    const auto [out, stopped] = feed({"\n\n", "THE END"}, text, size);
    EXPECT_EQ(out, text);
    EXPECT_FALSE(stopped);
  }
  EXPECT_EQ(feed({}, text, 3).first, text);
}

TEST(StopStrings, OnlyAPossibleStartOfAStopStringIsHeldBack) {
  StopStringFilter filter({"<END>"});
  EXPECT_EQ(filter.push("abc<E"), "abc");  // "<E" may begin <END>
  EXPECT_EQ(filter.push("x"), "<Ex");      // it did not
  EXPECT_EQ(filter.push("<EN"), "");
  EXPECT_EQ(filter.push("D>tail"), "");
  EXPECT_TRUE(filter.stopped());
  EXPECT_EQ(filter.push("more"), "");
  EXPECT_EQ(filter.flush(), "");
}

TEST(StopStrings, MultiByteCharactersWork) {
  const auto [out, stopped] = feed({"。\n"}, "春眠不觉晓。\n处处闻啼鸟。", 2);
  EXPECT_EQ(out, "春眠不觉晓");
  EXPECT_TRUE(stopped);
}

TEST(StopStrings, AnEmptyStopStringIsAnError) {
  const std::string message = testing::error_of([] { StopStringFilter({"ok", ""}); });
  EXPECT_NE(message.find("--stop"), std::string::npos) << message;
}

}  // namespace
}  // namespace inkstone
