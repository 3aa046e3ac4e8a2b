#include "runtime/text_overlap.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace inkstone {
namespace {

TEST(TextOverlapIndex, FindsARunOfTheGivenLengthAndNoShorterOne) {
  const TextOverlapIndex index({"the quick brown fox", "jumps over"}, 6);
  EXPECT_TRUE(index.overlaps("a quickbrown thing"));  // "quickb": whitespace is skipped
  EXPECT_TRUE(index.overlaps("sjumpso"));             // "jumpso": across the space of "jumps over"
  EXPECT_FALSE(index.overlaps("a quick dog"));        // "quick" then "d": five characters only
  EXPECT_FALSE(index.overlaps("fox jumps"));          // the references are not joined to each other
  EXPECT_FALSE(index.overlaps(""));
}

TEST(TextOverlapIndex, CountsCharactersNotBytesAndIgnoresLineBreaksAndWideSpaces) {
  // 春眠不觉晓，处处闻啼鸟。 quoted on one line with an ideographic space (U+3000) in it.
  const TextOverlapIndex index({"春眠不觉晓，\n处处闻啼鸟。\n"}, 8);
  EXPECT_TRUE(index.overlaps("古诗云：春眠不觉晓，\xE3\x80\x80处处。"));
  EXPECT_FALSE(index.overlaps("古诗云：春眠不觉晓。"));  // five characters shared, then another
  const TextOverlapIndex short_runs({"春眠不觉晓"}, 2);
  EXPECT_EQ(short_runs.runs(), 4u);  // 春眠 眠不 不觉 觉晓: characters, though each is three bytes
}

TEST(TextOverlapIndex, AReferenceShorterThanTheRunMatchesNothing) {
  const TextOverlapIndex index({"abc"}, 4);
  EXPECT_EQ(index.runs(), 0u);
  EXPECT_FALSE(index.overlaps("abc abc"));
}

TEST(TextOverlapIndex, ARunOfZeroCharactersIsAnError) {
  EXPECT_NE(testing::error_of([] { TextOverlapIndex({"abc"}, 0); }), "");
}

}  // namespace
}  // namespace inkstone
