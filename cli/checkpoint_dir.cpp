#include "cli/checkpoint_dir.h"

#include <optional>

#include "runtime/model_checkpoint.h"
#include "train/run_checkpoint.h"

namespace inkstone::cli {

std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path / kModelConfigFile, ec)) return path;
  if (const std::optional<std::filesystem::path> latest = latest_checkpoint(path)) return *latest;
  return path;
}

}  // namespace inkstone::cli
