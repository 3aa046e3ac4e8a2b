// bench_tokenize_speed: encode throughput of a tokenizer on text files, one thread and several.
//
//   bench_tokenize_speed [--tokenizer ../shared/tokenizers/gpt2] [--threads N] [--repeats 3]
//                        [--json FILE] FILE...
//
// One thread encodes the whole text; N threads encode its piece-safe chunks in parallel
// (BpeTokenizer::encode is const and thread-safe, as tiktoken's encode_ordinary_batch and the
// `tokenizers` encode_batch are). Both must give the same ids. Prints MB/s (10^6 bytes of text per
// second; median of the repeats) per file. bench/tokenizer_bench.py puts it beside tiktoken and
// `tokenizers`.
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "bench/bench_common.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/bpe_word_count.h"
#include "runtime/read_file.h"
#include "runtime/tokenizer.h"

namespace inkstone::bench {
namespace {

struct Options {
  std::string tokenizer = "../shared/tokenizers/gpt2";
  std::vector<std::string> files;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repeats = 3;
  std::string json;
};

// The pre-tokenizer rule decides where a text may be cut (runtime/bpe_word_count.h); the byte
// tokenizer has no pieces, so any cut is safe for it.
PreTokenizerRule rule_of(const Tokenizer& tokenizer) {
  const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer);
  return bpe ? bpe->model().rule : PreTokenizerRule::Gpt2;
}

std::vector<int32_t> encode_parallel(const Tokenizer& tokenizer, std::string_view text, int threads) {
  std::vector<std::string_view> chunks;
  size_t begin = 0;
  for (const size_t cut :
       piece_safe_cuts(text, rule_of(tokenizer), text.size() / (static_cast<size_t>(threads) * 4) + 1)) {
    chunks.push_back(text.substr(begin, cut - begin));
    begin = cut;
  }
  chunks.push_back(text.substr(begin));
  std::vector<std::vector<int32_t>> ids(chunks.size());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (size_t c = static_cast<size_t>(t); c < chunks.size(); c += static_cast<size_t>(threads))
        ids[c] = tokenizer.encode(chunks[c]);
    });
  for (std::thread& thread : pool) thread.join();
  std::vector<int32_t> all;
  for (const auto& part : ids) all.insert(all.end(), part.begin(), part.end());
  return all;
}

int run(const Options& o) {
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_from_spec(o.tokenizer);
  fmt::print("bench_tokenize_speed: {} ({}), {} threads for the parallel column\n", o.tokenizer,
             tokenizer->name(), o.threads);
  fmt::print("{:<28} {:>10} {:>10} {:>12} {:>12}\n", "file", "MB", "tokens", "1 thread", "threads");
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& path : o.files) {
    const std::string text = read_whole_file(path, "the text to encode");
    std::vector<double> one, many;
    std::vector<int32_t> serial, parallel;
    for (int r = 0; r < o.repeats; ++r) {
      double t0 = now_seconds();
      serial = tokenizer->encode(text);
      one.push_back(now_seconds() - t0);
      t0 = now_seconds();
      parallel = encode_parallel(*tokenizer, text, o.threads);
      many.push_back(now_seconds() - t0);
    }
    if (serial != parallel) fail("{}: the parallel encoding differs from the serial one", path);
    const double mb = static_cast<double>(text.size()) / 1e6;
    fmt::print("{:<28} {:>10.2f} {:>10} {:>9.1f} MB/s {:>7.1f} MB/s\n",
               std::filesystem::path(path).filename().string(), mb, serial.size(), mb / median(one),
               mb / median(many));
    results.push_back({{"file", path},
                       {"bytes", text.size()},
                       {"tokens", serial.size()},
                       {"mb_per_s_1_thread", mb / median(one)},
                       {"mb_per_s_threads", mb / median(many)}});
  }
  if (!o.json.empty())
    write_json(o.json, {{"bench", "tokenize_speed"},
                        {"tokenizer", o.tokenizer},
                        {"threads", o.threads},
                        {"results", results}});
  return 0;
}

}  // namespace
}  // namespace inkstone::bench

int main(int argc, char** argv) {
  inkstone::bench::Options o;
  CLI::App app{"Encode throughput of a tokenizer, one thread and several"};
  app.add_option("files", o.files, "UTF-8 text files")->required();
  app.add_option("--tokenizer", o.tokenizer,
                 "tokenizer.json, .tiktoken, or a folder with vocab.json + merges.txt")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads of the parallel column")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--repeats", o.repeats, "timed runs (median)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--json", o.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return inkstone::bench::run_reporting_errors("bench_tokenize_speed",
                                               [&] { return inkstone::bench::run(o); });
}
