// `inkstone plot RUN_DIR`: the loss curves of a run as a self-contained SVG (train loss, its moving
// average, validation loss; axes with ticks, a legend, the run's name), and a PNG beside it when a
// converter is installed (rsvg-convert, else ImageMagick's convert).
#pragma once

#include <filesystem>
#include <string>

#include "train/metrics_log.h"

namespace inkstone {

std::string loss_plot_svg(const LossCurves& curves, const std::string& title);

struct PlotFiles {
  std::filesystem::path svg;
  std::filesystem::path png;  // empty when no converter was found or it failed
};

// Reads RUN_DIR/metrics.jsonl, writes RUN_DIR/loss.svg (and loss.png). Throws inkstone::Error when
// there is no metrics file or it holds no training step.
PlotFiles plot_run(const std::filesystem::path& run_dir);

}  // namespace inkstone
