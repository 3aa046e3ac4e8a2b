// Perplexity of a model on a token sequence with Hugging Face's fixed-length (strided sliding
// window) method, counted over predictions: the N tokens give N-1 predictions (token i+1 from tokens
// <= i), and every one is scored exactly once.
//   Window k reads up to `window` input tokens starting at k*stride and predicts the token after each;
//   it scores only the predictions that no earlier window scored (its last `stride`, the first window
//   all of its own), so every scored prediction sees at least window - stride tokens of context
//   beyond the first window. stride = window gives non-overlapping windows (each prediction sees only
//   its own window); a smaller stride buys context with compute.
// The one difference from the HF recipe: a window of W inputs predicts W tokens (HF's: W - 1, the first
// token of a window being context only), so stride = window leaves no token unscored.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/gpt2.h"

namespace inkstone {

struct PerplexityResult {
  double nll_sum = 0;  // nats, summed over scored tokens
  int64_t scored_tokens = 0;
  uint64_t text_bytes = 0;  // bytes of text the tokens stand for (for bits per byte)
  double mean_nll() const;
  double perplexity() const;     // exp(mean_nll)
  double bits_per_byte() const;  // nll_sum / ln 2 / text_bytes; NaN when text_bytes == 0
};

// Throws inkstone::Error when fewer than 2 tokens, or when window, stride or batch are out of range:
// 1 <= stride <= window, window <= min(model.max_seq(), context), 1 <= batch <= model.max_batch().
// `batch` windows of equal length run per forward pass.
PerplexityResult evaluate_perplexity(GPT2& model, std::span<const int32_t> tokens, uint64_t text_bytes,
                                     int window, int stride, int batch);

}  // namespace inkstone
