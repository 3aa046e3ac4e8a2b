// `inkstone config` end to end, through the real binary.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/config.h"
#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

size_t count_lines(const std::string& text) {
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

class ConfigCommand : public ::testing::Test {
 protected:
  // Writes `yaml` as bad.yaml in a fresh directory and runs `inkstone config bad.yaml` there.
  testing::CommandResult run_on(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    testing::write_file(dir / "bad.yaml", yaml);
    std::vector<std::string> args = {"config", "bad.yaml"};
    args.insert(args.end(), overrides.begin(), overrides.end());
    return testing::run_cli(args, dir.path());
  }

  // A failed run: exit code 1, nothing on stdout, exactly one line on stderr, which is `wanted`.
  void expect_error(const testing::CommandResult& r, const std::string& wanted) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.err, "inkstone: error: " + wanted + "\n");
  }

  testing::TempDir dir;
};

TEST_F(ConfigCommand, PrintsTheResolvedConfigThatLoadsBack) {
  testing::write_file(dir / "run.yaml", "model: {preset: gpt2-tiny}\ntrain:\n  micro_batch: 4\n  lr: 3e-4\n");
  const testing::CommandResult r =
      testing::run_cli({"config", "run.yaml", "train.seq_len=128", "data.corpus=[a.txt,b.txt]"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunConfig expected =
      load_config((dir / "run.yaml").string(), {"train.seq_len=128", "data.corpus=[a.txt,b.txt]"});
  RunConfig printed = parse_config(r.out, "stdout");
  printed.source = expected.source;
  EXPECT_EQ(printed, expected);
  EXPECT_EQ(printed.train.seq_len, 128);
  // One summary line on stderr: the shape, the parameter count (0.86M with the byte tokenizer, see
  // test_model_config) and the memory estimate.
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "gpt2-tiny: 4 layers, 4 heads, n_embd 128, context 256, vocab 257")) << r.err;
  EXPECT_TRUE(contains(r.err, "0.86M parameters")) << r.err;
  EXPECT_TRUE(contains(r.err, "GiB in fp32 at micro_batch 4 x seq_len 128")) << r.err;
}

TEST_F(ConfigCommand, OutWritesAFileInsteadOfStdout) {
  testing::write_file(dir / "run.yaml", "train: {lr: 1e-3}\n");
  const testing::CommandResult r =
      testing::run_cli({"config", "run.yaml", "--out", "resolved.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(load_config((dir / "resolved.yaml").string()).train.lr, 1e-3);
}

TEST_F(ConfigCommand, TheExampleConfigLoads) {
  const testing::CommandResult r =
      testing::run_cli({"config", (testing::source_dir() / "configs" / "example.yaml").string()}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ConfigCommand, VocabNotKnownYetIsSaidSo) {
  testing::write_file(dir / "run.yaml", "data: {tokenizer: not-trained-yet.json, dir: prep}\n");
  const testing::CommandResult r = testing::run_cli({"config", "run.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "vocab from the tokenizer that `inkstone prepare` will write")) << r.err;
}

TEST_F(ConfigCommand, AnInitFromConfigDescribesTheSourcesModel) {
  testing::write_tiny_checkpoint(dir / "base", 16, 3);  // n_embd 32, context 16, byte vocab
  testing::write_file(dir / "run.yaml", "init_from: base\n");
  const testing::CommandResult r = testing::run_cli({"config", "run.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "init_from base: 2 layers, 2 heads, n_embd 32, context 16, vocab 257"))
      << r.err;
  const testing::CommandResult missing =
      testing::run_cli({"config", "run.yaml", "init_from=nowhere"}, dir.path());
  ASSERT_EQ(missing.exit_code, 0) << missing.err;
  EXPECT_TRUE(contains(missing.err, "init_from nowhere, which is not there yet")) << missing.err;
}

TEST_F(ConfigCommand, VocabThatContradictsTheTokenizer) {
  expect_error(run_on("model:\n  vocab: 300\n"),
               "bad.yaml: model.vocab is 300 but the tokenizer has 257 tokens; remove model.vocab or use the "
               "matching tokenizer");
}

TEST_F(ConfigCommand, GpuOnlyPresetOnTheCpuIsRefusedWithAReason) {
  testing::write_file(dir / "run.yaml", "model: {preset: gpt2-774m}\ndevice: cpu\n");
  const testing::CommandResult r = testing::run_cli({"config", "run.yaml"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "gpt2-774m")) << r.err;
  EXPECT_TRUE(contains(r.err, "GPU")) << r.err;
  // The same model with device: cuda is a config for a GPU machine and is accepted here.
  EXPECT_EQ(testing::run_cli({"config", "run.yaml", "device=cuda"}, dir.path()).exit_code, 0);
}

TEST_F(ConfigCommand, MissingFile) {
  expect_error(testing::run_cli({"config", "nope.yaml"}, dir.path()),
               "nope.yaml: cannot open the config: No such file or directory");
}

TEST_F(ConfigCommand, UnknownKey) {
  expect_error(
      run_on("train:\n  micro_batch: 4\n  learning_rate: 1e-3\n"),
      "bad.yaml:3: train.learning_rate: unknown key; train takes micro_batch, seq_len, grad_accum, "
      "max_steps, max_tokens, lr, min_lr_ratio, warmup_steps, schedule, weight_decay, beta1, beta2, eps, "
      "grad_clip, dropout, recompute, seed, eval_interval, eval_steps, checkpoint_interval, keep_last, "
      "resume, "
      "max_bad_steps "
      "(configs/example.yaml documents each)");
}

TEST_F(ConfigCommand, DuplicateKey) {
  expect_error(run_on("train:\n  lr: 1e-3\n  micro_batch: 4\n  lr: 3e-4\n"),
               "bad.yaml:4: train.lr: duplicate key (first set on line 2); keep one of them");
}

TEST_F(ConfigCommand, WrongType) {
  expect_error(run_on("train:\n  micro_batch: four\n"),
               "bad.yaml:2: train.micro_batch: expected an integer, got \"four\"");
}

TEST_F(ConfigCommand, OutOfRange) {
  expect_error(run_on("data:\n  val_fraction: 0.9\n"),
               "bad.yaml:2: data.val_fraction: must be >= 0 and <= 0.5, got 0.9");
}

TEST_F(ConfigCommand, CheckpointIntervalZero) {
  expect_error(
      run_on("train:\n  max_steps: 100\n  checkpoint_interval: 0\n"),
      "bad.yaml:3: train.checkpoint_interval: must be >= 1 (it counts steps between checkpoints), got 0");
}

TEST_F(ConfigCommand, BadOverride) {
  expect_error(run_on("train: {}\n", {"train.lr=abc"}),
               "override 'train.lr=abc': train.lr: expected a number, got \"abc\"");
}

}  // namespace
}  // namespace inkstone
