// inkstone train CONFIG [key=value ...]: one training run (train/trainer.h).
#include <fmt/format.h>

#include <cmath>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "runtime/config.h"
#include "train/stop_signal.h"
#include "train/trainer.h"

namespace inkstone::cli {
namespace {

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
};

// `s` as one shell word: bare when it holds only safe characters, else in single quotes.
std::string shell_quoted(const std::string& s) {
  const bool safe = !s.empty() && s.find_first_not_of(
                                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789_-+=.,/:@%") == std::string::npos;
  if (safe) return s;
  std::string quoted = "'";
  for (char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void run_train(const TrainOptions& options) {
  const RunConfig config = load_config(options.config_path, options.overrides);
  install_stop_handlers();
  const TrainResult result = train_model(config);
  if (result.rank != 0) return;  // rank 0 speaks for the job
  if (result.stopped_by != 0) {
    // The same overrides (output_dir among them) lead back to the same run; only resume changes.
    std::string command = result.world_size > 1 ? fmt::format("mpirun -np {} ", result.world_size) : "";
    command += "inkstone train " + shell_quoted(options.config_path);
    for (const std::string& o : options.overrides) {
      if (!o.starts_with("train.resume=")) command += " " + shell_quoted(o);
    }
    fmt::print(stderr, "stopped by {} after step {}; checkpoint {}\nresume with: {} train.resume=auto\n",
               result.stopped_by == SIGINT    ? "SIGINT"
               : result.stopped_by == SIGTERM ? "SIGTERM"
                                              : "SIGUSR1",
               result.step, result.last_checkpoint.string(), command);
    return;
  }
  if (result.steps_run == 0) {
    fmt::print(stderr,
               "nothing to do: the run is at step {} already; raise train.max_steps to train further\n",
               result.step);
    return;
  }
  fmt::print(stderr, "done: {} steps, last loss {:.4f}", result.step, result.last_loss);
  if (!std::isnan(result.last_val_loss)) fmt::print(stderr, ", val loss {:.4f}", result.last_val_loss);
  fmt::print(stderr, "; checkpoint {}\n", result.last_checkpoint.string());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* command =
      app.add_subcommand("train", "train a model from a YAML config (see configs/example.yaml)");
  command->add_option("config", options->config_path, "the YAML config file")->required();
  command->add_option("overrides", options->overrides,
                      "key.sub=value overrides, applied in order after the file");
  command->callback([options] { run_train(*options); });
}

}  // namespace inkstone::cli
