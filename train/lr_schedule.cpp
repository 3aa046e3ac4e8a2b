#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/error.h"

namespace inkstone {

double learning_rate(const TrainConfig& config, int64_t step, int64_t total_steps) {
  const double lr = config.lr;
  const int64_t warmup = config.warmup_steps;
  // step + 1 so that the first update already moves the weights (lr / warmup, not 0).
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (config.schedule == "constant") return lr;

  // A run no longer than its warmup has nothing left to decay over: it sits at the floor.
  const int64_t decay_steps = total_steps - warmup;
  const double ratio =
      decay_steps <= 0
          ? 1.0
          : std::clamp(static_cast<double>(step - warmup) / static_cast<double>(decay_steps), 0.0, 1.0);
  const double min_lr = lr * config.min_lr_ratio;
  if (config.schedule == "cosine")
    return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * ratio)) * (lr - min_lr);
  if (config.schedule == "linear") return lr - ratio * (lr - min_lr);
  fail("internal error: unknown learning-rate schedule '{}' passed config validation", config.schedule);
}

}  // namespace inkstone
