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

void check_arguments(const GPT2& model, size_t tokens, int window, int stride, int batch) {
  if (tokens < 2) fail("perplexity needs at least 2 tokens (one to read, one to predict); got {}", tokens);
  const int longest = std::min(model.max_seq(), model.shape().context);
  if (window < 1 || window > longest)
    fail("evaluate_perplexity: window {} is outside [1, {}] (the model's context and max_seq)", window,
         longest);
  if (stride < 1 || stride > window)
    fail("evaluate_perplexity: stride {} is outside [1, {}] (the window); a larger stride would skip tokens",
         stride, window);
  if (batch < 1 || batch > model.max_batch())
    fail("evaluate_perplexity: batch {} is outside [1, {}] (the model's max_batch)", batch,
         model.max_batch());
}

}  // namespace

PerplexityResult evaluate_perplexity(GPT2& model, std::span<const int32_t> tokens, uint64_t text_bytes,
                                     int window, int stride, int batch) {
  check_arguments(model, tokens.size(), window, stride, batch);
  const size_t predictions = tokens.size() - 1;  // prediction i: token i+1 from tokens <= i

  PerplexityResult result;
  result.text_bytes = text_bytes;
  // Windows wait here, as rows of one [rows, T] forward, until the batch is full or a window of
  // another length comes (only the last window can be shorter).
  std::vector<int32_t> inputs, targets;
  inputs.reserve(static_cast<size_t>(batch) * static_cast<size_t>(window));
  targets.reserve(inputs.capacity());
  int rows = 0, T = 0;
  const auto run_pending = [&] {
    if (rows == 0) return;
    const double mean = model.forward(inputs, targets, rows, T);
    result.nll_sum += mean * static_cast<double>(model.counted_targets());
    result.scored_tokens += model.counted_targets();
    inputs.clear();
    targets.clear();
    rows = 0;
  };

  size_t scored_up_to = 0;  // predictions [0, scored_up_to) are scored by earlier windows
  for (size_t begin = 0; scored_up_to < predictions; begin += static_cast<size_t>(stride)) {
    const size_t end = std::min(begin + static_cast<size_t>(window), predictions);
    const int length = static_cast<int>(end - begin);
    if (rows == batch || (rows > 0 && length != T)) run_pending();
    T = length;
    for (size_t i = begin; i < end; ++i) {
      inputs.push_back(tokens[i]);
      targets.push_back(i >= scored_up_to ? tokens[i + 1] : -1);  // < 0: scored already, ignored
    }
    ++rows;
    scored_up_to = end;
  }
  run_pending();
  return result;
}

}  // namespace inkstone
