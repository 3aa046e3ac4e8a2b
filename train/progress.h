// What a training run shows while it runs. On a terminal: one progress line redrawn in place
// (step/total, a bar, loss, lr, tokens/s, ETA), with other messages printed above it. Otherwise
// (a pipe, a log file, CI): one plain line every `plain_every` steps and on the last step.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace inkstone {

struct StepReport {
  int64_t step = 0;  // steps done, 1-based
  int64_t total_steps = 0;
  double loss = 0;  // may be NaN (a skipped step)
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double elapsed_s = 0;  // of this process's training so far
  double eta_s = -1;     // < 0: unknown
};

class Progress {
 public:
  // `out` is usually stderr; `terminal` is normally isatty(fileno(out)).
  Progress(std::FILE* out, bool terminal, int plain_every = 10);
  void step(const StepReport& report);
  void message(const std::string& line);  // a line of its own, kept above the bar
  void finish();                          // ends the bar's line

  static std::string format_duration(double seconds);  // "42s", "3m05s", "2h10m"

 private:
  std::FILE* out_;
  bool terminal_;
  int plain_every_;
  bool bar_shown_ = false;
};

}  // namespace inkstone
