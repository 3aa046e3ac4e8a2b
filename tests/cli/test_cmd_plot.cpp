// `inkstone plot` end to end on a hand-written metrics.jsonl: the files and lines it reports with and
// without a PNG converter (a fake one on a private $PATH), and one error line for a missing or
// damaged metrics file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/test_support.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class PlotCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_path_ = std::getenv("PATH") ? std::getenv("PATH") : "";
    fs::create_directories(dir / "run");
    fs::create_directories(dir / "bin");
    setenv("PATH", (dir / "bin").c_str(), 1);  // the inkstone child inherits it: no real converter
    std::string metrics;
    for (int step = 1; step <= 30; ++step) {
      metrics += "{\"step\":" + std::to_string(step) + ",\"loss\":" + std::to_string(5.0 - 0.1 * step) +
                 ",\"lr\":0.0003,\"skipped\":false}\n";
      if (step % 10 == 0)
        metrics +=
            "{\"step\":" + std::to_string(step) + ",\"val_loss\":" + std::to_string(5.2 - 0.1 * step) + "}\n";
    }
    testing::write_file(dir / "run" / "metrics.jsonl", metrics);
  }
  void TearDown() override { setenv("PATH", saved_path_.c_str(), 1); }

  testing::TempDir dir;
  std::string saved_path_;
};

TEST_F(PlotCommand, WritesTheSvgAndSaysWhyThereIsNoPng) {
  const testing::CommandResult r = testing::run_cli({"plot", "run"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "wrote run/loss.svg\n"
            "no PNG: install librsvg2-bin (rsvg-convert) or imagemagick for one\n");
  const std::string svg = testing::read_file(dir / "run" / "loss.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("class=\"train-smoothed\""), std::string::npos);  // 30 points: smoothed
  EXPECT_NE(svg.find(">run</text>"), std::string::npos);               // titled by the run
  size_t markers = 0;
  for (size_t at = svg.find("class=\"val-point\""); at != std::string::npos;
       at = svg.find("class=\"val-point\"", at + 1))
    ++markers;
  EXPECT_EQ(markers, 3u);
  EXPECT_FALSE(fs::exists(dir / "run" / "loss.png"));
}

TEST_F(PlotCommand, WritesThePngWithAConverter) {
  const fs::path fake = dir / "bin" / "rsvg-convert";
  testing::write_file(fake, "#!/bin/sh\nprintf '\\211PNG\\n' > \"$2\"\n");
  fs::permissions(fake, fs::perms::owner_all);
  const testing::CommandResult r = testing::run_cli({"plot", "run"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote run/loss.svg\nwrote run/loss.png\n");
  EXPECT_EQ(testing::read_file(dir / "run" / "loss.png"), "\x89PNG\n");
}

TEST_F(PlotCommand, MissingMetricsIsOneErrorLine) {
  fs::create_directories(dir / "empty");
  const testing::CommandResult r = testing::run_cli({"plot", "empty"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("empty/metrics.jsonl"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("inkstone train"), std::string::npos) << r.err;  // says what a run dir is
}

TEST_F(PlotCommand, ADamagedLineIsOneErrorLineNamingIt) {
  testing::write_file(dir / "run" / "metrics.jsonl",
                      "{\"step\":1,\"loss\":4.0}\n{oops}\n{\"step\":2,\"loss\":3.0}\n");
  const testing::CommandResult r = testing::run_cli({"plot", "run"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("run/metrics.jsonl:2:"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run" / "loss.svg"));
}

TEST_F(PlotCommand, NoRunDirIsAUsageError) {
  const testing::CommandResult r = testing::run_cli({"plot"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
}

}  // namespace
}  // namespace inkstone
