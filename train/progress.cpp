// The progress line of a training run. On a terminal it is redrawn in place: "\r", the line, then
// "\x1b[K" to erase what a longer previous line left behind. Everywhere else escape codes would be
// noise in a log file, so it prints plain lines at a fixed step interval instead.
#include "train/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cmath>

namespace inkstone {
namespace {

constexpr size_t kBarCells = 20;

// "850", "12.3k", "1.25M": tokens per second, short enough to keep the line under a terminal's width.
std::string format_rate(double per_s) {
  if (!std::isfinite(per_s) || per_s < 0) return "?";
  if (per_s < 1e3) return fmt::format("{:.0f}", per_s);
  if (per_s < 1e6) return fmt::format("{:.1f}k", per_s / 1e3);
  return fmt::format("{:.2f}M", per_s / 1e6);
}

std::string format_loss(double loss) {
  return std::isfinite(loss) ? fmt::format("{:.4f}", loss) : "nan (skipped)";
}

// "step  120/600": the step padded to the width of the total, so the line does not jitter.
std::string format_step(const StepReport& r) {
  if (r.total_steps <= 0) return fmt::format("step {}", r.step);
  const size_t width = std::to_string(r.total_steps).size();
  return fmt::format("step {:>{}}/{}", r.step, width, r.total_steps);
}

std::string format_bar(const StepReport& r) {
  const double done =
      r.total_steps > 0 ? static_cast<double>(r.step) / static_cast<double>(r.total_steps) : 0;
  const auto filled = static_cast<size_t>(std::clamp(done, 0.0, 1.0) * kBarCells);
  std::string bar(kBarCells + 2, '.');
  bar.front() = '[';
  bar.back() = ']';
  std::fill_n(bar.begin() + 1, filled, '#');
  return bar;
}

// The fields after the step and bar, shared by both modes.
std::string format_fields(const StepReport& r) {
  return fmt::format("loss {}  lr {:.1e}  {} tok/s  ETA {}", format_loss(r.loss), r.lr,
                     format_rate(r.tokens_per_s), Progress::format_duration(r.eta_s));
}

// Columns of the terminal behind `out`, 0 when unknown. A line wider than the terminal wraps, and
// "\r" then only returns to the start of the last row, leaving a trail of half-lines.
size_t terminal_columns(std::FILE* out) {
  winsize size{};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

}  // namespace

Progress::Progress(std::FILE* out, bool terminal, int plain_every)
    : out_(out), terminal_(terminal), plain_every_(std::max(plain_every, 1)) {}

void Progress::step(const StepReport& report) {
  if (terminal_) {
    const std::string head = format_step(report), fields = format_fields(report);
    std::string line = head + " " + format_bar(report) + "  " + fields;
    const size_t columns = terminal_columns(out_);
    if (columns > 0 && line.size() >= columns) line = head + "  " + fields;  // the bar goes first
    if (columns > 0 && line.size() >= columns) line.resize(columns - 1);
    fmt::print(out_, "\r{}\x1b[K", line);
    bar_shown_ = true;
  } else {
    const bool last = report.step == report.total_steps;
    if (report.step % plain_every_ != 0 && !last) return;
    fmt::print(out_, "{}  {}  norm {:.3f}  elapsed {}\n", format_step(report), format_fields(report),
               report.grad_norm, format_duration(report.elapsed_s));
  }
  std::fflush(out_);
}

void Progress::message(const std::string& line) {
  if (terminal_ && bar_shown_) {
    fmt::print(out_, "\r\x1b[K");  // the message takes the bar's row; the next step() redraws the bar
    bar_shown_ = false;
  }
  fmt::print(out_, "{}\n", line);
  std::fflush(out_);
}

void Progress::finish() {
  if (terminal_ && bar_shown_) {
    fmt::print(out_, "\n");  // keep the final state of the bar on screen
    bar_shown_ = false;
  }
  std::fflush(out_);
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
}

}  // namespace inkstone
