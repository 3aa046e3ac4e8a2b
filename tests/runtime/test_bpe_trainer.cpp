#include "runtime/bpe_trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/bpe_tokenizer.h"
#include "runtime/error.h"
#include "support/expect_contains.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

BpeModel train(const std::vector<std::string>& texts, int vocab_size, int64_t min_frequency = 2,
               int threads = 1, PreTokenizerRule rule = PreTokenizerRule::Gpt2,
               std::vector<std::string> specials = {std::string(kEndOfText)}) {
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  BpeTrainerConfig config;
  config.vocab_size = vocab_size;
  config.min_frequency = min_frequency;
  config.threads = threads;
  config.rule = rule;
  config.specials = std::move(specials);
  return train_bpe(views, config);
}

// The merges as the bytes they join, "left+right", which reads better in a failure than ids.
std::vector<std::string> merge_names(const BpeModel& model) {
  std::vector<std::string> names;
  for (const BpeModel::Merge& m : model.merges)
    names.push_back(model.tokens[m.left] + "+" + model.tokens[m.right]);
  return names;
}

// ------------------------------------------------------------ worked by hand

// "aaabdaaabac" is one piece (all letters). Pairs counted at every adjacent position:
//   a+a 4 (positions 0, 1, 5, 6), a+b 2, b+d 1, d+a 1, b+a 1, a+c 1.
// 1. a+a (4) -> "aa"; merging left to right: aa a b d aa a b a c.
//    Now aa+a 2, a+b 2, b+d 1, d+aa 1, b+a 1, a+c 1.
// 2. A tie at 2: aa+a against a+b. Left bytes "a" < "aa", so a+b -> "ab": aa ab d aa ab a c.
//    Now aa+ab 2, ab+d 1, d+aa 1, ab+a 1, a+c 1.
// 3. aa+ab (2) -> "aaab": aaab d aaab a c. Every pair is now seen once, below min_frequency 2: stop.
TEST(BpeTrainer, MergesWorkedOutByHand) {
  const BpeModel model = train({"aaabdaaabac"}, 1000);
  EXPECT_EQ(merge_names(model), (std::vector<std::string>{"a+a", "a+b", "aa+ab"}));
  ASSERT_EQ(model.tokens.size(), 260u);
  EXPECT_EQ(model.tokens[257], "aa");
  EXPECT_EQ(model.tokens[258], "ab");
  EXPECT_EQ(model.tokens[259], "aaab");
  ASSERT_EQ(model.merges.size(), 3u);
  EXPECT_EQ(model.merges[2].left, 257);
  EXPECT_EQ(model.merges[2].right, 258);
  EXPECT_EQ(model.merges[2].merged, 259);
}

TEST(BpeTrainer, IdsAreBytesThenSpecialsThenMerges) {
  const BpeModel model =
      train({"aaabdaaabac"}, 1000, 2, 1, PreTokenizerRule::Gpt2Cjk, {std::string(kEndOfText), "<|pad|>"});
  for (int b = 0; b < 256; ++b) EXPECT_EQ(model.tokens[b], std::string(1, static_cast<char>(b)));
  EXPECT_EQ(model.tokens[256], kEndOfText);
  EXPECT_EQ(model.tokens[257], "<|pad|>");
  EXPECT_EQ(model.specials, (std::vector<int32_t>{256, 257}));
  EXPECT_EQ(model.tokens[258], "aa");
  EXPECT_EQ(model.rule, PreTokenizerRule::Gpt2Cjk);
}

// "ab ab" is the pieces "ab" and " ab". 1. a+b (2) -> "ab". 2. With min_frequency 1: " "+ab (1) -> " ab".
// Then each piece is one token. Had the pieces been joined, ab+" " and "ab"+" ab" would follow.
TEST(BpeTrainer, MergesNeverCrossPieces) {
  const BpeModel model = train({"ab ab"}, 1000, 1);
  EXPECT_EQ(merge_names(model), (std::vector<std::string>{"a+b", " +ab"}));
}

TEST(BpeTrainer, MinFrequencyStopsEarly) {
  // Worked above: a+a is seen 4 times, every other pair at most twice.
  EXPECT_EQ(merge_names(train({"aaabdaaabac"}, 1000, 3)), (std::vector<std::string>{"a+a"}));
  EXPECT_EQ(train({"aaabdaaabac"}, 1000, 4).merges.size(), 1u);
  EXPECT_TRUE(train({"aaabdaaabac"}, 1000, 5).merges.empty());
}

TEST(BpeTrainer, StopsAtTheVocabSize) {
  const BpeModel model = train({"aaabdaaabac"}, 258);
  EXPECT_EQ(merge_names(model), (std::vector<std::string>{"a+a"}));
  EXPECT_EQ(model.tokens.size(), 258u);
  EXPECT_TRUE(train({"aaabdaaabac"}, 257).merges.empty());
}

// Texts are counted separately: "ab" ending one text and "c" starting the next are no pair.
TEST(BpeTrainer, TextsAreSeparate) {
  EXPECT_EQ(merge_names(train({"xab", "cx", "ab", "c"}, 1000)), (std::vector<std::string>{"a+b"}));
}

// With "ab" a special token, ordinary text must never make a token spelled "ab".
TEST(BpeTrainer, NeverMergesIntoASpecialTokensText) {
  const BpeModel model =
      train({"abab ab ab"}, 1000, 2, 1, PreTokenizerRule::Gpt2, {std::string(kEndOfText), "ab"});
  for (size_t id = 258; id < model.tokens.size(); ++id) EXPECT_NE(model.tokens[id], "ab");
  EXPECT_FALSE(model.merges.empty());  // b+a and the others still merge
}

// ------------------------------------------------------------ bad input

TEST(BpeTrainer, VocabSizeBelowBytesAndSpecialsIsOneError) {
  const std::string message = error_of([] { train({"hello"}, 100); });
  EXPECT_CONTAINS(message, "vocab size 100");
  EXPECT_CONTAINS(message, "at least 257");
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_CONTAINS(error_of([] {
                    train({"hello"}, 257, 2, 1, PreTokenizerRule::Gpt2, {std::string(kEndOfText), "<|pad|>"});
                  }),
                  "at least 258");
}

TEST(BpeTrainer, NoTextIsOneError) {
  EXPECT_CONTAINS(error_of([] { train({}, 1000); }), "training text is empty");
  EXPECT_CONTAINS(error_of([] { train({"", ""}, 1000); }), "training text is empty");
}

TEST(BpeTrainer, BadSettingsAreErrors) {
  EXPECT_CONTAINS(error_of([] { train({"hello"}, 1000, 0); }), "minimum pair frequency 0");
  EXPECT_CONTAINS(error_of([] { train({"hello"}, 1000, 2, -1); }), "thread count -1");
  EXPECT_CONTAINS(error_of([] { train({"hello"}, 1000, 2, 1, PreTokenizerRule::Gpt2, {"<|pad|>"}); }),
                  "do not include <|endoftext|>");
  EXPECT_CONTAINS(error_of([] {
                    train({"hello"}, 1000, 2, 1, PreTokenizerRule::Gpt2,
                          {std::string(kEndOfText), std::string(kEndOfText)});
                  }),
                  "listed twice");
  EXPECT_CONTAINS(error_of([] {
                    train({"hello"}, 1000, 2, 1, PreTokenizerRule::Gpt2, {std::string(kEndOfText), "x"});
                  }),
                  "shorter than 2 bytes");
}

// ------------------------------------------------------------ against a brute-force trainer

// BPE as its definition reads: every step recounts every pair of every piece, takes the most
// frequent (ties: left bytes, then right bytes, smallest first), and rewrites the pieces left to
// right. Pairs spelling a special token are never merged; a pair spelling an existing token merges
// into it. Quadratic, so only for small texts.
BpeModel brute_force_bpe(const std::vector<std::string>& texts, int vocab_size, int64_t min_frequency,
                         PreTokenizerRule rule) {
  std::map<std::string, int64_t> words;
  for (const std::string& text : texts) {
    std::vector<std::string_view> pieces;
    pre_tokenize(text, rule, pieces);
    for (const std::string_view p : pieces) ++words[std::string(p)];
  }
  BpeModel model;
  model.rule = rule;
  for (int b = 0; b < 256; ++b) model.tokens.emplace_back(1, static_cast<char>(b));
  model.tokens.emplace_back(kEndOfText);
  model.specials = {256};
  std::vector<std::pair<std::vector<int32_t>, int64_t>> symbols;
  for (const auto& [word, count] : words) {
    std::vector<int32_t> ids;
    for (const char c : word) ids.push_back(static_cast<unsigned char>(c));
    symbols.emplace_back(std::move(ids), count);
  }
  while (static_cast<int>(model.tokens.size()) < vocab_size) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pairs;
    for (const auto& [ids, count] : symbols) {
      for (size_t i = 0; i + 1 < ids.size(); ++i) pairs[{ids[i], ids[i + 1]}] += count;
    }
    const std::pair<int32_t, int32_t>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, count] : pairs) {
      if (model.tokens[pair.first] + model.tokens[pair.second] == kEndOfText) continue;
      const auto bytes = [&](const std::pair<int32_t, int32_t>& p) {
        return std::pair(model.tokens[p.first], model.tokens[p.second]);
      };
      if (!best || count > best_count || (count == best_count && bytes(pair) < bytes(*best))) {
        best = &pair;
        best_count = count;
      }
    }
    if (!best || best_count < min_frequency) break;
    const auto [left, right] = *best;
    const std::string bytes = model.tokens[left] + model.tokens[right];
    int32_t merged = -1;
    for (size_t id = 0; id < model.tokens.size(); ++id) {
      if (model.tokens[id] == bytes) merged = static_cast<int32_t>(id);
    }
    if (merged < 0) {
      merged = static_cast<int32_t>(model.tokens.size());
      model.tokens.push_back(bytes);
    }
    model.merges.push_back({left, right, merged});
    for (auto& [ids, count] : symbols) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(ids[i]);
        }
      }
      ids = std::move(out);
    }
  }
  return model;
}

// Random text over a few letters (so that runs like "aaaa" and ties are common), spaces, newlines,
// digits, punctuation and a few multi-byte characters.
std::string random_text(std::mt19937& rng, size_t length, int letters) {
  static const std::vector<std::string> kOthers = {" ", " ", "\n", "1", "2", ",", "é", "中", "文", "\u3000"};
  std::uniform_int_distribution<int> pick(0, letters + static_cast<int>(kOthers.size()) * 2 / 3);
  std::string text;
  while (text.size() < length) {
    const int k = pick(rng);
    if (k < letters) {
      text += static_cast<char>('a' + k);
    } else {
      text += kOthers[static_cast<size_t>(k - letters) % kOthers.size()];
    }
  }
  return text;
}

TEST(BpeTrainer, EveryMergeIsTheBruteForceArgmax) {
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 40; ++trial) {
    const int letters = 2 + trial % 4;
    std::vector<std::string> texts;
    for (int t = 0; t < 1 + trial % 3; ++t) texts.push_back(random_text(rng, 50 + 60 * (trial % 7), letters));
    const int vocab = 257 + 5 + trial * 3;
    const int64_t min_frequency = 1 + trial % 3;
    const auto rule = trial % 2 ? PreTokenizerRule::Gpt2Cjk : PreTokenizerRule::Gpt2;
    const BpeModel expected = brute_force_bpe(texts, vocab, min_frequency, rule);
    const BpeModel got = train(texts, vocab, min_frequency, 1 + trial % 3, rule);
    ASSERT_EQ(merge_names(got), merge_names(expected)) << "trial " << trial;
    ASSERT_EQ(got.tokens, expected.tokens) << "trial " << trial;
    for (size_t i = 0; i < got.merges.size(); ++i) EXPECT_EQ(got.merges[i].merged, expected.merges[i].merged);
  }
}

// ------------------------------------------------------------ determinism and use

// About `bytes` of English-like lines, with enough newlines for the counting to be cut into chunks.
std::string generated_text(size_t bytes) {
  static const std::vector<std::string> kWords = {
      "the",    "rain",    "in",   "spain", "falls", "mainly", "on",   "plain", "and", "again",
      "rained", "spanish", "pain", "山",    "水",    "画",     "2024", "it's",  "—",   "well,"};
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> word(0, kWords.size() - 1), line(3, 14);
  std::string text;
  while (text.size() < bytes) {
    const size_t n = line(rng);
    for (size_t i = 0; i < n; ++i) text += (i ? " " : "") + kWords[word(rng)];
    text += rng() % 5 ? "\n" : "\n\n  ";
  }
  return text;
}

void expect_same_vocab_on_any_thread_count(const std::vector<std::string>& texts, int vocab_size,
                                           PreTokenizerRule rule) {
  const BpeModel one = train(texts, vocab_size, 2, 1, rule);
  for (const int threads : {2, 3, 7}) {
    const BpeModel many = train(texts, vocab_size, 2, threads, rule);
    EXPECT_EQ(many.tokens, one.tokens) << threads << " threads";
    EXPECT_EQ(merge_names(many), merge_names(one)) << threads << " threads";
  }
}

TEST(BpeTrainer, SameVocabOnAnyThreadCount) {
  const std::string text = generated_text(1 << 20);
  expect_same_vocab_on_any_thread_count({text}, 600, PreTokenizerRule::Gpt2);
  expect_same_vocab_on_any_thread_count({text, text.substr(1000)}, 600, PreTokenizerRule::Gpt2Cjk);
}

TEST(BpeTrainer, SameVocabOnAnyThreadCountOnSharedCorpora) {
  const std::filesystem::path corpora = testing::shared_dir() / "corpora";
  if (testing::shared_dir().empty() || !std::filesystem::exists(corpora / "tinyshakespeare.txt"))
    GTEST_SKIP() << "../shared/corpora is absent";
  expect_same_vocab_on_any_thread_count({testing::read_file(corpora / "tinyshakespeare.txt")}, 2000,
                                        PreTokenizerRule::Gpt2);
  if (std::filesystem::exists(corpora / "hongloumeng.txt")) {
    expect_same_vocab_on_any_thread_count({testing::read_file(corpora / "hongloumeng.txt")}, 2000,
                                          PreTokenizerRule::Gpt2Cjk);
  }
}

TEST(BpeTrainer, TrainedVocabularyRoundTripsAndCompresses) {
  const std::string text = generated_text(200 << 10);
  BpeTrainingStats stats;
  const std::vector<std::string_view> views = {text};
  BpeTrainerConfig config;
  config.vocab_size = 2000;
  const BpeTokenizer tokenizer(train_bpe(views, config, &stats), "trained");
  // Twenty distinct words: the merges run out (no pair is seen twice) long before 2000 tokens.
  EXPECT_LT(tokenizer.vocab_size(), 500);
  EXPECT_EQ(tokenizer.eot_id(), 256);
  EXPECT_EQ(stats.corpus_bytes, static_cast<int64_t>(text.size()));
  EXPECT_GT(stats.pieces, stats.distinct_words);
  EXPECT_GT(stats.distinct_words, 10);

  const std::vector<int32_t> ids = tokenizer.encode(text);
  EXPECT_EQ(tokenizer.decode(ids), text);
  // Every word of the generator is frequent, so each becomes about one token: far fewer than bytes.
  EXPECT_LT(ids.size() * 3, text.size());

  std::mt19937 rng(11);
  std::string bytes(5000, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(bytes)), bytes);
  const std::string other = "Spain's plain, 中文 rain\n\n\t mainly 2025!";
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(other)), other);
}

}  // namespace
}  // namespace inkstone
