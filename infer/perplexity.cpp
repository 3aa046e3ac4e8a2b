#include "infer/perplexity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "runtime/error.h"

namespace inkstone {

double PerplexityResult::mean_nll() const {
  if (scored_tokens == 0) return std::numeric_limits<double>::quiet_NaN();
  return nll_sum / static_cast<double>(scored_tokens);
}

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

double PerplexityResult::bits_per_byte() const {
  if (text_bytes == 0) return std::numeric_limits<double>::quiet_NaN();
  return nll_sum / std::numbers::ln2 / static_cast<double>(text_bytes);
}

namespace {

// Scores `rows` consecutive windows of T predictions each, the first starting at token `first`:
// window r reads tokens [first + r*T, first + r*T + T] (T inputs, then T targets shifted by one).
// Returns the summed NLL in nats and adds the predictions made to `scored`.
double score_windows(GPT2& model, std::span<const int32_t> tokens, size_t first, int rows, int T,
                     std::vector<int32_t>& inputs, std::vector<int32_t>& targets, int64_t& scored) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(T);
  inputs.resize(n);
  targets.resize(n);
  for (int r = 0; r < rows; ++r) {
    const size_t start = first + static_cast<size_t>(r) * static_cast<size_t>(T);
    std::copy_n(tokens.begin() + start, T, inputs.begin() + r * T);
    std::copy_n(tokens.begin() + start + 1, T, targets.begin() + r * T);
  }
  const double mean = model.forward(inputs, targets, rows, T);
  scored += model.counted_targets();
  return mean * static_cast<double>(model.counted_targets());
}

}  // namespace

PerplexityResult evaluate_perplexity(GPT2& model, std::span<const int32_t> tokens, uint64_t text_bytes,
                                     int window, int batch) {
  if (tokens.size() < 2)
    fail("perplexity needs at least 2 tokens (one to read, one to predict); got {}", tokens.size());
  if (window < 1) fail("evaluate_perplexity: window must be >= 1 (got {})", window);
  if (batch < 1 || batch > model.max_batch())
    fail("evaluate_perplexity: batch {} is outside [1, {}] (the model's max_batch)", batch,
         model.max_batch());

  // Window w holds tokens [w*W, w*W + W] and predicts the last W of them, so consecutive windows
  // share one boundary token and every token after the first is predicted exactly once.
  const int W = std::min({window, model.max_seq(), model.shape().context});
  const size_t predictions = tokens.size() - 1;
  const size_t full_windows = predictions / static_cast<size_t>(W);
  const int tail = static_cast<int>(predictions % static_cast<size_t>(W));

  PerplexityResult result;
  result.text_bytes = text_bytes;
  std::vector<int32_t> inputs, targets;  // staging, reused by every forward
  for (size_t w = 0; w < full_windows;) {
    const int rows = static_cast<int>(std::min(full_windows - w, static_cast<size_t>(batch)));
    result.nll_sum += score_windows(model, tokens, w * static_cast<size_t>(W), rows, W, inputs, targets,
                                    result.scored_tokens);
    w += static_cast<size_t>(rows);
  }
  if (tail > 0)
    result.nll_sum += score_windows(model, tokens, full_windows * static_cast<size_t>(W), 1, tail, inputs,
                                    targets, result.scored_tokens);
  return result;
}

}  // namespace inkstone
