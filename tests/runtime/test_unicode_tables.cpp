#include "runtime/unicode_tables.h"

#include <gtest/gtest.h>

#include <vector>

namespace inkstone {
namespace {

// Classes looked up by hand in UnicodeData.txt (general category) and PropList.txt (White_Space).
TEST(UnicodeTables, ClassesOfCodePointsCheckedByHand) {
  struct Case {
    char32_t cp;
    CharClass expected;
  };
  const Case cases[] = {
      {U'A', CharClass::Letter},    {U'z', CharClass::Letter},    {U'0', CharClass::Number},
      {U' ', CharClass::Space},     {U'\t', CharClass::Space},    {U'\r', CharClass::Space},
      {U'\'', CharClass::Other},    {U'_', CharClass::Other},     {0x1C, CharClass::Other},
      {0x85, CharClass::Space},     {0xA0, CharClass::Space},     {0xAA, CharClass::Letter},  // ª Lo
      {0xB2, CharClass::Number},    {0xB5, CharClass::Letter},    {0xBD, CharClass::Number},
      {0xD7, CharClass::Other},     {0xFF, CharClass::Letter},    {0x2C6, CharClass::Letter},  // ˆ Lm
      {0x301, CharClass::Other},    {0x663, CharClass::Number},   {0x1680, CharClass::Space},
      {0x180E, CharClass::Other},   {0x200A, CharClass::Space},   {0x200B, CharClass::Other},
      {0x2028, CharClass::Space},   {0x2029, CharClass::Space},   {0x202F, CharClass::Space},
      {0x205F, CharClass::Space},   {0x2160, CharClass::Number},  {0x3000, CharClass::Space},
      {0x3002, CharClass::Other},   {0x3007, CharClass::Number},  {0x3041, CharClass::Letter},
      {0x30FC, CharClass::Letter},  {0x4E00, CharClass::Letter},  {0x9FA5, CharClass::Letter},
      {0xD800, CharClass::Other},   {0xE000, CharClass::Other},   {0xFF0C, CharClass::Other},
      {0xFF10, CharClass::Number},  {0xFF21, CharClass::Letter},  {0xFFFD, CharClass::Other},
      {0x1F600, CharClass::Other},  {0x20000, CharClass::Letter}, {0x2A6DF, CharClass::Letter},
      {0x30000, CharClass::Letter}, {0x3FFFF, CharClass::Other},  {0xE0001, CharClass::Other},
      {0xF0000, CharClass::Other},  {0x10FFFF, CharClass::Other},
  };
  for (const Case& c : cases)
    EXPECT_EQ(static_cast<int>(char_class(c.cp)), static_cast<int>(c.expected))
        << std::hex << static_cast<uint32_t>(c.cp);
}

TEST(UnicodeTables, WhiteSpaceIsTheTwentyFiveCodePointsOfPropList) {
  size_t count = 0;
  for (const CodePointRange& r : kWhiteSpaceRanges) count += r.last - r.first + 1;
  EXPECT_EQ(count, 25u);
}

// The lookup tables (Latin-1 and two-level, packed) against the range tables, over every code point.
TEST(UnicodeTables, LookupAgreesWithTheRangesEverywhere) {
  std::vector<CharClass> from_ranges(0x110000, CharClass::Other);
  const auto mark = [&](std::span<const CodePointRange> ranges, CharClass c) {
    char32_t previous_last = 0;
    for (const CodePointRange& r : ranges) {
      ASSERT_LE(r.first, r.last);
      if (&r != ranges.data()) {
        ASSERT_GT(r.first, previous_last + 1) << "not sorted and maximal";
      }
      previous_last = r.last;
      for (char32_t cp = r.first; cp <= r.last; ++cp) {
        ASSERT_EQ(from_ranges[cp], CharClass::Other)
            << "in two classes: " << std::hex << static_cast<uint32_t>(cp);
        from_ranges[cp] = c;
      }
    }
  };
  mark(kLetterRanges, CharClass::Letter);
  mark(kNumberRanges, CharClass::Number);
  mark(kWhiteSpaceRanges, CharClass::Space);
  for (char32_t cp = 0; cp < 0x110000; ++cp)
    ASSERT_EQ(static_cast<int>(char_class(cp)), static_cast<int>(from_ranges[cp]))
        << std::hex << static_cast<uint32_t>(cp);
}

// Unicode 16, as tiktoken's regex engine: code points assigned after Python 3.11's Unicode 14 are
// letters here too (a CJK Extension H and I ideograph, an Egyptian hieroglyph of Unicode 16).
TEST(UnicodeTables, FollowUnicode16) {
  EXPECT_EQ(kUnicodeTablesVersion, "16.0.0");
  EXPECT_EQ(char_class(0x31350), CharClass::Letter);  // Extension H, Unicode 15.0
  EXPECT_EQ(char_class(0x2EE44), CharClass::Letter);  // Extension I, Unicode 15.1
  EXPECT_EQ(char_class(0x14126), CharClass::Letter);  // Egyptian Hieroglyphs Extended-A, Unicode 16.0
  EXPECT_EQ(char_class(0x2EE5E), CharClass::Other);   // unassigned after Extension I
}

}  // namespace
}  // namespace inkstone
