// evaluate_perplexity against independent host computations: log-softmax in double of the logits of
// window forwards run here, with the windowing written out here (non-overlapping windows, and Hugging
// Face's strided loop ported line by line).
#include "infer/perplexity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "support/expect_contains.h"
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

struct Scored {
  double nll = 0;
  int64_t tokens = 0;
};

struct StrideCase {
  size_t n;
  int window, stride;
};

class Perplexity : public ::testing::Test {
 protected:
  Perplexity() : backend_(make_backend("cpu")), model_(*backend_, kShape, kMaxBatch, kShape.context) {
    model_.initialize(21);
  }

  // The logits of tokens [start, start + T) run alone, [T, vocab].
  std::vector<float> window_logits(const std::vector<int32_t>& tokens, size_t start, int T) {
    model_.forward(std::span<const int32_t>(tokens).subspan(start, static_cast<size_t>(T)), {}, 1, T);
    return model_.read_logits(0, T);
  }
  // -log softmax(logits of row t)[target], in double.
  static double row_nll(const std::vector<float>& logits, int t, int32_t target) {
    const float* row = logits.data() + static_cast<size_t>(t) * kShape.vocab;
    const double max = *std::max_element(row, row + kShape.vocab);
    double sum = 0;
    for (int v = 0; v < kShape.vocab; ++v) sum += std::exp(row[v] - max);
    return max + std::log(sum) - row[target];
  }

  // Non-overlapping windows [w*W, w*W + W] (clipped to n), each predicting its last W tokens.
  double non_overlapping_nll(const std::vector<int32_t>& tokens, int W) {
    double nll = 0;
    for (size_t start = 0; start + 1 < tokens.size(); start += static_cast<size_t>(W)) {
      const size_t end = std::min(tokens.size(), start + static_cast<size_t>(W) + 1);
      const int T = static_cast<int>(end - start - 1);
      const std::vector<float> logits = window_logits(tokens, start, T);
      for (int t = 0; t < T; ++t) nll += row_nll(logits, t, tokens[start + static_cast<size_t>(t) + 1]);
    }
    return nll;
  }

  // Hugging Face's strided loop ("Perplexity of fixed-length models"), line by line:
  //   for begin_loc in range(0, seq_len, stride):
  //       end_loc = min(begin_loc + max_length, seq_len)
  //       trg_len = end_loc - prev_end_loc
  //       input_ids = ids[begin_loc:end_loc]; target_ids = input_ids.clone(); target_ids[:-trg_len] = -100
  //       loss = model(input_ids, labels=target_ids)  # logits[j] against target_ids[j + 1]
  //       prev_end_loc = end_loc
  //       if end_loc == seq_len: break
  // The loss sums over the labels that are not -100 and survive the shift (label 0 never does), so
  // each window scores min(trg_len, len - 1) tokens; they are counted here one by one.
  // HF's max_length counts the window's last label; our window of W inputs is its max_length W + 1.
  Scored hugging_face_strided(const std::vector<int32_t>& ids, int max_length, int stride) {
    const int seq_len = static_cast<int>(ids.size());
    Scored scored;
    int prev_end_loc = 0;
    for (int begin_loc = 0; begin_loc < seq_len; begin_loc += stride) {
      const int end_loc = std::min(begin_loc + max_length, seq_len);
      const int trg_len = end_loc - prev_end_loc;
      const int len = end_loc - begin_loc;
      std::vector<int32_t> target_ids(ids.begin() + begin_loc, ids.begin() + end_loc);
      for (int j = 0; j < std::max(len - trg_len, 0); ++j) target_ids[static_cast<size_t>(j)] = -100;
      // The logits of the last input token predict nothing here, and causality means the others do
      // not depend on it: the forward of the first len - 1 tokens gives the same rows.
      const std::vector<float> logits = window_logits(ids, static_cast<size_t>(begin_loc), len - 1);
      int window_tokens = 0;
      for (int j = 0; j + 1 < len; ++j) {
        const int32_t label = target_ids[static_cast<size_t>(j) + 1];
        if (label == -100) continue;
        scored.nll += row_nll(logits, j, label);
        ++window_tokens;
      }
      EXPECT_EQ(window_tokens, std::min(trg_len, len - 1));  // the count derived above
      scored.tokens += window_tokens;
      prev_end_loc = end_loc;
      if (end_loc == seq_len) break;
    }
    return scored;
  }

  std::unique_ptr<Backend> backend_;
  GPT2 model_;
};

TEST_F(Perplexity, StrideEqualToWindowIsNonOverlappingWindows) {
  const int window = 8;
  // n <= window + 1 (a single short or exact window), multiples of the window plus one, and not.
  for (const size_t n : {2u, 5u, 9u, 10u, 17u, 30u, 41u, 57u}) {
    const std::vector<int32_t> tokens = random_tokens(n, n);
    const PerplexityResult r = evaluate_perplexity(model_, tokens, 1000, window, window, 3);
    EXPECT_EQ(r.scored_tokens, static_cast<int64_t>(n - 1)) << "n " << n;
    const double want = non_overlapping_nll(tokens, window);
    EXPECT_NEAR(r.nll_sum, want, kRelativeTolerance * want) << "n " << n;
    EXPECT_NEAR(r.perplexity(), std::exp(want / static_cast<double>(n - 1)),
                kRelativeTolerance * r.perplexity())
        << "n " << n;
  }
}

TEST_F(Perplexity, SmallerStrideMatchesHuggingFacesLoop) {
  // One window only, the last window short or full, stride 1, stride = window - 1, the full context.
  const StrideCase cases[] = {{2, 8, 3},  {9, 8, 1},  {10, 8, 4},  {30, 8, 3},   {41, 8, 5},
                              {57, 8, 7}, {33, 4, 1}, {50, 16, 4}, {64, 16, 15}, {27, 16, 10}};
  for (const StrideCase& c : cases) {
    const std::vector<int32_t> tokens = random_tokens(c.n, c.n + static_cast<size_t>(c.stride));
    const PerplexityResult r = evaluate_perplexity(model_, tokens, 1000, c.window, c.stride, 3);
    const Scored want = hugging_face_strided(tokens, c.window + 1, c.stride);
    EXPECT_EQ(r.scored_tokens, want.tokens) << c.n << " " << c.window << " " << c.stride;
    EXPECT_EQ(r.scored_tokens, static_cast<int64_t>(c.n - 1));  // every prediction, once
    EXPECT_NEAR(r.nll_sum, want.nll, kRelativeTolerance * want.nll)
        << c.n << " " << c.window << " " << c.stride;
    EXPECT_NEAR(r.perplexity(), std::exp(want.nll / static_cast<double>(want.tokens)),
                kRelativeTolerance * r.perplexity());
  }
}

TEST_F(Perplexity, SmallerStrideScoresWithMoreContext) {
  // So that the comparison above can tell strided from non-overlapping windows apart.
  const std::vector<int32_t> tokens = random_tokens(57, 3);
  const double strided = evaluate_perplexity(model_, tokens, 0, 8, 2, 4).nll_sum;
  const double non_overlapping = non_overlapping_nll(tokens, 8);
  EXPECT_GT(std::abs(strided - non_overlapping), 100 * kRelativeTolerance * non_overlapping);
}

TEST_F(Perplexity, StrideBelowWindowScoresWhatHuggingFaceScores) {
  // HF's own max_length = our window (one token less context per window); for stride < window its
  // loop scores as many tokens as ours, every token after the first.
  for (const StrideCase& c :
       {StrideCase{2, 8, 3}, {9, 8, 1}, {26, 8, 7}, {40, 8, 3}, {17, 16, 15}, {61, 12, 5}}) {
    const std::vector<int32_t> tokens = random_tokens(c.n, 5);
    EXPECT_EQ(evaluate_perplexity(model_, tokens, 0, c.window, c.stride, 2).scored_tokens,
              hugging_face_strided(tokens, c.window, c.stride).tokens)
        << c.n << " " << c.window << " " << c.stride;
  }
}

TEST_F(Perplexity, BatchingDoesNotChangeTheResult) {
  const std::vector<int32_t> tokens = random_tokens(100, 7);
  for (const int stride : {16, 5, 1}) {
    const PerplexityResult one = evaluate_perplexity(model_, tokens, 0, 16, stride, 1);
    for (const int batch : {2, 3, 4}) {
      const PerplexityResult r = evaluate_perplexity(model_, tokens, 0, 16, stride, batch);
      EXPECT_EQ(r.scored_tokens, one.scored_tokens);
      EXPECT_NEAR(r.nll_sum, one.nll_sum, kRelativeTolerance * one.nll_sum)
          << "stride " << stride << " batch " << batch;
    }
  }
}

TEST_F(Perplexity, UniformLogitsGiveTheVocabularySize) {
  // ln_f with zero gain and bias outputs zeros, so every logit is 0: each token costs exactly ln(vocab).
  model_.write_parameter("ln_f.weight", std::vector<float>(kShape.n_embd, 0.0f));
  model_.write_parameter("ln_f.bias", std::vector<float>(kShape.n_embd, 0.0f));
  const std::vector<int32_t> tokens = random_tokens(37, 4);
  for (const int stride : {8, 3}) {
    const PerplexityResult r = evaluate_perplexity(model_, tokens, 72, 8, stride, 2);
    EXPECT_EQ(r.scored_tokens, 36);
    EXPECT_NEAR(r.mean_nll(), std::log(257.0), 1e-6);
    EXPECT_NEAR(r.perplexity(), 257.0, 257.0 * 1e-6);
    EXPECT_NEAR(r.bits_per_byte(), 36 * std::log2(257.0) / 72, 1e-6);
  }
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
    EXPECT_CONTAINS(error_of([&] { evaluate_perplexity(model_, tokens, 0, 8, 8, 1); }), "at least 2 tokens");
  }
}

TEST_F(Perplexity, OutOfRangeWindowStrideOrBatchIsAnError) {
  const std::vector<int32_t> tokens = random_tokens(20, 1);
  const auto error = [&](int window, int stride, int batch) {
    return error_of([&] { evaluate_perplexity(model_, tokens, 0, window, stride, batch); });
  };
  EXPECT_CONTAINS(error(0, 1, 1), "window 0");
  EXPECT_CONTAINS(error(17, 8, 1), "window 17 is outside [1, 16]");  // beyond the context
  EXPECT_CONTAINS(error(8, 0, 1), "stride 0 is outside [1, 8]");
  EXPECT_CONTAINS(error(8, 9, 1), "stride 9 is outside [1, 8]");
  EXPECT_CONTAINS(error(8, 8, 0), "batch 0");
  EXPECT_CONTAINS(error(8, 8, kMaxBatch + 1), "batch 5 is outside [1, 4]");

  GPT2 short_model(*backend_, kShape, 1, 8);  // context 16, but room for 8 positions only
  EXPECT_CONTAINS(error_of([&] { evaluate_perplexity(short_model, tokens, 0, 12, 4, 1); }),
                  "window 12 is outside [1, 8]");
}

}  // namespace
}  // namespace inkstone
