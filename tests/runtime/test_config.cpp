#include "runtime/config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>
#include <filesystem>

#include <cstdint>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

constexpr const char* kName = "configs/x.yaml";

// The message parse_config throws for `yaml`; fails the test when it throws nothing.
std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, kName, overrides);
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

std::string override_error(const std::string& override_text) {
  return parse_error("train: {}\n", {override_text});
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(contains(text, part)) << "message: " << (text) << "\nwanted: " << (part)

// ---------------------------------------------------------------- reading

TEST(Config, KeysLeftOutKeepTheirDefaults) {
  RunConfig config = parse_config("train: {micro_batch: 4, lr: 3e-4}\n", kName);
  RunConfig expected;
  expected.train.micro_batch = 4;
  expected.train.lr = 3e-4;
  expected.source = kName;
  EXPECT_EQ(config, expected);
}

TEST(Config, ReadsEverySection) {
  const std::string yaml = R"(# a comment
model:
  preset: gpt2-124m
  n_layer: 6
  vocab: 50257
data:
  corpus: [a.txt, dir/, "poems/*.txt"]
  tokenizer: out/tokenizer.json
  val_fraction: 0.1
  invalid_utf8: replace
  document_separator: "<|doc|>"
  dir: prep
  shard_tokens: 1e6
train:
  micro_batch: 2
  seq_len: 64
  grad_accum: 4
  max_steps: 10
  max_tokens: 5000
  lr: 1.5e-3
  min_lr_ratio: 0
  warmup_steps: 0
  schedule: linear
  weight_decay: 0
  beta1: 0
  beta2: 0.999
  eps: 1e-6
  grad_clip: 0
  seed: 18446744073709551615
  eval_interval: 5
  eval_steps: 1
  checkpoint_interval: 1
  keep_last: 1
  resume: auto
  max_bad_steps: 2
device: cpu
output_dir: runs/x
)";
  RunConfig c = parse_config(yaml, kName);
  EXPECT_EQ(c.model.preset, "gpt2-124m");
  EXPECT_EQ(c.model.n_layer, 6);
  EXPECT_EQ(c.model.n_head, 0);
  EXPECT_EQ(c.model.vocab, 50257);
  EXPECT_EQ(c.data.corpus, (std::vector<std::string>{"a.txt", "dir/", "poems/*.txt"}));
  EXPECT_EQ(c.data.tokenizer, "out/tokenizer.json");
  EXPECT_EQ(c.data.val_fraction, 0.1);
  EXPECT_EQ(c.data.invalid_utf8, "replace");
  EXPECT_EQ(c.data.document_separator, "<|doc|>");
  EXPECT_EQ(c.data.dir, "prep");
  EXPECT_EQ(c.data.shard_tokens, 1'000'000);  // an exactly integral number counts as an integer
  EXPECT_EQ(c.train.micro_batch, 2);
  EXPECT_EQ(c.train.seq_len, 64);
  EXPECT_EQ(c.train.grad_accum, 4);
  EXPECT_EQ(c.train.max_steps, 10);
  EXPECT_EQ(c.train.max_tokens, 5000);
  EXPECT_EQ(c.train.lr, 1.5e-3);
  EXPECT_EQ(c.train.min_lr_ratio, 0.0);
  EXPECT_EQ(c.train.warmup_steps, 0);
  EXPECT_EQ(c.train.schedule, "linear");
  EXPECT_EQ(c.train.weight_decay, 0.0);
  EXPECT_EQ(c.train.beta1, 0.0);
  EXPECT_EQ(c.train.beta2, 0.999);
  EXPECT_EQ(c.train.eps, 1e-6);
  EXPECT_EQ(c.train.grad_clip, 0.0);
  EXPECT_EQ(c.train.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(c.train.eval_interval, 5);
  EXPECT_EQ(c.train.eval_steps, 1);
  EXPECT_EQ(c.train.checkpoint_interval, 1);
  EXPECT_EQ(c.train.keep_last, 1);
  EXPECT_EQ(c.train.resume, "auto");
  EXPECT_EQ(c.train.max_bad_steps, 2);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.output_dir, "runs/x");
}

TEST(Config, CorpusTakesOnePathOrAList) {
  EXPECT_EQ(parse_config("data: {corpus: novel.txt}\n", kName).data.corpus,
            std::vector<std::string>{"novel.txt"});
  EXPECT_EQ(parse_config("data:\n  corpus:\n    - a.txt\n    - b/\n", kName).data.corpus,
            (std::vector<std::string>{"a.txt", "b/"}));
  EXPECT_TRUE(parse_config("data: {corpus: []}\n", kName).data.corpus.empty());
}

TEST(Config, ASectionWithEveryKeyCommentedOutIsEmpty) {
  RunConfig config = parse_config("train:\n  # lr: 1e-3\nmodel:\n", kName);
  EXPECT_EQ(config.train, TrainConfig{});
  EXPECT_EQ(config.model, ModelConfig{});
}

TEST(Config, AliasesAreExpanded) {
  RunConfig config = parse_config("train: {eval_interval: &every 50, checkpoint_interval: *every}\n", kName);
  EXPECT_EQ(config.train.eval_interval, 50);
  EXPECT_EQ(config.train.checkpoint_interval, 50);
}

TEST(Config, LoadConfigReadsAFileAndNamesIt) {
  testing::TempDir dir;
  testing::write_file(dir / "run.yaml", "train:\n  lr: 2e-4\n  seq_len: 0\n");
  const std::string path = (dir / "run.yaml").string();
  try {
    load_config(path, {"train.seq_len=32"});  // an override does not excuse a bad file
    FAIL() << "seq_len 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ":3: train.seq_len: must be >= 1, got 0");
  }
  testing::write_file(dir / "run.yaml", "train:\n  lr: 2e-4\n  seq_len: 64\n");
  RunConfig config = load_config(path, {"train.seq_len=32"});
  EXPECT_EQ(config.train.seq_len, 32);
  EXPECT_EQ(config.train.lr, 2e-4);
  EXPECT_EQ(config.source, path);
}

// ---------------------------------------------------------------- errors in the file

TEST(ConfigErrors, UnknownKeySuggestsTheClosestKnownKey) {
  EXPECT_EQ(parse_error("train:\n  micro_batch: 2\n  lrr: 1e-3\n"),
            "configs/x.yaml:3: train.lrr: unknown key; did you mean train.lr?");
  // The right key in the wrong section, and a misspelt section.
  EXPECT_CONTAINS(parse_error("lr: 1e-3\n"), "configs/x.yaml:1: lr: unknown key; did you mean train.lr?");
  EXPECT_CONTAINS(parse_error("train:\n  vocab: 5\n"),
                  "configs/x.yaml:2: train.vocab: unknown key; did you mean model.vocab?");
  EXPECT_CONTAINS(parse_error("trian:\n  lr: 1\n"),
                  "configs/x.yaml:1: trian: unknown key; did you mean train?");
  EXPECT_CONTAINS(parse_error("model: {n_layers: 2}\n"),
                  "model.n_layers: unknown key; did you mean model.n_layer?");
}

TEST(ConfigErrors, UnknownKeyWithNothingCloseListsTheSectionsKeys) {
  const std::string message = parse_error("data:\n  corpus: a.txt\n  shuffle_buffer: 5\n");
  EXPECT_CONTAINS(message,
                  "configs/x.yaml:3: data.shuffle_buffer: unknown key; data takes corpus, tokenizer,");
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
  EXPECT_CONTAINS(parse_error("model:\n  preset: gpt2-tiny\n  bias:\n    x: 1\n"),
                  "configs/x.yaml:3: model.bias: unknown key");
}

TEST(ConfigErrors, DuplicateKeysAreCaughtInEveryMapping) {
  EXPECT_EQ(parse_error("train:\n  lr: 1e-3\n  seq_len: 64\n  lr: 2e-3\n"),
            "configs/x.yaml:4: train.lr: duplicate key (first set on line 2); keep one of them");
  EXPECT_CONTAINS(parse_error("train: {lr: 1e-3}\ndevice: cpu\ntrain: {seq_len: 8}\n"),
                  "configs/x.yaml:3: train: duplicate key (first set on line 1)");
  EXPECT_CONTAINS(parse_error("data:\n  corpus: a.txt\n\n  corpus: b.txt\n"),
                  "configs/x.yaml:4: data.corpus: duplicate key (first set on line 2)");
  EXPECT_CONTAINS(parse_error("train: {lr: 1e-3, lr: 1e-3}\n"), "configs/x.yaml:1: train.lr: duplicate key");
}

TEST(ConfigErrors, DottedAndEmptyKeysInTheFileAreErrors) {
  // A dotted key would reach train.lr a second time without tripping the duplicate-key check.
  EXPECT_EQ(parse_error("train: {lr: 0.001}\ntrain.lr: 0.5\n"),
            "configs/x.yaml:2: train.lr: dotted keys are for command-line overrides; nest it under train:");
  EXPECT_EQ(parse_error("model:\n  preset: gpt2-tiny\ntrain:\n  a.b.c: 1\n"),
            "configs/x.yaml:4: train.a.b.c: dotted keys are for command-line overrides; nest it under "
            "train.a.b:");
  EXPECT_EQ(parse_error("train: {\"\": {lr: 0.5}}\n"),
            "configs/x.yaml:1: train.\"\": empty key; remove it or name the key");
  EXPECT_CONTAINS(parse_error("\"\": 1\n"), "configs/x.yaml:1: \"\": empty key");
  // Inside an override's value too; only the key before '=' is a path.
  EXPECT_CONTAINS(override_error("train={a.lr: 1}"), "override 'train={a.lr: 1}': train.a.lr: dotted keys");
}

TEST(ConfigErrors, TagsAreErrors) {
  EXPECT_EQ(parse_error("train:\n  seed: !!float 5\n"),
            "configs/x.yaml:2: train.seed: YAML tag !!float is not supported; remove it (quote a value to "
            "make it a string)");
  EXPECT_CONTAINS(parse_error("train: {lr: !foo 0.001}\n"), "configs/x.yaml:1: train.lr: YAML tag !foo");
  EXPECT_EQ(parse_config("device: !!str cpu\n", kName).device, "cpu");
}

TEST(ConfigErrors, AliasBombsAreErrors) {
  std::string yaml = "data:\n  corpus: &l0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int level = 1; level <= 6; ++level) {
    const std::string alias = fmt::format("*l{}", level - 1);
    yaml += fmt::format("  x{0}: &l{0} [{1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}]\n", level, alias);
  }
  const std::string message = parse_error(yaml);
  EXPECT_CONTAINS(message, "configs/x.yaml:6: data.x4[");
  EXPECT_CONTAINS(message, "too many YAML nodes (aliases expand to more than 100000)");
}

TEST(ConfigErrors, WrongTypesNameWhatWasFound) {
  EXPECT_EQ(parse_error("train:\n  micro_batch: 8\n  lr: fast\n"),
            "configs/x.yaml:3: train.lr: expected a number, got \"fast\"");
  EXPECT_CONTAINS(parse_error("train:\n  lr:\n    value: 1\n"),
                  "configs/x.yaml:3: train.lr: expected a number, got a mapping");
  EXPECT_CONTAINS(parse_error("train: {lr: [1, 2]}\n"),
                  "configs/x.yaml:1: train.lr: expected a number, got a list");
  EXPECT_CONTAINS(parse_error("train:\n  lr:\n  seed: 1\n"),
                  "configs/x.yaml:2: train.lr: expected a number, got nothing");
  EXPECT_CONTAINS(parse_error("train: {micro_batch: 2.5}\n"),
                  "train.micro_batch: expected an integer, got 2.5");
  EXPECT_CONTAINS(parse_error("train: {micro_batch: true}\n"),
                  "train.micro_batch: expected an integer, got \"true\"");
  EXPECT_CONTAINS(parse_error("train: {max_steps: yes}\n"),
                  "train.max_steps: expected an integer, got \"yes\"");
  EXPECT_CONTAINS(parse_error("train: {lr: .nan}\n"), "train.lr: expected a number, got \".nan\"");
  EXPECT_CONTAINS(parse_error("train: {seed: -1}\n"), "configs/x.yaml:1: train.seed: must be >= 0, got -1");
  EXPECT_CONTAINS(parse_error("train: {micro_batch: 3000000000}\n"),
                  "train.micro_batch: must be <= 2147483647, got 3000000000");
  EXPECT_CONTAINS(parse_error("train: {seed: 18446744073709551616}\n"),
                  "train.seed: expected an integer from 0 to");
  EXPECT_CONTAINS(parse_error("device: [cpu]\n"), "configs/x.yaml:1: device: expected a string, got a list");
  EXPECT_CONTAINS(parse_error("train: 5\n"),
                  "configs/x.yaml:1: train: expected a mapping of keys (micro_batch, seq_len,");
  EXPECT_CONTAINS(parse_error("data:\n  corpus:\n    - a.txt\n    - {b: 1}\n"),
                  "configs/x.yaml:4: data.corpus[1]: expected a path, got a mapping");
  EXPECT_CONTAINS(parse_error("data: {corpus: {a: 1}}\n"),
                  "data.corpus: expected a path or a list of paths, got a mapping");
}

TEST(ConfigErrors, AQuotedNumberIsAString) {
  EXPECT_EQ(parse_error("train:\n  lr: \"3e-4\"\n"),
            "configs/x.yaml:2: train.lr: expected a number, got \"3e-4\" (a quoted string; write numbers "
            "without quotes)");
}

TEST(ConfigErrors, EmptyStringsAreRejectedWhereAValueIsNeeded) {
  EXPECT_CONTAINS(parse_error("output_dir: \"\"\n"), "configs/x.yaml:1: output_dir: must not be empty");
  EXPECT_CONTAINS(parse_error("data: {corpus: [a.txt, '']}\n"), "data.corpus[1]: a path must not be empty");
  EXPECT_EQ(parse_config("data: {document_separator: ''}\n", kName).data.document_separator, "");
}

struct RangeCase {
  std::string key, value, wanted;
};

TEST(ConfigErrors, OutOfRangeValuesNameTheBounds) {
  const std::vector<RangeCase> cases = {
      {"train.micro_batch", "0", "must be >= 1, got 0"},
      {"train.seq_len", "-4", "must be >= 1, got -4"},
      {"train.grad_accum", "0", "must be >= 1, got 0"},
      {"train.max_steps", "0", "must be >= 1, got 0"},
      {"train.max_tokens", "-1", "must be >= 0 (0 means no token limit), got -1"},
      {"train.lr", "0", "must be > 0 and < 1, got 0"},
      {"train.lr", "1", "must be > 0 and < 1, got 1"},
      {"train.lr", "-3e-4", "must be > 0 and < 1, got -3e-4"},
      {"train.min_lr_ratio", "1.5", "must be >= 0 and <= 1, got 1.5"},
      {"train.warmup_steps", "-1", "must be >= 0, got -1"},
      {"train.weight_decay", "-0.1", "must be >= 0 and <= 1, got -0.1"},
      {"train.beta1", "1", "must be >= 0 and < 1, got 1"},
      {"train.dropout", "1", "must be >= 0 and < 1, got 1"},
      {"train.beta2", "-0.5", "must be >= 0 and < 1, got -0.5"},
      {"train.eps", "0", "must be > 0 and < 1, got 0"},
      {"train.grad_clip", "-1", "must be >= 0 (0 disables clipping), got -1"},
      {"train.eval_interval", "0", "must be >= 1 (it counts steps between evaluations), got 0"},
      {"train.eval_steps", "0", "must be >= 1, got 0"},
      {"train.checkpoint_interval", "0", "must be >= 1 (it counts steps between checkpoints), got 0"},
      {"train.keep_last", "0", "must be >= 1 (the number of checkpoints kept), got 0"},
      {"train.max_bad_steps", "0", "must be >= 1, got 0"},
      {"data.val_fraction", "0.6", "must be >= 0 and <= 0.5, got 0.6"},
      {"data.val_fraction", "-0.01", "must be >= 0 and <= 0.5, got -0.01"},
      {"data.shard_tokens", "0", "must be >= 1, got 0"},
      {"model.n_layer", "-1", "must be >= 0 and <= 1024 (0 takes it from the preset), got -1"},
      {"model.n_embd", "100000", "must be >= 0 and <= 65536 (0 takes it from the preset), got 100000"},
      {"model.vocab", "-5", "must be >= 0 and <= 16777216 (0 takes it from the tokenizer), got -5"},
  };
  for (const RangeCase& c : cases) {
    const size_t dot = c.key.find('.');
    const std::string yaml =
        fmt::format("# line 1\n{}:\n  {}: {}\n", c.key.substr(0, dot), c.key.substr(dot + 1), c.value);
    EXPECT_EQ(parse_error(yaml), fmt::format("configs/x.yaml:3: {}: {}", c.key, c.wanted));
  }
}

TEST(ConfigErrors, EnumsListTheirChoices) {
  EXPECT_EQ(parse_error("train:\n  schedule: cosin\n"),
            "configs/x.yaml:2: train.schedule: expected one of cosine, linear, constant, got \"cosin\"; did "
            "you mean cosine?");
  EXPECT_CONTAINS(parse_error("device: gpu\n"),
                  "configs/x.yaml:1: device: expected one of cpu, cuda, auto, got \"gpu\"");
  EXPECT_CONTAINS(parse_error("data: {invalid_utf8: ignore}\n"),
                  "data.invalid_utf8: expected one of error, replace");
  EXPECT_CONTAINS(
      parse_error("model:\n  preset: gpt2-125m\n"),
      "configs/x.yaml:2: model.preset: expected one of gpt2-tiny, gpt2-124m, gpt2-350m, gpt2-774m, "
      "gpt2-1558m, got \"gpt2-125m\"; did you mean gpt2-124m?");
}

TEST(ConfigErrors, ShapeIsCheckedAfterThePresetIsApplied) {
  // gpt2-124m has n_embd 768: 10 heads do not divide it; 16 do.
  EXPECT_CONTAINS(parse_error("model:\n  preset: gpt2-124m\n  n_head: 10\n"),
                  "configs/x.yaml:3: model.n_head: model.n_embd 768 is not divisible by model.n_head 10");
  EXPECT_EQ(parse_config("model: {preset: gpt2-124m, n_head: 16}\n", kName).model.n_head, 16);
  EXPECT_CONTAINS(parse_error("model:\n  n_embd: 130\n"),
                  "configs/x.yaml:2: model.n_embd: model.n_embd 130 is not divisible");
  // gpt2-tiny's context is 256 positions.
  EXPECT_CONTAINS(parse_error("train:\n  seq_len: 512\n"),
                  "configs/x.yaml:2: train.seq_len: 512 is longer than the model's context of 256 positions");
  EXPECT_CONTAINS(parse_error("model:\n  context: 128\n"),
                  "configs/x.yaml:2: model.context: 128 positions are fewer than train.seq_len 256");
  EXPECT_EQ(parse_config("model: {context: 512}\ntrain: {seq_len: 512}\n", kName).train.seq_len, 512);
}

TEST(ConfigErrors, ATrainedTokenizerNeedsAVocabSizeAndOnlyItTakesOne) {
  EXPECT_CONTAINS(
      parse_error("data:\n  tokenizer: train\n"),
      "configs/x.yaml:2: data.tokenizer: data.tokenizer: train needs data.vocab_size of at least 257");
  EXPECT_CONTAINS(
      parse_error("data:\n  tokenizer: train\n  vocab_size: 256\n"),
      "configs/x.yaml:3: data.vocab_size: data.tokenizer: train needs data.vocab_size of at least "
      "257 (256 bytes + <|endoftext|>), got 256");
  EXPECT_CONTAINS(parse_error("data:\n  vocab_size: 8192\n"),
                  "configs/x.yaml:2: data.vocab_size: applies only to data.tokenizer: train");
  EXPECT_CONTAINS(parse_error("data:\n  tokenizer: byte\n  pre_tokenizer: gpt2-cjk\n"),
                  "configs/x.yaml:3: data.pre_tokenizer: applies only to data.tokenizer: train");
  EXPECT_CONTAINS(parse_error("data: {tokenizer: train, vocab_size: 300, pre_tokenizer: cjk}\n"),
                  "data.pre_tokenizer");
  const RunConfig config =
      parse_config("data: {tokenizer: train, vocab_size: 8192, pre_tokenizer: gpt2-cjk}\n", kName);
  EXPECT_EQ(config.data.vocab_size, 8192);
  EXPECT_EQ(config.data.pre_tokenizer, "gpt2-cjk");
  EXPECT_EQ(parse_config(to_yaml(config), kName), config);
}

TEST(ConfigErrors, TheFileItself) {
  EXPECT_CONTAINS(parse_error(""), "configs/x.yaml:1: the config is empty");
  EXPECT_CONTAINS(parse_error("# nothing but comments\n\n"), "configs/x.yaml:1: the config is empty");
  EXPECT_CONTAINS(
      parse_error("- a\n- b\n"),
      "configs/x.yaml:1: the top level must be a mapping of keys (model, data, train, distributed, "
      "init_from, device, precision, output_dir), got a list");
  EXPECT_CONTAINS(parse_error("just text\n"), "the top level must be a mapping of keys");
  EXPECT_CONTAINS(parse_error("train:\n  lr: 1e-3\n  seq_len: [64\n"), "configs/x.yaml:");
  EXPECT_CONTAINS(parse_error("train:\n  lr: 1e-3\n seq_len: 2\n"), "configs/x.yaml:3: YAML syntax error");
  EXPECT_CONTAINS(parse_error("train: {lr: 1e-3}\n---\ntrain: {lr: 2e-3}\n"),
                  "configs/x.yaml:2: a second YAML document starts here");
}

TEST(ConfigErrors, MissingFileAndDirectory) {
  testing::TempDir dir;
  const std::string missing = (dir / "nope.yaml").string();
  try {
    load_config(missing);
    FAIL() << "a missing file loaded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot open the config: No such file or directory");
  }
  try {
    load_config(dir.path().string());
    FAIL() << "a directory loaded";
  } catch (const Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), dir.path().string() + ": is a directory");
  }
}

// ---------------------------------------------------------------- overrides

TEST(ConfigOverrides, ApplyAfterTheFileInOrder) {
  RunConfig config = parse_config("train: {lr: 1e-3, seq_len: 64}\n", kName,
                                  {"train.lr=2e-3", "device=cpu", "train.lr=3e-3", "model.n_layer=2"});
  EXPECT_EQ(config.train.lr, 3e-3);
  EXPECT_EQ(config.train.seq_len, 64);
  EXPECT_EQ(config.device, "cpu");
  EXPECT_EQ(config.model.n_layer, 2);
}

TEST(ConfigOverrides, ValuesAreYaml) {
  RunConfig config = parse_config("data: {corpus: old.txt}\n", kName,
                                  {"data.corpus=[a.txt,b.txt, \"c d.txt\"]", "train={seq_len: 32, lr: 1e-4}",
                                   "data.document_separator=", "data.tokenizer='byte'"});
  EXPECT_EQ(config.data.corpus, (std::vector<std::string>{"a.txt", "b.txt", "c d.txt"}));
  EXPECT_EQ(config.train.seq_len, 32);
  EXPECT_EQ(config.train.lr, 1e-4);
  EXPECT_EQ(config.data.document_separator, "");
  EXPECT_EQ(config.data.tokenizer, "byte");
  EXPECT_EQ(parse_config("{}", kName, {"data.corpus=one.txt"}).data.corpus,
            std::vector<std::string>{"one.txt"});
}

TEST(ConfigOverrides, ErrorsNameTheOverride) {
  EXPECT_EQ(override_error("train.lr=abc"),
            "override 'train.lr=abc': train.lr: expected a number, got \"abc\"");
  EXPECT_EQ(override_error("train.lr"), "override 'train.lr': expected key=value, e.g. train.lr=3e-4");
  EXPECT_EQ(override_error("=3"), "override '=3': the key before '=' is empty");
  EXPECT_EQ(override_error("train.lrr=3"),
            "override 'train.lrr=3': train.lrr: unknown key; did you mean train.lr?");
  EXPECT_EQ(
      override_error("train.checkpoint_interval=0"),
      "override 'train.checkpoint_interval=0': train.checkpoint_interval: must be >= 1 (it counts steps "
      "between checkpoints), got 0");
  EXPECT_EQ(override_error("train.lr="), "override 'train.lr=': train.lr: expected a number, got \"\"");
  EXPECT_CONTAINS(override_error("data.corpus=[a.txt"),
                  "override 'data.corpus=[a.txt': data.corpus: YAML syntax error");
  EXPECT_CONTAINS(override_error("train={lr: 1, lr: 2}"),
                  "override 'train={lr: 1, lr: 2}': train.lr: duplicate key");
  EXPECT_CONTAINS(override_error("train=3"), "override 'train=3': train: expected a mapping of keys");
  // A null value would otherwise set nothing at all, silently.
  EXPECT_EQ(override_error("train=---"),
            "override 'train=---': train: the value is null (empty YAML); give a value, or write key= for "
            "an empty string");
  EXPECT_CONTAINS(override_error("model=~"), "override 'model=~': model: the value is null");
  EXPECT_CONTAINS(override_error("train.lr=null"), "override 'train.lr=null': train.lr: the value is null");
  EXPECT_CONTAINS(override_error("train.seq_len=4096"),
                  "override 'train.seq_len=4096': train.seq_len: 4096 is longer");
}

// ---------------------------------------------------------------- writing

// Every key of the schema, written out by hand so a field that to_yaml forgets fails here.
const std::vector<std::string> kAllKeys = {
    "model.preset",
    "model.n_layer",
    "model.n_head",
    "model.n_embd",
    "model.context",
    "model.vocab",
    "data.corpus",
    "data.tokenizer",
    "data.vocab_size",
    "data.pre_tokenizer",
    "data.val_fraction",
    "data.train_only",
    "data.decontaminate_chars",
    "data.corpus_repeat",
    "data.invalid_utf8",
    "data.document_separator",
    "data.dir",
    "data.shard_tokens",
    "train.micro_batch",
    "train.seq_len",
    "train.grad_accum",
    "train.max_steps",
    "train.max_tokens",
    "train.lr",
    "train.min_lr_ratio",
    "train.warmup_steps",
    "train.schedule",
    "train.weight_decay",
    "train.beta1",
    "train.beta2",
    "train.eps",
    "train.grad_clip",
    "train.dropout",
    "train.recompute",
    "train.seed",
    "train.eval_interval",
    "train.eval_steps",
    "train.checkpoint_interval",
    "train.keep_last",
    "train.resume",
    "train.max_bad_steps",
    "distributed.hold_fixed",
    "distributed.zero_stage",
    "distributed.bucket_mb",
    "distributed.timeout_s",
    "distributed.checkpoint_timeout_s",
    "distributed.rendezvous",
    "init_from",
    "device",
    "precision",
    "output_dir",
};

void collect_keys(const YAML::Node& node, const std::string& prefix, std::set<std::string>& keys) {
  for (const auto& entry : node) {
    const std::string key = prefix + entry.first.as<std::string>();
    if (entry.second.IsMap()) {
      collect_keys(entry.second, key + ".", keys);
    } else {
      keys.insert(key);
    }
  }
}

std::set<std::string> keys_of_yaml(const std::string& text) {
  std::set<std::string> keys;
  collect_keys(YAML::Load(text), "", keys);
  return keys;
}

TEST(ConfigYaml, WritesEveryKey) {
  EXPECT_EQ(keys_of_yaml(to_yaml(RunConfig{})), std::set<std::string>(kAllKeys.begin(), kAllKeys.end()));
}

TEST(ConfigYaml, DefaultsRoundTrip) {
  RunConfig config;
  config.source = kName;
  EXPECT_EQ(parse_config(to_yaml(config), kName), config);
}

TEST(ConfigYaml, EveryFieldRoundTripsExactly) {
  RunConfig c;
  c.source = kName;
  c.model = {"gpt2-350m", 3, 8, 512, 2048, 321};
  c.data.corpus = {"a.txt",     "poems/*.txt", "dir with spaces/",
                   "#hash.txt", "x: y",        "-dash",
                   "'quoted'",  "\"double\"",  "诗/唐.txt",
                   "123",       "true",        "null",
                   "~",         "[x]",         "a,b",
                   "*star",     "&amp",        "!bang"};
  c.data.tokenizer = "tok/tokenizer.json";
  c.data.val_fraction = 0.1 + 0.2;  // 0.30000000000000004: needs all 17 digits
  c.data.invalid_utf8 = "replace";
  c.data.document_separator = "---\n\t\"<|end|>\" \\ \x01 ";
  c.data.dir = "yes";
  c.data.shard_tokens = int64_t{1} << 40;
  c.train.micro_batch = 3;
  c.train.seq_len = 2048;
  c.train.grad_accum = 7;
  c.train.max_steps = int64_t{1} << 50;
  c.train.max_tokens = 123'456'789'012;
  c.train.lr = 3.0000000000000004e-4;
  c.train.min_lr_ratio = 1.0 / 3.0;
  c.train.warmup_steps = 17;
  c.train.schedule = "constant";
  c.train.weight_decay = 1e-300;
  c.train.beta1 = 0.8999999999999999;
  c.train.beta2 = 0.999;
  c.train.eps = 4.9406564584124654e-324;  // the smallest subnormal double
  c.train.grad_clip = 1e10;
  c.train.dropout = 0.125;
  c.train.seed = std::numeric_limits<uint64_t>::max();
  c.train.eval_interval = 9;
  c.train.eval_steps = 11;
  c.train.checkpoint_interval = 13;
  c.distributed.hold_fixed = "grad_accum";
  c.distributed.zero_stage = 1;
  c.distributed.bucket_mb = 0.1 + 0.2;
  c.distributed.timeout_s = 1e-3;
  c.distributed.checkpoint_timeout_s = 7200.5;
  c.distributed.rendezvous = "/shared fs/rdzv";
  c.init_from = "runs/base/step_00001000";
  c.train.keep_last = 2;
  c.train.resume = "runs/x/checkpoints/step-100";
  c.train.max_bad_steps = 1;
  c.device = "cuda";
  c.output_dir = "out dir/run: 1";
  const std::string yaml = to_yaml(c);
  EXPECT_EQ(parse_config(yaml, kName), c) << yaml;
  // Other YAML readers see the same strings (yaml-cpp's own Node here).
  YAML::Node node = YAML::Load(yaml);
  EXPECT_EQ(node["data"]["document_separator"].as<std::string>(), c.data.document_separator);
  EXPECT_EQ(node["data"]["corpus"].as<std::vector<std::string>>(), c.data.corpus);
}

TEST(ConfigYaml, EmptyCorpusRoundTrips) {
  RunConfig config;
  config.source = kName;
  config.data.corpus.clear();
  EXPECT_EQ(parse_config(to_yaml(config), kName), config);
}

// ---------------------------------------------------------------- the shipped configs

TEST(ShippedConfigs, ExampleLoadsAndDocumentsEveryKey) {
  const std::string path = (testing::source_dir() / "configs" / "example.yaml").string();
  const RunConfig config = load_config(path);
  EXPECT_EQ(config.model.preset, "gpt2-tiny");
  EXPECT_EQ(keys_of_yaml(testing::read_file(path)), std::set<std::string>(kAllKeys.begin(), kAllKeys.end()));
  // Each key carries a comment on its line or the line above.
  std::istringstream text(testing::read_file(path));
  std::vector<std::string> lines;
  for (std::string line; std::getline(text, line);) lines.push_back(line);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const bool is_leaf_key =
        line.find(": ") != std::string::npos && line.find_first_not_of(' ') != line.find('#');
    if (!is_leaf_key) continue;
    const bool commented =
        line.find('#') != std::string::npos || (i > 0 && lines[i - 1].find('#') != std::string::npos);
    EXPECT_TRUE(commented) << "configs/example.yaml line " << i + 1 << " has no comment: " << line;
  }
}

TEST(ShippedConfigs, Gpt2SmallLoads) {
  const RunConfig config = load_config((testing::source_dir() / "configs" / "gpt2-124m.yaml").string());
  EXPECT_EQ(config.model.preset, "gpt2-124m");
  EXPECT_EQ(config.train.seq_len, 1024);
}

TEST(ShippedConfigs, EveryConfigLoads) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::source_dir() / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(entry.path().string())) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 5);  // example, tang300, gpt2-124m, novels-base, finetune-novel
}

TEST(ShippedConfigs, FinetuneNovelStartsFromTheBaseWithItsTokenizer) {
  const RunConfig config = load_config((testing::source_dir() / "configs" / "finetune-novel.yaml").string());
  EXPECT_EQ(config.init_from, "runs/novels-base/latest");
  EXPECT_EQ(config.data.tokenizer, config.init_from + "/tokenizer.json");
  EXPECT_EQ(config.train.grad_accum % 2, 0) << "two ranks must be able to share the accumulation";
}

}  // namespace
}  // namespace inkstone
