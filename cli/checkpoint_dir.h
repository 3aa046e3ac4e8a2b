// The CHECKPOINT argument of eval and generate: a checkpoint directory, or a run directory whose
// `latest` link names its newest checkpoint, so `inkstone eval runs/tang` works during and after training.
#pragma once

#include <filesystem>
#include <vector>

namespace inkstone::cli {

// The checkpoint directory `path` stands for. A path that is neither is returned as it is, so that
// reading it reports what a checkpoint must hold. Throws inkstone::Error when `latest` is broken.
std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& path);

// Every checkpoint `path` stands for, for commands that compare checkpoints: a checkpoint directory
// is itself; a run directory is each of its step_N directories that holds a checkpoint, by step. A
// path that is not a directory is returned as it is (reading it says what is missing). Throws
// inkstone::Error naming a directory that is neither a checkpoint nor a run with one.
std::vector<std::filesystem::path> expand_checkpoint_dirs(const std::filesystem::path& path);

}  // namespace inkstone::cli
