// The run directory (RunConfig::output_dir) and where a run starts from.
//
// A run directory holds config.yaml (the resolved config), metrics.jsonl, the checkpoints and `latest`
// (train/run_checkpoint.h). A run never writes into a directory that holds something else:
//   resume none   output_dir must be absent or empty;
//   resume auto   output_dir absent, empty, or a run of the same model and tokenizer: it continues from
//                 `latest` (or starts over when the run has no checkpoint yet);
//   resume PATH   starts from checkpoint PATH (same model and tokenizer), writing into output_dir, which
//                 must be absent, empty or a run of the same model.
// Every refusal is one line naming the folder, what it holds and what to do.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "runtime/config.h"
#include "runtime/model_config.h"

namespace inkstone {

inline constexpr const char* kRunConfigFile = "config.yaml";

std::string describe_shape(
    const GPT2Shape& shape);  // "n_layer 4, n_head 4, n_embd 128, context 256, vocab 257"

// Checks output_dir and the resume setting against `config` (whose model resolves to `shape` with the
// prepared tokenizer, whose hash is `tokenizer_sha256`), creates output_dir, and returns the
// checkpoint to resume from (nullopt: start from freshly initialised weights).
std::optional<std::filesystem::path> open_run_directory(const RunConfig& config, const GPT2Shape& shape,
                                                        const std::string& tokenizer_sha256);

}  // namespace inkstone
