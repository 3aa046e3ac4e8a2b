// Progress: the exact lines of plain mode, the in-place redraw of terminal mode (and how messages
// interleave with the bar), and the duration format.
#include "train/progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace inkstone {
namespace {

// Everything written to a FILE*, in memory.
class Capture {
 public:
  Capture() : file_(open_memstream(&buffer_, &size_)) {}
  ~Capture() {
    std::fclose(file_);
    std::free(buffer_);
  }
  std::FILE* file() const { return file_; }
  std::string text() {
    std::fflush(file_);
    return std::string(buffer_, size_);
  }

 private:
  char* buffer_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

StepReport report(int64_t step, int64_t total) {
  return {.step = step,
          .total_steps = total,
          .loss = 2.3456,
          .lr = 3e-4,
          .grad_norm = 0.75,
          .tokens_per_s = 12345,
          .elapsed_s = 10,
          .eta_s = 65};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(text.substr(begin, end - begin));
  EXPECT_EQ(begin, text.size()) << "the output does not end with a newline: " << text;
  return lines;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Progress, PlainModePrintsEveryNthStepAndTheLast) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/10);
  for (int64_t step = 1; step <= 25; ++step) progress.step(report(step, 25));
  progress.finish();
  const std::string text = out.text();
  const std::vector<std::string> lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3u) << text;
  EXPECT_EQ(lines[0].rfind("step 10/25  ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("step 20/25  ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("step 25/25  ", 0), 0u) << lines[2];
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(Progress, PlainLineHoldsEveryField) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/1);
  progress.step(report(7, 600));
  const std::string line = out.text();
  EXPECT_EQ(line.rfind("step   7/600  ", 0), 0u) << line;  // padded to the width of the total
  for (const char* field :
       {"loss 2.3456", "lr 3.0e-04", "12.3k tok/s", "ETA 1m05s", "norm 0.750", "elapsed 10s"})
    EXPECT_NE(line.find(field), std::string::npos) << field << " missing from " << line;
}

TEST(Progress, PlainEveryBelowOnePrintsEveryStep) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/0);
  for (int64_t step = 1; step <= 4; ++step) progress.step(report(step, 100));
  EXPECT_EQ(lines_of(out.text()).size(), 4u);
}

TEST(Progress, SkippedStepShowsNan) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/1);
  StepReport r = report(3, 10);
  r.loss = std::nan("");
  progress.step(r);
  EXPECT_NE(out.text().find("loss nan (skipped)"), std::string::npos) << out.text();
}

TEST(Progress, UnknownEtaAndRate) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/1);
  StepReport r = report(1, 10);
  r.eta_s = -1;
  r.tokens_per_s = 850;
  progress.step(r);
  EXPECT_NE(out.text().find("ETA ?"), std::string::npos) << out.text();
  EXPECT_NE(out.text().find(" 850 tok/s"), std::string::npos) << out.text();
}

TEST(Progress, PlainMessageIsALineOfItsOwn) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/false, /*plain_every=*/2);
  progress.step(report(1, 4));  // not printed
  progress.message("step 1: val loss 2.5");
  progress.step(report(2, 4));
  const std::vector<std::string> lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), 2u) << out.text();
  EXPECT_EQ(lines[0], "step 1: val loss 2.5");
  EXPECT_EQ(lines[1].rfind("step 2/4", 0), 0u);
}

TEST(Progress, TerminalRedrawsOneLineInPlace) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/true);
  for (int64_t step = 1; step <= 3; ++step) progress.step(report(step, 6));
  const std::string text = out.text();
  EXPECT_EQ(count(text, "\r"), 3u) << text;
  EXPECT_EQ(count(text, "\x1b[K"), 3u) << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  // The last draw: half of the 20 cells filled.
  const std::string last = text.substr(text.rfind('\r'));
  EXPECT_EQ(last.rfind("\rstep 3/6 [##########..........]  loss 2.3456", 0), 0u) << last;
  EXPECT_EQ(last.substr(last.size() - 3), "\x1b[K");
}

TEST(Progress, TerminalMessageClearsTheBarAndTheNextStepRedrawsIt) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/true);
  progress.step(report(1, 2));
  const size_t bar_end = out.text().size();
  progress.message("saved checkpoint");
  EXPECT_EQ(out.text().substr(bar_end), "\r\x1b[Ksaved checkpoint\n");
  progress.step(report(2, 2));
  const std::string after = out.text().substr(bar_end + std::string("\r\x1b[Ksaved checkpoint\n").size());
  EXPECT_EQ(after.rfind("\rstep 2/2 [####################]", 0), 0u) << after;
  progress.finish();
  progress.finish();  // a second finish adds nothing
  const std::string text = out.text();
  EXPECT_EQ(text.substr(text.size() - 4), "\x1b[K\n");
}

TEST(Progress, TerminalMessageBeforeAnyStepIsPlain) {
  Capture out;
  Progress progress(out.file(), /*terminal=*/true);
  progress.message("starting");
  progress.finish();
  EXPECT_EQ(out.text(), "starting\n");
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(Progress::format_duration(0), "0s");
  EXPECT_EQ(Progress::format_duration(42), "42s");
  EXPECT_EQ(Progress::format_duration(59.4), "59s");
  EXPECT_EQ(Progress::format_duration(59.6), "1m00s");
  EXPECT_EQ(Progress::format_duration(185), "3m05s");
  EXPECT_EQ(Progress::format_duration(3599), "59m59s");
  EXPECT_EQ(Progress::format_duration(3600), "1h00m");
  EXPECT_EQ(Progress::format_duration(2 * 3600 + 10 * 60 + 59), "2h10m");
  EXPECT_EQ(Progress::format_duration(-1), "?");
  EXPECT_EQ(Progress::format_duration(std::nan("")), "?");
  EXPECT_EQ(Progress::format_duration(INFINITY), "?");
}

}  // namespace
}  // namespace inkstone
