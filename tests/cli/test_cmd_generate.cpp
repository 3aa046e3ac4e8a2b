// `inkstone generate` end to end on a tiny checkpoint: it prints the prompt and exactly the
// continuation generate() gives in this process, a seed fixes the text, and bad flags or input are one
// error line with nothing on stdout.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  // The defaults: temperature 0.8, top-p 0.9, no top-k, <|endoftext|> first.
  const GenerateResult want = in_process(
      "Once upon",
      {.sampling = {.temperature = 0.8, .top_k = 0, .top_p = 0.9, .seed = 5}, .max_new_tokens = 20});
  EXPECT_EQ(r.out, "Once upon" + want.text + "\n");
  EXPECT_NE(r.err.find("finished: " + want.finish_reason), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(want.tokens.size()) + " tokens"), std::string::npos) << r.err;
}

TEST_F(GenerateCommand, FlagsReachTheGenerator) {
  const testing::CommandResult r =
      generate_cli({"--prompt", "moon", "--max-new-tokens", "30", "--temperature", "1.5", "--top-k", "9",
                    "--top-p", "0.7", "--min-p", "0.01", "--repetition-penalty", "1.3",
                    "--no-repeat-ngram-size", "2", "--seed", "8", "--no-eot-start"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const GenerateResult want = in_process("moon", {.sampling = {.temperature = 1.5,
                                                               .top_k = 9,
                                                               .top_p = 0.7,
                                                               .min_p = 0.01,
                                                               .repetition_penalty = 1.3,
                                                               .no_repeat_ngram_size = 2,
                                                               .seed = 8},
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
  expect_error(generate_cli({"--prompt", "a", "--top-p", "0"}), "--top-p");
  expect_error(generate_cli({"--prompt", "a", "--top-p", "1.5"}), "--top-p");
  expect_error(generate_cli({"--prompt", "a", "--num-samples", "0"}), "--num-samples");
  expect_error(generate_cli({"--prompt", "a", "--num-samples", "2000000000"}), "--num-samples");
  expect_error(generate_cli({"--prompt", "a", "--logprobs"}), "--logprobs needs --json");
  expect_error(generate_cli({"--prompts-file", "missing.txt"}), "missing.txt");
  testing::write_file(dir / "blank.txt", "\n  \n");
  expect_error(generate_cli({"--prompts-file", "blank.txt"}), "no prompt");
  fs::remove(dir / "ckpt" / "tokenizer.json");
  expect_error(generate_cli({"--prompt", "a"}), "tokenizer.json");
}

TEST_F(GenerateCommand, ASlidingWindowAcceptsALongPrompt) {
  const testing::CommandResult r =
      generate_cli({"--prompt", std::string(40, 'x'), "--sliding-window", "--max-new-tokens", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(std::string(40, 'x'), 0), 0u);
}

TEST_F(GenerateCommand, JsonHoldsEveryGenerationOfEveryPrompt) {
  // A byte order mark (as Notepad writes) is no part of the first prompt.
  testing::write_file(dir / "prompts.txt",
                      "\xEF\xBB\xBF"
                      "From file\n\nsecond line\r\n");
  const testing::CommandResult r =
      generate_cli({"--prompt", "Hello", "--prompts-file", "prompts.txt", "--num-samples", "2",
                    "--max-new-tokens", "7", "--seed", "3", "--stop", "zz", "--json", "--logprobs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const std::vector<std::string> prompts = {"Hello", "From file", "second line"};
  const auto& gens = j.at("generations");
  ASSERT_EQ(gens.size(), 6u);
  const ModelCheckpointInfo info = read_model_checkpoint_info(dir / "ckpt");
  const std::unique_ptr<GPT2> model = load_model(info, *backend, 6, kShape.context);
  const GenerateConfig config{.sampling = {.temperature = 0.8, .top_k = 0, .top_p = 0.9, .seed = 3},
                              .max_new_tokens = 7,
                              .num_samples = 2,
                              .stop = {"zz"}};
  const std::vector<GenerateResult> want = generate(*model, *info.tokenizer, prompts, config);
  for (size_t i = 0; i < 6; ++i) {
    const auto& g = gens[i];
    EXPECT_EQ(g.at("prompt").get<std::string>(), prompts[i / 2]);
    EXPECT_EQ(g.at("prompt_index").get<size_t>(), i / 2);
    EXPECT_EQ(g.at("sample_index").get<int>(), static_cast<int>(i % 2));
    // JSON text is UTF-8: bytes that are not (this tiny model writes any byte) become U+FFFD.
    const std::string text =
        nlohmann::json(want[i].text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    EXPECT_EQ(g.at("text").get<std::string>(), nlohmann::json::parse(text).get<std::string>());
    EXPECT_EQ(g.at("tokens").get<std::vector<int32_t>>(), want[i].tokens);
    EXPECT_EQ(g.at("finish_reason").get<std::string>(), want[i].finish_reason);
    ASSERT_EQ(g.at("logprobs").size(), want[i].tokens.size());
    for (size_t t = 0; t < want[i].tokens.size(); ++t) EXPECT_LE(g.at("logprobs")[t].get<double>(), 0.0);
  }
}

TEST_F(GenerateCommand, SeveralGenerationsArePrintedUnderHeaders) {
  const testing::CommandResult r =
      generate_cli({"--prompt", "A", "--prompt", "B", "--num-samples", "2", "--max-new-tokens", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--- prompt 1 of 2, sample 1 of 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--- prompt 2 of 2, sample 2 of 2"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace inkstone
