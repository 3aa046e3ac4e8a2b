#include "train/run_directory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fstream>
#include <sstream>
#include <system_error>

#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "runtime/read_file.h"
#include "runtime/tokenizer.h"
#include "train/run_checkpoint.h"

namespace inkstone {
namespace fs = std::filesystem;

namespace {

bool is_empty_or_absent(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  if (!fs::is_directory(dir, ec))
    fail("output_dir {} is a file, not a folder; set output_dir to a folder", dir.string());
  return fs::is_empty(dir, ec);
}

// output_dir holds a run of the same model, or is absent / empty. Throws otherwise.
void check_same_run(const RunConfig& config, const GPT2Shape& shape) {
  const fs::path dir(config.output_dir);
  if (is_empty_or_absent(dir)) return;
  const fs::path stored_path = dir / kRunConfigFile;
  if (!fs::is_regular_file(stored_path)) {
    fail(
        "output_dir {} is not empty and holds no inkstone run ({} is missing); set output_dir to a new or "
        "empty "
        "folder",
        dir.string(), kRunConfigFile);
  }
  const RunConfig stored =
      parse_config(read_whole_file(stored_path, "the run's config"), stored_path.string());
  GPT2Shape stored_shape;
  try {
    stored_shape = resolve_shape(stored.model, shape.vocab);
  } catch (const Error&) {
    stored_shape = resolve_architecture(stored.model);
  }
  if (stored.model.vocab != 0) stored_shape.vocab = stored.model.vocab;
  if (!(stored_shape == shape)) {
    fail(
        "output_dir {} holds a run of another model ({} there, {} in {}); set output_dir to a new folder to "
        "train "
        "this one",
        dir.string(), describe_shape(stored_shape), describe_shape(shape), config.source);
  }
  if (stored.data.dir != config.data.dir || stored.data.tokenizer != config.data.tokenizer) {
    fail(
        "output_dir {} holds a run on other data (data.dir {}, tokenizer {} there); set output_dir to a new "
        "folder to train on {}",
        dir.string(), stored.data.dir, stored.data.tokenizer, config.data.dir);
  }
}

// The checkpoint at `ckpt` was trained with this model, tokenizer and data order. Throws otherwise.
void check_checkpoint_matches(const fs::path& ckpt, const RunConfig& config, const GPT2Shape& shape,
                              const std::string& tokenizer_sha256, int world_size) {
  const ModelCheckpointInfo info = read_model_checkpoint_info(ckpt);
  if (!(info.shape == shape)) {
    fail(
        "cannot resume from {}: its model is {}, the config asks for {}; resume with the model it was "
        "trained "
        "with, or set train.resume=none and a new output_dir",
        ckpt.string(), describe_shape(info.shape), describe_shape(shape));
  }
  if (tokenizer_hash(info.tokenizer_json) != tokenizer_sha256) {
    fail(
        "cannot resume from {}: it was trained with another tokenizer than the one in data.dir; prepare the "
        "data "
        "with its tokenizer.json, or start a new run",
        ckpt.string());
  }
  const TrainState state = read_train_state(ckpt);  // a model-only checkpoint (an export) cannot resume a run
  const TrainConfig& was = info.config.train;
  const TrainConfig& now = config.train;
  const std::pair<const char*, std::pair<int64_t, int64_t>> data_order[] = {
      {"train.micro_batch", {was.micro_batch, now.micro_batch}},
      {"train.seq_len", {was.seq_len, now.seq_len}},
      {"train.grad_accum", {was.grad_accum, now.grad_accum}},
  };
  for (const auto& [key, values] : data_order) {
    if (values.first != values.second) {
      fail(
          "cannot resume from {}: it was trained with {} {}, the config says {}; the data order would "
          "change, so "
          "resume with {}={} or start a new run",
          ckpt.string(), key, values.first, values.second, key, values.first);
    }
  }
  if (state.data_seed != now.seed) {
    fail(
        "cannot resume from {}: it was trained with train.seed {}, the config says {}; resume with "
        "train.seed={} or start a new run",
        ckpt.string(), state.data_seed, now.seed, state.data_seed);
  }
  if (state.world_size != world_size) {
    // Each rank's data windows (and under ZeRO-1 its optimizer shard) depend on the world size.
    fail(
        "cannot resume from {}: it was trained by {} process{}, this run has {}; resume with the same number "
        "(mpirun -np {}) or start a new run",
        ckpt.string(), state.world_size, state.world_size == 1 ? "" : "es", world_size, state.world_size);
  }
}

// Checkpoint folders of a run (step_N), whether or not `latest` names one.
bool has_checkpoints(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.starts_with("step_")) return true;
  }
  return false;
}

void create_output_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create output_dir {}: {}", dir.string(), ec.message());
}

}  // namespace

std::string describe_shape(const GPT2Shape& s) {
  return fmt::format("n_layer {}, n_head {}, n_embd {}, context {}, vocab {}", s.n_layer, s.n_head, s.n_embd,
                     s.context, s.vocab);
}

RunDirectoryLock::RunDirectoryLock(const fs::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open output_dir {}: {}", dir.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    fail(
        "another `inkstone train` is using output_dir {}; wait for it to finish, or choose another "
        "output_dir",
        dir.string());
  }
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

RunDirectory open_run_directory(const RunConfig& config, const GPT2Shape& shape,
                                const std::string& tokenizer_sha256, int world_size) {
  const fs::path dir(config.output_dir);
  RunDirectory run;
  // Locked before it is inspected, so a second process cannot pass the same checks at the same time.
  // An absent folder is created first (an empty one is what a fresh run may use anyway).
  if (fs::exists(dir) && fs::is_directory(dir)) run.lock = std::make_unique<RunDirectoryLock>(dir);
  const std::string& resume = config.train.resume;
  std::optional<fs::path>& from = run.resume_from;
  if (resume == "none") {
    if (!is_empty_or_absent(dir)) {
      const bool is_run = fs::is_regular_file(dir / kRunConfigFile);
      fail(
          "output_dir {} is not empty{}; continue it with train.resume=auto, or set output_dir to a new "
          "folder",
          dir.string(), is_run ? " (it holds a run)" : "");
    }
  } else if (resume == "auto") {
    check_same_run(config, shape);
    if (fs::exists(dir)) from = latest_checkpoint(dir);
    if (!from && fs::exists(dir) && has_checkpoints(dir)) {
      fail(
          "output_dir {} holds checkpoints but no `latest`; point it at the one to continue from "
          "(ln -sfn step_NNNNNNNN {}/latest), or set output_dir to a new folder",
          dir.string(), dir.string());
    }
  } else {
    from = fs::path(resume);
    if (!fs::is_directory(*from)) {
      fail(
          "train.resume: {} is not a checkpoint directory; give a step_NNNNNNNN folder, a run's latest, or "
          "auto",
          resume);
    }
    check_same_run(config, shape);
  }
  if (from) check_checkpoint_matches(*from, config, shape, tokenizer_sha256, world_size);
  if (!run.lock) {
    run.created = !fs::exists(dir);
    create_output_dir(dir);
    run.lock = std::make_unique<RunDirectoryLock>(dir);
  }
  return run;
}

}  // namespace inkstone
