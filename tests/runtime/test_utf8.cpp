#include "runtime/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace inkstone {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, AcceptsWellFormedTextUpToTheEdgesOfEachRange) {
  for (const std::string s : {"", "abc", "\xE6\x98\xA5\xE7\x9C\xA0 abc\n",  // 春眠
                              "\xC2\x80", "\xDF\xBF",                       // U+0080, U+07FF
                              "\xE0\xA0\x80", "\xED\x9F\xBF",               // U+0800, U+D7FF
                              "\xEE\x80\x80", "\xEF\xBF\xBF",               // U+E000, U+FFFF
                              "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",       // U+10000, U+10FFFF
                              "\xF0\x9F\x98\x80"}) {                        // an emoji
    EXPECT_EQ(find_invalid_utf8(s), std::nullopt) << s;
    const Utf8Repair r = repair_utf8(s);
    EXPECT_EQ(r.text, s);
    EXPECT_EQ(r.replacements, 0u);
  }
}

TEST(Utf8, ReportsTheOffsetOfTheFirstIllFormedSequence) {
  struct Case {
    std::string text;
    size_t offset;
  };
  const Case cases[] = {
      {"a\xC0\xAF", 1},                     // overlong '/', C0 never valid
      {"ab\xC1\xBF", 2},                    // overlong, C1 never valid
      {"\xE0\x80\xAF", 0},                  // overlong 3-byte
      {"xy\xF0\x80\x80\xAF", 2},            // overlong 4-byte
      {"ab\xED\xA0\x80", 2},                // surrogate U+D800
      {"\xED\xBF\xBF", 0},                  // surrogate U+DFFF
      {"abc\xF4\x90\x80\x80", 3},           // U+110000
      {"\xF5\x80\x80\x80", 0},              // lead byte beyond U+10FFFF
      {"x\x80", 1},                         // lone continuation byte
      {"\xE6\x98\xA5\xE7\x9C", 3},          // truncated at the end
      {"\xE7\x9Cz", 0},                     // truncated before an ASCII byte
      {"ok\xFF", 2},                        // never valid
      {"\xF0\x9F\x98", 0},                  // 4-byte sequence cut short
      {"\xE6\x98\xA5\xE6\x98\xA5\xFE", 6},  // after valid multi-byte text
  };
  for (const Case& c : cases)
    EXPECT_EQ(find_invalid_utf8(c.text), c.offset) << ::testing::PrintToString(c.text);
}

// The examples of Unicode 15 section 3.9 (Tables 3-8 to 3-11), which WHATWG's decoder and
// Python's errors="replace" reproduce: one U+FFFD per maximal subpart.
TEST(Utf8, RepairReplacesEachMaximalSubpart) {
  struct Case {
    std::string in, out;
    size_t replacements;
  };
  const std::string r = kFFFD;
  const Case cases[] = {
      {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a" + r + r + r + "b" + r + "c" + r + r + "d",
       6},
      {"\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41", r + r + r + r + r + r + r + r + "A", 8},
      {"\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41", r + r + r + r + r + r + r + r + "A", 8},
      {"\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42", r + r + r + r + r + "A" + r + r + "B", 7},
      {"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", r + r + r + r + "A", 4},
      {"\xE6\x98", r, 1},  // truncated at the end of the text: one replacement
  };
  for (const Case& c : cases) {
    const Utf8Repair repaired = repair_utf8(c.in);
    EXPECT_EQ(repaired.text, c.out) << ::testing::PrintToString(c.in);
    EXPECT_EQ(repaired.replacements, c.replacements) << ::testing::PrintToString(c.in);
    EXPECT_EQ(find_invalid_utf8(repaired.text), std::nullopt);
  }
}

TEST(Utf8, RepairedRandomBytesAreAlwaysValid) {
  uint64_t state = 12345;
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes;
    for (int i = 0; i < 64; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      bytes.push_back(static_cast<char>(state >> 56));
    }
    const Utf8Repair repaired = repair_utf8(bytes);
    EXPECT_EQ(find_invalid_utf8(repaired.text), std::nullopt);
    EXPECT_EQ(repaired.replacements > 0, find_invalid_utf8(bytes).has_value());
  }
}

}  // namespace
}  // namespace inkstone
