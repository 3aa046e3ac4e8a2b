// The CHECKPOINT argument of eval and generate: a checkpoint directory, or a run directory whose
// `latest` link names its newest checkpoint, so `inkstone eval runs/tang` works during and after training.
#pragma once

#include <filesystem>

namespace inkstone::cli {

// The checkpoint directory `path` stands for. A path that is neither is returned as it is, so that
// reading it reports what a checkpoint must hold. Throws inkstone::Error when `latest` is broken.
std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& path);

}  // namespace inkstone::cli
