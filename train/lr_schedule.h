// Learning rate per optimizer step: linear warmup from lr/warmup_steps to lr over warmup_steps, then
// decay to lr * min_lr_ratio at total_steps (cosine or linear), or constant lr. Steps are 0-based:
// the update that makes step s+1 uses learning_rate(config, s, total). As llm.c's train_gpt2.cu.
// total_steps is the run's length (max_steps, or fewer when max_tokens ends it first).
#pragma once

#include <cstdint>

#include "runtime/config.h"

namespace inkstone {

double learning_rate(const TrainConfig& config, int64_t step, int64_t total_steps);

}  // namespace inkstone
