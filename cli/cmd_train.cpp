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

void run_train(const TrainOptions& options) {
  const RunConfig config = load_config(options.config_path, options.overrides);
  install_stop_handlers();
  const TrainResult result = train_model(config);
  if (result.stopped_by != 0) {
    fmt::print(
        stderr,
        "stopped by {} after step {}; checkpoint {}\nresume with: inkstone train {} train.resume=auto\n",
        result.stopped_by == SIGINT ? "SIGINT" : "SIGTERM", result.step, result.last_checkpoint.string(),
        options.config_path);
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
