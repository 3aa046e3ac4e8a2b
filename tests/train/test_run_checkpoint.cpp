// Run checkpoints: round trip, `latest`, and crash safety — a training process killed (SIGKILL) at many
// instants while it writes checkpoints always leaves a `latest` that loads and resumes.
#include "train/run_checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/model_checkpoint.h"
#include "runtime/tokenizer.h"
#include "support/test_support.h"
#include "support/tiny_run.h"

namespace inkstone::testing {
namespace {
namespace fs = std::filesystem;

struct TinyModel {
  std::unique_ptr<Backend> backend = make_backend("cpu");
  GPT2Shape shape{.n_layer = 1, .n_head = 2, .n_embd = 16, .context = 8, .vocab = 257};
  GPT2 model{*backend, shape, 1, 8};
  AdamWOptimizer optimizer{model, AdamWConfig{}};
};

RunConfig tiny_config() {
  RunConfig config;
  config.model = ModelConfig{.preset = "gpt2-tiny", .n_layer = 1, .n_head = 2, .n_embd = 16, .context = 8};
  config.train.seq_len = 8;
  config.train.micro_batch = 1;
  return config;
}

TEST(RunCheckpoint, RoundTripsWeightsMomentsAndState) {
  TempDir tmp;
  TinyModel a;
  a.model.initialize(5);
  const std::vector<int32_t> tokens{1, 2, 3, 4, 5, 6, 7, 8}, targets{2, 3, 4, 5, 6, 7, 8, 9};
  a.model.forward(tokens, targets, 1, 8);
  a.model.backward();
  a.optimizer.step(1e-3f);
  TrainState state;
  state.step = 7;
  state.optimizer_steps = 1;
  state.tokens = 56;
  state.data_cursor = {.epoch = 2, .index = 3};
  state.data_seed = 99;
  state.elapsed_s = 1.5;
  const fs::path dir = write_run_checkpoint(tmp.path(), a.model, a.optimizer, state, tiny_config(),
                                            ByteTokenizer().to_json(), 3);
  EXPECT_EQ(dir, tmp / "step_00000007");
  EXPECT_EQ(latest_checkpoint(tmp.path()), dir);

  TinyModel b;
  const TrainState loaded = load_run_checkpoint(dir, b.model, b.optimizer);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.tokens, 56);
  EXPECT_EQ(loaded.data_cursor, (DataCursor{.epoch = 2, .index = 3}));
  EXPECT_EQ(loaded.data_seed, 99u);
  EXPECT_EQ(b.optimizer.steps(), 1);
  for (const ParamInfo& p : a.model.parameters()) {
    EXPECT_EQ(a.model.read_parameter(p.name), b.model.read_parameter(p.name)) << p.name;
  }
  const auto host = [](const TinyModel& t, Tensor buffer) {
    std::vector<float> v(static_cast<size_t>(buffer.numel()));
    t.backend->download(v.data(), buffer);
    return v;
  };
  EXPECT_EQ(host(a, a.optimizer.m()), host(b, b.optimizer.m()));
  EXPECT_EQ(host(a, a.optimizer.v()), host(b, b.optimizer.v()));
}

TEST(RunCheckpoint, KeepsLastNAndRemovesStaleTemporaries) {
  TempDir tmp;
  TinyModel a;
  a.model.initialize(1);
  fs::create_directories(tmp / ".step_00000002.tmp");  // as a crash mid-write leaves it
  for (int64_t step : {1, 2, 3, 4}) {
    TrainState state;
    state.step = step;
    write_run_checkpoint(tmp.path(), a.model, a.optimizer, state, tiny_config(), ByteTokenizer().to_json(),
                         2);
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step_00000003", "step_00000004"}));
}

TEST(RunCheckpoint, StepsBeyondEightDigitsKeepWorking) {
  TempDir tmp;
  TinyModel a;
  TrainState state;
  state.step = 123'456'789;
  write_run_checkpoint(tmp.path(), a.model, a.optimizer, state, tiny_config(), ByteTokenizer().to_json(), 1);
  EXPECT_EQ(latest_checkpoint(tmp.path()), tmp / "step_123456789");
}

TEST(RunCheckpoint, LatestPointingNowhereIsAClearError) {
  TempDir tmp;
  fs::create_directory_symlink("step_00000009", tmp / "latest");
  const std::string error = error_of([&] { latest_checkpoint(tmp.path()); });
  EXPECT_NE(error.find("not a checkpoint directory"), std::string::npos) << error;
  EXPECT_FALSE(latest_checkpoint(tmp / "elsewhere").has_value());
}

TEST(RunCheckpoint, SigkillAtAnyInstantLeavesALatestThatLoadsAndResumes) {
  TempDir tmp;
  const TinyRun run = make_tiny_run(tmp.path());
  // A checkpoint after every step, so that most of the process's time is spent writing one.
  const std::vector<std::string> overrides{"train.schedule=constant", "train.checkpoint_interval=1",
                                           "train.keep_last=2", "train.eval_interval=1000000",
                                           "train.resume=auto"};
  auto forever = train_args(run, overrides);
  forever.push_back("train.max_steps=1000000");
  std::mt19937 rng(20261129);
  std::uniform_int_distribution<int> delay_ms(30, 700);
  int64_t last_step = 0;
  int killed_mid_write = 0;
  constexpr int kKills = 25;
  {
    // The first process runs until its first checkpoint exists, so that every kill below (start-up
    // included) lands in a run that resumes.
    CliProcess first(forever);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!latest_checkpoint(run.output_dir) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    first.kill(SIGKILL);
    first.wait();
  }
  for (int i = 0; i < kKills; ++i) {
    {
      CliProcess process(forever);  // each one resumes from the `latest` the previous one left
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      process.kill(SIGKILL);
      process.wait();
    }
    for (const auto& e : fs::directory_iterator(run.output_dir)) {
      const std::string name = e.path().filename().string();
      if (name.starts_with(".step_") && name.ends_with(".tmp")) ++killed_mid_write;
    }
    const auto latest = latest_checkpoint(run.output_dir);
    ASSERT_TRUE(latest.has_value()) << "kill " << i << ": `latest` vanished";
    const TrainState state = read_train_state(*latest);
    ASSERT_GE(state.step, last_step) << "kill " << i << ": `latest` went backwards";
    last_step = state.step;
    const ModelCheckpointInfo info = read_model_checkpoint_info(*latest);
    const auto backend = make_backend("cpu");
    const auto model = load_model(info, *backend, 1, 8);  // every tensor read and checked
    AdamWOptimizer optimizer(*model, AdamWConfig{});
    EXPECT_EQ(load_run_checkpoint(*latest, *model, optimizer).step, state.step);
  }
  std::printf("kills that landed inside a checkpoint write: %d of %d; latest at step %lld\n",
              killed_mid_write, kKills, static_cast<long long>(last_step));
  EXPECT_GT(last_step, 0);
  // The kills must have landed inside checkpoint writes, or this test would show nothing.
  EXPECT_GT(killed_mid_write, 0);

  // The run resumes from the last `latest` and reaches the same weights as a run never interrupted.
  const std::string end = "train.max_steps=" + std::to_string(last_step + 3);
  auto finish = train_args(run, overrides);
  finish.push_back(end);
  const CommandResult resumed = run_cli(finish);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto straight = train_args(run, overrides);
  straight.insert(straight.end(), {end, "output_dir=" + (tmp / "straight").string()});
  ASSERT_EQ(run_cli(straight).exit_code, 0);
  const std::string name = checkpoint_name(last_step + 3);
  EXPECT_EQ(read_file(run.output_dir / name / "model.safetensors"),
            read_file(tmp / "straight" / name / "model.safetensors"));
}

}  // namespace
}  // namespace inkstone::testing
