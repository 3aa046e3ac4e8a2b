#include "runtime/bpe_word_count.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace inkstone {
namespace {

constexpr PreTokenizerRule kRules[] = {PreTokenizerRule::Gpt2, PreTokenizerRule::Gpt2Cjk};

std::vector<std::string> pieces_of(std::string_view text, PreTokenizerRule rule) {
  std::vector<std::string_view> views;
  pre_tokenize(text, rule, views);
  return {views.begin(), views.end()};
}

// Pre-tokenizing the text between every two cuts gives the pieces of the whole text.
void expect_cuts_keep_pieces(std::string_view text, const std::string& what) {
  for (const PreTokenizerRule rule : kRules) {
    const std::vector<size_t> cuts = piece_safe_cuts(text, rule, 1);
    std::vector<std::string> chunked;
    size_t begin = 0;
    for (size_t i = 0; i <= cuts.size(); ++i) {
      const size_t end = i < cuts.size() ? cuts[i] : text.size();
      for (std::string& p : pieces_of(text.substr(begin, end - begin), rule)) chunked.push_back(std::move(p));
      begin = end;
    }
    ASSERT_EQ(chunked, pieces_of(text, rule)) << what << ", rule " << rule_name(rule);
  }
}

std::vector<size_t> gpt2_cuts(std::string_view text, size_t min_chunk_bytes = 1) {
  return piece_safe_cuts(text, PreTokenizerRule::Gpt2, min_chunk_bytes);
}

TEST(PieceSafeCuts, OnlyBeforeANewlineNextToANonSpace) {
  EXPECT_EQ(gpt2_cuts("ab\ncd"), (std::vector<size_t>{2}));
  EXPECT_EQ(gpt2_cuts("ab\n\ncd\n"), (std::vector<size_t>{2, 3}));
  EXPECT_EQ(gpt2_cuts("ab\n cd"), (std::vector<size_t>{2}));  // after a non-space
  EXPECT_EQ(gpt2_cuts("ab\n\tcd"), (std::vector<size_t>{2}));
  EXPECT_EQ(gpt2_cuts("ab \n cd"), (std::vector<size_t>{}));  // white space on both sides
  EXPECT_EQ(gpt2_cuts("ab\u3000\n\u00a0cd"), (std::vector<size_t>{}));
  // A stray continuation byte is a character of its own, not white space.
  EXPECT_EQ(gpt2_cuts("ab\n\x80"), (std::vector<size_t>{2}));
  EXPECT_EQ(gpt2_cuts("a\nx"), (std::vector<size_t>{1}));
  EXPECT_TRUE(gpt2_cuts("\nx").empty());  // never at 0
  EXPECT_TRUE(gpt2_cuts("no newline at all").empty());
}

// U+3000 (ideographic space, how Chinese paragraphs start) and U+00A0 are white space too. Under
// gpt2-cjk, a newline before an ideograph is cut after, where GPT-2's rule sees the text end anyway.
TEST(PieceSafeCuts, UnicodeSpacesAndIdeographs) {
  const std::string text = "ab\n\u3000cd\n\u00a0x\n中";  // newlines at bytes 2, 8 and 12
  EXPECT_EQ(gpt2_cuts(text), (std::vector<size_t>{2, 8, 12}));
  EXPECT_EQ(piece_safe_cuts(text, PreTokenizerRule::Gpt2Cjk, 1), (std::vector<size_t>{2, 8, 13}));
  const std::string spaced = "\u3000\n\u3000x\u00a0\n\u00a0y";  // white space on both sides of each
  EXPECT_EQ(gpt2_cuts(spaced), (std::vector<size_t>{}));
}

TEST(PieceSafeCuts, KeepTheMinimumChunk) {
  const std::string text = "a\nb\nc\nd\ne\nf\n";
  EXPECT_EQ(gpt2_cuts(text), (std::vector<size_t>{1, 3, 5, 7, 9}));
  EXPECT_EQ(gpt2_cuts(text, 4), (std::vector<size_t>{5, 9}));
  EXPECT_TRUE(gpt2_cuts(text, 100).empty());
}

TEST(PieceSafeCuts, NeverChangeThePieces) {
  const std::vector<std::string> texts = {"Hello\nworld",
                                          "x  \n\nword",
                                          "'s\n's\n'll\n'd",
                                          "1\n2\n 3\n\t4",
                                          "a \n\u3000b\nc",
                                          "a\n\u2028\nb",
                                          "\r\n\r\nx\r\ny",
                                          "end \n",
                                          "\n\n\nx",
                                          "中文\n文中\n 中",
                                          "!!\n!!\n\n??",
                                          "\xe3\x80\nx\n\x80y",
                                          "a\n\u0085b\n\u1680c",
                                          "tab\t\n\x0b\n\x0cz",
                                          "x  \n\n中",
                                          "x \n中\n\n文",
                                          "\n\xf0\x83\x80\x80",
                                          "a\n\xed\xa0\x80"};
  for (const std::string& text : texts) expect_cuts_keep_pieces(text, ::testing::PrintToString(text));
}

TEST(PieceSafeCuts, NeverChangeThePiecesOfTheSharedCorpora) {
  const std::filesystem::path corpora = testing::shared_dir() / "corpora";
  if (testing::shared_dir().empty() || !std::filesystem::exists(corpora)) {
    GTEST_SKIP() << "../shared/corpora is absent";
  }
  for (const auto& entry : std::filesystem::directory_iterator(corpora)) {
    if (entry.path().extension() != ".txt") continue;
    expect_cuts_keep_pieces(testing::read_file(entry.path()), entry.path().filename().string());
  }
}

std::map<std::string, int64_t> as_map(const WordCounts& counts) {
  std::map<std::string, int64_t> words;
  for (const WordCount& w : counts.words) words[std::string(w.word)] = w.count;
  return words;
}

TEST(CountWords, CountsEveryPieceOnce) {
  const std::vector<std::string_view> texts = {"the cat\nthe dog\n", "the\n"};
  const WordCounts counts = count_words(texts, PreTokenizerRule::Gpt2, 1);
  EXPECT_EQ(as_map(counts),
            (std::map<std::string, int64_t>{{"the", 3}, {" cat", 1}, {" dog", 1}, {"\n", 3}}));
  EXPECT_EQ(counts.pieces, 8);
  ASSERT_EQ(counts.words.size(), 4u);
  EXPECT_EQ(counts.words[0].word, "\n");  // sorted by bytes
  EXPECT_EQ(counts.words[3].word, "the");
}

// About 2 MB of lines, so the counting is cut into many chunks.
std::string many_lines() {
  std::string text;
  for (int i = 0; text.size() < (2u << 20); ++i) {
    text +=
        "line " + std::to_string(i % 977) + (i % 3 ? " of text" : " 中文的行") + (i % 7 ? "\n" : "\n\n   ");
  }
  return text;
}

TEST(CountWords, SameCountsOnAnyThreadCount) {
  const std::string text = many_lines();
  ASSERT_GT(gpt2_cuts(text, 64 << 10).size(), 8u);
  const std::vector<std::string_view> texts = {text, "tail", std::string_view(text).substr(12345)};
  for (const PreTokenizerRule rule : kRules) {
    const WordCounts one = count_words(texts, rule, 1);
    std::map<std::string, int64_t> expected;
    int64_t pieces = 0;
    for (const std::string_view t : texts) {
      for (const std::string& p : pieces_of(t, rule)) ++expected[p], ++pieces;
    }
    EXPECT_EQ(as_map(one), expected);
    EXPECT_EQ(one.pieces, pieces);
    for (const int threads : {2, 3, 7, 0}) {
      const WordCounts many = count_words(texts, rule, threads);
      EXPECT_EQ(as_map(many), expected) << threads << " threads";
      EXPECT_EQ(many.pieces, pieces) << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace inkstone
