// metrics.jsonl: one JSON object per line, appended (a resumed run continues the same file, so a step
// may appear twice: readers keep the LAST record of a step). Two kinds of record:
//   training step: {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s",
//                   "skipped" (bool), and "mfu", "memory_bytes" when known}
//   validation:    {"step", "val_loss", "val_bpb" (when the split's text bytes are known), "elapsed_s"}
// A non-finite number is written as null.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace inkstone {

inline constexpr const char* kMetricsFile = "metrics.jsonl";

struct TrainRecord {
  int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t tokens = 0;  // training tokens consumed so far, all steps
  double tokens_per_s = 0, elapsed_s = 0;
  bool skipped = false;
  std::optional<double> mfu;
  std::optional<int64_t> memory_bytes;
};

struct ValRecord {
  int64_t step = 0;
  double val_loss = 0;
  std::optional<double> val_bpb;
  double elapsed_s = 0;
};

class MetricsLog {
 public:
  explicit MetricsLog(const std::filesystem::path& path);  // opens for append; throws inkstone::Error
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const TrainRecord& record);
  void write(const ValRecord& record);  // each write is flushed

 private:
  void write_line(const std::string& line);
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// Loss curves read back from metrics.jsonl for `inkstone plot`: the last record per step, sorted by
// step. Lines that are not JSON objects are an error naming the file and line (a truncated last line,
// as a crash can leave, is skipped).
struct LossCurves {
  std::vector<std::pair<int64_t, double>> train;  // (step, loss), skipped steps left out
  std::vector<std::pair<int64_t, double>> val;    // (step, val_loss)
};
LossCurves read_loss_curves(const std::filesystem::path& metrics_path);

}  // namespace inkstone
