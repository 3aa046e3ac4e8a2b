#include "runtime/text_clean.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/utf8.h"

namespace inkstone {
namespace {

std::string clean(const std::string& text, CleanStats* stats_out = nullptr) {
  CleanStats stats;
  std::string out = clean_text(text, stats);
  if (stats_out) *stats_out = stats;
  return out;
}

TEST(TextClean, NormalisesCrLfAndLoneCr) {
  CleanStats stats;
  EXPECT_EQ(clean("a\r\nb\rc\n\r\n\r", &stats), "a\nb\nc\n\n\n");
  EXPECT_EQ(stats.line_ends_changed, 4u);
  EXPECT_EQ(stats.escapes_removed, 0u);
  EXPECT_EQ(clean("no line ends to change\n", &stats), "no line ends to change\n");
  EXPECT_EQ(stats.line_ends_changed, 0u);
}

TEST(TextClean, StripsColourCodesOfFortuneFiles) {
  CleanStats stats;
  const std::string title = "\x1b[32m\xE3\x80\x8A\xE6\x98\xA5\xE6\x99\x93\xE3\x80\x8B\x1b[m\n";  // 《春晓》
  EXPECT_EQ(clean(title + "\x1b[33m作者：孟浩然\x1b[m\n春眠不觉晓\n", &stats),
            "\xE3\x80\x8A\xE6\x98\xA5\xE6\x99\x93\xE3\x80\x8B\n作者：孟浩然\n春眠不觉晓\n");
  EXPECT_EQ(stats.escapes_removed, 4u);
}

TEST(TextClean, StripsCsiSequencesWithParametersAndIntermediates) {
  CleanStats stats;
  EXPECT_EQ(clean("\x1b[1;31;40mX\x1b[0m \x1b[2J\x1b[H\x1b[?25l\x1b[38;5;208mY\x1b[1 q", &stats), "X Y");
  EXPECT_EQ(stats.escapes_removed, 7u);
}

TEST(TextClean, StripsStringSequencesEndedByBelOrSt) {
  CleanStats stats;
  EXPECT_EQ(clean("\x1b]0;user@host: ~\x07text \x1b]8;;http://x.org\x1b\\link\x1b]8;;\x1b\\.", &stats),
            "text link.");
  EXPECT_EQ(stats.escapes_removed, 3u);
  EXPECT_EQ(clean("a\x1bPq#0;2;0;0;0\x1b\\b"), "ab");  // DCS
}

TEST(TextClean, UnterminatedStringSequenceLosesOnlyItsIntroducer) {
  CleanStats stats;
  EXPECT_EQ(clean("\x1b]not a title\nnext line", &stats), "not a title\nnext line");
  EXPECT_EQ(stats.escapes_removed, 1u);
}

TEST(TextClean, StripsTwoByteAndCharsetSequences) {
  CleanStats stats;
  EXPECT_EQ(clean("\x1b=a\x1b>b\x1bMc\x1b(Bd\x1b"
                  "7e\x1b"
                  "8",
                  &stats),
            "abcde");
  EXPECT_EQ(stats.escapes_removed, 6u);
}

TEST(TextClean, MalformedSequencesAreCutWithoutEatingText) {
  CleanStats stats;
  EXPECT_EQ(clean("\x1b[3\xE6\x98\xA5", &stats), "\xE6\x98\xA5");  // CSI cut by a UTF-8 character
  EXPECT_EQ(clean("\x1b[31\nline"), "\nline");                     // CSI cut by a newline
  EXPECT_EQ(clean("abc\x1b"), "abc");                              // lone ESC at the end
  EXPECT_EQ(clean("\x1b\x1b[m", &stats), "");                      // ESC ESC
  EXPECT_EQ(stats.escapes_removed, 2u);
  EXPECT_EQ(clean("\x1b\xE6\x98\xA5"), "\xE6\x98\xA5");  // ESC before a UTF-8 character
}

TEST(TextClean, RemovesOnlyALeadingByteOrderMark) {
  CleanStats stats;
  EXPECT_EQ(clean("\xEF\xBB\xBFhi\xEF\xBB\xBF", &stats), "hi\xEF\xBB\xBF");
  EXPECT_EQ(stats.boms_removed, 1u);
  EXPECT_EQ(clean("hi", &stats), "hi");
  EXPECT_EQ(stats.boms_removed, 0u);
}

TEST(TextClean, StatsAccumulateAcrossTexts) {
  CleanStats stats;
  clean_text("\x1b[m\r\n", stats);
  clean_text("\xEF\xBB\xBF\x1b[m\r", stats);
  EXPECT_EQ(stats.escapes_removed, 2u);
  EXPECT_EQ(stats.line_ends_changed, 2u);
  EXPECT_EQ(stats.boms_removed, 1u);
  CleanStats total;
  total += stats;
  total += stats;
  EXPECT_EQ(total.escapes_removed, 4u);
}

// Random mixtures of characters, escapes (possibly cut short) and line ends: no ESC or CR survives,
// valid UTF-8 stays valid, and text without ESC/CR passes through unchanged.
TEST(TextClean, NoEscapeOrCarriageReturnSurvivesRandomInput) {
  const std::vector<std::string> pieces = {
      "a", "\xE6\x98\xA5",     "\n", "\r", "\r\n", "\x1b", "\x1b[", "31", "m", ";", "\x1b]", "\x07", "\x1b\\",
      "%", "\xF0\x9F\x98\x80", " ",  "(",  "?"};
  uint64_t state = 7;
  for (int trial = 0; trial < 500; ++trial) {
    std::string text, plain;
    for (int i = 0; i < 40; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const std::string& piece = pieces[(state >> 33) % pieces.size()];
      text += piece;
      if (piece.find_first_of("\x1b\r") == std::string::npos) plain += piece;
    }
    CleanStats stats;
    const std::string out = clean_text(text, stats);
    EXPECT_EQ(out.find('\x1b'), std::string::npos) << ::testing::PrintToString(text);
    EXPECT_EQ(out.find('\r'), std::string::npos) << ::testing::PrintToString(text);
    EXPECT_EQ(find_invalid_utf8(out), std::nullopt) << ::testing::PrintToString(text);
    EXPECT_EQ(clean(plain), plain);
  }
}

}  // namespace
}  // namespace inkstone
