// metrics.jsonl: the records as JSON read back by an independent parser, nulls for non-finite
// numbers, flushing, appending across runs (and repairing a crash's partial line), and the reader's
// rules: last record per step wins, skipped steps left out, truncated last line skipped, damaged
// lines named.
#include "train/metrics_log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace inkstone {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Curve = std::vector<std::pair<int64_t, double>>;

std::vector<json> records_in(const fs::path& path) {
  const std::string text = testing::read_file(path);
  EXPECT_TRUE(text.empty() || text.back() == '\n') << text;
  std::vector<json> records;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    records.push_back(json::parse(text.substr(begin, end - begin)));  // throws on a malformed line
  return records;
}

TrainRecord train_record(int64_t step, double loss) {
  TrainRecord r;
  r.step = step;
  r.loss = loss;
  r.lr = 6e-4;
  r.grad_norm = 1.25;
  r.tokens = step * 4096;
  r.tokens_per_s = 20000.5;
  r.elapsed_s = 3.5;
  return r;
}

ValRecord val_record(int64_t step, double val_loss, std::optional<double> val_bpb = std::nullopt) {
  ValRecord r;
  r.step = step;
  r.val_loss = val_loss;
  r.val_bpb = val_bpb;
  r.elapsed_s = static_cast<double>(step) / 2;
  return r;
}

TEST(MetricsLog, WritesOneJsonObjectPerRecord) {
  testing::TempDir dir;
  {
    MetricsLog log(dir / kMetricsFile);
    log.write(train_record(10, 2.5));
    TrainRecord full = train_record(11, 2.25);
    full.mfu = 0.42;
    full.memory_bytes = int64_t{3} << 33;
    log.write(full);
    log.write(val_record(11, 2.75));
    log.write(val_record(12, 2.5, 1.125));
  }
  const std::vector<json> r = records_in(dir / kMetricsFile);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0]["step"], 10);
  EXPECT_EQ(r[0]["loss"], 2.5);
  EXPECT_EQ(r[0]["lr"], 6e-4);
  EXPECT_EQ(r[0]["grad_norm"], 1.25);
  EXPECT_EQ(r[0]["tokens"], 40960);
  EXPECT_EQ(r[0]["tokens_per_s"], 20000.5);
  EXPECT_EQ(r[0]["elapsed_s"], 3.5);
  EXPECT_EQ(r[0]["skipped"], false);
  EXPECT_FALSE(r[0].contains("mfu"));
  EXPECT_FALSE(r[0].contains("memory_bytes"));
  EXPECT_FALSE(r[0].contains("val_loss"));
  EXPECT_EQ(r[1]["mfu"], 0.42);
  EXPECT_EQ(r[1]["memory_bytes"], int64_t{3} << 33);
  EXPECT_EQ(r[2]["val_loss"], 2.75);
  EXPECT_EQ(r[2]["elapsed_s"], 5.5);
  EXPECT_FALSE(r[2].contains("val_bpb"));
  EXPECT_FALSE(r[2].contains("loss"));
  EXPECT_EQ(r[3]["val_bpb"], 1.125);
}

TEST(MetricsLog, NonFiniteNumbersAreNull) {
  testing::TempDir dir;
  {
    MetricsLog log(dir / kMetricsFile);
    TrainRecord record = train_record(3, std::numeric_limits<double>::quiet_NaN());
    record.grad_norm = INFINITY;
    record.skipped = true;
    log.write(record);
    log.write(val_record(3, -INFINITY));
  }
  const std::vector<json> r = records_in(dir / kMetricsFile);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0]["loss"].is_null());
  EXPECT_TRUE(r[0]["grad_norm"].is_null());
  EXPECT_EQ(r[0]["skipped"], true);
  EXPECT_EQ(r[0]["lr"], 6e-4);
  EXPECT_TRUE(r[1]["val_loss"].is_null());
}

TEST(MetricsLog, EachRecordIsOnDiskBeforeTheLogCloses) {
  testing::TempDir dir;
  MetricsLog log(dir / kMetricsFile);
  log.write(train_record(1, 3.0));
  EXPECT_EQ(records_in(dir / kMetricsFile).size(), 1u);
  log.write(val_record(1, 3.5));
  EXPECT_EQ(records_in(dir / kMetricsFile).size(), 2u);
}

TEST(MetricsLog, AResumedRunAppends) {
  testing::TempDir dir;
  { MetricsLog(dir / kMetricsFile).write(train_record(1, 3.0)); }
  { MetricsLog(dir / kMetricsFile).write(train_record(2, 2.0)); }
  const std::vector<json> r = records_in(dir / kMetricsFile);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0]["step"], 1);
  EXPECT_EQ(r[1]["step"], 2);
}

TEST(MetricsLog, AResumedRunDropsThePartialLineACrashLeft) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(path, "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"lo");
  { MetricsLog(path).write(train_record(2, 2.0)); }
  const std::vector<json> r = records_in(path);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0]["loss"], 3.0);
  EXPECT_EQ(r[1]["loss"], 2.0);
}

TEST(MetricsLog, APartialOnlyLineIsDropped) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(path, std::string(10000, 'x'));  // longer than one read chunk, no newline at all
  { MetricsLog(path).write(train_record(1, 2.0)); }
  ASSERT_EQ(records_in(path).size(), 1u);
}

TEST(MetricsLog, AnUnopenableFileNamesThePath) {
  testing::TempDir dir;
  const fs::path path = dir / "no-such-dir" / kMetricsFile;
  const std::string error = testing::error_of([&] { MetricsLog log(path); });
  EXPECT_NE(error.find(path.string()), std::string::npos) << error;
}

TEST(ReadLossCurves, LastRecordOfAStepWinsAndStepsAreSorted) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(path,
                      "{\"step\":1,\"loss\":4.0,\"skipped\":false}\n"
                      "{\"step\":2,\"loss\":3.0,\"skipped\":false}\n"
                      "{\"step\":2,\"val_loss\":3.5}\n"
                      "{\"step\":3,\"loss\":2.5,\"skipped\":false}\n"
                      "\n"
                      "{\"step\":2,\"loss\":2.75,\"skipped\":false}\n"  // a resumed run re-logs step 2
                      "{\"step\":2,\"val_loss\":3.25}\n");
  const LossCurves curves = read_loss_curves(path);
  EXPECT_EQ(curves.train, (Curve{{1, 4.0}, {2, 2.75}, {3, 2.5}}));
  EXPECT_EQ(curves.val, (Curve{{2, 3.25}}));
}

TEST(ReadLossCurves, SkippedStepsAndNullLossesAreLeftOut) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(
      path,
      "{\"step\":1,\"loss\":4.0,\"skipped\":false}\n"
      "{\"step\":2,\"loss\":9.0,\"skipped\":true}\n"
      "{\"step\":3,\"loss\":null,\"skipped\":true}\n"
      "{\"step\":4,\"loss\":3.0,\"skipped\":false}\n"
      "{\"step\":4,\"loss\":null,\"skipped\":true}\n"  // the last record of step 4 was skipped
      "{\"step\":4,\"val_loss\":null}\n");
  const LossCurves curves = read_loss_curves(path);
  EXPECT_EQ(curves.train, (Curve{{1, 4.0}}));
  EXPECT_TRUE(curves.val.empty());
}

TEST(ReadLossCurves, ATruncatedLastLineIsSkipped) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(path, "{\"step\":1,\"loss\":4.0}\n{\"step\":2,\"loss\":3.0}\n{\"step\":3,\"lo");
  EXPECT_EQ(read_loss_curves(path).train, (Curve{{1, 4.0}, {2, 3.0}}));
}

TEST(ReadLossCurves, ACompleteLastLineWithoutNewlineIsRead) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  testing::write_file(path, "{\"step\":1,\"loss\":4.0}\n{\"step\":2,\"loss\":3.0}");
  EXPECT_EQ(read_loss_curves(path).train, (Curve{{1, 4.0}, {2, 3.0}}));
}

TEST(ReadLossCurves, ADamagedLineIsNamed) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"step\":1,\"loss\":4.0}\n{\"step\":2,\"lo\n{\"step\":3,\"loss\":3.0}\n", ":2:"},
      {"{\"step\":1,\"loss\":4.0}\n[1,2]\n", ":2:"},        // JSON, not an object
      {"{\"step\":1,\"loss\":4.0}\ngarbage\n", ":2:"},      // a newline after it: not a truncation
      {"{\"step\":1,\"loss\":\"4.0\"}\n", ":1: \"loss\""},  // a number as a string
      {"\n{\"loss\":4.0}\n", ":2:"},                        // no step
      {"{\"step\":1.5,\"val_loss\":4.0}\n", ":1:"},         // a fractional step
  };
  for (const auto& [content, where] : cases) {
    testing::write_file(path, content);
    const std::string error = testing::error_of([&] { read_loss_curves(path); });
    EXPECT_NE(error.find(path.string() + where), std::string::npos) << content << " -> " << error;
  }
}

TEST(ReadLossCurves, AMissingFileIsNamed) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  const std::string error = testing::error_of([&] { read_loss_curves(path); });
  EXPECT_NE(error.find(path.string()), std::string::npos) << error;
}

TEST(ReadLossCurves, ReadsWhatMetricsLogWrote) {
  testing::TempDir dir;
  const fs::path path = dir / kMetricsFile;
  {
    MetricsLog log(path);
    log.write(train_record(1, 3.0));
    log.write(train_record(2, 0.1 + 0.2));  // not exactly representable: must round-trip anyway
    log.write(val_record(2, 1.0 / 3.0));
  }
  const LossCurves curves = read_loss_curves(path);
  EXPECT_EQ(curves.train, (Curve{{1, 3.0}, {2, 0.1 + 0.2}}));
  EXPECT_EQ(curves.val, (Curve{{2, 1.0 / 3.0}}));
}

}  // namespace
}  // namespace inkstone
