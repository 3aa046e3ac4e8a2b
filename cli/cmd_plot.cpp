// inkstone plot RUN_DIR: the loss curves of a run (from its metrics.jsonl) as RUN_DIR/loss.svg, and
// loss.png when a converter is installed. Works on a run that is still training.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli/commands.h"
#include "train/loss_plot.h"

namespace inkstone::cli {

void add_plot_command(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  CLI::App* command =
      app.add_subcommand("plot", "draw the loss curves of a run directory to loss.svg (and loss.png)");
  command->add_option("run_dir", *run_dir, "a run directory holding metrics.jsonl")->required();
  command->callback([run_dir] {
    const PlotFiles files = plot_run(*run_dir);
    fmt::print("wrote {}\n", files.svg.string());
    if (files.png.empty()) {
      fmt::print("no PNG: install librsvg2-bin (rsvg-convert) or imagemagick for one\n");
    } else {
      fmt::print("wrote {}\n", files.png.string());
    }
  });
}

}  // namespace inkstone::cli
