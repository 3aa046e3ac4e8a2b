// What `inkstone eval` reports: one summary line for one checkpoint, a table for several, and the
// --json file for any number:
//   {"data": "--data as given", "window": W, "stride": S,
//    "results": [{"checkpoint": "dir", "step": n, "tokens": n, "window": W, "stride": S,
//                 "mean_nll": x, "perplexity": x, "bits_per_byte": x, "scored_tokens": n}, ...]}
// step and tokens (training tokens seen) come from the checkpoint's state.json and are null without
// one (an exported checkpoint); bits_per_byte is null when the data's byte count is unknown. Each
// result carries its own window and stride (a checkpoint's window is its training seq_len); the
// top-level ones are null when the results differ in them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "infer/perplexity.h"

namespace inkstone::cli {

struct EvalRow {
  std::filesystem::path checkpoint;
  std::optional<int64_t> step, tokens;  // from state.json
  int window = 0, stride = 0;
  PerplexityResult result;
};

// "perplexity 12.3456  mean NLL 2.5133 nats/token  bits/byte 1.2345  (1000 tokens scored)\n"
std::string eval_summary_line(const PerplexityResult& r);

// The table of several checkpoints, printed a row at a time: checkpoint (its directory name, or its
// path when two names are alike), step, tokens, mean NLL, perplexity, bits/byte; "-" and "n/a" for
// what is unknown.
class EvalTable {
 public:
  explicit EvalTable(const std::vector<std::filesystem::path>& checkpoints);
  std::string header() const;
  std::string row(size_t index, const EvalRow& row) const;  // the checkpoint given at `index`

 private:
  std::vector<std::string> labels_;
  size_t width_ = 0;
};

std::string eval_json(const std::string& data, const std::vector<EvalRow>& rows);

}  // namespace inkstone::cli
