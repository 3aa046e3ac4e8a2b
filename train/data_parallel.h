// What a data-parallel training run agrees on across its ranks, beyond the gradient sums
// (train/gradient_sync.h): the batch arithmetic, identical configs and weights at the start, the
// checkpoint to resume, and the decisions taken together each step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runtime/comm.h"
#include "runtime/config.h"
#include "runtime/gpt2.h"

namespace inkstone {

// Micro-batches each rank accumulates per step. distributed.hold_fixed: global_batch divides the
// config's train.grad_accum (that of one process) among the ranks, so a config trains the same global
// batch on any number of them; grad_accum keeps it per rank. Throws when it does not divide evenly.
int grad_accum_per_rank(const RunConfig& config, int world_size);

// Throws unless every rank was started with the same resolved config (compared by a hash of its YAML).
void check_same_config(Communicator& comm, const std::string& config_yaml);

// Throws unless every rank holds bit-identical parameters (compared by a hash of their bytes).
void check_same_weights(Communicator& comm, GPT2& model);

// Rank 0's gradient norm on every rank: each rank's own may differ in its last bits (the reduction
// order follows its thread count or device), and a clip scale that differed would let the ranks'
// weights drift apart.
double agreed_norm(Communicator& comm, double norm);

// Rank 0's path (or its absence) on every rank.
std::optional<std::filesystem::path> broadcast_path(Communicator& comm,
                                                    const std::optional<std::filesystem::path>& path);

// The stop signal of any rank stops every rank at the same step: the largest signal number seen.
int any_stop_signal(Communicator& comm, int local_signal);

// A failure planted for the tests of a failing job: INKSTONE_TEST_FAIL=RANK:STEP:exit|hang|nan makes
// rank RANK, before its step STEP (0-based), throw an error (exit), stop answering (hang), or report a
// NaN loss for that step (returns true; the step must then be skipped by every rank). Unset: never.
bool planted_failure(int rank, int64_t step);

}  // namespace inkstone
