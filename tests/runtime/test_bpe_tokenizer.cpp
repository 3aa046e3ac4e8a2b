#include "runtime/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "fixtures/bpe_test_models.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "runtime/utf8.h"

namespace inkstone {
namespace {

using testing::error_of;
using testing::kAa;
using testing::kAaaa;
using testing::kSpaceThe;
using testing::kThe;
using testing::kTinyEot;
using testing::tiny_bpe_model;
using Ids = std::vector<int32_t>;

// --- merge semantics, on the hand-made vocabulary (ids worked out by hand) ---

TEST(BpeTokenizer, MergesLowestRankFirstWithinPieces) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  EXPECT_EQ(tok.encode("the"), (Ids{kThe}));
  EXPECT_EQ(tok.encode(" the"), (Ids{kSpaceThe}));
  // Pieces "the", " the", " them"; in " them": t+h, th+e, " "+the, and m stays.
  EXPECT_EQ(tok.encode("the the them"), (Ids{kThe, kSpaceThe, kSpaceThe, 'm'}));
  // No merge crosses a piece: "t" "he" cannot meet across the space piece of "t  he".
  EXPECT_EQ(tok.encode("t  he"), (Ids{'t', ' ', ' ', 'h', 'e'}));
  EXPECT_EQ(tok.encode(""), Ids{});
}

TEST(BpeTokenizer, EqualPairsMergeLeftmostFirst) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  // "aaa": (a,a) at 0 merges first, leaving "a": aa a, not a aa.
  EXPECT_EQ(tok.encode("aaa"), (Ids{kAa, 'a'}));
  // "aaaaa": aa aa a, then (aa, aa) -> aaaa: aaaa a.
  EXPECT_EQ(tok.encode("aaaaa"), (Ids{kAaaa, 'a'}));
}

// Short pieces are merged in a small array and long ones with a heap: both follow the same rule.
TEST(BpeTokenizer, ShortAndLongPiecesFollowTheSameRule) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  for (const size_t n : {size_t{7}, size_t{63}, size_t{64}, size_t{65}, size_t{1003}, size_t{100000}}) {
    // n a's: pairs merge left to right into aa's (one a left when n is odd), then aa's pair into aaaa's.
    Ids expected(n / 4, kAaaa);
    if (n % 4 >= 2) expected.push_back(kAa);
    if (n % 2 == 1) expected.push_back('a');
    EXPECT_EQ(tok.encode(std::string(n, 'a')), expected) << n << " a's";
  }
}

// "xyz" with xy ranked before yz merges to xy z; with the ranks swapped, to x yz.
TEST(BpeTokenizer, RankNotPositionDecidesWhichPairMerges) {
  const auto with_merges = [](std::vector<std::string> tokens) {
    BpeModel model = tiny_bpe_model();
    for (const std::string& token : tokens) {
      model.merges.push_back({token[0], token[1], static_cast<int32_t>(model.tokens.size())});
      model.tokens.push_back(token);
    }
    return BpeTokenizer(model, "xyz");
  };
  EXPECT_EQ(with_merges({"xy", "yz"}).encode("xyz"), (Ids{262, 'z'}));
  EXPECT_EQ(with_merges({"yz", "xy"}).encode("xyz"), (Ids{'x', 262}));
}

// The text is encoded in chunks cut after a "\n" between visible characters ("cat\naaa" here): the
// ids must be those of the whole text, a repeating pattern long enough for many chunks.
TEST(BpeTokenizer, LongTextsEncodeAcrossChunks) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  // Pieces of one cycle: "the" " cat" "\n" | "aaa" " the" "\n" | " aaa" " \n\n" + "\n" (a space run
  // leaves its last character to the word after it); whitespace has no merges here, so each line's
  // ids are its bytes' except for the words.
  const std::pair<std::string, Ids> lines[] = {
      {"the cat\n", {kThe, ' ', 'c', 'a', 't', '\n'}},
      {"aaa the\n", {kAa, 'a', kSpaceThe, '\n'}},
      {" aaa \n", {' ', kAa, 'a', ' ', '\n'}},
      {"\n", {'\n'}},
  };
  std::string text;
  Ids expected;
  for (int i = 0; i < 40000; ++i) {
    const auto& [line, ids] = lines[i % 4];
    text += line;
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  ASSERT_GT(text.size(), size_t{3} << 16);  // several chunks
  EXPECT_EQ(tok.encode(text), expected);
}

TEST(BpeTokenizer, DecodeJoinsTokenBytesAndRejectsUnknownIds) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  EXPECT_EQ(tok.decode(Ids{kSpaceThe, kTinyEot, 'x', kAaaa}), " the<|endoftext|>xaaaa");
  EXPECT_EQ(tok.decode(Ids{}), "");
  const std::string message = error_of([&] { tok.decode(Ids{'a', 262}); });
  EXPECT_NE(message.find("262"), std::string::npos) << message;
  EXPECT_THROW(tok.decode(Ids{-1}), Error);
}

TEST(BpeTokenizer, DescribesItself) {
  const BpeTokenizer tok(tiny_bpe_model(PreTokenizerRule::Gpt2Cjk), "tiny");
  EXPECT_EQ(tok.vocab_size(), 262);
  EXPECT_EQ(tok.eot_id(), kTinyEot);
  EXPECT_EQ(tok.name(), "bpe (262 tokens, gpt2-cjk pre-tokenizer)");
  EXPECT_EQ(tok.model().merges.size(), 5u);
}

TEST(BpeTokenizer, SpecialTextIsOrdinaryUnlessAskedFor) {
  BpeModel model = tiny_bpe_model();
  model.specials.push_back(static_cast<int32_t>(model.tokens.size()));
  model.tokens.emplace_back("<|endoftext|>!");  // longer, starting like <|endoftext|>
  const int32_t longer = model.specials.back();
  const BpeTokenizer tok(model, "tiny");

  const Ids ordinary = tok.encode("<|endoftext|>");
  EXPECT_EQ(ordinary.size(), 13u);
  for (const int32_t id : ordinary) EXPECT_LT(id, 256);
  EXPECT_EQ(tok.decode(ordinary), "<|endoftext|>");

  EXPECT_EQ(tok.encode_with_specials("<|endoftext|>"), (Ids{kTinyEot}));
  EXPECT_EQ(tok.encode_with_specials("the<|endoftext|><|endoftext|> the"),
            (Ids{kThe, kTinyEot, kTinyEot, kSpaceThe}));
  EXPECT_EQ(tok.encode_with_specials("a<|endoftext|>!b"), (Ids{'a', longer, 'b'}));  // the longest wins
  EXPECT_EQ(tok.encode_with_specials("<|endoftext|<|endoftext|>"),
            (Ids{'<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', kTinyEot}));
  EXPECT_EQ(tok.encode_with_specials("no specials"), tok.encode("no specials"));
  EXPECT_EQ(tok.encode_with_specials(""), Ids{});
}

TEST(BpeTokenizer, RejectsInconsistentModels) {
  struct Case {
    std::function<void(BpeModel&)> change;
    std::string reason;
  };
  const Case cases[] = {
      {[](BpeModel& m) { m.merges[1].merged = kAa; }, "do not join"},
      {[](BpeModel& m) { m.merges.push_back(m.merges[0]); }, "repeats the pair"},
      {[](BpeModel& m) { m.merges[0].left = kTinyEot; }, "special"},
      {[](BpeModel& m) { m.merges[0].right = 5000; }, "outside"},
      {[](BpeModel& m) { m.tokens[kAaaa] = "th"; }, "same bytes"},
      {[](BpeModel& m) { m.tokens['q'] = "qq"; }, "byte 0x71 has no token"},
      {[](BpeModel& m) { m.specials.clear(); }, "<|endoftext|>"},
      {[](BpeModel& m) { m.tokens[kTinyEot] = "<|end|>"; }, "<|endoftext|>"},
      {[](BpeModel& m) { m.specials.push_back(9999); }, "outside"},
      {[](BpeModel& m) {
         m.specials.push_back(static_cast<int32_t>(m.tokens.size()));
         m.tokens.emplace_back("\xC4\xA0the");  // "Ġthe": how " the" is written in a tokenizer.json
       },
       "spelled like the symbols of token 259"},
      {[](BpeModel& m) { m.tokens[kTinyEot] = "\xFF<|endoftext|>"; }, "not UTF-8"},
  };
  for (const Case& c : cases) {
    BpeModel model = tiny_bpe_model();
    c.change(model);
    const std::string message = error_of([&] { BpeTokenizer(model, "dir/model.json"); });
    EXPECT_NE(message.find("dir/model.json"), std::string::npos) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << message;
  }
}

// Each thread keeps a cache of pieces for one tokenizer at a time: switching tokenizers in one
// thread, replacing one by another, and encoding from many threads must all give each model's ids.
TEST(BpeTokenizer, CacheNeverServesAnotherTokenizersIds) {
  BpeModel without_the = tiny_bpe_model();
  without_the.merges.resize(2);  // th, the only
  without_the.tokens.resize(kSpaceThe);
  for (int round = 0; round < 3; ++round) {
    const BpeTokenizer a(tiny_bpe_model(), "a");
    const BpeTokenizer b(without_the, "b");
    EXPECT_EQ(a.encode(" the"), (Ids{kSpaceThe}));
    EXPECT_EQ(b.encode(" the"), (Ids{' ', kThe}));
    EXPECT_EQ(a.encode(" the"), (Ids{kSpaceThe}));
  }
}

TEST(BpeTokenizer, EncodesFromManyThreadsAtOnce) {
  const BpeTokenizer tok(tiny_bpe_model(), "tiny");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "the " + std::string(i % 9, 'a') + " them\n";
  const Ids expected = tok.encode(text);
  std::vector<Ids> results(8);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&tok, &text, &r] {
      for (int i = 0; i < 5; ++i) r = tok.encode(text);
    });
  }
  for (auto& t : threads) t.join();
  for (const Ids& r : results) EXPECT_EQ(r, expected);
}

TEST(BpeTokenizer, DecodeInvertsEncodeOnArbitraryBytes) {
  const BpeTokenizer tok(tiny_bpe_model(PreTokenizerRule::Gpt2Cjk), "tiny");
  std::mt19937 rng(5);
  // Bytes drawn from a mix that makes words, spaces, multi-byte characters and broken sequences.
  const std::string alphabet = "the a\n\t \xE4\xB8\xAD\xF0\x9F\x98\x80\x80\xFF'sll1 <|endoftext|>";
  for (int trial = 0; trial < 300; ++trial) {
    std::string text(rng() % 200, '\0');
    for (char& c : text) c = trial % 2 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
    EXPECT_EQ(tok.decode(tok.encode_with_specials(text)), text);
  }
}

// --- GPT-2 ---

TEST(BpeTokenizerGpt2, KnownIdsFromEverySource) {
  INKSTONE_REQUIRE_GPT2_FILES();
  const BpeTokenizer& from_vocab = testing::gpt2_tokenizer();
  const BpeTokenizer from_tiktoken(bpe_model_from_tiktoken((testing::gpt2_dir() / "gpt2.tiktoken").string()),
                                   "gpt2.tiktoken");
  const BpeTokenizer from_json(bpe_model_from_tokenizer_json(from_vocab.to_json(), "round trip"),
                               "round trip");
  for (const BpeTokenizer* tok : {&from_vocab, &from_tiktoken, &from_json}) {
    EXPECT_EQ(tok->encode("Hello world"), (Ids{15496, 995}));
    EXPECT_EQ(tok->encode(" Hello world"), (Ids{18435, 995}));
    EXPECT_EQ(tok->encode("Hello, world!"), (Ids{15496, 11, 995, 0}));
    EXPECT_EQ(tok->encode("Hello world\n"), (Ids{15496, 995, 198}));
    EXPECT_EQ(tok->vocab_size(), 50257);
    EXPECT_EQ(tok->eot_id(), 50256);
    EXPECT_EQ(tok->name(), "bpe (50257 tokens, gpt2 pre-tokenizer)");
  }
  // The tiktoken ranks recover GPT-2's merges.txt exactly, merge for merge.
  const BpeModel& a = from_vocab.model();
  const BpeModel& b = from_tiktoken.model();
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.specials, b.specials);
  ASSERT_EQ(a.merges.size(), 50000u);
  ASSERT_EQ(b.merges.size(), a.merges.size());
  for (size_t i = 0; i < a.merges.size(); ++i) {
    ASSERT_TRUE(a.merges[i].left == b.merges[i].left && a.merges[i].right == b.merges[i].right &&
                a.merges[i].merged == b.merges[i].merged)
        << "merge " << i;
  }
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

// tests/fixtures/bpe_gpt2_golden.json: ids from tiktoken and tokenizers
// (tests/python/tokenizer_reference.py).
TEST(BpeTokenizerGpt2, MatchesTheReferencesOnTheGoldenSet) {
  INKSTONE_REQUIRE_GPT2_FILES();
  const nlohmann::json golden = nlohmann::json::parse(
      testing::read_file(testing::source_dir() / "tests/fixtures/bpe_gpt2_golden.json"));
  ASSERT_GE(golden["cases"].size(), 40u);
  const BpeTokenizer& tok = testing::gpt2_tokenizer();
  size_t invalid_utf8 = 0;
  for (const auto& c : golden["cases"]) {
    const std::string text = c.contains("hex") ? from_hex(c["hex"]) : c["text"].get<std::string>();
    invalid_utf8 += find_invalid_utf8(text).has_value();
    const Ids ids = c["specials"] ? tok.encode_with_specials(text) : tok.encode(text);
    EXPECT_EQ(ids, c["ids"].get<Ids>()) << c["name"];
    EXPECT_EQ(tok.decode(ids), text) << c["name"];
  }
  EXPECT_GE(invalid_utf8, 10u);
}

// Long texts are encoded in chunks: a cut anywhere but at a piece boundary would show here, where
// "\n\n\n" before a word is the two pieces "\n\n" "\n" (ids from tiktoken).
TEST(BpeTokenizerGpt2, LongTextsEncodeAcrossChunks) {
  INKSTONE_REQUIRE_GPT2_FILES();
  const Ids unit_ids = {15496, 628, 198, 6894, 13, 198};  // "Hello\n\n\nworld.\n"
  std::string text;
  Ids expected;
  for (int i = 0; i < 70000; ++i) {
    text += "Hello\n\n\nworld.\n";
    expected.insert(expected.end(), unit_ids.begin(), unit_ids.end());
  }
  EXPECT_EQ(testing::gpt2_tokenizer().encode(text), expected);
}

TEST(BpeTokenizerGpt2, EndOfTextOnlyWhenAskedFor) {
  INKSTONE_REQUIRE_GPT2_FILES();
  const BpeTokenizer& tok = testing::gpt2_tokenizer();
  const Ids ordinary = tok.encode("<|endoftext|>");
  EXPECT_EQ(std::count(ordinary.begin(), ordinary.end(), 50256), 0);
  EXPECT_EQ(tok.decode(ordinary), "<|endoftext|>");
  EXPECT_EQ(tok.encode_with_specials("<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(tok.encode_with_specials("a<|endoftext|>b"), (Ids{64, 50256, 65}));
}

TEST(BpeTokenizerGpt2, DecodeInvertsEncodeOnArbitraryBytes) {
  INKSTONE_REQUIRE_GPT2_FILES();
  const BpeTokenizer& tok = testing::gpt2_tokenizer();
  std::mt19937 rng(11);
  for (int trial = 0; trial < 500; ++trial) {
    std::string text(rng() % 300, '\0');
    for (char& c : text)
      c = static_cast<char>(trial % 3 == 0   ? rng()
                            : trial % 3 == 1 ? 0x20 + rng() % 0x60
                                             : 0x80 + rng() % 0x80);
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
}

}  // namespace
}  // namespace inkstone
