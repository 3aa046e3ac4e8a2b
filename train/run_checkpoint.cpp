#include "train/run_checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <vector>

#include "runtime/checkpoint_manifest.h"
#include "runtime/durable_file.h"
#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/model_checkpoint.h"
#include "runtime/prepare.h"
#include "runtime/read_file.h"
#include "runtime/safetensors.h"

namespace inkstone {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kCheckpointPrefix = "step_";
constexpr int kStateFormat = 1;

// The step number of a checkpoint directory name, or -1 when it is not one.
int64_t step_of(const std::string& name) {
  // checkpoint_name pads to 8 digits; steps past 10^8 take more.
  if (!name.starts_with(kCheckpointPrefix) || name.size() < kCheckpointPrefix.size() + 8 ||
      name.size() > kCheckpointPrefix.size() + 18) {
    return -1;
  }
  int64_t step = 0;
  for (char c : name.substr(kCheckpointPrefix.size())) {
    if (c < '0' || c > '9') return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

// ".step_00000600.tmp": a hidden sibling of a checkpoint, never taken for one. (fmt rather than
// operator+, which trips a false -Wrestrict in GCC 12.)
std::string aside_name(const std::string& name, const char* suffix) {
  return fmt::format(".{}.{}", name, suffix);
}

std::vector<float> download_floats(Backend& backend, Tensor t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download(host.data(), t);
  return host;
}

// A sharded (ZeRO-1) optimizer holds part of the moments: its caller gathers them first.
void require_whole(const GPT2& model, const AdamWOptimizer& optimizer) {
  if (optimizer.shard_begin() != 0 || optimizer.shard_end() != model.parameter_buffer().numel()) {
    fail("internal: a sharded optimizer's moments must be gathered into full buffers to checkpoint them");
  }
}

std::string optimizer_file(const GPT2& model, const AdamWMoments& moments, int64_t optimizer_steps) {
  Backend& backend = model.backend();
  const std::vector<float> m = download_floats(backend, moments.m);
  const std::vector<float> v = download_floats(backend, moments.v);
  SafetensorsWriter writer;
  for (const ParamInfo& p : model.parameters()) {
    // The first numel() floats of a tensor are its HF-shaped values (wte's pad rows come after).
    const size_t n = static_cast<size_t>(p.numel());
    writer.add_floats("exp_avg." + p.name, p.shape, std::span(m).subspan(static_cast<size_t>(p.offset), n));
    writer.add_floats("exp_avg_sq." + p.name, p.shape,
                      std::span(v).subspan(static_cast<size_t>(p.offset), n));
  }
  writer.set_metadata("format", "inkstone-adamw");
  writer.set_metadata("step", std::to_string(optimizer_steps));
  return writer.serialize();
}

// Every file of a training checkpoint, as listed in its manifest.
std::vector<std::string> checkpoint_files() {
  return {kModelWeightsFile, kModelConfigFile, kTokenizerFile, kOptimizerFile, kTrainStateFile};
}

std::string state_json(const TrainState& s) {
  nlohmann::ordered_json j;
  j["format"] = kStateFormat;
  j["step"] = s.step;
  j["optimizer_steps"] = s.optimizer_steps;
  j["tokens"] = s.tokens;
  j["data"] = {{"seed", s.data_seed}, {"epoch", s.data_cursor.epoch}, {"index", s.data_cursor.index}};
  j["skipped_steps"] = s.skipped_steps;
  j["bad_steps_in_a_row"] = s.bad_steps_in_a_row;
  j["elapsed_s"] = s.elapsed_s;
  j["world_size"] = s.world_size;
  j["config"] = s.config_yaml;
  return j.dump(2) + "\n";
}

void remove_all_or_fail(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) fail("cannot remove {}: {}; remove it by hand", path.string(), ec.message());
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    fail("cannot rename {} to {}: {}; check the permissions and free space of the output folder",
         from.string(), to.string(), std::strerror(errno));
  }
}

// Swaps two directories in one step (renameat2 RENAME_EXCHANGE). False where the system cannot.
bool exchange_directories(const fs::path& a, const fs::path& b) {
#ifdef RENAME_EXCHANGE
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0;
#else
  (void)a;
  (void)b;
  return false;
#endif
}

// Points OUTPUT_DIR/latest at `name` atomically: a new symlink renamed over the old one.
void update_latest(const fs::path& output_dir, const std::string& name) {
  const fs::path link = output_dir / kLatestLink;
  const fs::path tmp = output_dir / (std::string(kLatestLink) + ".tmp");
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::symlink(name.c_str(), tmp.c_str()) != 0) {
    fail("cannot create {}: {}; check the permissions of the output folder", tmp.string(),
         std::strerror(errno));
  }
  rename_or_fail(tmp, link);
  fsync_directory(output_dir);
}

// Deletes the oldest checkpoints beyond keep_last, never the one `latest` names.
void apply_retention(const fs::path& output_dir, const std::string& latest_name, int keep_last) {
  std::vector<std::pair<int64_t, fs::path>> checkpoints;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && !entry.is_symlink() && step_of(name) >= 0 && name != latest_name) {
      checkpoints.emplace_back(step_of(name), entry.path());
    }
  }
  std::sort(checkpoints.begin(), checkpoints.end());
  const size_t keep_others = static_cast<size_t>(std::max(keep_last - 1, 0));
  while (checkpoints.size() > keep_others) {
    // Renamed out of the step_N namespace first, so a kill mid-delete never leaves a partial directory
    // under a checkpoint's name; the sweep below (or the next write's) removes the rest.
    const fs::path& doomed = checkpoints.front().second;
    const fs::path old = doomed.parent_path() / aside_name(doomed.filename().string(), "old");
    remove_all_or_fail(old);
    rename_or_fail(doomed, old);
    remove_all_or_fail(old);
    checkpoints.erase(checkpoints.begin());
  }
}

const nlohmann::json& field(const nlohmann::json& j, const char* key, const fs::path& file) {
  if (!j.is_object() || !j.contains(key))
    fail("{}: missing field \"{}\"; the checkpoint is damaged", file.string(), key);
  return j.at(key);
}

template <class T>
T integer_field(const nlohmann::json& j, const char* key, const fs::path& file, T min_value) {
  const nlohmann::json& v = field(j, key, file);
  if (!v.is_number_integer())
    fail("{}: \"{}\" must be an integer; the checkpoint is damaged", file.string(), key);
  const T value = v.get<T>();
  if (value < min_value)
    fail("{}: \"{}\" is {}, below {}; the checkpoint is damaged", file.string(), key, value, min_value);
  return value;
}

nlohmann::json read_state_json(const fs::path& dir) {
  const fs::path file = dir / kTrainStateFile;
  const std::string text = read_whole_file(
      file, "the training state",
      fmt::format("{} is not a training checkpoint (eval and generate need only the model)", dir.string()));
  try {
    return parse_json_bounded(text);
  } catch (const nlohmann::json::exception&) {
  } catch (const JsonTooDeep&) {
  }
  fail("{}: not valid JSON; the checkpoint is damaged: resume from another one", file.string());
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  return fmt::format("{}{:08d}", kCheckpointPrefix, step);
}

fs::path write_run_checkpoint(const fs::path& output_dir, const GPT2& model, const AdamWMoments& moments,
                              const TrainState& state, const RunConfig& config,
                              const std::string& tokenizer_json, int keep_last) {
  const std::string name = checkpoint_name(state.step);
  const fs::path final_dir = output_dir / name;
  const fs::path tmp_dir = output_dir / aside_name(name, "tmp");
  bool tmp_dir_holds_old = true;  // after an exchange with an existing checkpoint of this step
  remove_all_or_fail(tmp_dir);    // left by a crash in an earlier write
  std::error_code ec;
  fs::create_directories(tmp_dir, ec);
  if (ec)
    fail("cannot create {}: {}; check output_dir's permissions and free space", tmp_dir.string(),
         ec.message());

  write_model_files(tmp_dir, model, config, tokenizer_json);
  write_file_durably(tmp_dir / kOptimizerFile, optimizer_file(model, moments, state.optimizer_steps));
  write_file_durably(tmp_dir / kTrainStateFile, state_json(state));
  write_checkpoint_manifest(tmp_dir, checkpoint_files());
  fsync_directory(tmp_dir);

  // A checkpoint of this step can exist when a killed run got past it before `latest` moved: the
  // resumed run recomputes the same step, so the new copy replaces it.
  if (fs::exists(final_dir)) {
    // Swapped atomically, so `latest`, which may name this step, never points at a missing directory.
    // Where the file system cannot exchange, `latest` is first moved to a temporary copy of the old one.
    if (!exchange_directories(tmp_dir, final_dir)) {
      const fs::path old_dir = output_dir / aside_name(name, "old");
      remove_all_or_fail(old_dir);
      rename_or_fail(final_dir, old_dir);
      update_latest(output_dir, old_dir.filename().string());
      rename_or_fail(tmp_dir, final_dir);
      tmp_dir_holds_old = false;
    }
    fsync_directory(output_dir);
    remove_all_or_fail(tmp_dir_holds_old ? tmp_dir : output_dir / aside_name(name, "old"));
  } else {
    rename_or_fail(tmp_dir, final_dir);
    fsync_directory(output_dir);
  }
  update_latest(output_dir, name);
  apply_retention(output_dir, name, keep_last);
  // Stale temporaries of other steps (a crash mid-write) are garbage now that `latest` is newer.
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string n = entry.path().filename().string();
    if (n.starts_with(".step_") && (n.ends_with(".tmp") || n.ends_with(".old")))
      remove_all_or_fail(entry.path());
  }
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  const fs::path link = output_dir / kLatestLink;
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(link, ec))) {
    if (fs::exists(fs::symlink_status(link, ec))) {
      fail("{} is not a symlink to a checkpoint; move it away or choose another output_dir", link.string());
    }
    return std::nullopt;
  }
  const fs::path target = fs::read_symlink(link, ec);
  const fs::path dir = output_dir / target;
  std::string name = target.filename().string();
  // A write that replaces an existing step where directories cannot be exchanged parks `latest` on
  // .step_N.old for a moment; a crash then leaves it there, still a complete checkpoint.
  if (name.size() > 5 && name.starts_with(".") && name.ends_with(".old")) {
    name.erase(name.size() - 4);
    name.erase(0, 1);
  }
  if (ec || target.has_parent_path() || step_of(name) < 0 || !fs::is_directory(dir)) {
    fail(
        "{} points to {}, which is not a checkpoint directory; point it at one (ln -sfn step_NNNNNNNN {}) or "
        "remove it to start over",
        link.string(), target.string(), link.string());
  }
  return dir;
}

TrainState read_train_state(const fs::path& dir) {
  const fs::path file = dir / kTrainStateFile;
  const nlohmann::json j = read_state_json(dir);
  if (integer_field<int>(j, "format", file, 1) != kStateFormat) {
    fail("{}: unknown format; it was written by a newer inkstone", file.string());
  }
  TrainState s;
  s.step = integer_field<int64_t>(j, "step", file, 0);
  s.optimizer_steps = integer_field<int64_t>(j, "optimizer_steps", file, 0);
  s.tokens = integer_field<int64_t>(j, "tokens", file, 0);
  const nlohmann::json& data = field(j, "data", file);
  s.data_seed = integer_field<uint64_t>(data, "seed", file, 0);
  s.data_cursor.epoch = integer_field<uint64_t>(data, "epoch", file, 0);
  s.data_cursor.index = integer_field<uint64_t>(data, "index", file, 0);
  s.skipped_steps = integer_field<int64_t>(j, "skipped_steps", file, 0);
  s.bad_steps_in_a_row = integer_field<int64_t>(j, "bad_steps_in_a_row", file, 0);
  const nlohmann::json& elapsed = field(j, "elapsed_s", file);
  if (!elapsed.is_number() || !std::isfinite(elapsed.get<double>()) || elapsed.get<double>() < 0) {
    fail("{}: \"elapsed_s\" must be a non-negative number; the checkpoint is damaged", file.string());
  }
  s.elapsed_s = elapsed.get<double>();
  s.world_size = integer_field<int>(j, "world_size", file, 1);
  const nlohmann::json& config = field(j, "config", file);
  if (!config.is_string())
    fail("{}: \"config\" must be the run's YAML text; the checkpoint is damaged", file.string());
  s.config_yaml = config.get<std::string>();
  if (s.optimizer_steps > s.step)
    fail("{}: more optimizer steps than steps; the checkpoint is damaged", file.string());
  return s;
}

TrainState load_run_checkpoint(const fs::path& dir, GPT2& model, const AdamWMoments& moments) {
  if (!verify_checkpoint_manifest(dir, checkpoint_files())) {
    fail(
        "{}: {} is missing; a training checkpoint always has one: the checkpoint is damaged or was not "
        "written "
        "by `inkstone train`",
        dir.string(), kChecksumsFile);
  }
  TrainState state = read_train_state(dir);
  load_model_weights(dir, model);
  const SafetensorsFile file = SafetensorsFile::read(dir / kOptimizerFile);
  const size_t expected_tensors = 2 * model.parameters().size();
  if (file.tensors().size() != expected_tensors) {
    fail(
        "{}: {} tensors, expected {} (exp_avg and exp_avg_sq of each parameter); it belongs to another model",
        file.name(), file.tensors().size(), expected_tensors);
  }
  Backend& backend = model.backend();
  for (const ParamInfo& p : model.parameters()) {
    for (const auto& [prefix, buffer] :
         {std::pair{"exp_avg.", moments.m}, std::pair{"exp_avg_sq.", moments.v}}) {
      const std::vector<float> values = file.read_floats(prefix + p.name, p.shape);
      backend.upload(Tensor(buffer.as<float>() + p.offset, DType::F32, {p.numel()}), values.data());
    }
  }
  const auto step_meta = file.metadata().find("step");
  if (step_meta == file.metadata().end() || step_meta->second != std::to_string(state.optimizer_steps)) {
    fail("{}: its step does not match state.json's optimizer_steps {}; the checkpoint is damaged",
         file.name(), state.optimizer_steps);
  }
  return state;
}

TrainState load_run_checkpoint(const fs::path& dir, GPT2& model, AdamWOptimizer& optimizer) {
  require_whole(model, optimizer);
  TrainState state = load_run_checkpoint(dir, model, AdamWMoments{optimizer.m(), optimizer.v()});
  optimizer.set_steps(state.optimizer_steps);
  return state;
}

fs::path write_run_checkpoint(const fs::path& output_dir, const GPT2& model, const AdamWOptimizer& optimizer,
                              const TrainState& state, const RunConfig& config,
                              const std::string& tokenizer_json, int keep_last) {
  require_whole(model, optimizer);
  TrainState s = state;
  s.optimizer_steps = optimizer.steps();
  return write_run_checkpoint(output_dir, model, AdamWMoments{optimizer.m(), optimizer.v()}, s, config,
                              tokenizer_json, keep_last);
}

}  // namespace inkstone
