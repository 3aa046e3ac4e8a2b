// `inkstone train`: the training loop of one process.
//
// Per step: the learning rate of the schedule (train/lr_schedule.h); grad_accum micro-batches of
// micro_batch x seq_len tokens, each backward scaled so the gradient is that of the mean loss over every
// target of the step; AdamW with global-norm clipping (train/adamw.h). A step whose loss or gradient
// norm is NaN or Inf changes no weight and no optimizer state: it is counted and skipped (its batch
// is consumed), and max_bad_steps of them in a row stop the run with an error. Every eval_interval
// steps, and at the end, the validation loss over eval_steps batches from the start of the validation
// split; every checkpoint_interval steps, at the end and on SIGINT / SIGTERM, a checkpoint
// (train/run_checkpoint.h). Progress on stderr, metrics in OUTPUT_DIR/metrics.jsonl.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>

#include "runtime/config.h"
#include "runtime/gpt2.h"

namespace inkstone {

struct TrainHooks {
  // Runs after the backward passes of step `step` (0-based), before the optimizer: tests poison the
  // gradients here to exercise the NaN path.
  std::function<void(int64_t step, GPT2& model)> after_backward;
};

struct TrainResult {
  int64_t step = 0;       // steps done when the run ended
  int64_t steps_run = 0;  // of them, by this call (0 when a resumed run had already reached its end)
  int stopped_by = 0;     // the signal that stopped it early, 0 when it ran to the end
  std::filesystem::path last_checkpoint;
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  double last_val_loss = std::numeric_limits<double>::quiet_NaN();
  int rank = 0;  // of this process in a data-parallel job; only rank 0 reports
  int world_size = 1;
};

// Throws inkstone::Error on bad input (data, output_dir, resume checkpoint) and when the run stops on
// max_bad_steps NaN/Inf steps in a row.
TrainResult train_model(const RunConfig& config, const TrainHooks& hooks = {});

}  // namespace inkstone
