// The expected pieces are worked out by hand from the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as a backtracking engine (tiktoken, Hugging Face tokenizers) runs it: leftmost alternative first.
#include "runtime/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace inkstone {
namespace {

using Pieces = std::vector<std::string>;

Pieces cut(const std::string& text, PreTokenizerRule rule = PreTokenizerRule::Gpt2) {
  std::vector<std::string_view> views;
  pre_tokenize(text, rule, views);
  return Pieces(views.begin(), views.end());
}

Pieces cut_cjk(const std::string& text) {
  return cut(text, PreTokenizerRule::Gpt2Cjk);
}

struct Case {
  std::string text;
  Pieces pieces;
};

void expect_cases(const std::vector<Case>& cases, PreTokenizerRule rule) {
  for (const Case& c : cases) EXPECT_EQ(cut(c.text, rule), c.pieces) << ::testing::PrintToString(c.text);
}

TEST(PreTokenizer, EmptyTextHasNoPieces) {
  EXPECT_TRUE(cut("").empty());
  EXPECT_TRUE(cut_cjk("").empty());
}

TEST(PreTokenizer, AppendsToThePiecesAlreadyThere) {
  std::vector<std::string_view> pieces = {"x"};
  const std::string text = "a b";
  pre_tokenize(text, PreTokenizerRule::Gpt2, pieces);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0], "x");
  EXPECT_EQ(pieces[1].data(), text.data());  // views into the text, not copies
  EXPECT_EQ(pieces[2], " b");
}

TEST(PreTokenizer, ContractionsAreLowercaseAfterAnAsciiApostrophe) {
  expect_cases(
      {
          {"I'm", {"I", "'m"}},
          {"they're", {"they", "'re"}},
          {"I'll we've he'd it's don't", {"I", "'ll", " we", "'ve", " he", "'d", " it", "'s", " don", "'t"}},
          {"DON'T", {"DON", "'", "T"}},  // case-sensitive
          {"she'S", {"she", "'", "S"}},
          {"it\u2019s", {"it", "\u2019", "s"}},  // U+2019 is punctuation, not an apostrophe
          {"'l", {"'", "l"}},                    // 'll needs both l's
          {"'sure", {"'s", "ure"}},              // no lookahead after the contraction
          {"'", {"'"}},
          {"''s", {"''", "s"}},        // the punctuation run took the second apostrophe
          {"x 's", {"x", " '", "s"}},  // after a space the apostrophe is punctuation
          {"'s's", {"'s", "'s"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, ASpaceJoinsTheWordNumberOrPunctuationAfterIt) {
  expect_cases(
      {
          {"Hello world", {"Hello", " world"}},
          {"Hello, world!", {"Hello", ",", " world", "!"}},
          {" leading", {" leading"}},
          {"x 42 y", {"x", " 42", " y"}},
          {"abc123def", {"abc", "123", "def"}},
          {"1,234.5", {"1", ",", "234", ".", "5"}},
          {"a += b;", {"a", " +=", " b", ";"}},
          {"wait... what?!", {"wait", "...", " what", "?!"}},
          {"(see p. 3)", {"(", "see", " p", ".", " 3", ")"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, AWhitespaceRunLeavesItsLastCharacterToTheNextPiece) {
  expect_cases(
      {
          {"a  b", {"a", " ", " b"}},
          {"a   b", {"a", "  ", " b"}},
          {"a \n b", {"a", " \n", " b"}},
          {"a\n\nb", {"a", "\n", "\n", "b"}},  // the \n left over matches \s+ alone
          {"a\nb", {"a", "\n", "b"}},
          {"a\tb", {"a", "\t", "b"}},
          {"a \tb", {"a", " ", "\t", "b"}},
          {"a\t b", {"a", "\t", " b"}},
          {"  x", {" ", " x"}},
          {"a  !", {"a", " ", " !"}},
          {"a  7", {"a", " ", " 7"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, AWhitespaceRunAtTheEndIsOnePiece) {
  expect_cases(
      {
          {"trailing  ", {"trailing", "  "}},
          {"end \n\t ", {"end", " \n\t "}},
          {"x ", {"x", " "}},
          {" ", {" "}},
          {"\n", {"\n"}},
          {"\n\n\n", {"\n\n\n"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, WhiteSpaceIsTheUnicodePropertyAndOnlyU0020IsTheOptionalSpace) {
  expect_cases(
      {
          {"a\u00A0b", {"a", "\u00A0", "b"}},  // NBSP is \s but not " ?"
          {"a \u00A0b", {"a", " ", "\u00A0", "b"}},
          {"a\u00A0\u00A0b", {"a", "\u00A0", "\u00A0", "b"}},
          {"\u3000\u4E2D", {"\u3000", "\u4E2D"}},  // ideographic space
          {"a\u2028b", {"a", "\u2028", "b"}},      // line separator
          {"a\u0085b", {"a", "\u0085", "b"}},      // NEL
          {"a\x1C\x1D", {"a", "\x1C\x1D"}},        // str.isspace(), but not White_Space
          {"a\u200Bb", {"a", "\u200B", "b"}},      // zero width space: format, not White_Space
          {"a\u180Eb", {"a", "\u180E", "b"}},      // Mongolian vowel separator: White_Space until 6.3
          {"x \u3000 y", {"x", " \u3000", " y"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, NumbersAreGeneralCategoryN) {
  expect_cases(
      {
          {"2024", {"2024"}},
          {"x\u0663\u0664", {"x", "\u0663\u0664"}},    // Arabic-Indic digits (Nd)
          {"1\u00BD", {"1\u00BD"}},                    // ½ (No)
          {"E=mc\u00B2", {"E", "=", "mc", "\u00B2"}},  // superscript two (No)
          {"\u216B\u5E74", {"\u216B", "\u5E74"}},      // Roman numeral twelve (Nl), then 年
          {"\u3007", {"\u3007"}},                      // 〇 (Nl)
          {"\uFF11\uFF12", {"\uFF11\uFF12"}},          // fullwidth digits
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, EmojiSymbolsAndMarksAreOther) {
  expect_cases(
      {
          {"I \u2764\uFE0F \U0001F355", {"I", " \u2764\uFE0F", " \U0001F355"}},
          {"\U0001F600\U0001F600 ok", {"\U0001F600\U0001F600", " ok"}},
          {"cafe\u0301 ok", {"cafe", "\u0301", " ok"}},  // a combining accent (Mn) is not a letter
          {"caf\u00E9", {"caf\u00E9"}},                  // precomposed é is
          {"\u00A92024", {"\u00A9", "2024"}},
          {"$100 \u20AC5", {"$", "100", " \u20AC", "5"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, ChineseAndOtherScriptsAreLetters) {
  expect_cases(
      {
          {"春眠不觉晓，处处闻啼鸟。", {"春眠不觉晓", "，", "处处闻啼鸟", "。"}},
          {"“好！”他说。", {"“", "好", "！”", "他说", "。"}},
          {"Hello世界123", {"Hello世界", "123"}},
          {"日本語のテキスト", {"日本語のテキスト"}},
          {"русский текст", {"русский", " текст"}},
          {"ελληνικά, עברית", {"ελληνικά", ",", " עברית"}},
          {"第3章 開始", {"第", "3", "章", " 開始"}},
          {"\U00020000\U0002A700", {"\U00020000\U0002A700"}},  // extensions B and C
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, EachInvalidByteIsACharacterOfClassOther) {
  expect_cases(
      {
          {"a\xFFz", {"a", "\xFF", "z"}},
          {" \xFF\xFE", {" \xFF\xFE"}},
          {"\xFF hi", {"\xFF", " hi"}},
          {"!\x80?", {"!\x80?"}},
          {"\xE6\x98x", {"\xE6\x98", "x"}},  // 春 cut short
          {"\xE6\x98\xA5\xE6\x98", {"\xE6\x98\xA5", "\xE6\x98"}},
          {"\xC0\xAFz", {"\xC0\xAF", "z"}},                  // overlong '/'
          {"\xED\xA0\x80z", {"\xED\xA0\x80", "z"}},          // a surrogate
          {"\xF4\x90\x80\x80x", {"\xF4\x90\x80\x80", "x"}},  // above U+10FFFF
          {"a\xE6\x98\xA5", {"a\xE6\x98\xA5"}},              // while a whole 春 is a letter
          {"x \xE6 \xE6", {"x", " \xE6", " \xE6"}},
          {"'\xFF", {"'\xFF"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, Gpt2CjkIsolatesEachIdeograph) {
  expect_cases(
      {
          {"春眠不觉晓，处处闻啼鸟。",
           {"春", "眠", "不", "觉", "晓", "，", "处", "处", "闻", "啼", "鸟", "。"}},
          {"Hello世界123", {"Hello", "世", "界", "123"}},
          {"日本語のテキスト", {"日", "本", "語", "のテキスト"}},  // kana are not ideographs
          {"\u4DBF\u4DC0\u9FFF\uF900\U0002FA1F\U000323AF",         // last of ext. A, a hexagram, ...
           {"\u4DBF", "\u4DC0", "\u9FFF", "\uF900", "\U0002FA1F", "\U000323AF"}},
          {"他说：“好”", {"他", "说", "：“", "好", "”"}},
          {"第3章", {"第", "3", "章"}},
          {"no CJK here  ok", {"no", " CJK", " here", " ", " ok"}},
      },
      PreTokenizerRule::Gpt2Cjk);
}

// Each run between ideographs is cut as if it were the whole text: a space before an ideograph is
// the end of its run, so it stays alone (GPT-2 would give " 字"), and \s+(?!\S) keeps the whole run.
TEST(PreTokenizer, Gpt2CjkCutsTheTextBetweenIdeographsOnItsOwn) {
  expect_cases(
      {
          {"文 字", {"文", " ", "字"}},
          {"我 love 你", {"我", " love", " ", "你"}},
          {"a \n 中", {"a", " \n ", "中"}},
          {"中文  text", {"中", "文", " ", " text"}},
          {"中'", {"中", "'"}},
          {"中's", {"中", "'s"}},
          {"\xE6\x98中", {"\xE6\x98", "中"}},
      },
      PreTokenizerRule::Gpt2Cjk);
  expect_cases(
      {
          {"文 字", {"文", " 字"}},
          {"我 love 你", {"我", " love", " 你"}},
          {"a \n 中", {"a", " \n", " 中"}},
      },
      PreTokenizerRule::Gpt2);
}

TEST(PreTokenizer, CjkRangesAreSortedAndDisjoint) {
  ASSERT_EQ(kCjkRanges.size(), 12u);
  EXPECT_EQ(kCjkRanges.front().first, U'\u3400');
  EXPECT_EQ(kCjkRanges.back().last, U'\U000323AF');
  for (size_t i = 0; i < kCjkRanges.size(); ++i) {
    EXPECT_LE(kCjkRanges[i].first, kCjkRanges[i].last);
    if (i > 0) {
      EXPECT_LT(kCjkRanges[i - 1].last, kCjkRanges[i].first);
    }
  }
}

TEST(PreTokenizer, RuleNamesRoundTripAndUnknownOnesNameTheInput) {
  for (const PreTokenizerRule rule : {PreTokenizerRule::Gpt2, PreTokenizerRule::Gpt2Cjk})
    EXPECT_EQ(parse_pre_tokenizer_rule(rule_name(rule), "--pre-tokenizer"), rule);
  EXPECT_EQ(rule_name(PreTokenizerRule::Gpt2Cjk), "gpt2-cjk");
  try {
    parse_pre_tokenizer_rule("GPT2", "--pre-tokenizer");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--pre-tokenizer"), std::string::npos) << message;
    EXPECT_NE(message.find("GPT2"), std::string::npos) << message;
    EXPECT_NE(message.find("gpt2-cjk"), std::string::npos) << message;
  }
}

// Properties every cut has, whatever the input: no empty piece and the pieces tile the text.
void expect_tiling(const std::string& text, PreTokenizerRule rule) {
  std::vector<std::string_view> pieces;
  pre_tokenize(text, rule, pieces);
  const char* next = text.data();
  for (const std::string_view piece : pieces) {
    ASSERT_FALSE(piece.empty()) << ::testing::PrintToString(text);
    ASSERT_EQ(piece.data(), next) << ::testing::PrintToString(text);
    next += piece.size();
  }
  EXPECT_EQ(next, text.data() + text.size()) << ::testing::PrintToString(text);
}

TEST(PreTokenizer, PiecesTileRandomByteStrings) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    expect_tiling(text, PreTokenizerRule::Gpt2);
    expect_tiling(text, PreTokenizerRule::Gpt2Cjk);
  }
}

TEST(PreTokenizer, PiecesTileRandomMixturesOfEveryClass) {
  // Letters, numbers, spaces of each kind, punctuation, apostrophes, ideographs, marks, emoji, and
  // the bytes of broken sequences.
  const std::vector<std::string> atoms = {
      "a",      "Z",      "'",          "s",        "ll",     "re",         " ",
      "  ",     "\n",     "\t",         "7",        "\u00BD", ",",          "!?",
      "\u00A0", "\u3000", "\u2028",     "\u4E2D",   "\u6587", "\U00020000", "の",
      "\u0301", "\u00E9", "\U0001F600", "\xE6\x98", "\xFF",   "\x80",       "\xED\xA0\x80",
      "\u2019", "\u0663"};
  std::mt19937 rng(11);
  for (int i = 0; i < 5000; ++i) {
    std::string text;
    for (int n = static_cast<int>(rng() % 24); n > 0; --n) text += atoms[rng() % atoms.size()];
    expect_tiling(text, PreTokenizerRule::Gpt2);
    expect_tiling(text, PreTokenizerRule::Gpt2Cjk);
  }
}

}  // namespace
}  // namespace inkstone
