// `inkstone generate` end to end on a tiny checkpoint: it prints the prompt and exactly the
// continuation generate() gives in this process, a seed fixes the text, and bad flags or input are one
// error line with nothing on stdout.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "infer/generator.h"
#include "runtime/backend.h"
#include "runtime/model_checkpoint.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

constexpr GPT2Shape kShape = testing::kTinyCheckpointShape;

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class GenerateCommand : public ::testing::Test {
 protected:
  void SetUp() override { write_checkpoint("ckpt", kShape.context); }

  void write_checkpoint(const std::string& name, int seq_len) {
    testing::write_tiny_checkpoint(dir / name, seq_len, 99);
  }

  testing::CommandResult generate_cli(const std::vector<std::string>& extra,
                                      const std::string& checkpoint = "ckpt") {
    std::vector<std::string> args = {"generate", checkpoint, "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_cli(args, dir.path());
  }

  // The continuation generate() gives for the checkpoint in this process.
  GenerateResult in_process(const std::string& prompt, const GenerateConfig& config) {
    const ModelCheckpointInfo info = read_model_checkpoint_info(dir / "ckpt");
    const std::unique_ptr<GPT2> model = load_model(info, *backend, 1, kShape.context);
    return generate(*model, *info.tokenizer, prompt, config);
  }

  static void expect_error(const testing::CommandResult& r, const std::string& part) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }

  testing::TempDir dir;
  std::unique_ptr<Backend> backend = make_backend("cpu");
};

TEST_F(GenerateCommand, PrintsThePromptThenTheContinuation) {
  const testing::CommandResult r =
      generate_cli({"--prompt", "Once upon", "--max-new-tokens", "20", "--seed", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The defaults: temperature 0.8, top-k 40, <|endoftext|> first.
  const GenerateResult want = in_process(
      "Once upon", {.sampling = {.temperature = 0.8, .top_k = 40, .seed = 5}, .max_new_tokens = 20});
  EXPECT_EQ(r.out, "Once upon" + want.text + "\n");
  EXPECT_NE(r.err.find("finished: " + want.finish_reason), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(want.tokens.size()) + " tokens"), std::string::npos) << r.err;
}

TEST_F(GenerateCommand, FlagsReachTheGenerator) {
  const testing::CommandResult r =
      generate_cli({"--prompt", "moon", "--max-new-tokens", "30", "--temperature", "1.5", "--top-k", "0",
                    "--seed", "8", "--no-eot-start"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const GenerateResult want = in_process("moon", {.sampling = {.temperature = 1.5, .top_k = 0, .seed = 8},
                                                  .max_new_tokens = 30,
                                                  .start_of_document = false});
  EXPECT_EQ(r.out, "moon" + want.text + "\n");
}

TEST_F(GenerateCommand, TheSeedFixesTheText) {
  const auto run = [&](const std::string& seed) {
    return generate_cli({"--prompt", "A", "--max-new-tokens", "24", "--temperature", "1", "--seed", seed});
  };
  const testing::CommandResult a = run("1"), b = run("1"), c = run("2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);  // a freshly initialised model is near uniform over 257 tokens
}

TEST_F(GenerateCommand, ARunDirectoryMeansItsLatestCheckpoint) {
  fs::create_directory(dir / "run");
  fs::create_directory_symlink("../ckpt", dir / "run" / "step_00000001");
  fs::create_directory_symlink("step_00000001", dir / "run" / "latest");
  const std::vector<std::string> flags = {"--prompt", "x", "--max-new-tokens", "5", "--temperature", "0"};
  const testing::CommandResult from_run = generate_cli(flags, "run");
  ASSERT_EQ(from_run.exit_code, 0) << from_run.err;
  EXPECT_EQ(from_run.out, generate_cli(flags).out);
}

TEST_F(GenerateCommand, TheContextIsAsLongAsTheTrainingSequences) {
  write_checkpoint("short", 8);  // trained on 8 of its 16 positions
  const std::vector<std::string> prompt = {"--prompt", "abcdefgh", "--max-new-tokens", "3"};
  expect_error(generate_cli(prompt, "short"), "context of 8");
  EXPECT_EQ(generate_cli(prompt).exit_code, 0);
}

TEST_F(GenerateCommand, BadFlagsAndInputAreOneErrorLine) {
  expect_error(generate_cli({"--prompt", "a", "--temperature", "-1"}), "--temperature");
  expect_error(generate_cli({"--prompt", "a", "--top-k", "-2"}), "--top-k");
  expect_error(generate_cli({"--prompt", "a", "--max-new-tokens", "0"}), "--max-new-tokens");
  expect_error(generate_cli({"--prompt", "a"}, "nowhere"), "nowhere");
  expect_error(generate_cli({"--prompt", "", "--no-eot-start"}), "the prompt is empty");
  expect_error(generate_cli({"--no-eot-start"}), "the prompt is empty");
  expect_error(generate_cli({"--prompt", std::string(40, 'x')}), "longer than the model's context");
}

}  // namespace
}  // namespace inkstone
