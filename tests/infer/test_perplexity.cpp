// evaluate_perplexity against an independent host computation: log-softmax in double of the logits
// of full forward passes, with the windowing written out here.
#include "infer/perplexity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

constexpr GPT2Shape kShape{.n_layer = 2, .n_head = 2, .n_embd = 32, .context = 16, .vocab = 257};
constexpr int kMaxBatch = 4;

// The model computes in float32 and forward() returns each window's mean loss as a float, so the
// summed NLL carries relative errors of a few float ulps (~1e-7); 1e-5 leaves ample headroom. A token
// skipped or counted twice moves the sum by ~1/n >= 1e-2, and scoring with other context (windows of
// 7 instead of 8 tokens) moves it by ~2e-3 on this model.
constexpr double kRelativeTolerance = 1e-5;

std::vector<int32_t> random_tokens(size_t n, uint64_t seed) {
  const std::vector<float> u = testing::random_floats(n, seed, 1.0f);
  std::vector<int32_t> tokens(n);
  for (size_t i = 0; i < n; ++i)
    tokens[i] = std::clamp(static_cast<int32_t>((u[i] + 1.0f) / 2.0f * kShape.vocab), 0, kShape.vocab - 1);
  return tokens;
}

class Perplexity : public ::testing::Test {
 protected:
  Perplexity() : backend_(make_backend("cpu")), model_(*backend_, kShape, kMaxBatch, kShape.context) {
    model_.initialize(21);
  }

  // Sum over windows [w*W, w*W + W] (clipped to n) of -log softmax(logits[t])[tokens[t+1]], each window
  // run alone, the log-softmax in double on the host.
  double reference_nll(const std::vector<int32_t>& tokens, int W) {
    double nll = 0;
    for (size_t start = 0; start + 1 < tokens.size(); start += static_cast<size_t>(W)) {
      const size_t end = std::min(tokens.size(), start + static_cast<size_t>(W) + 1);
      const int T = static_cast<int>(end - start - 1);
      model_.forward(std::span<const int32_t>(tokens).subspan(start, static_cast<size_t>(T)), {}, 1, T);
      const std::vector<float> logits = model_.read_logits(0, T);
      for (int t = 0; t < T; ++t) {
        const float* row = logits.data() + static_cast<size_t>(t) * kShape.vocab;
        const double max = *std::max_element(row, row + kShape.vocab);
        double sum = 0;
        for (int v = 0; v < kShape.vocab; ++v) sum += std::exp(row[v] - max);
        const int32_t target = tokens[start + static_cast<size_t>(t) + 1];
        nll += max + std::log(sum) - row[target];
      }
    }
    return nll;
  }

  std::unique_ptr<Backend> backend_;
  GPT2 model_;
};

TEST_F(Perplexity, MatchesLogSoftmaxOfFullForwardPasses) {
  const int window = 8;
  // n <= window + 1 (a single short or exact window), multiples of the window plus one, and not.
  for (const size_t n : {2u, 5u, 9u, 10u, 17u, 30u, 41u, 57u}) {
    const std::vector<int32_t> tokens = random_tokens(n, n);
    const PerplexityResult r = evaluate_perplexity(model_, tokens, 1000, window, 3);
    EXPECT_EQ(r.scored_tokens, static_cast<int64_t>(n - 1)) << "n " << n;
    const double want = reference_nll(tokens, window);
    EXPECT_NEAR(r.nll_sum, want, kRelativeTolerance * want) << "n " << n;
    EXPECT_NEAR(r.perplexity(), std::exp(want / static_cast<double>(n - 1)),
                kRelativeTolerance * r.perplexity())
        << "n " << n;
  }
}

TEST_F(Perplexity, BatchingDoesNotChangeTheResult) {
  const std::vector<int32_t> tokens = random_tokens(100, 7);
  const PerplexityResult one = evaluate_perplexity(model_, tokens, 0, 16, 1);
  for (const int batch : {2, 3, 4}) {
    const PerplexityResult r = evaluate_perplexity(model_, tokens, 0, 16, batch);
    EXPECT_EQ(r.scored_tokens, one.scored_tokens);
    EXPECT_NEAR(r.nll_sum, one.nll_sum, kRelativeTolerance * one.nll_sum) << "batch " << batch;
  }
}

TEST_F(Perplexity, AWindowBeyondTheModelIsCutToItsContext) {
  const std::vector<int32_t> tokens = random_tokens(50, 9);
  const PerplexityResult r = evaluate_perplexity(model_, tokens, 0, 1000, 2);
  EXPECT_EQ(r.scored_tokens, 49);
  const double want = reference_nll(tokens, kShape.context);
  EXPECT_NEAR(r.nll_sum, want, kRelativeTolerance * want);
}

TEST_F(Perplexity, UniformLogitsGiveTheVocabularySize) {
  // ln_f with zero gain and bias outputs zeros, so every logit is 0: each token costs exactly ln(vocab).
  model_.write_parameter("ln_f.weight", std::vector<float>(kShape.n_embd, 0.0f));
  model_.write_parameter("ln_f.bias", std::vector<float>(kShape.n_embd, 0.0f));
  const std::vector<int32_t> tokens = random_tokens(37, 4);
  const PerplexityResult r = evaluate_perplexity(model_, tokens, 72, 8, 2);
  EXPECT_EQ(r.scored_tokens, 36);
  EXPECT_NEAR(r.mean_nll(), std::log(257.0), 1e-6);
  EXPECT_NEAR(r.perplexity(), 257.0, 257.0 * 1e-6);
  EXPECT_NEAR(r.bits_per_byte(), 36 * std::log2(257.0) / 72, 1e-6);
}

TEST(PerplexityResult, DerivedQuantities) {
  const PerplexityResult r{.nll_sum = 6 * std::numbers::ln2, .scored_tokens = 6, .text_bytes = 3};
  EXPECT_DOUBLE_EQ(r.mean_nll(), std::numbers::ln2);
  EXPECT_DOUBLE_EQ(r.perplexity(), 2.0);
  EXPECT_DOUBLE_EQ(r.bits_per_byte(), 2.0);  // 6 bits over 3 bytes
  const PerplexityResult no_bytes{.nll_sum = 1, .scored_tokens = 1, .text_bytes = 0};
  EXPECT_TRUE(std::isnan(no_bytes.bits_per_byte()));
}

TEST_F(Perplexity, FewerThanTwoTokensIsAnError) {
  for (const size_t n : {0u, 1u}) {
    const std::vector<int32_t> tokens(n, 1);
    EXPECT_NE(error_of([&] { evaluate_perplexity(model_, tokens, 0, 8, 1); }).find("at least 2 tokens"),
              std::string::npos);
  }
}

TEST_F(Perplexity, BadWindowOrBatchIsAnError) {
  const std::vector<int32_t> tokens = random_tokens(20, 1);
  EXPECT_THROW(evaluate_perplexity(model_, tokens, 0, 0, 1), Error);
  EXPECT_THROW(evaluate_perplexity(model_, tokens, 0, 8, 0), Error);
  EXPECT_THROW(evaluate_perplexity(model_, tokens, 0, 8, kMaxBatch + 1), Error);
}

}  // namespace
}  // namespace inkstone
