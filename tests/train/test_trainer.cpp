// The training loop in-process: NaN/Inf steps are skipped without touching the weights and stop the
// run after max_bad_steps in a row; gradient accumulation normalises the loss over all micro-batches.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/model_checkpoint.h"
#include "support/test_support.h"
#include "support/tiny_run.h"
#include "train/run_checkpoint.h"

namespace inkstone::testing {
namespace {
namespace fs = std::filesystem;

RunConfig config_of(const TinyRun& run, std::vector<std::string> overrides) {
  return load_config(run.config.string(), overrides);
}

// Every parameter of checkpoint `dir`, in the model's order.
std::vector<std::vector<float>> weights_of(const fs::path& dir) {
  const ModelCheckpointInfo info = read_model_checkpoint_info(dir);
  const auto backend = make_backend("cpu");
  const auto model = load_model(info, *backend, 1, 1);
  std::vector<std::vector<float>> weights;
  for (const ParamInfo& p : model->parameters()) weights.push_back(model->read_parameter(p.name));
  return weights;
}

void poison_gradient(GPT2& model) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor grads = model.gradient_buffer();
  model.backend().upload(Tensor(grads.as<float>() + 3, DType::F32, {1}), &nan);
}

TEST(Trainer, SkipsANaNStepWithoutChangingWeightsOrOptimizerState) {
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  const RunConfig config = config_of(run, {"train.max_steps=4", "train.checkpoint_interval=1"});
  TrainHooks hooks;
  hooks.after_backward = [](int64_t step, GPT2& model) {
    if (step == 2) poison_gradient(model);  // the update that would make step 3
  };
  const TrainResult result = train_model(config, hooks);
  EXPECT_EQ(result.step, 4);
  const fs::path out = run.output_dir;
  EXPECT_EQ(weights_of(out / "step_00000002"), weights_of(out / "step_00000003"));
  EXPECT_NE(weights_of(out / "step_00000003"), weights_of(out / "step_00000004"));
  EXPECT_EQ(read_file(out / "step_00000002" / "optimizer.safetensors"),
            read_file(out / "step_00000003" / "optimizer.safetensors"));
  const TrainState state = read_train_state(out / "step_00000004");
  EXPECT_EQ(state.step, 4);
  EXPECT_EQ(state.optimizer_steps, 3);
  EXPECT_EQ(state.skipped_steps, 1);
  EXPECT_EQ(state.bad_steps_in_a_row, 0);
}

TEST(Trainer, StopsAfterMaxBadStepsInARow) {
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  const RunConfig config = config_of(run, {"train.max_steps=20", "train.max_bad_steps=3"});
  TrainHooks hooks;
  hooks.after_backward = [](int64_t step, GPT2& model) {
    if (step == 0 || step >= 2) poison_gradient(model);  // one bad step, a good one, then bad for good
  };
  const std::string error = error_of([&] { train_model(config, hooks); });
  EXPECT_NE(error.find("training stopped at step 5: 3 steps in a row"), std::string::npos) << error;
  EXPECT_NE(error.find("train.resume=auto"), std::string::npos) << error;
}

TEST(Trainer, ANonFiniteLossSkipsTheStepBeforeTheOptimizer) {
  // A NaN weight makes every later forward's loss NaN (the gradients never get a say): the loss branch
  // must skip those steps, count them and stop the run after max_bad_steps.
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  const RunConfig config = config_of(run, {"train.max_steps=20", "train.max_bad_steps=2"});
  TrainHooks hooks;
  hooks.after_backward = [](int64_t step, GPT2& model) {
    if (step != 1) return;
    std::vector<float> ln = model.read_parameter("ln_f.weight");
    ln[0] = std::numeric_limits<float>::quiet_NaN();
    model.write_parameter("ln_f.weight", ln);
  };
  const std::string error = error_of([&] { train_model(config, hooks); });
  // Step 2's update carries the NaN weight along (its gradients are finite); steps 3 and 4 have NaN losses.
  EXPECT_NE(error.find("training stopped at step 4: 2 steps in a row"), std::string::npos) << error;
  std::vector<bool> skipped;
  std::istringstream lines(read_file(run.output_dir / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record.contains("loss")) skipped.push_back(record["skipped"].get<bool>());
  }
  EXPECT_EQ(skipped, (std::vector<bool>{false, false, true}));  // step 4 stops before it is logged
}

// (step, loss, grad_norm) of every training record of a run.
std::vector<std::array<double, 3>> steps_of(const fs::path& run_dir) {
  std::vector<std::array<double, 3>> steps;
  std::istringstream lines(read_file(run_dir / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record.contains("loss")) {
      steps.push_back(
          {record["step"].get<double>(), record["loss"].get<double>(), record["grad_norm"].get<double>()});
    }
  }
  return steps;
}

TEST(Trainer, GradientAccumulationMatchesOneLargeBatch) {
  // micro_batch 4 x 1 and micro_batch 2 x 2 see the same windows in the same order (the loader hands
  // out consecutive windows of one permutation), so loss, gradient norm and weights must agree up to
  // float rounding. Summing instead of averaging the micro-batches would double the gradient norm.
  TempDir a_dir, b_dir;
  const TinyRun a = make_tiny_run(a_dir.path()), b = make_tiny_run(b_dir.path());
  train_model(config_of(a, {"train.max_steps=3", "train.checkpoint_interval=3"}));
  train_model(config_of(
      b, {"train.max_steps=3", "train.checkpoint_interval=3", "train.micro_batch=2", "train.grad_accum=2"}));
  const auto sa = steps_of(a.output_dir), sb = steps_of(b.output_dir);
  ASSERT_EQ(sa.size(), 3u);
  ASSERT_EQ(sb.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sa[i][0], sb[i][0]);
    EXPECT_NEAR(sa[i][1], sb[i][1], 1e-5 * sa[i][1]) << "loss of step " << i + 1;
    EXPECT_NEAR(sa[i][2], sb[i][2], 1e-4 * sa[i][2]) << "grad norm of step " << i + 1;
  }
  const auto wa = weights_of(a.output_dir / "step_00000003"), wb = weights_of(b.output_dir / "step_00000003");
  ASSERT_EQ(wa.size(), wb.size());
  double max_diff = 0;
  for (size_t t = 0; t < wa.size(); ++t) {
    for (size_t i = 0; i < wa[t].size(); ++i)
      max_diff = std::max(max_diff, double{std::fabs(wa[t][i] - wb[t][i])});
  }
  EXPECT_LT(max_diff, 1e-4);  // three steps at lr 3e-3 move weights by ~1e-2
}

}  // namespace
}  // namespace inkstone::testing

namespace inkstone::testing {
namespace {

TEST(Trainer, Bf16OnTheCpuIsAClearErrorBeforeAnythingIsWritten) {
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  const RunConfig config = config_of(run, {"device=cpu", "precision=bf16"});
  const std::string error = error_of([&] { train_model(config); });
  EXPECT_NE(error.find("precision: bf16 needs a GPU"), std::string::npos) << error;
  EXPECT_NE(error.find("precision: fp32 or auto"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(run.output_dir));
}

TEST(Trainer, RecomputeTrainsTheSameWeights) {
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  train_model(config_of(run, {"train.max_steps=4", "train.dropout=0.1"}));
  const auto kept = weights_of(run.output_dir / "step_00000004");
  train_model(config_of(run, {"train.max_steps=4", "train.dropout=0.1", "train.recompute=gelu+layernorm",
                              "output_dir=" + (tmp / "recomputed").string()}));
  EXPECT_EQ(weights_of(tmp / "recomputed" / "step_00000004"), kept);
}

}  // namespace
}  // namespace inkstone::testing
