// Loading vocabularies from files: vocab.json + merges.txt, tiktoken rank files, and load_tokenizer's
// choice among them. The files are written here by hand for the hand-made vocabulary of
// fixtures/bpe_test_models.h, so every id below can be checked on paper.
#include <gtest/gtest.h>

#include <filesystem>

#include "fixtures/bpe_test_models.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/byte_level.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"

namespace inkstone {
namespace {

using testing::error_of;
using testing::TempDir;
using testing::write_file;
using Ids = std::vector<int32_t>;

// GPT-2's vocab.json layout for the tiny vocabulary: each byte's symbol with the byte as id.
std::string tiny_vocab_json() {
  std::string json = "{";
  const auto& symbols = byte_level_symbols();
  for (int b = 0; b < 256; ++b)
    json += "\"" + (b == '"' ? "\\\"" : b == '\\' ? "\\\\" : symbols[b]) + "\": " + std::to_string(b) + ", ";
  return json +
         "\"<|endoftext|>\": 256, \"th\": 257, \"the\": 258, \"\xC4\xA0the\": 259, \"aa\": 260, \"aaaa\": "
         "261}";
}

const std::string kTinyMerges = "#version: 0.2\nt h\nth e\n\xC4\xA0 the\na a\naa aa\n";

std::string base64(std::string_view bytes) {
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t group = 0;
    for (size_t k = 0; k < 3; ++k)
      group = group << 8 | (i + k < bytes.size() ? static_cast<uint8_t>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k)
      out += k <= bytes.size() - i ? alphabet[(group >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

// Ranks 0..255 are the bytes, then th, the, " the", aa, aaaa (256..260); <|endoftext|> is added as 261.
std::string tiny_tiktoken(const std::vector<std::string>& extra = {"th", "the", " the", "aa", "aaaa"}) {
  std::string text;
  for (int b = 0; b < 256; ++b)
    text += base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(b) + "\n";
  for (size_t i = 0; i < extra.size(); ++i) text += base64(extra[i]) + " " + std::to_string(256 + i) + "\n";
  return text;
}

TEST(BpeFiles, Base64HelperIsStandard) {  // the helper that writes the test files, checked by hand
  EXPECT_EQ(base64("the"), "dGhl");
  EXPECT_EQ(base64(" the"), "IHRoZQ==");
  EXPECT_EQ(base64("aa"), "YWE=");
}

TEST(BpeFiles, VocabAndMergesGiveTheModel) {
  TempDir dir;
  write_file(dir / "vocab.json", tiny_vocab_json());
  write_file(dir / "merges.txt", kTinyMerges);
  const BpeModel model =
      bpe_model_from_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string());
  const BpeModel expected = testing::tiny_bpe_model();
  EXPECT_EQ(model.tokens, expected.tokens);
  EXPECT_EQ(model.specials, expected.specials);
  ASSERT_EQ(model.merges.size(), expected.merges.size());
  for (size_t i = 0; i < model.merges.size(); ++i) {
    EXPECT_EQ(model.merges[i].left, expected.merges[i].left) << i;
    EXPECT_EQ(model.merges[i].right, expected.merges[i].right) << i;
    EXPECT_EQ(model.merges[i].merged, expected.merges[i].merged) << i;
  }

  const auto tok = load_tokenizer(dir.path().string());  // a directory of vocab.json + merges.txt
  EXPECT_EQ(tok->name(), "bpe (262 tokens, gpt2 pre-tokenizer)");
  EXPECT_EQ(tok->encode("the aaaa"), (Ids{testing::kThe, ' ', testing::kAaaa}));
  EXPECT_EQ(tokenizer_from_spec(dir.path().string())->eot_id(), 256);
  EXPECT_EQ(load_tokenizer((dir / "vocab.json").string())->vocab_size(), 262);  // either file names the pair
  EXPECT_EQ(load_tokenizer((dir / "merges.txt").string())->vocab_size(), 262);
}

TEST(BpeFiles, VocabWithoutEndOfTextGetsItAfterTheLastToken) {
  TempDir dir;
  std::string vocab = tiny_vocab_json();
  vocab.replace(vocab.find("\"<|endoftext|>\": 256, "), 22, "");
  vocab.replace(vocab.find("\"aaaa\": 261"), 11, "\"aaaa\": 256");
  write_file(dir / "vocab.json", vocab);
  write_file(dir / "merges.txt", "t h\n");  // no #version line: it is optional
  const BpeTokenizer tok(
      bpe_model_from_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string()), "x");
  EXPECT_EQ(tok.vocab_size(), 262);
  EXPECT_EQ(tok.eot_id(), 261);
  EXPECT_EQ(tok.encode("the"), (Ids{257, 'e'}));
}

TEST(BpeFiles, TiktokenRanksGiveMergesInRankOrder) {
  TempDir dir;
  write_file(dir / "tiny.tiktoken", tiny_tiktoken());
  const BpeModel model = bpe_model_from_tiktoken((dir / "tiny.tiktoken").string());
  ASSERT_EQ(model.tokens.size(), 262u);
  EXPECT_EQ(model.tokens[258], " the");
  EXPECT_EQ(model.tokens[261], "<|endoftext|>");
  EXPECT_EQ(model.specials, Ids{261});
  const std::vector<std::array<int32_t, 3>> expected = {
      {'t', 'h', 256}, {256, 'e', 257}, {' ', 257, 258}, {'a', 'a', 259}, {259, 259, 260}};
  ASSERT_EQ(model.merges.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((std::array{model.merges[i].left, model.merges[i].right, model.merges[i].merged}), expected[i])
        << i;
  }
  const auto tok = load_tokenizer((dir / "tiny.tiktoken").string());
  EXPECT_EQ(tok->encode(" the aaaaa"), (Ids{258, ' ', 260, 'a'}));
  EXPECT_EQ(tok->eot_id(), 261);
}

TEST(BpeFiles, LoadTokenizerFindsTokenizerJsonInADirectory) {
  TempDir dir;
  write_file(dir / "tokenizer.json", BpeTokenizer(testing::tiny_bpe_model(), "tiny").to_json());
  write_file(dir / "vocab.json", "not read: tokenizer.json comes first");
  EXPECT_EQ(load_tokenizer(dir.path().string())->encode(" the"), (Ids{testing::kSpaceThe}));
  write_file(dir / "byte.json", ByteTokenizer().to_json());
  EXPECT_EQ(load_tokenizer((dir / "byte.json").string())->name(), "byte");  // still the byte tokenizer
  EXPECT_EQ(tokenizer_from_spec("byte")->name(), "byte");
}

// Each bad input: one line naming the file (and line) and what is wrong.
void expect_error(const std::function<void()>& load, const std::vector<std::string>& parts) {
  const std::string message = error_of(load);
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  for (const std::string& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "wanted " << part << " in: " << message;
}

TEST(BpeFiles, BadVocabOrMergesFilesAreOneClearError) {
  TempDir dir;
  const std::string vocab = (dir / "vocab.json").string(), merges = (dir / "merges.txt").string();
  const auto load = [&] { bpe_model_from_vocab_merges(vocab, merges); };
  write_file(dir / "merges.txt", kTinyMerges);
  expect_error(load, {vocab, "cannot open the vocab file", "No such file"});

  write_file(vocab, "{\"a\": 0,");
  expect_error(load, {vocab, "not valid JSON"});
  write_file(vocab, "[1, 2]");
  expect_error(load, {vocab, "not a vocab.json"});
  std::string duplicated = tiny_vocab_json();
  duplicated.replace(duplicated.find("\"aaaa\": 261"), 11, "\"aaaa\": 260");
  write_file(vocab, duplicated);
  expect_error(load, {vocab, "two tokens have the id 260"});
  std::string gap = tiny_vocab_json();
  gap.replace(gap.find("\"aaaa\": 261"), 11, "\"aaaa\": 262");
  write_file(vocab, gap);
  expect_error(load, {vocab, "\"aaaa\" has id 262", "0..261"});
  std::string raw_space = tiny_vocab_json();
  raw_space.replace(raw_space.find("\"aaaa\": 261"), 11, "\"a a\": 261");
  write_file(vocab, raw_space);
  expect_error(load, {vocab, "\"a a\"", "byte-level symbols"});

  write_file(vocab, tiny_vocab_json());
  std::filesystem::remove(merges);
  expect_error(load, {merges, "cannot open the merges file"});
  write_file(merges, "#version: 0.2\nt h\nth e x\n");
  expect_error(load, {merges + ":3:", "\"th e x\"", "not two tokens"});
  write_file(merges, "t h\n\nth e\n");
  expect_error(load, {merges + ":2:", "not two tokens"});
  write_file(merges, "#version: 0.2\nt h\nzz h\n");
  expect_error(load, {merges + ":3:", "names \"zz\"", "not in " + vocab});
  write_file(merges, "a th\n");
  expect_error(load, {merges + ":1:", "makes \"ath\"", "not in"});
}

TEST(BpeFiles, BadTiktokenFilesAreOneClearError) {
  TempDir dir;
  const std::string path = (dir / "x.tiktoken").string();
  const auto load = [&] { bpe_model_from_tiktoken(path); };
  expect_error(load, {path, "cannot open the tiktoken rank file"});
  write_file(path, "");
  expect_error(load, {path, "empty"});
  const std::string good = tiny_tiktoken();
  write_file(path, good + "dGhl\n");
  expect_error(load, {path + ":262:", "\"dGhl\"", "not a base64 token and a rank"});
  write_file(path, good + "d!hl 261\n");
  expect_error(load, {path + ":262:", "not a base64 token"});
  write_file(path, good + "dGh 261\n");  // not a multiple of 4 characters
  expect_error(load, {path + ":262:", "not a base64 token"});
  write_file(path, good + "dGhl -1\n");
  expect_error(load, {path + ":262:", "not a base64 token and a rank"});
  write_file(path, good + "dGhl 999\n");
  expect_error(load, {path + ":262:", "a rank below 262"});
  write_file(path, good + "dGhl 3\n");
  expect_error(load, {path + ":262:", "rank 3 appears twice"});
  std::string no_q = good;
  no_q.replace(no_q.find(base64("q") + " 113"), 8, base64("qq") + " 113");
  write_file(path, no_q);
  expect_error(load, {path, "byte 0x71 has no token"});
  write_file(path, tiny_tiktoken({"the"}));  // no "th" to make it from
  expect_error(load, {path, "rank 256", "\"the\"", "not two tokens of lower rank"});
}

TEST(BpeFiles, LoadTokenizerNamesWhatADirectoryLacks) {
  TempDir dir;
  write_file(dir / "vocab.json", tiny_vocab_json());  // merges.txt missing
  expect_error([&] { load_tokenizer(dir.path().string()); },
               {dir.path().string(), "neither tokenizer.json nor vocab.json + merges.txt"});
  expect_error([&] { load_tokenizer((dir / "missing.json").string()); }, {"missing.json", "cannot open"});
}

TEST(BpeFiles, ALargerTiktokenEncodingIsRefusedNotMisread) {
  // cl100k_base and o200k_base have more ranks than GPT-2 and other patterns and special ids.
  TempDir dir;
  std::vector<std::string> extra;
  for (int i = 0; i < 50001; ++i) extra.push_back(std::to_string(i) + "t");  // 256 + 50001 ranks
  const std::string path = (dir / "big.tiktoken").string();
  write_file(path, tiny_tiktoken(extra));
  expect_error([&] { bpe_model_from_tiktoken(path); }, {path, "50257 ranks, more than GPT-2's 50256"});
}

}  // namespace
}  // namespace inkstone
