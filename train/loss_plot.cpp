// The loss plot of a run, drawn as SVG by hand: a few hundred lines of text need no plotting
// library, and the file opens in any browser. A PNG comes from an external converter when one is
// installed, run without a shell so that no path is ever interpreted.
#include "train/loss_plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "runtime/durable_file.h"
#include "runtime/error.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

constexpr double kWidth = 900, kHeight = 500;
constexpr double kLeft = 72, kRight = 24, kTop = 48, kBottom = 56;  // margins around the plot area
constexpr size_t kMaxPolylinePoints = 2000;  // more than the plot has pixels across; keeps files small
constexpr const char* kTrainColor = "#9ecae1";
constexpr const char* kSmoothColor = "#1f77b4";
constexpr const char* kValColor = "#d62728";

struct Point {
  double x, y;
};

struct LegendRow {
  std::string text;
  const char* color;
  bool marker;  // drawn with a circle, like the validation points
};

// An axis range whose ends are multiples of `step`, a "nice" number (1, 2 or 5 times a power of ten)
// giving 5 to 8 ticks where such a step exists, else the count closest to that.
struct Axis {
  double lo = 0, hi = 1, step = 1;
  int64_t first_tick = 0, tick_count = 0;  // ticks are (first_tick + i) * step
};

Axis nice_axis(double lo, double hi, double min_step) {
  const double span = hi - lo;
  const int top_exponent = static_cast<int>(std::ceil(std::log10(span)));
  Axis best;
  double best_score = INFINITY;
  for (int exponent = top_exponent - 2; exponent <= top_exponent; ++exponent) {
    for (const double mantissa : {1.0, 2.0, 5.0}) {
      const double step = mantissa * std::pow(10.0, exponent);
      if (step < min_step) continue;
      // A bound that is a multiple of the step, up to rounding, is a tick itself.
      const auto first = static_cast<int64_t>(std::floor(lo / step + 1e-9));
      const auto last = static_cast<int64_t>(std::ceil(hi / step - 1e-9));
      const int64_t count = last - first + 1;
      const double outside = count < 5 ? 5.0 - count : count > 8 ? count - 8.0 : 0.0;
      const double score = outside * 100 + std::abs(static_cast<double>(count) - 6.5);
      if (score < best_score) {
        best_score = score;
        best = {first * step, last * step, step, first, count};
      }
    }
  }
  return best;
}

Axis step_axis(const std::vector<Point>& points) {
  double lo = points.front().x, hi = points.front().x;
  for (const Point& p : points) lo = std::min(lo, p.x), hi = std::max(hi, p.x);
  if (hi - lo < 5) {  // one point or a few steps: give them some room, never before step 0
    const double center = (lo + hi) / 2;
    lo = std::max(0.0, center - 2.5);
    hi = lo + 5;
  }
  return nice_axis(lo, hi, /*min_step=*/1);  // steps are integers
}

// The loss axis starts at a nice value below the lowest loss, not at 0: the interesting part of a
// loss curve is its last few tenths.
Axis loss_axis(double lo, double hi) {
  const double margin = hi > lo ? 0.05 * (hi - lo) : std::max(0.05 * std::abs(lo), 0.01);
  const double floor = lo >= 0 ? 0.0 : -INFINITY;  // a loss never goes below 0, nor its axis
  return nice_axis(std::max(lo - margin, floor), hi + margin, /*min_step=*/0);
}

std::string tick_label(double value, double step) {
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  if (std::abs(value) < step * 1e-6) value = 0;  // no "-0.0"
  return fmt::format("{:.{}f}", value, decimals);
}

std::string escape_xml(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<Point> to_points(const std::vector<std::pair<int64_t, double>>& curve) {
  std::vector<Point> points;
  points.reserve(curve.size());
  for (const auto& [step, loss] : curve) points.push_back({static_cast<double>(step), loss});
  return points;
}

// An exponential moving average, bias-corrected so that it starts at the first loss rather than at 0
// (as TensorBoard smooths). The window grows with the run, so that a long run looks as smooth as a
// short one, but stays a small part of it: an average lags, most visibly while the loss falls fast.
std::vector<Point> smoothed(const std::vector<Point>& points) {
  const double window = std::clamp(static_cast<double>(points.size()) / 50, 5.0, 100.0);
  const double beta = 1 - 1 / window;
  std::vector<Point> out;
  out.reserve(points.size());
  double average = 0, weight = 0;
  for (const Point& p : points) {
    average = beta * average + (1 - beta) * p.y;
    weight = beta * weight + (1 - beta);
    out.push_back({p.x, average / weight});
  }
  return out;
}

// At most `max_points`: the first, the last, and the lowest and highest point of each bucket in
// between, so that loss spikes survive the thinning.
std::vector<Point> thinned(const std::vector<Point>& points, size_t max_points) {
  if (points.size() <= max_points) return points;
  const size_t interior = points.size() - 2, buckets = (max_points - 2) / 2;
  std::vector<Point> out{points.front()};
  for (size_t b = 0; b < buckets; ++b) {
    const auto begin = points.begin() + 1 + static_cast<ptrdiff_t>(b * interior / buckets);
    const auto end = points.begin() + 1 + static_cast<ptrdiff_t>((b + 1) * interior / buckets);
    const auto by_y = [](const Point& a, const Point& c) { return a.y < c.y; };
    auto [low, high] = std::minmax_element(begin, end, by_y);
    if (low > high) std::swap(low, high);
    out.push_back(*low);
    if (high != low) out.push_back(*high);
  }
  out.push_back(points.back());
  return out;
}

class SvgPlot {
 public:
  SvgPlot(const Axis& x, const Axis& y) : x_(x), y_(y) {}

  double px(double v) const { return kLeft + (v - x_.lo) / (x_.hi - x_.lo) * (kWidth - kLeft - kRight); }
  double py(double v) const { return kTop + (y_.hi - v) / (y_.hi - y_.lo) * (kHeight - kTop - kBottom); }

  void frame(const std::string& title) {
    const double right = kWidth - kRight, bottom = kHeight - kBottom;
    add("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
        "font-family=\"sans-serif\" font-size=\"12\">",
        kWidth, kHeight);
    add("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    add("<defs><clipPath id=\"plot-area\"><rect x=\"{}\" y=\"{}\" width=\"{}\" "
        "height=\"{}\"/></clipPath></defs>",
        kLeft, kTop, right - kLeft, bottom - kTop);
    add("<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">{}</text>", kWidth / 2,
        escape_xml(title));
    for (int64_t i = 0; i < x_.tick_count; ++i) {
      const double v = static_cast<double>(x_.first_tick + i) * x_.step, x = px(v);
      add("<line class=\"grid\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e5e5e5\"/>", x,
          kTop, bottom);
      add("<text class=\"x-tick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x, bottom + 18,
          tick_label(v, x_.step));
    }
    for (int64_t i = 0; i < y_.tick_count; ++i) {
      const double v = static_cast<double>(y_.first_tick + i) * y_.step, y = py(v);
      add("<line class=\"grid\" x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e5e5e5\"/>",
          kLeft, y, right);
      add("<text class=\"y-tick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", kLeft - 8, y + 4,
          tick_label(v, y_.step));
    }
    add("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>", kLeft, kTop,
        right - kLeft, bottom - kTop);
    add("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>", (kLeft + right) / 2, kHeight - 14);
    add("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">loss</text>",
        (kTop + bottom) / 2);
  }

  void polyline(const char* css_class, const std::vector<Point>& points, const char* color, double width) {
    std::string coordinates;
    for (const Point& p : points) {
      if (!coordinates.empty()) coordinates += ' ';
      coordinates += fmt::format("{:.1f},{:.1f}", px(p.x), py(p.y));
    }
    add("<polyline class=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" "
        "clip-path=\"url(#plot-area)\" points=\"{}\"/>",
        css_class, color, width, coordinates);
  }

  void markers(const char* css_class, const std::vector<Point>& points, const char* color) {
    for (const Point& p : points)
      add("<circle class=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>", css_class, px(p.x),
          py(p.y), color);
  }

  // One legend row per curve drawn, in the top right corner where a falling loss curve leaves room.
  void legend(const std::vector<LegendRow>& rows) {
    if (rows.empty()) return;
    const double width = 250, x = kWidth - kRight - width - 10, y = kTop + 10;
    add("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"white\" fill-opacity=\"0.85\" "
        "stroke=\"#ccc\"/>",
        x, y, width, 8 + 18 * static_cast<double>(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) {
      const double row_y = y + 17 + 18 * static_cast<double>(i);
      add("<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"2\"/>", x + 8,
          x + 32, row_y - 4, rows[i].color);
      if (rows[i].marker)
        add("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>", x + 20, row_y - 4, rows[i].color);
      add("<text x=\"{}\" y=\"{}\">{}</text>", x + 40, row_y, escape_xml(rows[i].text));
    }
  }

  std::string finish() {
    add("</svg>");
    return std::move(svg_);
  }

 private:
  template <class... Args>
  void add(fmt::format_string<Args...> format, Args&&... args) {
    svg_ += fmt::format(format, std::forward<Args>(args)...);
    svg_ += '\n';
  }

  Axis x_, y_;
  std::string svg_;
};

// True when `name` is an executable file in a directory of $PATH.
bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  const std::string dirs = path;
  for (size_t begin = 0; begin <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    const fs::path candidate = fs::path(end > begin ? dirs.substr(begin, end - begin) : ".") / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && access(candidate.c_str(), X_OK) == 0) return true;
    begin = end + 1;
  }
  return false;
}

// Runs `argv` (looked up on $PATH, no shell) with its stdout discarded, so that only inkstone's own
// lines reach the user's stdout; its stderr stays visible to explain a failure. True when it exits 0.
bool run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// loss.png beside `svg` when a converter is installed and succeeds; empty otherwise. The converter
// writes a temporary name that is renamed into place, so a failed conversion never leaves a
// half-written loss.png.
fs::path convert_to_png(const fs::path& svg) {
  const fs::path png = fs::path(svg).replace_extension(".png");
  const fs::path partial = fs::path(svg).replace_filename("loss.tmp.png");  // converters go by extension
  std::vector<std::string> argv;
  if (on_path("rsvg-convert")) {
    argv = {"rsvg-convert", "-o", partial.string(), svg.string()};
  } else if (on_path("convert")) {
    argv = {"convert", svg.string(), partial.string()};
  } else {
    return {};
  }
  std::error_code ec;
  if (!run_program(argv) || !fs::is_regular_file(partial, ec) || fs::file_size(partial, ec) == 0) {
    fs::remove(partial, ec);
    return {};
  }
  fs::rename(partial, png, ec);
  if (ec) {
    fs::remove(partial, ec);
    return {};
  }
  fsync_directory(png.parent_path());
  return png;
}

}  // namespace

std::string loss_plot_svg(const LossCurves& curves, const std::string& title) {
  const std::vector<Point> train = to_points(curves.train), val = to_points(curves.val);
  std::vector<Point> all = train;
  all.insert(all.end(), val.begin(), val.end());
  if (all.empty()) {  // nothing logged yet: empty axes and a note, still a valid picture
    SvgPlot plot(nice_axis(0, 5, 1), nice_axis(0, 1, 0));
    plot.frame(title + " (no loss recorded yet)");
    return plot.finish();
  }
  // Fewer points are readable without smoothing.
  const std::vector<Point> average = train.size() > 20 ? smoothed(train) : std::vector<Point>{};

  // The loss axis reaches down to the lowest loss but up only to the highest smoothed or validation
  // loss: one spike in the raw loss would otherwise squash every curve into a line at the bottom.
  // The raw line is clipped at the top instead.
  double lo = all.front().y, hi = all.front().y;
  for (const Point& p : all) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
  if (!average.empty()) {
    hi = -INFINITY;
    for (const Point& p : average) hi = std::max(hi, p.y);
    for (const Point& p : val) hi = std::max(hi, p.y);
  }
  SvgPlot plot(step_axis(all), loss_axis(lo, hi));
  plot.frame(title);

  std::vector<LegendRow> legend;
  if (!train.empty()) {
    plot.polyline("train", thinned(train, kMaxPolylinePoints), kTrainColor, 1);
    if (train.size() == 1) plot.markers("train-point", train, kTrainColor);  // a line needs two points
    legend.push_back({fmt::format("train loss, last {:.4f}", train.back().y), kTrainColor, false});
  }
  if (!average.empty()) {
    plot.polyline("train-smoothed", thinned(average, kMaxPolylinePoints), kSmoothColor, 2);
    legend.push_back(
        {fmt::format("train loss, smoothed, last {:.4f}", average.back().y), kSmoothColor, false});
  }
  if (!val.empty()) {
    const std::vector<Point> shown = thinned(val, kMaxPolylinePoints);
    plot.polyline("val", shown, kValColor, 1.5);
    plot.markers("val-point", shown, kValColor);
    const Point best =
        *std::min_element(val.begin(), val.end(), [](const Point& a, const Point& b) { return a.y < b.y; });
    legend.push_back({fmt::format("val loss, best {:.4f} at step {:.0f}", best.y, best.x), kValColor, true});
  }
  plot.legend(legend);
  return plot.finish();
}

PlotFiles plot_run(const fs::path& run_dir) {
  const fs::path metrics = run_dir / kMetricsFile;
  if (!fs::is_regular_file(metrics))
    fail("{}: no such file; is {} a run directory written by inkstone train?", metrics.string(),
         run_dir.string());
  const LossCurves curves = read_loss_curves(metrics);
  if (curves.train.empty())
    fail("{}: no training step logged yet; plot again once the run has made one", metrics.string());

  fs::path name = fs::absolute(run_dir).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "runs/x/" names the run x
  PlotFiles files;
  files.svg = run_dir / "loss.svg";
  write_file_durably(files.svg, loss_plot_svg(curves, name.filename().string()));
  // Absolute paths for the converter: a run directory named "-x" must not read as an option.
  const fs::path png = convert_to_png(fs::absolute(files.svg));
  if (!png.empty()) files.png = run_dir / "loss.png";
  return files;
}

}  // namespace inkstone
