// Checkpoints of a training run: OUTPUT_DIR/step_00000600/ holding the model files
// (runtime/model_checkpoint.h) plus
//   optimizer.safetensors  AdamW moments per parameter, "exp_avg.NAME" / "exp_avg_sq.NAME" (F32, HF shape)
//   state.json             step, optimizer updates, tokens seen, data cursor and seed, skipped-step
//                          counters, elapsed seconds, world size, the resolved config (YAML text)
// and OUTPUT_DIR/latest, a relative symlink to the newest complete checkpoint.
//
// Crash safety: a checkpoint is written into .step_00000600.tmp/, every file fsynced, the directory
// fsynced, renamed into place, OUTPUT_DIR fsynced; only then does `latest` move (a new symlink renamed
// over the old one, then OUTPUT_DIR fsynced again), and only after that are checkpoints beyond
// keep_last deleted. A crash at any instant leaves `latest` naming a complete checkpoint (or absent,
// before the first one); stale .tmp directories are removed by the next write.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runtime/config.h"
#include "runtime/data_loader.h"
#include "runtime/gpt2.h"
#include "train/adamw.h"

namespace inkstone {

inline constexpr const char* kLatestLink = "latest";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kTrainStateFile = "state.json";

struct TrainState {
  int64_t step = 0;             // loop steps done, skipped ones included (the schedule's position)
  int64_t optimizer_steps = 0;  // AdamW updates applied (its bias correction counter)
  int64_t tokens = 0;           // training tokens consumed
  DataCursor data_cursor;
  uint64_t data_seed = 0;
  int64_t skipped_steps = 0;  // NaN/Inf steps over the whole run
  int64_t bad_steps_in_a_row = 0;
  double elapsed_s = 0;  // training time over every process of this run
  int world_size = 1;
  std::string config_yaml;  // the resolved RunConfig
};

std::string checkpoint_name(int64_t step);  // "step_00000600"

// AdamW's moments over the whole parameter layout (F32, on the model's backend): the optimizer's own
// buffers, or under ZeRO-1 the ranks' shards gathered into full-size buffers.
struct AdamWMoments {
  Tensor m, v;
};

// Writes a checkpoint of `step` into output_dir (see above) and applies keep_last. Returns its path.
std::filesystem::path write_run_checkpoint(const std::filesystem::path& output_dir, const GPT2& model,
                                           const AdamWOptimizer& optimizer, const TrainState& state,
                                           const RunConfig& config, const std::string& tokenizer_json,
                                           int keep_last);
// The same with the moments given as full-layout buffers; the optimizer step is state.optimizer_steps.
std::filesystem::path write_run_checkpoint(const std::filesystem::path& output_dir, const GPT2& model,
                                           const AdamWMoments& moments, const TrainState& state,
                                           const RunConfig& config, const std::string& tokenizer_json,
                                           int keep_last);

// The checkpoint `latest` names, when there is one. Throws inkstone::Error when `latest` exists but
// does not name a checkpoint directory.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir);

// state.json of checkpoint `dir`, every field checked. Throws inkstone::Error naming the file.
TrainState read_train_state(const std::filesystem::path& dir);

// Loads the weights and AdamW moments of checkpoint `dir` into `model` and `optimizer` (whose shapes
// must match: the error names the tensor and both shapes) and returns its state.
TrainState load_run_checkpoint(const std::filesystem::path& dir, GPT2& model, AdamWOptimizer& optimizer);
// The same into full-layout moment buffers (the caller sets the optimizer's step from the state).
TrainState load_run_checkpoint(const std::filesystem::path& dir, GPT2& model, const AdamWMoments& moments);

}  // namespace inkstone
