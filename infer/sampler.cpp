#include "infer/sampler.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <cmath>
#include <limits>

#include "runtime/error.h"

namespace inkstone {
namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

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

// A history token indexes the logits; one from another vocabulary must not write out of bounds.
size_t vocab_index(int32_t token, size_t vocab) {
  if (token < 0 || static_cast<size_t>(token) >= vocab)
    fail(
        "token id {} in the text so far is outside the model's vocabulary of {} tokens; the tokenizer "
        "does not match the checkpoint",
        token, vocab);
  return static_cast<size_t>(token);
}

// CTRL's penalty, computed from `raw` and written to `out`: an id that occurs several times in the
// history is written the same value each time, so it is penalised once (HF gathers, then scatters).
// The result is clamped to the float range, where an extreme penalty would otherwise reach infinity.
void penalise(std::span<const float> raw, std::span<float> out, std::span<const int32_t> history,
              double penalty) {
  for (const int32_t token : history) {
    const size_t i = vocab_index(token, raw.size());
    const double logit = raw[i];
    const double penalised = logit > 0 ? logit / penalty : logit * penalty;
    out[i] = static_cast<float>(std::clamp(penalised, -double{FLT_MAX}, double{FLT_MAX}));
  }
}

// The processors: `raw` with the penalties applied, into `out` (reusing its capacity). Returns the
// greedy choice, the processed argmax.
int32_t process(std::span<const float> raw, std::span<const int32_t> history, const SamplingConfig& config,
                std::vector<float>& out, int32_t suppressed = -1) {
  assert(!raw.empty());
  check_finite(raw);
  out.assign(raw.begin(), raw.end());
  if (config.repetition_penalty != 1) penalise(raw, out, history, config.repetition_penalty);
  if (config.no_repeat_ngram_size > 0) ban_repeated_ngrams(out, history, config.no_repeat_ngram_size);
  if (suppressed >= 0 && static_cast<size_t>(suppressed) < out.size())
    out[static_cast<size_t>(suppressed)] = kRemoved;
  const int32_t best = argmax(out);
  if (out[static_cast<size_t>(best)] == kRemoved)
    fail(
        "--no-repeat-ngram-size {} bans every one of the {} tokens after this text; use a larger size, "
        "or 0 to turn it off",
        config.no_repeat_ngram_size, out.size());
  return best;
}

// Removes every logit below the k-th largest; ties with the k-th are kept, as HF's `scores < kth`.
void keep_top_k(std::span<float> logits, int k, std::vector<int32_t>& order) {
  order.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] != kRemoved) order.push_back(static_cast<int32_t>(i));
  if (static_cast<size_t>(k) >= order.size()) return;
  const auto kth = order.begin() + (k - 1);
  std::nth_element(order.begin(), kth, order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const float threshold = logits[static_cast<size_t>(*kth)];
  for (float& logit : logits)
    if (logit < threshold) logit = kRemoved;
}

// Zeroes the weight of every token whose higher-ranked tokens already hold top_p of the probability
// mass; returns the kept weight. Rank: larger logit first, lower id first among equals (a strict total
// order, so the kept set is deterministic even among equal probabilities). The cut is found by a
// quickselect that halves the undecided ranks at each step, O(vocabulary) expected: a full sort for
// every generated token would cost milliseconds when the nucleus holds thousands of tokens.
double keep_top_p(std::span<const float> logits, std::span<double> weights, double total, double top_p,
                  std::vector<int32_t>& order) {
  order.clear();
  for (size_t i = 0; i < weights.size(); ++i)
    if (weights[i] > 0) order.push_back(static_cast<int32_t>(i));
  const auto ranks_higher = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const auto at = [&](size_t rank) { return order.begin() + static_cast<ptrdiff_t>(rank); };
  // Invariant: order[0, kept) are kept and hold weight `kept_weight`; order[undecided_end, ...) are
  // dropped; every token in between ranks below the kept and above the dropped ones.
  size_t kept = 0;
  size_t undecided_end = order.size();
  double kept_weight = 0;
  while (kept < undecided_end) {
    const size_t mid = kept + (undecided_end - kept) / 2;
    std::nth_element(at(kept), at(mid), at(undecided_end), ranks_higher);
    double between = 0;
    for (size_t i = kept; i < mid; ++i) between += weights[static_cast<size_t>(order[i])];
    if ((kept_weight + between) / total >= top_p) {
      undecided_end = mid;  // the mass above order[mid] reaches top_p: it and all below it go
    } else {
      kept_weight += between + weights[static_cast<size_t>(order[mid])];
      kept = mid + 1;
    }
  }
  for (size_t i = kept; i < order.size(); ++i) weights[static_cast<size_t>(order[i])] = 0;
  return kept_weight;
}

// The most likely token has weight exp(0) = 1 and survives every earlier warper, so "probability
// below min_p times the most likely token's" is "weight below min_p" (renormalising scales both alike).
double keep_min_p(std::span<double> weights, double min_p) {
  double kept_weight = 0;
  for (double& weight : weights) {
    if (weight < min_p) weight = 0;
    kept_weight += weight;
  }
  return kept_weight;
}

// The warpers, for temperature > 0, on the processed `logits` whose argmax is `best`: fills `weights`
// with the unnormalised probabilities exp((logit - max) / temperature) of the surviving tokens (0 for
// the rest) and returns their sum. Double precision, maximum subtracted: exp never overflows.
double warp(std::span<float> logits, int32_t best, const SamplingConfig& config, std::vector<double>& weights,
            std::vector<int32_t>& order) {
  if (config.top_k > 0) keep_top_k(logits, config.top_k, order);
  const double max_logit = logits[static_cast<size_t>(best)];
  weights.resize(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    weights[i] = std::exp((logits[i] - max_logit) / config.temperature);  // exp(-inf) = 0 when removed
    total += weights[i];
  }
  if (config.top_p < 1) total = keep_top_p(logits, weights, total, config.top_p, order);
  if (config.min_p > 0) total = keep_min_p(weights, config.min_p);
  return total;
}

}  // namespace

void validate(const SamplingConfig& config) {
  if (!(config.temperature >= 0) || !std::isfinite(config.temperature))
    fail("--temperature must be >= 0 and finite (got {}; 0 means greedy)", config.temperature);
  if (config.top_k < 0) fail("--top-k must be >= 0 (got {}; 0 keeps the whole vocabulary)", config.top_k);
  if (!(config.top_p > 0 && config.top_p <= 1))
    fail("--top-p must be in (0, 1] (got {}; 1 keeps the whole vocabulary)", config.top_p);
  if (!(config.min_p >= 0 && config.min_p <= 1))
    fail("--min-p must be in [0, 1] (got {}; 0 turns it off)", config.min_p);
  if (!(config.repetition_penalty > 0) || !std::isfinite(config.repetition_penalty))
    fail("--repetition-penalty must be > 0 and finite (got {}; 1 turns it off, above 1 discourages repeats)",
         config.repetition_penalty);
  if (config.no_repeat_ngram_size < 0)
    fail("--no-repeat-ngram-size must be >= 0 (got {}; 0 turns it off)", config.no_repeat_ngram_size);
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history, double penalty) {
  const std::vector<float> raw(logits.begin(), logits.end());
  penalise(raw, logits, history, penalty);
}

void ban_repeated_ngrams(std::span<float> logits, std::span<const int32_t> history, int n) {
  assert(n >= 0);
  const size_t size = static_cast<size_t>(n);
  if (size == 0 || history.size() < size) return;
  // The n - 1 tokens the next one would extend: every n-gram of the history that starts with them
  // bans its last token (for n = 1 the prefix is empty and every token of the history is banned).
  const std::span<const int32_t> prefix = history.last(size - 1);
  for (size_t start = 0; start + size <= history.size(); ++start)
    if (std::equal(prefix.begin(), prefix.end(), history.begin() + static_cast<ptrdiff_t>(start)))
      logits[vocab_index(history[start + size - 1], logits.size())] = kRemoved;
}

std::vector<double> sampling_distribution(std::span<const float> logits, std::span<const int32_t> history,
                                          const SamplingConfig& config) {
  validate(config);
  std::vector<float> processed;
  std::vector<double> probabilities;
  std::vector<int32_t> order;
  const int32_t best = process(logits, history, config, processed);
  if (config.temperature == 0) {
    probabilities.assign(logits.size(), 0.0);
    probabilities[static_cast<size_t>(best)] = 1;
    return probabilities;
  }
  const double total = warp(processed, best, config, probabilities, order);
  for (double& p : probabilities) p /= total;
  return probabilities;
}

double token_logprob(std::span<const float> logits, int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= logits.size())
    fail("token id {} is outside the vocabulary of {} logits", token, logits.size());
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float logit : logits) sum += std::exp(logit - max_logit);
  return (logits[static_cast<size_t>(token)] - max_logit) - std::log(sum);
}

Sampler::Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {
  validate(config_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history, int32_t suppressed) {
  const int32_t best = process(logits, history, config_, scratch_, suppressed);
  if (config_.temperature == 0) return best;
  const double total = warp(scratch_, best, config_, weights_, order_);

  // Inverse CDF over the weights in id order. u < total always, but rounding in the running sum could
  // leave the last kept token just short of it, so that token is the fallback.
  const double u = rng_.uniform() * total;
  double cumulative = 0;
  size_t last_kept = static_cast<size_t>(best);
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (weights_[i] == 0) continue;
    cumulative += weights_[i];
    last_kept = i;
    if (u < cumulative) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last_kept);
}

}  // namespace inkstone
