// `inkstone eval` end to end on a tiny checkpoint: the printed numbers match evaluate_perplexity run
// in this process, for a text file, a token shard, a prepared folder and a run directory; bad input
// is one error line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "infer/perplexity.h"
#include "runtime/backend.h"
#include "runtime/data_loader.h"
#include "runtime/model_checkpoint.h"
#include "runtime/sha256.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

constexpr GPT2Shape kShape = testing::kTinyCheckpointShape;

struct Printed {
  double perplexity = 0, mean_nll = 0, bits_per_byte = 0;
  int64_t scored = 0;
};

// The summary line; fails the test when it is missing.
Printed parse_summary(const std::string& out) {
  static const std::regex line(
      R"(perplexity ([0-9.]+)  mean NLL ([0-9.]+) nats/token  bits/byte ([0-9.]+)  \((\d+) tokens scored\)\n)");
  std::smatch m;
  if (!std::regex_search(out, m, line)) {
    ADD_FAILURE() << "no summary line in: " << out;
    return {};
  }
  return {std::stod(m[1]), std::stod(m[2]), std::stod(m[3]), std::stoll(m[4])};
}

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class EvalCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    checkpoint = dir / "ckpt";
    fs::create_directory(checkpoint);
    write_checkpoint(kShape.context);
    tokenizer_sha = sha256_from_hex(tokenizer_hash(tokenizer.to_json()), "test");
    for (int i = 0; i < 6; ++i)
      text += "床前明月光，疑是地上霜。\nThe moon on the floor, line " + std::to_string(i) + ".\n";
    testing::write_file(dir / "poem.txt", text);
  }

  void write_checkpoint(int seq_len) { testing::write_tiny_checkpoint(checkpoint, seq_len, 77); }

  // What eval must print: the checkpoint loaded here and scored in this process.
  PerplexityResult expected(const std::vector<int32_t>& tokens, uint64_t text_bytes,
                            int window = kShape.context) {
    const ModelCheckpointInfo info = read_model_checkpoint_info(checkpoint);
    const std::unique_ptr<GPT2> model = load_model(info, *backend, 4, kShape.context);
    return evaluate_perplexity(*model, tokens, text_bytes, window, 4);
  }

  std::vector<int32_t> document_tokens(const std::string& document) {
    std::vector<int32_t> tokens = {tokenizer.eot_id()};
    for (const int32_t t : tokenizer.encode(document)) tokens.push_back(t);
    return tokens;
  }

  static void expect_printed(const testing::CommandResult& r, const PerplexityResult& want) {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Printed got = parse_summary(r.out);
    // Printed with 4 decimals: rounding leaves at most 5e-5; the rest is float32 noise.
    EXPECT_NEAR(got.perplexity, want.perplexity(), 6e-5 + 1e-6 * want.perplexity());
    EXPECT_NEAR(got.mean_nll, want.mean_nll(), 6e-5);
    EXPECT_NEAR(got.bits_per_byte, want.bits_per_byte(), 6e-5);
    EXPECT_EQ(got.scored, want.scored_tokens);
  }

  // Exit 1, nothing on stdout, one line on stderr containing `part`.
  static void expect_error(const testing::CommandResult& r, const std::string& part) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }

  testing::CommandResult eval(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"eval", "ckpt", "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_cli(args, dir.path());
  }

  testing::TempDir dir;
  fs::path checkpoint;
  std::unique_ptr<Backend> backend = make_backend("cpu");
  ByteTokenizer tokenizer;
  Sha256Digest tokenizer_sha{};
  std::string text;
};

TEST_F(EvalCommand, TextFileMatchesInProcessPerplexity) {
  const PerplexityResult want = expected(document_tokens(text), text.size());
  EXPECT_EQ(want.scored_tokens,
            static_cast<int64_t>(text.size()));  // one byte token each, plus <|endoftext|>
  expect_printed(eval({"--data", "poem.txt"}), want);
  expect_printed(eval({"--data", "poem.txt", "--batch", "1"}), want);
}

TEST_F(EvalCommand, WindowsAreAsLongAsTheTrainingSequences) {
  write_checkpoint(8);  // trained on 8 of its 16 positions
  const PerplexityResult want = expected(document_tokens(text), text.size(), 8);
  const PerplexityResult full_context = expected(document_tokens(text), text.size(), 16);
  ASSERT_GT(std::abs(want.mean_nll() - full_context.mean_nll()), 1e-3);  // the test can tell them apart
  expect_printed(eval({"--data", "poem.txt"}), want);
}

TEST_F(EvalCommand, TextIsCleanedAsPrepareCleansIt) {
  std::string crlf;
  for (const char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  testing::write_file(dir / "crlf.txt", "\xEF\xBB\xBF" + crlf);  // a BOM and CRLF line ends
  expect_printed(eval({"--data", "crlf.txt"}), expected(document_tokens(text), text.size()));
}

TEST_F(EvalCommand, TokenShardUsesItsTokensAndTextBytes) {
  const std::vector<int32_t> tokens = document_tokens(text);
  write_token_shard(dir / "poem.bin", tokens, 257, 1000, tokenizer_sha);
  expect_printed(eval({"--data", "poem.bin"}), expected(tokens, 1000));
}

TEST_F(EvalCommand, PreparedFolderUsesItsValidationSplit) {
  std::string corpus;
  for (int i = 0; i < 40; ++i) corpus += "poem " + std::to_string(i) + "\n春眠不觉晓，处处闻啼鸟。\n%\n";
  testing::write_file(dir / "poems.txt", corpus);
  const testing::CommandResult prepared = testing::run_cli(
      {"prepare", "--input", "poems.txt", "--out", "prepared", "--separator", "%", "--val-fraction", "0.2"},
      dir.path());
  ASSERT_EQ(prepared.exit_code, 0) << prepared.err;
  const TokenSplit val = read_token_split(dir / "prepared", "val", std::nullopt);
  ASSERT_GE(val.tokens.size(), 2u);
  expect_printed(eval({"--data", "prepared"}), expected(val.tokens, val.text_bytes));
}

TEST_F(EvalCommand, ARunDirectoryMeansItsLatestCheckpoint) {
  fs::create_directory(dir / "run");
  fs::rename(checkpoint, dir / "run" / "step_00000010");
  fs::create_directory_symlink("step_00000010", dir / "run" / "latest");
  checkpoint = dir / "run" / "step_00000010";
  const PerplexityResult want = expected(document_tokens(text), text.size());
  expect_printed(testing::run_cli({"eval", "run", "--data", "poem.txt", "--device", "cpu"}, dir.path()),
                 want);
}

TEST_F(EvalCommand, BadInputIsOneErrorLine) {
  expect_error(testing::run_cli({"eval", "nowhere", "--data", "poem.txt"}, dir.path()), "nowhere");
  expect_error(eval({"--data", "missing.txt"}), "missing.txt");
  testing::write_file(dir / "empty.txt", "");
  expect_error(eval({"--data", "empty.txt"}), "at least 2");
  expect_error(eval({"--data", "poem.txt", "--batch", "0"}), "--batch");
  testing::write_file(dir / "bad.txt", "ok \xFF not UTF-8");
  expect_error(eval({"--data", "bad.txt"}), "invalid UTF-8");
  EXPECT_EQ(eval({"--data", "bad.txt", "--invalid-utf8", "replace"}).exit_code, 0);

  Sha256Digest other = tokenizer_sha;
  other[0] ^= 1;
  write_token_shard(dir / "foreign.bin", document_tokens(text), 257, 100, other);
  expect_error(eval({"--data", "foreign.bin"}), "foreign.bin");
}

}  // namespace
}  // namespace inkstone
