// `inkstone eval` end to end on tiny checkpoints: the printed numbers match evaluate_perplexity run
// in this process, for a text file, a token shard, a prepared folder, strided windows, and every
// checkpoint of a trained run (table and --json file); bad input is one error line before any result.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "infer/perplexity.h"
#include "runtime/backend.h"
#include "runtime/data_loader.h"
#include "runtime/model_checkpoint.h"
#include "runtime/sha256.h"
#include "runtime/token_shard.h"
#include "runtime/tokenizer.h"
#include "support/expect_contains.h"
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

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

struct TableRow {
  std::string checkpoint, step, tokens;
  double mean_nll = 0, perplexity = 0;
  std::string bits_per_byte;
};

// The rows of eval's table (after its header); fails the test on a line that is not a row.
std::vector<TableRow> parse_table(const std::string& out) {
  std::vector<TableRow> rows;
  std::istringstream lines(out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.find("checkpoint"), 0u) << out;
  static const std::regex row(R"((\S+) +(\d+|-) +(\d+|-) +([0-9.]+) +([0-9.]+) +([0-9.]+|n/a))");
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) {
      ADD_FAILURE() << "not a table row: " << line;
      continue;
    }
    rows.push_back({m[1], m[2], m[3], std::stod(m[4]), std::stod(m[5]), m[6]});
  }
  return rows;
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
                            int window = kShape.context, int stride = 0) {
    const ModelCheckpointInfo info = read_model_checkpoint_info(checkpoint);
    const std::unique_ptr<GPT2> model = load_model(info, *backend, 4, kShape.context);
    return evaluate_perplexity(*model, tokens, text_bytes, window, stride > 0 ? stride : window, 4);
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
  // A batch beyond the number of windows allocates nothing more (it used to end in bad_alloc).
  expect_printed(eval({"--data", "poem.txt", "--batch", "100000000"}), want);
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

TEST_F(EvalCommand, StrideMatchesInProcessPerplexity) {
  const std::vector<int32_t> tokens = document_tokens(text);
  const PerplexityResult strided = expected(tokens, text.size(), kShape.context, 4);
  const PerplexityResult non_overlapping = expected(tokens, text.size());
  ASSERT_GT(std::abs(strided.mean_nll() - non_overlapping.mean_nll()), 1e-3);  // the test can tell them apart
  expect_printed(eval({"--data", "poem.txt", "--stride", "4"}), strided);
  expect_printed(eval({"--data", "poem.txt", "--stride", "16"}), non_overlapping);  // the default
}

TEST_F(EvalCommand, StrideOutsideTheWindowIsOneErrorLine) {
  expect_error(eval({"--data", "poem.txt", "--stride", "0"}), "--stride 0 is outside [1, 16]");
  expect_error(eval({"--data", "poem.txt", "--stride", "17"}), "--stride 17 is outside [1, 16]");
  write_checkpoint(8);  // the window follows the training seq_len
  expect_error(eval({"--data", "poem.txt", "--stride", "9"}), "--stride 9 is outside [1, 8]");
}

TEST_F(EvalCommand, JsonFileForOneCheckpointWithoutTrainingState) {
  const PerplexityResult want = expected(document_tokens(text), text.size(), kShape.context, 5);
  const testing::CommandResult r = eval({"--data", "poem.txt", "--stride", "5", "--json", "out.json"});
  expect_printed(r, want);  // one checkpoint: still the summary line
  const nlohmann::json j = nlohmann::json::parse(testing::read_file(dir / "out.json"));
  EXPECT_EQ(j["data"], "poem.txt");
  EXPECT_EQ(j["window"], 16);
  EXPECT_EQ(j["stride"], 5);
  ASSERT_EQ(j["results"].size(), 1u);
  const nlohmann::json& result = j["results"][0];
  EXPECT_EQ(result["checkpoint"], "ckpt");
  EXPECT_TRUE(result["step"].is_null());  // an exported checkpoint has no state.json
  EXPECT_TRUE(result["tokens"].is_null());
  EXPECT_NEAR(result["mean_nll"].get<double>(), want.mean_nll(), 1e-9);
  EXPECT_NEAR(result["perplexity"].get<double>(), want.perplexity(), 1e-9 * want.perplexity());
  EXPECT_NEAR(result["bits_per_byte"].get<double>(), want.bits_per_byte(), 1e-9);
  EXPECT_EQ(result["scored_tokens"], want.scored_tokens);
  EXPECT_FALSE(fs::exists(dir / "out.json.tmp"));
}

TEST_F(EvalCommand, DataIsReadOnceForCheckpointsThatReadItAlike) {
  fs::copy(checkpoint, dir / "same");
  const testing::CommandResult same = eval({"same", "--data", "poem.txt"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(count_of(same.err, "poem.txt: text"), 1u) << same.err;

  // Another text cleaning policy cleans the text differently: read again for that checkpoint.
  fs::copy(checkpoint, dir / "lenient");
  nlohmann::json config = nlohmann::json::parse(testing::read_file(dir / "lenient" / "config.json"));
  std::string yaml = config["inkstone"]["run_config"];
  const size_t at = yaml.find("invalid_utf8: error");
  ASSERT_NE(at, std::string::npos) << yaml;
  yaml.replace(at, std::string("invalid_utf8: error").size(), "invalid_utf8: replace");
  config["inkstone"]["run_config"] = yaml;
  testing::write_file(dir / "lenient" / "config.json", config.dump(2));
  const testing::CommandResult mixed = eval({"lenient", "same", "--data", "poem.txt"});
  ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
  EXPECT_EQ(count_of(mixed.err, "poem.txt: text"), 3u) << mixed.err;  // ckpt, lenient, same again
  EXPECT_EQ(parse_table(mixed.out).size(), 3u);
}

// Every checkpoint of one tiny trained run (steps 2, 4, 6 and 8), trained once for these tests.
TEST_F(EvalCommand, JsonReplacesOnlyAnEarlierEvalResult) {
  testing::write_file(dir / "config.yaml", "train:\n  lr: 1.0e-3\n");
  expect_error(eval({"--data", "poem.txt", "--json", "config.yaml"}), "is not an earlier eval result");
  EXPECT_EQ(testing::read_file(dir / "config.yaml"), "train:\n  lr: 1.0e-3\n");  // untouched
  ASSERT_EQ(eval({"--data", "poem.txt", "--json", "out.json"}).exit_code, 0);
  const testing::CommandResult again = eval({"--data", "poem.txt", "--stride", "4", "--json", "out.json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(dir / "out.json"))["stride"], 4);
}

class EvalRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new testing::TempDir;
    run_ = new testing::TinyRun(testing::make_tiny_run(root_->path()));
    const testing::CommandResult trained =
        testing::run_cli(testing::train_args(*run_, {"train.checkpoint_interval=2", "train.keep_last=10"}));
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  static void TearDownTestSuite() {
    delete run_;
    delete root_;
  }

  static fs::path step_dir(int step) { return run_->output_dir / fmt::format("step_{:08d}", step); }

  static testing::CommandResult eval(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"eval"};
    all.insert(all.end(), args.begin(), args.end());
    all.insert(all.end(), {"--data", run_->data_dir.string(), "--device", "cpu"});
    return testing::run_cli(all, root_->path());
  }

  // Checkpoint `dir` scored in this process on the run's validation split, windows of seq_len 32.
  static PerplexityResult expected(const fs::path& dir) {
    const TokenSplit val = read_token_split(run_->data_dir, "val", std::nullopt);
    const std::unique_ptr<Backend> backend = make_backend("cpu");
    const std::unique_ptr<GPT2> model = load_model(read_model_checkpoint_info(dir), *backend, 4, 32);
    return evaluate_perplexity(*model, val.tokens, val.text_bytes, 32, 32, 4);
  }

  static nlohmann::json state_of(const fs::path& dir) {
    return nlohmann::json::parse(testing::read_file(dir / "state.json"));
  }

  static testing::TempDir* root_;
  static testing::TinyRun* run_;
};
testing::TempDir* EvalRun::root_ = nullptr;
testing::TinyRun* EvalRun::run_ = nullptr;

TEST_F(EvalRun, ARunDirectoryGivesOneRowPerCheckpoint) {
  const testing::CommandResult r = eval({"run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<TableRow> rows = parse_table(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int step = 2 * static_cast<int>(i + 1);
    const nlohmann::json state = state_of(step_dir(step));
    EXPECT_EQ(rows[i].checkpoint, step_dir(step).filename().string());
    EXPECT_EQ(rows[i].step, std::to_string(state["step"].get<int64_t>()));
    EXPECT_EQ(state["step"].get<int64_t>(), step);
    EXPECT_EQ(rows[i].tokens, std::to_string(state["tokens"].get<int64_t>()));

    // The same numbers as evaluating that checkpoint alone.
    const testing::CommandResult alone = eval({step_dir(step).string()});
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    const Printed printed = parse_summary(alone.out);
    EXPECT_NEAR(rows[i].mean_nll, printed.mean_nll, 1e-9);
    EXPECT_NEAR(rows[i].perplexity, printed.perplexity, 1e-9);
    EXPECT_NEAR(std::stod(rows[i].bits_per_byte), printed.bits_per_byte, 1e-9);
    EXPECT_NEAR(printed.mean_nll, expected(step_dir(step)).mean_nll(), 6e-5);
  }
  EXPECT_GT(rows.front().mean_nll, rows.back().mean_nll + 0.1);  // training helped: rows are not alike
}

TEST_F(EvalRun, CheckpointsOfTheSameNameAreShownByPath) {
  const testing::CommandResult r = eval({"run", "run/step_00000004"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<TableRow> rows = parse_table(r.out);
  ASSERT_EQ(rows.size(), 5u) << r.out;
  EXPECT_EQ(rows[1].checkpoint, "run/step_00000004");
  EXPECT_EQ(rows[4].checkpoint, "run/step_00000004");
  EXPECT_EQ(rows[1].mean_nll, rows[4].mean_nll);
}

TEST_F(EvalRun, JsonFileHoldsEveryResult) {
  // An exported checkpoint (no state.json, 16-token windows) before the run's four (32-token windows).
  testing::write_tiny_checkpoint(root_->path() / "exported", 16, 5);
  fs::create_directory(root_->path() / "out");
  const testing::CommandResult ok = eval({"exported", "run", "--json", "out/eval.json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const std::vector<TableRow> rows = parse_table(ok.out);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].step, "-");
  EXPECT_EQ(rows[0].tokens, "-");

  const nlohmann::json j = nlohmann::json::parse(testing::read_file(root_->path() / "out" / "eval.json"));
  EXPECT_EQ(j["data"], run_->data_dir.string());
  EXPECT_TRUE(j["window"].is_null());  // 16 and 32: the results say which
  EXPECT_TRUE(j["stride"].is_null());
  ASSERT_EQ(j["results"].size(), 5u);
  EXPECT_EQ(j["results"][0]["checkpoint"], "exported");
  EXPECT_TRUE(j["results"][0]["step"].is_null());
  EXPECT_TRUE(j["results"][0]["tokens"].is_null());
  EXPECT_EQ(j["results"][0]["window"], 16);
  for (int i = 1; i <= 4; ++i) {
    const nlohmann::json& result = j["results"][static_cast<size_t>(i)];
    const fs::path dir = step_dir(2 * i);
    const nlohmann::json state = state_of(dir);
    const PerplexityResult want = expected(dir);
    EXPECT_EQ(result["checkpoint"], (fs::path("run") / dir.filename()).string());
    EXPECT_EQ(result["step"], state["step"]);
    EXPECT_EQ(result["tokens"], state["tokens"]);
    EXPECT_EQ(result["window"], 32);
    EXPECT_EQ(result["stride"], 32);
    EXPECT_NEAR(result["mean_nll"].get<double>(), want.mean_nll(), 1e-9);
    EXPECT_NEAR(result["perplexity"].get<double>(), want.perplexity(), 1e-9 * want.perplexity());
    EXPECT_NEAR(result["bits_per_byte"].get<double>(), want.bits_per_byte(), 1e-9);
    EXPECT_EQ(result["scored_tokens"], want.scored_tokens);
  }
  EXPECT_FALSE(fs::exists(root_->path() / "out" / "eval.json.tmp"));
}

TEST_F(EvalRun, ABadCheckpointFailsBeforeAnyEvaluation) {
  const auto expect_early_error = [](const testing::CommandResult& r, const std::string& part) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;  // no "eval:" progress: nothing was evaluated
    EXPECT_CONTAINS(r.err, part);
  };
  expect_early_error(eval({"run", "nowhere"}), "nowhere");
  fs::create_directory(root_->path() / "empty_run");
  expect_early_error(eval({"run", "empty_run"}), "empty_run: neither a checkpoint");
  expect_early_error(eval({"run", "--stride", "33"}), "--stride 33 is outside [1, 32]");
  expect_early_error(eval({"run", "--json", "missing/eval.json"}), "--json missing/eval.json");

  // A damaged checkpoint in the middle of a run: its checksum no longer matches.
  fs::copy(run_->output_dir, root_->path() / "damaged", fs::copy_options::recursive);
  const fs::path weights = root_->path() / "damaged" / "step_00000006" / "model.safetensors";
  std::string bytes = testing::read_file(weights);
  bytes[bytes.size() - 1] ^= 1;
  testing::write_file(weights, bytes);
  expect_early_error(eval({"damaged"}), "step_00000006");
}

}  // namespace
}  // namespace inkstone
