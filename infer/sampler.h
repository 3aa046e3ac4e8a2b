// Choosing the next token from a row of logits, with Hugging Face `generate()` semantics, applied in
// HF's order: repetition penalty and no-repeat-n-gram on the raw logits (the "processors"), then
// temperature, top-k, top-p and min-p (the "warpers"), then a draw from the softmax of what is left
// (or its argmax when temperature is 0, i.e. greedy search, which the penalties still shape).
//   repetition_penalty r: every token id in the history has its logit l replaced by l / r when l > 0
//     and l * r otherwise (CTRL, Keskar et al. 2019); 1 = off.
//   no_repeat_ngram_size n: a token that would complete an n-gram already present in the history is
//     banned; 0 = off.
//   top_k: keeps the k largest logits, ties at the k-th value kept; 0 = off.
//   top_p: keeps the smallest set of most likely tokens whose probability mass reaches top_p (a token
//     is kept when the mass strictly above it is below top_p); 1 = off.
//   min_p: drops tokens whose probability is below min_p times the most likely token's; 0 = off.
// At least one token always survives the warpers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/rng.h"

namespace inkstone {

struct SamplingConfig {
  double temperature = 1.0;         // >= 0; 0 = greedy
  int top_k = 0;                    // >= 0; 0 = the whole vocabulary
  double top_p = 1.0;               // (0, 1]
  double min_p = 0.0;               // [0, 1]
  double repetition_penalty = 1.0;  // > 0; 1 = off
  int no_repeat_ngram_size = 0;     // >= 0; 0 = off
  uint64_t seed = 1337;
};

// Throws inkstone::Error naming the option (as its --flag) when a value is out of range.
void validate(const SamplingConfig& config);

// The processors, in place, on the real vocabulary's logits. `history` is every token of the
// sequence so far (prompt and generated). Banned tokens become -infinity.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history, double penalty);
void ban_repeated_ngrams(std::span<float> logits, std::span<const int32_t> history, int n);

// The distribution a draw is made from: every processor and warper applied, probabilities in double
// summing to 1, zero for removed tokens. With temperature 0, one-hot on the greedy choice. Throws
// inkstone::Error on a non-finite logit or when the processors leave no token.
std::vector<double> sampling_distribution(std::span<const float> logits, std::span<const int32_t> history,
                                          const SamplingConfig& config);

// log softmax(logits)[token]: the model's own log-probability of `token`, before any sampling rule.
double token_logprob(std::span<const float> logits, int32_t token);

class Sampler {
 public:
  explicit Sampler(const SamplingConfig& config);
  // `logits` are the real vocabulary's (no padding). Deterministic for the seed and call sequence.
  // `suppressed` (>= 0) is a token that cannot be drawn: generation's min_new_tokens rules out
  // <|endoftext|> this way, after the penalties and before every warper, as HF's logits processor.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {},
                 int32_t suppressed = -1);

 private:
  SamplingConfig config_;
  Rng rng_;
  // Reused from call to call so that a decode loop does not allocate: the processed logits, their
  // softmax weights, and the token ids the truncating warpers select and sort.
  std::vector<float> scratch_;
  std::vector<double> weights_;
  std::vector<int32_t> order_;
};

}  // namespace inkstone
