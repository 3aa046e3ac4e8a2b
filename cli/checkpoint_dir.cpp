#include "cli/checkpoint_dir.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

#include "runtime/error.h"
#include "runtime/model_checkpoint.h"
#include "train/run_checkpoint.h"

namespace inkstone::cli {
namespace fs = std::filesystem;

namespace {

bool is_checkpoint_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path / kModelConfigFile, ec);
}

// The step of a directory named as a run names its checkpoints (checkpoint_name), else nothing.
std::optional<int64_t> checkpoint_step(const std::string& name) {
  constexpr std::string_view kPrefix = "step_";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  int64_t step = 0;
  const char* last = name.data() + name.size();
  const auto [end, ec] = std::from_chars(name.data() + kPrefix.size(), last, step);
  if (ec != std::errc() || end != last || step < 0 || checkpoint_name(step) != name) return std::nullopt;
  return step;
}

}  // namespace

fs::path resolve_checkpoint_dir(const fs::path& path) {
  if (is_checkpoint_dir(path)) return path;
  if (const std::optional<fs::path> latest = latest_checkpoint(path)) return *latest;
  return path;
}

std::vector<fs::path> expand_checkpoint_dirs(const fs::path& path) {
  std::error_code ec;
  if (is_checkpoint_dir(path) || !fs::is_directory(path, ec)) return {path};
  fs::directory_iterator entries(path, ec);
  if (ec) fail("cannot list {}: {}; check its permissions", path.string(), ec.message());
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const fs::directory_entry& entry : entries) {
    const std::optional<int64_t> step = checkpoint_step(entry.path().filename().string());
    if (step && is_checkpoint_dir(entry.path())) found.emplace_back(*step, entry.path());
  }
  if (found.empty())
    fail(
        "{}: neither a checkpoint (no {}) nor a run directory with checkpoints (no step_* directory holding "
        "one); give a checkpoint or a run that has written one",
        path.string(), kModelConfigFile);
  std::sort(found.begin(), found.end());
  std::vector<fs::path> dirs;
  for (auto& [step, dir] : found) dirs.push_back(std::move(dir));
  return dirs;
}

}  // namespace inkstone::cli
