// bench_pretokenize_speed: how fast the pre-tokenizer cuts text, in MB/s of UTF-8 input.
//
//   bench_pretokenize_speed [FILE...] [--repeats 5] [--json FILE]
//
// FILE defaults to ../shared/corpora/{war_and_peace,hongloumeng}.txt (English and Chinese; run from
// the project root). Each file is cut whole, `repeats` times per rule (median), single-threaded.
// When CMake found libpcre2-8 (INKSTONE_BENCH_PCRE2), PCRE2's JIT also runs GPT-2's regex itself
// (UTF + UCP) on each file, as the reference the hand-written cutter replaces: its speed, and whether
// its pieces are exactly ours (PCRE2 needs valid UTF-8, so it skips files that are not).
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_common.h"
#include "runtime/error.h"
#include "runtime/pretokenizer.h"
#include "runtime/read_file.h"
#include "runtime/utf8.h"

#ifdef INKSTONE_BENCH_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

namespace inkstone::bench {
namespace {

struct Options {
  std::vector<std::string> files = {"../shared/corpora/war_and_peace.txt",
                                    "../shared/corpora/hongloumeng.txt"};
  int repeats = 5;
  std::string json;
};

using Pieces = std::vector<std::string_view>;

// Median seconds of `repeats` runs of cut(text, pieces), and the pieces of the last run.
template <typename Cut>
double time_cut(std::string_view text, int repeats, Pieces& pieces, Cut&& cut) {
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    pieces.clear();  // keeps the capacity: the timing is the cutting, not the vector's growth
    const double t0 = now_seconds();
    cut(text, pieces);
    seconds.push_back(now_seconds() - t0);
  }
  return median(seconds);
}

#ifdef INKSTONE_BENCH_PCRE2
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's regex compiled by PCRE2 with its JIT; findall() as Python's re.findall walks the text.
class Pcre2Gpt2 {
 public:
  Pcre2Gpt2() {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern.data()), kGpt2Pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!code_) fail("PCRE2 cannot compile GPT-2's regex (error {} at {})", error, offset);
    if (pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) != 0) fail("PCRE2 has no JIT on this machine");
    match_ = pcre2_match_data_create_from_pattern(code_, nullptr);
  }
  ~Pcre2Gpt2() {
    pcre2_match_data_free(match_);
    pcre2_code_free(code_);
  }
  Pcre2Gpt2(const Pcre2Gpt2&) = delete;
  Pcre2Gpt2& operator=(const Pcre2Gpt2&) = delete;

  // Every match, in order (pieces tile the text only if the regex covers every character).
  void findall(std::string_view text, Pieces& pieces) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_);
    for (PCRE2_SIZE start = 0; start < text.size();) {
      // pcre2_jit_match skips the UTF check, which pcre2_match would redo over the rest of the
      // text at every call; the caller checked the text once.
      const int rc = pcre2_jit_match(code_, subject, text.size(), start, 0, match_, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) fail("PCRE2 JIT match failed with error {} at byte {}", rc, start);
      pieces.emplace_back(text.data() + ovector[0], ovector[1] - ovector[0]);
      start = ovector[1];
    }
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* match_ = nullptr;
};
#endif

// Where two cuts of `text` first differ ("byte OFFSET"), or "" when they are the same.
std::string first_difference(std::string_view text, const Pieces& a, const Pieces& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (a[i].data() != b[i].data() || a[i].size() != b[i].size())
      return fmt::format("byte {}", std::min(a[i].data(), b[i].data()) - text.data());
  return a.size() == b.size() ? "" : fmt::format("piece {}", std::min(a.size(), b.size()));
}

int run(const Options& o) {
  nlohmann::json rows = nlohmann::json::array();
  fmt::print("bench_pretokenize_speed: median of {} runs, one thread\n\n", o.repeats);
  fmt::print("{:<24} {:>10} {:<10} {:>10} {:>9}  {}\n", "file", "bytes", "cutter", "pieces", "MB/s", "");
  for (const std::string& file : o.files) {
    const std::string text = read_whole_file(file, "the corpus", "pass a readable text file");
    const std::string name = std::filesystem::path(file).filename().string();
    const double mb = static_cast<double>(text.size()) / 1e6;
    const auto report = [&](std::string_view cutter, const Pieces& pieces, double seconds, std::string note) {
      fmt::print("{:<24} {:>10} {:<10} {:>10} {:>9.1f}  {}\n", name, text.size(), cutter, pieces.size(),
                 mb / seconds, note);
      rows.push_back({{"file", name},
                      {"bytes", text.size()},
                      {"cutter", cutter},
                      {"pieces", pieces.size()},
                      {"mb_per_s", mb / seconds},
                      {"note", note}});
    };
    Pieces gpt2;
    for (const PreTokenizerRule rule : {PreTokenizerRule::Gpt2, PreTokenizerRule::Gpt2Cjk}) {
      Pieces pieces;
      const double s = time_cut(text, o.repeats, pieces,
                                [rule](std::string_view t, Pieces& p) { pre_tokenize(t, rule, p); });
      report(rule_name(rule), pieces, s, "");
      if (rule == PreTokenizerRule::Gpt2) gpt2 = std::move(pieces);
    }
#ifdef INKSTONE_BENCH_PCRE2
    if (find_invalid_utf8(text)) {
      fmt::print("{:<24} {:>10} {:<10} skipped: not valid UTF-8\n", name, text.size(), "pcre2-jit");
      continue;
    }
    const Pcre2Gpt2 pcre2;
    Pieces pieces;
    const double s =
        time_cut(text, o.repeats, pieces, [&](std::string_view t, Pieces& p) { pcre2.findall(t, p); });
    const std::string difference = first_difference(text, gpt2, pieces);
    report("pcre2-jit", pieces, s, difference.empty() ? "same pieces as gpt2" : "differs at " + difference);
#endif
  }
  if (!o.json.empty())
    write_json(o.json, {{"bench", "pretokenize_speed"}, {"repeats", o.repeats}, {"rows", rows}});
  return 0;
}

}  // namespace
}  // namespace inkstone::bench

int main(int argc, char** argv) {
  inkstone::bench::Options o;
  CLI::App app{"Time the pre-tokenizer (and PCRE2's JIT on the same regex, when built with it)"};
  app.add_option("files", o.files, "text files to cut")->capture_default_str();
  app.add_option("--repeats", o.repeats, "timed runs per file and cutter")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--json", o.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return inkstone::bench::run_reporting_errors("bench_pretokenize_speed",
                                               [&] { return inkstone::bench::run(o); });
}
