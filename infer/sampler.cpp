#include "infer/sampler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <vector>

#include "runtime/error.h"

namespace inkstone {
namespace {

// Lowest index among equal maxima, so greedy decoding does not depend on how ties happen to be scanned.
int32_t argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

void check_finite(std::span<const float> logits) {
  for (const float x : logits)
    if (!std::isfinite(x))
      fail("the model produced a non-finite logit ({}); the checkpoint's weights are likely corrupted", x);
}

// The k-th largest logit: every logit >= it survives top-k (so ties at the boundary are all kept).
float kth_largest(std::span<const float> logits, int k) {
  std::vector<float> values(logits.begin(), logits.end());
  std::nth_element(values.begin(), values.begin() + (k - 1), values.end(), std::greater<float>());
  return values[static_cast<size_t>(k - 1)];
}

}  // namespace

void validate(const SamplingConfig& config) {
  if (!(config.temperature >= 0) || !std::isfinite(config.temperature))
    fail("--temperature must be >= 0 (got {}; 0 means greedy)", config.temperature);
  if (config.top_k < 0) fail("--top-k must be >= 0 (got {}; 0 keeps the whole vocabulary)", config.top_k);
}

Sampler::Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {
  validate(config_);
}

int32_t Sampler::sample(std::span<const float> logits) {
  assert(!logits.empty());
  check_finite(logits);
  if (config_.temperature == 0) return argmax(logits);

  const bool truncate = config_.top_k > 0 && static_cast<size_t>(config_.top_k) < logits.size();
  const float cutoff = truncate ? kth_largest(logits, config_.top_k) : -INFINITY;
  const double max_logit = logits[static_cast<size_t>(argmax(logits))];

  // Softmax in double with the maximum subtracted: exp never overflows, and the largest term is 1.
  std::vector<double> weights(logits.size(), 0.0);
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] < cutoff) continue;
    weights[i] = std::exp((logits[i] - max_logit) / config_.temperature);
    total += weights[i];
  }

  // Inverse CDF. u < total always, but rounding in the running sum could leave the last kept token
  // just short of it, so that token is the fallback.
  const double u = rng_.uniform() * total;
  double cumulative = 0;
  size_t last_kept = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0) continue;
    cumulative += weights[i];
    last_kept = i;
    if (u < cumulative) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last_kept);
}

}  // namespace inkstone
