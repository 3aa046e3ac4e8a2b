#include "train/run_directory.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <system_error>

#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
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

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) fail("cannot read {}", path.string());
  return text.str();
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
  const RunConfig stored = parse_config(read_text(stored_path), stored_path.string());
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

// The checkpoint at `ckpt` was trained with this model and tokenizer. Throws otherwise.
void check_checkpoint_matches(const fs::path& ckpt, const GPT2Shape& shape,
                              const std::string& tokenizer_sha256) {
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
  read_train_state(ckpt);  // a model-only checkpoint (an export) cannot resume a run
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

std::optional<fs::path> open_run_directory(const RunConfig& config, const GPT2Shape& shape,
                                           const std::string& tokenizer_sha256) {
  const fs::path dir(config.output_dir);
  const std::string& resume = config.train.resume;
  std::optional<fs::path> from;
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
  if (from) check_checkpoint_matches(*from, shape, tokenizer_sha256);
  create_output_dir(dir);
  return from;
}

}  // namespace inkstone
