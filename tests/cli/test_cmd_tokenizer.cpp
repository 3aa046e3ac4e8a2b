// End-to-end tests of `inkstone tokenizer train|encode|decode` through the real binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/bpe_tokenizer.h"
#include "runtime/tokenizer.h"
#include "support/expect_contains.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

// A failure is one line on stderr (plus nothing on stdout) and exit code 1.
void expect_one_error_line(const testing::CommandResult& r, const std::string& part) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, part);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

class TokenizerCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int i = 0; i < 400; ++i) {
      text += "the rain in spain falls mainly on the plain, " + std::to_string(i % 17) + " times\n";
      if (i % 9 == 0) text += "红楼梦 第一回 甄士隐梦幻识通灵\n";
    }
    fs::create_directories(dir / "corpus");
    testing::write_file(dir / "corpus" / "a.txt", text);
    testing::write_file(dir / "corpus" / "b.txt", "mainly plain rain\n");
    corpus_text = text;
  }
  std::vector<std::string> train_args(const std::string& out, const std::string& vocab = "300") const {
    return {"tokenizer",
            "train",
            "--vocab-size",
            vocab,
            "--out",
            (dir / out).string(),
            (dir / "corpus").string()};
  }

  testing::TempDir dir;
  std::string corpus_text;
};

TEST_F(TokenizerCommand, TrainsEncodesAndDecodes) {
  const testing::CommandResult trained = run_cli(train_args("tok.json"));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_CONTAINS(trained.err, "2 files");
  EXPECT_CONTAINS(trained.err, "300 tokens");
  EXPECT_CONTAINS(trained.err, "bytes per token on the training text");
  const auto tokenizer = load_tokenizer((dir / "tok.json").string());
  EXPECT_EQ(tokenizer->vocab_size(), 300);

  const std::string text = "the plain rain, 12 times 红楼梦\n";
  const testing::CommandResult encoded =
      run_cli({"tokenizer", "encode", (dir / "tok.json").string(), "--text", text});
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  std::vector<std::string> ids = split_words(encoded.out);
  EXPECT_LT(ids.size() * 2, text.size()) << encoded.out;

  std::vector<std::string> decode_args = {"tokenizer", "decode", (dir / "tok.json").string()};
  decode_args.insert(decode_args.end(), ids.begin(), ids.end());
  const testing::CommandResult decoded = run_cli(decode_args);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, text);

  testing::write_file(dir / "text.txt", corpus_text);
  const testing::CommandResult from_file =
      run_cli({"tokenizer", "encode", (dir / "tok.json").string(), (dir / "text.txt").string()});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_LT(split_words(from_file.out).size() * 3, corpus_text.size());
}

TEST_F(TokenizerCommand, SameFileOnAnyThreadCount) {
  std::vector<std::string> one = train_args("one.json", "400"), two = train_args("two.json", "400");
  one.insert(one.end(), {"--threads", "1", "--pre-tokenizer", "gpt2-cjk"});
  two.insert(two.end(), {"--threads", "2", "--pre-tokenizer", "gpt2-cjk"});
  ASSERT_EQ(run_cli(one).exit_code, 0);
  ASSERT_EQ(run_cli(two).exit_code, 0);
  EXPECT_EQ(testing::read_file(dir / "one.json"), testing::read_file(dir / "two.json"));
}

TEST_F(TokenizerCommand, NeverOverwritesWithoutForce) {
  testing::write_file(dir / "tok.json", "keep me");
  expect_one_error_line(run_cli(train_args("tok.json")), "exists; pass --force");
  EXPECT_EQ(testing::read_file(dir / "tok.json"), "keep me");
  std::vector<std::string> forced = train_args("tok.json");
  forced.push_back("--force");
  const testing::CommandResult r = run_cli(forced);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_tokenizer((dir / "tok.json").string())->vocab_size(), 300);
}

TEST_F(TokenizerCommand, BadInputIsOneErrorLine) {
  expect_one_error_line(run_cli(train_args("tok.json", "100")), "--vocab-size 100 is below 257");
  expect_one_error_line(run_cli(train_args("missing/tok.json")), "does not exist; create it first");
  expect_one_error_line(
      run_cli({"tokenizer", "train", "--vocab-size", "300", "--out", (dir / "t.json").string()}),
      "name the corpus");
  expect_one_error_line(run_cli({"tokenizer", "train", "--vocab-size", "300", "--out",
                                 (dir / "t.json").string(), (dir / "missing.txt").string()}),
                        "matches no files");
  fs::create_directories(dir / "empty");
  testing::write_file(dir / "empty" / "blank.txt", " \n\n");
  expect_one_error_line(run_cli({"tokenizer", "train", "--vocab-size", "300", "--out",
                                 (dir / "t.json").string(), (dir / "empty").string()}),
                        "corpus is empty");
  std::vector<std::string> bad_rule = train_args("t.json");
  bad_rule.insert(bad_rule.end(), {"--pre-tokenizer", "cjk"});
  expect_one_error_line(run_cli(bad_rule), "--pre-tokenizer is 'cjk'");
  std::vector<std::string> bad_policy = train_args("t.json");
  bad_policy.insert(bad_policy.end(), {"--invalid-utf8", "skip"});
  expect_one_error_line(run_cli(bad_policy), "--invalid-utf8 is 'skip'");
  EXPECT_FALSE(fs::exists(dir / "t.json"));

  expect_one_error_line(run_cli({"tokenizer", "encode", "byte"}), "either --text TEXT or a FILE");
  expect_one_error_line(run_cli({"tokenizer", "decode", "byte", "72", "x1"}), "'x1' is not a token id");
  expect_one_error_line(run_cli({"tokenizer", "decode", "byte", "257"}), "257");
}

// The byte tokenizer's ids are the bytes, so these are known without the code under test.
TEST(TokenizerCommandByte, EncodesAndDecodesBytes) {
  const testing::CommandResult encoded = run_cli({"tokenizer", "encode", "byte", "--text", "Hi\n"});
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  EXPECT_EQ(encoded.out, "72 105 10\n");
  const testing::CommandResult pieces =
      run_cli({"tokenizer", "encode", "byte", "--pieces", "--text", "\"\xE4\xB8\xAD"});
  ASSERT_EQ(pieces.exit_code, 0) << pieces.err;
  // A quote is escaped; the three bytes of 中 are each no whole character, so each is a \x escape.
  EXPECT_EQ(pieces.out, "34\t\"\\\"\"\n228\t\"\\xe4\"\n184\t\"\\xb8\"\n173\t\"\\xad\"\n");
  const testing::CommandResult decoded = run_cli({"tokenizer", "decode", "byte", "72", "105", "256"});
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, "Hi<|endoftext|>");
}

TEST_F(TokenizerCommand, ExtraSpecialTokensFollowEndOfText) {
  std::vector<std::string> args = train_args("tok.json");
  args.insert(args.end(), {"--special", "<|title|>", "--special", "<|endoftext|>", "--special", "<|poem|>"});
  const testing::CommandResult trained = run_cli(args);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto tokenizer = load_tokenizer((dir / "tok.json").string());
  const auto& bpe = dynamic_cast<const BpeTokenizer&>(*tokenizer);
  EXPECT_EQ(bpe.eot_id(), 256);
  EXPECT_EQ(bpe.encode_with_specials("<|title|><|poem|>"), (std::vector<int32_t>{257, 258}));
  // Ordinary text never names them.
  const std::vector<int32_t> plain = bpe.encode("<|title|>");
  EXPECT_EQ(std::ranges::find(plain, 257), plain.end());
  std::vector<std::string> bad = train_args("bad.json");
  bad.insert(bad.end(), {"--special", ""});
  expect_one_error_line(run_cli(bad), "--special must not be empty");
  std::vector<std::string> small = train_args("small.json", "258");
  small.insert(small.end(), {"--special", "<|a|>", "--special", "<|b|>"});
  expect_one_error_line(run_cli(small), "--vocab-size 258 is below 259");
}

}  // namespace
}  // namespace inkstone
