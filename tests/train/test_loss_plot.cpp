// The loss plot: well-formed SVG, one polyline point per logged step (thinned only past the limit,
// spikes kept), one marker per validation point, nice ticks that cover the data, an escaped title;
// plot_run's files, its errors, and the PNG converters (fake ones on a private $PATH).
#include "train/loss_plot.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Empty when every tag is closed in order and every '&' starts an entity; else what is wrong.
std::string xml_problem(const std::string& svg) {
  std::vector<std::string> open;
  for (size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
    const size_t end = svg.find('>', at);
    if (end == std::string::npos) return "unterminated tag";
    const std::string tag = svg.substr(at + 1, end - at - 1);
    if (tag.find('<') != std::string::npos) return "'<' inside a tag: " + tag;
    const std::string name = tag.substr(0, tag.find_first_of(" \n/", 1));
    if (tag.front() == '/') {
      if (open.empty() || open.back() != name.substr(1)) return "unbalanced </" + name.substr(1) + ">";
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(name);
    }
  }
  if (!open.empty()) return "<" + open.back() + "> never closed";
  static const std::regex bare_ampersand("&(?!(amp|lt|gt|quot|apos);)");
  if (std::regex_search(svg, bare_ampersand)) return "a bare '&'";
  return "";
}

// The attribute `name` of the first element that has class `css_class`.
std::optional<std::string> attribute(const std::string& svg, const std::string& css_class,
                                     const std::string& name) {
  const size_t element = svg.find("class=\"" + css_class + "\"");
  if (element == std::string::npos) return std::nullopt;
  const size_t end = svg.find('>', element);
  const size_t at = svg.find(" " + name + "=\"", svg.rfind('<', element));
  if (at == std::string::npos || at > end) return std::nullopt;
  const size_t begin = at + name.size() + 3;
  return svg.substr(begin, svg.find('"', begin) - begin);
}

struct Pixel {
  double x, y;
};

std::vector<Pixel> polyline_points(const std::string& svg, const std::string& css_class) {
  const std::optional<std::string> points = attribute(svg, css_class, "points");
  if (!points) return {};
  std::vector<Pixel> out;
  std::istringstream in(*points);
  for (std::string pair; in >> pair;) {
    const size_t comma = pair.find(',');
    out.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
  }
  return out;
}

std::vector<double> tick_values(const std::string& svg, const std::string& css_class) {
  std::vector<double> values;
  const std::regex tick("class=\"" + css_class + "\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tick); it != std::sregex_iterator(); ++it)
    values.push_back(std::stod((*it)[1]));
  return values;
}

// 5 to 8 ticks, evenly spaced by 1, 2 or 5 times a power of ten, each a multiple of that spacing,
// the first at or below `lo` and the last at or above `hi`.
void expect_nice_ticks(const std::vector<double>& ticks, double lo, double hi) {
  ASSERT_GE(ticks.size(), 5u);
  EXPECT_LE(ticks.size(), 8u);
  const double spacing = ticks[1] - ticks[0];
  ASSERT_GT(spacing, 0);
  const double mantissa = spacing / std::pow(10.0, std::floor(std::log10(spacing) + 1e-9));
  EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6)
      << "spacing " << spacing;
  for (size_t i = 0; i < ticks.size(); ++i) {
    EXPECT_NEAR(ticks[i], ticks[0] + static_cast<double>(i) * spacing, spacing * 1e-6);
    EXPECT_NEAR(ticks[i] / spacing, std::round(ticks[i] / spacing), 1e-6) << ticks[i];
  }
  EXPECT_LE(ticks.front(), lo);
  EXPECT_GE(ticks.back(), hi);
}

LossCurves decaying_curve(int64_t steps, int64_t val_every) {
  LossCurves curves;
  for (int64_t s = 1; s <= steps; ++s) {
    const double loss =
        2 + 8 * std::exp(-static_cast<double>(s) / 50) + 0.05 * std::sin(static_cast<double>(s));
    curves.train.emplace_back(s, loss);
    if (s % val_every == 0) curves.val.emplace_back(s, loss + 0.1);
  }
  return curves;
}

TEST(LossPlotSvg, IsWellFormedWithOnePointPerStep) {
  LossCurves curves;
  for (int64_t s = 1; s <= 10; ++s) curves.train.emplace_back(s, 5.0 - 0.25 * static_cast<double>(s));
  curves.val = {{5, 4.0}, {10, 3.0}};
  const std::string svg = loss_plot_svg(curves, "tiny");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(polyline_points(svg, "train").size(), 10u);
  EXPECT_EQ(polyline_points(svg, "val").size(), 2u);
  EXPECT_EQ(count(svg, "class=\"val-point\""), 2u);
  EXPECT_EQ(count(svg, "class=\"train-smoothed\""), 0u);  // 10 points need no smoothing
  EXPECT_NE(svg.find(">tiny</text>"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss</text>"), std::string::npos);
  EXPECT_NE(svg.find("val loss, best 3.0000 at step 10"), std::string::npos);
}

TEST(LossPlotSvg, PointsFollowTheData) {
  const LossCurves curves{.train = {{1, 3.0}, {2, 2.0}, {3, 1.0}}, .val = {}};
  const std::vector<Pixel> p = polyline_points(loss_plot_svg(curves, "run"), "train");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_LT(p[0].x, p[1].x);  // later steps to the right
  EXPECT_LT(p[1].x, p[2].x);
  EXPECT_NEAR(p[1].x - p[0].x, p[2].x - p[1].x, 0.15);  // equal steps, equal distances (0.1 px rounding)
  EXPECT_LT(p[0].y, p[1].y);                            // lower losses further down (SVG y grows down)
  EXPECT_NEAR(p[1].y - p[0].y, p[2].y - p[1].y, 0.15);
}

TEST(LossPlotSvg, LongRunsAreSmoothedAndMarkersMatchValPoints) {
  const LossCurves curves = decaying_curve(600, 50);
  const std::string svg = loss_plot_svg(curves, "long");
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(polyline_points(svg, "train").size(), 600u);
  EXPECT_EQ(polyline_points(svg, "train-smoothed").size(), 600u);
  EXPECT_EQ(count(svg, "class=\"val-point\""), 12u);
  EXPECT_EQ(polyline_points(svg, "val").size(), 12u);
}

TEST(LossPlotSvg, TicksAreNiceAndCoverTheData) {
  const std::vector<std::pair<int64_t, int64_t>> step_ranges = {{1, 10},     {1, 37},     {1, 600},
                                                                {100, 4000}, {1, 250000}, {5000, 5020}};
  const std::vector<std::pair<double, double>> loss_ranges = {{2.1, 2.3},   {1.5, 10.9}, {0.0012, 0.0019},
                                                              {3.0, 300.0}, {0.7, 0.71}, {-2, 2}};
  for (const auto& [first, last] : step_ranges) {
    for (const auto& [low, high] : loss_ranges) {
      SCOPED_TRACE(::testing::Message()
                   << "steps " << first << ".." << last << ", loss " << low << ".." << high);
      const LossCurves curves{.train = {{first, high}, {last, low}}, .val = {}};
      const std::string svg = loss_plot_svg(curves, "ticks");
      expect_nice_ticks(tick_values(svg, "x-tick"), static_cast<double>(first), static_cast<double>(last));
      const std::vector<double> y = tick_values(svg, "y-tick");
      expect_nice_ticks(y, low, high);
      if (low > 0 && !y.empty()) {
        EXPECT_GE(y.front(), 0);  // a positive loss axis never dips below 0
      }
    }
  }
}

TEST(LossPlotSvg, ThinsLongCurvesButKeepsSpikes) {
  LossCurves curves = decaying_curve(20000, 1000);
  curves.train[12345].second = 100;  // a loss spike
  const std::string svg = loss_plot_svg(curves, "spiky");
  const std::vector<Pixel> train = polyline_points(svg, "train");
  EXPECT_LE(train.size(), 2000u);
  EXPECT_GE(train.size(), 1000u);
  // Every other loss is below 11 and drawn in the lower part of the plot; the spike far above it
  // (clipped to the plot area by the viewer).
  const auto highest =
      std::min_element(train.begin(), train.end(), [](Pixel a, Pixel b) { return a.y < b.y; });
  EXPECT_LT(highest->y, 48) << "the spike was thinned away";
  // ... and does not stretch the loss axis: the smoothed curve and val losses set its top.
  const std::vector<double> y = tick_values(svg, "y-tick");
  ASSERT_FALSE(y.empty());
  EXPECT_LT(y.back(), 15);
  EXPECT_NE(svg.find("clip-path=\"url(#plot-area)\""), std::string::npos);
  EXPECT_LE(polyline_points(svg, "train-smoothed").size(), 2000u);
  EXPECT_EQ(count(svg, "class=\"val-point\""), 20u);
  // The first and last steps are kept, so the curve spans the whole run.
  const std::vector<Pixel> full = polyline_points(loss_plot_svg(decaying_curve(20000, 1000), "x"), "train");
  EXPECT_DOUBLE_EQ(train.front().x, full.front().x);
  EXPECT_DOUBLE_EQ(train.back().x, full.back().x);
}

TEST(LossPlotSvg, OnlyValOnlyTrainOnePointAndNothing) {
  const std::vector<LossCurves> cases = {
      {.train = {}, .val = {{100, 3.0}, {200, 2.5}}},
      {.train = {{1, 4.0}, {2, 3.0}}, .val = {}},
      {.train = {{7, 2.5}}, .val = {}},
      {.train = {}, .val = {}},
  };
  for (const LossCurves& curves : cases) {
    const std::string svg = loss_plot_svg(curves, "edge");
    SCOPED_TRACE(svg);
    EXPECT_EQ(xml_problem(svg), "");
    EXPECT_EQ(polyline_points(svg, "train").size(), curves.train.size());
    EXPECT_EQ(count(svg, "class=\"train-point\""), curves.train.size() == 1 ? 1u : 0u);  // else invisible
    EXPECT_EQ(count(svg, "class=\"val-point\""), curves.val.size());
    EXPECT_EQ(svg.find("nan"), std::string::npos);
    EXPECT_EQ(svg.find("inf"), std::string::npos);
    EXPECT_GE(tick_values(svg, "x-tick").size(), 5u);
    EXPECT_GE(tick_values(svg, "y-tick").size(), 5u);
  }
}

TEST(LossPlotSvg, EscapesTheTitle) {
  const LossCurves curves{.train = {{1, 4.0}, {2, 3.0}}, .val = {}};
  const std::string svg = loss_plot_svg(curves, "a<b & \"c\" 'd'>");
  EXPECT_NE(svg.find("a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  EXPECT_EQ(xml_problem(svg), "");
}

// Sets $PATH for the life of the object: the converters plot_run finds are the test's.
class PathOverride {
 public:
  explicit PathOverride(const fs::path& dir) : saved_(std::getenv("PATH") ? std::getenv("PATH") : "") {
    setenv("PATH", dir.c_str(), 1);
  }
  ~PathOverride() { setenv("PATH", saved_.c_str(), 1); }

 private:
  std::string saved_;
};

// A stand-in converter: writes a PNG signature and its arguments to the output file, which is the
// second argument for both `rsvg-convert -o OUT IN` and `convert IN OUT`.
void install_fake(const fs::path& bin, const std::string& name, int exit_code = 0) {
  fs::create_directories(bin);
  const fs::path script = bin / name;
  testing::write_file(script, "#!/bin/sh\nprintf '\\211PNG " + name + " %s\\n' \"$*\" > \"$2\"\nexit " +
                                  std::to_string(exit_code) + "\n");
  fs::permissions(script, fs::perms::owner_all);
}

class PlotRun : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(run);
    testing::write_file(run / kMetricsFile,
                        "{\"step\":1,\"loss\":4.0,\"skipped\":false}\n"
                        "{\"step\":2,\"loss\":3.0,\"skipped\":false}\n"
                        "{\"step\":2,\"val_loss\":3.5}\n");
  }
  testing::TempDir dir;
  fs::path run = dir / "my-run";
  fs::path bin = dir / "bin";
};

TEST_F(PlotRun, WritesTheSvgWithoutAConverter) {
  fs::create_directories(bin);
  PathOverride path(bin);
  const PlotFiles files = plot_run(run);
  EXPECT_EQ(files.svg, run / "loss.svg");
  EXPECT_TRUE(files.png.empty());
  const std::string svg = testing::read_file(files.svg);
  EXPECT_EQ(svg, loss_plot_svg(read_loss_curves(run / kMetricsFile), "my-run"));
  EXPECT_FALSE(fs::exists(run / "loss.png"));
  EXPECT_FALSE(fs::exists(run / "loss.svg.tmp"));
}

TEST_F(PlotRun, TheTitleIsTheRunNameEvenWithATrailingSlash) {
  fs::create_directories(bin);
  PathOverride path(bin);
  const PlotFiles files = plot_run(run.string() + "/");
  EXPECT_NE(testing::read_file(files.svg).find(">my-run</text>"), std::string::npos);
}

TEST_F(PlotRun, PrefersRsvgConvert) {
  install_fake(bin, "rsvg-convert");
  install_fake(bin, "convert");
  PathOverride path(bin);
  const PlotFiles files = plot_run(run);
  EXPECT_EQ(files.png, run / "loss.png");
  const std::string png = testing::read_file(files.png);
  EXPECT_EQ(png.rfind("\x89PNG rsvg-convert -o ", 0), 0u) << png;
  EXPECT_NE(png.find((run / "loss.svg").string()), std::string::npos) << png;
  EXPECT_FALSE(fs::exists(run / "loss.tmp.png"));
}

TEST_F(PlotRun, FallsBackToImageMagick) {
  install_fake(bin, "convert");
  PathOverride path(bin);
  const PlotFiles files = plot_run(run);
  EXPECT_EQ(files.png, run / "loss.png");
  const std::string png = testing::read_file(files.png);
  EXPECT_EQ(png.rfind("\x89PNG convert " + (run / "loss.svg").string() + " ", 0), 0u) << png;
}

TEST_F(PlotRun, AFailingConverterMeansNoPng) {
  install_fake(bin, "rsvg-convert", /*exit_code=*/1);
  PathOverride path(bin);
  const PlotFiles files = plot_run(run);
  EXPECT_TRUE(files.png.empty());
  EXPECT_FALSE(fs::exists(run / "loss.png"));
  EXPECT_FALSE(fs::exists(run / "loss.tmp.png"));
  EXPECT_TRUE(fs::exists(files.svg));
}

TEST_F(PlotRun, NoMetricsIsAnErrorNamingTheFile) {
  fs::remove(run / kMetricsFile);
  const std::string error = testing::error_of([&] { plot_run(run); });
  EXPECT_NE(error.find((run / kMetricsFile).string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(run / "loss.svg"));
}

TEST_F(PlotRun, NoTrainingStepIsAnError) {
  testing::write_file(run / kMetricsFile, "{\"step\":2,\"val_loss\":3.5}\n");
  const std::string error = testing::error_of([&] { plot_run(run); });
  EXPECT_NE(error.find("no training step"), std::string::npos) << error;
}

}  // namespace
}  // namespace inkstone
