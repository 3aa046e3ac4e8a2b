// `init_from`: a run that starts from a pretrained model's weights (an inkstone checkpoint or a Hugging
// Face GPT-2 folder) takes the source's shape, and refuses data tokenized by another tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_source.h"
#include "runtime/prepare.h"
#include "support/hf_parity.h"
#include "support/test_support.h"
#include "support/tiny_run.h"
#include "train/trainer.h"

namespace inkstone::testing {
namespace {
namespace fs = std::filesystem;

// Every parameter of the model in `dir` (either kind of source), as init_from reads it.
std::vector<std::vector<float>> source_weights(const fs::path& dir) {
  const ModelSource source = read_model_source(dir);
  const auto backend = make_backend("cpu");
  GPT2 model(*backend, source.shape, 1, 1);
  load_model_weights(dir, model);
  std::vector<std::vector<float>> weights;
  for (const ParamInfo& p : model.parameters()) weights.push_back(model.read_parameter(p.name));
  return weights;
}

// The tiny run's config sets its own model; these leave the shape to the init_from source.
const std::vector<std::string> kShapeFromSource = {"model.n_layer=0", "model.n_head=0", "model.n_embd=0",
                                                   "model.context=0"};

std::vector<std::string> with_shape_from_source(std::vector<std::string> overrides) {
  overrides.insert(overrides.end(), kShapeFromSource.begin(), kShapeFromSource.end());
  return overrides;
}

// Trains `config` for its steps, returning the weights the first step's optimizer started from.
std::vector<std::vector<float>> weights_at_first_step(const RunConfig& config, GPT2Shape* shape) {
  std::vector<std::vector<float>> weights;
  TrainHooks hooks;
  hooks.after_backward = [&](int64_t step, GPT2& model) {
    if (step != 0) return;
    *shape = model.shape();
    for (const ParamInfo& p : model.parameters()) weights.push_back(model.read_parameter(p.name));
  };
  train_model(config, hooks);
  return weights;
}

TEST(TrainerInitFrom, StartsFromAnInkstoneCheckpointWithItsShape) {
  TempDir dir;
  const TinyRun run = make_tiny_run(dir.path());
  write_tiny_checkpoint(dir / "base", 16, 99);
  // The tiny run's own model is 32 wide with context 32; the source is kTinyCheckpointShape.
  const RunConfig config =
      load_config(run.config.string(), with_shape_from_source({"init_from=" + (dir / "base").string(),
                                                               "train.seq_len=16", "train.max_steps=2"}));
  GPT2Shape shape;
  const auto weights = weights_at_first_step(config, &shape);
  EXPECT_EQ(shape, kTinyCheckpointShape);
  EXPECT_EQ(weights, source_weights(dir / "base"));
  // The run directory's config records the shape it trained, so a resume rebuilds the same model.
  const RunConfig written = load_config((run.output_dir / "config.yaml").string());
  EXPECT_EQ(written.model.context, kTinyCheckpointShape.context);
  EXPECT_EQ(written.model.n_embd, kTinyCheckpointShape.n_embd);
}

TEST(TrainerInitFrom, StartsFromAHuggingFaceFolderWhenTheDataUsesItsTokenizer) {
  TempDir dir;
  const TinyRun run = make_tiny_run(dir.path());
  const fs::path hf = hf_parity_dir() / "hf_bf16";  // BF16 weights, "transformer." names, its own BPE
  const std::vector<std::string> data{"data.tokenizer=" + (hf / "tokenizer.json").string(),
                                      "data.dir=" + (dir / "hf_data").string()};
  std::ostringstream log;
  prepare_corpus(load_config(run.config.string(), data).data, log);
  std::vector<std::string> overrides = data;
  overrides.insert(overrides.end(), {"init_from=" + hf.string(), "train.seq_len=16", "train.max_steps=2"});
  GPT2Shape shape;
  const auto weights =
      weights_at_first_step(load_config(run.config.string(), with_shape_from_source(overrides)), &shape);
  EXPECT_EQ(shape, read_model_source(hf).shape);
  EXPECT_EQ(weights, source_weights(hf));
}

TEST(TrainerInitFrom, AModelKeyThatDisagreesWithTheSourceIsRefused) {
  TempDir dir;
  const TinyRun run = make_tiny_run(dir.path());  // its config sets n_embd 32 and context 32
  write_tiny_checkpoint(dir / "base", 16, 99);    // context 16
  const RunConfig config = load_config(run.config.string(), {"init_from=" + (dir / "base").string()});
  const std::string error = error_of([&] { train_model(config); });
  EXPECT_NE(error.find("model.context is 32, but init_from " + (dir / "base").string() + " has 16"),
            std::string::npos)
      << error;
}

TEST(TrainerInitFrom, DataTokenizedByAnotherTokenizerIsRefused) {
  TempDir dir;
  const TinyRun run = make_tiny_run(dir.path());            // byte-level data
  const fs::path hf = hf_parity_dir() / "inkstone_export";  // a 320-token BPE
  const RunConfig config = load_config(
      run.config.string(), with_shape_from_source({"init_from=" + hf.string(), "train.seq_len=16"}));
  const std::string error = error_of([&] { train_model(config); });
  EXPECT_NE(error.find(run.data_dir.string()), std::string::npos) << error;
  EXPECT_NE(error.find("data.tokenizer: " + (hf / "tokenizer.json").string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(run.output_dir)) << "a refused start writes nothing";
}

}  // namespace
}  // namespace inkstone::testing
