// Perplexity of a model on a token sequence, first version: non-overlapping windows of up to
// `window` tokens (the model's context), every token after the first predicted exactly once, each
// window scored with its own tokens as context. "Writing with the model" adds the strided method.
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

// Throws inkstone::Error when fewer than 2 tokens. `batch` windows run per forward pass
// (model.max_batch() >= batch, model.max_seq() >= window).
PerplexityResult evaluate_perplexity(GPT2& model, std::span<const int32_t> tokens, uint64_t text_bytes,
                                     int window, int batch);

}  // namespace inkstone
