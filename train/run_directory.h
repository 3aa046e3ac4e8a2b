// The run directory (RunConfig::output_dir) and where a run starts from.
//
// A run directory holds config.yaml (the resolved config), metrics.jsonl, the checkpoints and `latest`
// (train/run_checkpoint.h). A run never writes into a directory that holds something else:
//   resume none   output_dir must be absent or empty;
//   resume auto   output_dir absent, empty, or a run of the same model and tokenizer: it continues from
//                 `latest` (or starts over when the run has no checkpoint yet);
//   resume PATH   starts from checkpoint PATH (same model and tokenizer), writing into output_dir, which
//                 must be absent, empty or a run of the same model.
// Resuming also refuses a checkpoint trained with another micro_batch, seq_len, grad_accum or seed: the
// data order would silently change. While a run trains, it holds an exclusive lock (flock) on its
// folder, so a second `inkstone train` into the same output_dir is refused instead of interleaving.
// Every refusal is one line naming the folder, what it holds and what to do.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "runtime/config.h"
#include "runtime/model_config.h"

namespace inkstone {

inline constexpr const char* kRunConfigFile = "config.yaml";

std::string describe_shape(
    const GPT2Shape& shape);  // "n_layer 4, n_head 4, n_embd 128, context 256, vocab 257"

// An exclusive flock on a directory, released on destruction (or when the process dies).
class RunDirectoryLock {
 public:
  explicit RunDirectoryLock(const std::filesystem::path& dir);  // throws inkstone::Error when taken
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

struct RunDirectory {
  std::optional<std::filesystem::path> resume_from;  // nullopt: start from freshly initialised weights
  std::unique_ptr<RunDirectoryLock> lock;            // held for the whole run
  bool created = false;                              // output_dir did not exist before
};

// Locks output_dir (creating it), checks it and the resume setting against `config` (whose model
// resolves to `shape` with the prepared tokenizer, whose hash is `tokenizer_sha256`), and says where
// the run starts from. A checkpoint to resume must come from a run of `world_size` processes.
RunDirectory open_run_directory(const RunConfig& config, const GPT2Shape& shape,
                                const std::string& tokenizer_sha256, int world_size = 1);

}  // namespace inkstone
