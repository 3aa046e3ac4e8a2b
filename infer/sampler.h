// Choosing the next token from a row of logits. First version: greedy, temperature and top-k, with
// Hugging Face semantics (temperature divides the logits; top-k keeps the k largest, ties at the k-th
// value kept; temperature 0 means greedy). "Writing with the model" adds top-p, min-p, penalties.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/rng.h"

namespace inkstone {

struct SamplingConfig {
  double temperature = 1.0;  // >= 0; 0 = greedy
  int top_k = 0;             // 0 = the whole vocabulary
  uint64_t seed = 1337;
};

// Throws inkstone::Error naming the option when a value is out of range.
void validate(const SamplingConfig& config);

class Sampler {
 public:
  explicit Sampler(const SamplingConfig& config);
  // `logits` are the real vocabulary's (no padding). Deterministic for the seed and call sequence.
  int32_t sample(std::span<const float> logits);

 private:
  SamplingConfig config_;
  Rng rng_;
};

}  // namespace inkstone
