// Sampler: greedy is the argmax, top-k never leaves the k largest, temperature sampling follows the
// softmax within a stated statistical tolerance, and a seed fixes the draws.
#include "infer/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

std::vector<int> count_draws(Sampler& sampler, std::span<const float> logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts.at(static_cast<size_t>(sampler.sample(logits)));
  return counts;
}

// softmax(logits / temperature) over `keep` (all when empty), in long double.
std::vector<double> expected_probabilities(const std::vector<float>& logits, double temperature,
                                           const std::set<size_t>& keep = {}) {
  std::vector<long double> w(logits.size(), 0);
  long double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!keep.empty() && !keep.contains(i)) continue;
    w[i] = std::exp(static_cast<long double>(logits[i]) / temperature);
    total += w[i];
  }
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) p[i] = static_cast<double>(w[i] / total);
  return p;
}

// Each count is binomial(N, p): within 5 standard deviations (+1 for the discreteness) it fails by
// chance with probability < 6e-7 per token, so a failure means the distribution is wrong.
void expect_frequencies_match(const std::vector<int>& counts, const std::vector<double>& p, int draws) {
  for (size_t i = 0; i < p.size(); ++i) {
    const double mean = draws * p[i];
    const double sigma = std::sqrt(draws * p[i] * (1 - p[i]));
    EXPECT_NEAR(counts[i], mean, 5 * sigma + 1) << "token " << i << " p " << p[i];
  }
}

TEST(Sampler, RejectsOutOfRangeOptions) {
  EXPECT_NE(error_of([] { validate({.temperature = -0.1}); }).find("--temperature must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { validate({.temperature = std::nan("")}); }).find("--temperature"),
            std::string::npos);
  EXPECT_NE(error_of([] { validate({.temperature = INFINITY}); }).find("--temperature"), std::string::npos);
  EXPECT_NE(error_of([] { validate({.top_k = -1}); }).find("--top-k must be >= 0"), std::string::npos);
  EXPECT_THROW(Sampler({.temperature = -1}), Error);
  EXPECT_EQ(error_of([] { validate({.temperature = 0, .top_k = 0}); }), "");
  EXPECT_EQ(error_of([] { validate({.temperature = 2.5, .top_k = 50}); }), "");
}

TEST(Sampler, GreedyPicksTheLargestLogitAndTheLowestIndexOnTies) {
  Sampler greedy({.temperature = 0});
  const std::vector<float> logits = {0.5f, -2.0f, 3.25f, 1.0f, 3.0f};
  EXPECT_EQ(greedy.sample(logits), 2);
  const std::vector<float> tied = {1.0f, 4.0f, -1.0f, 4.0f, 4.0f};
  EXPECT_EQ(greedy.sample(tied), 1);
  const std::vector<float> one = {-7.0f};
  EXPECT_EQ(greedy.sample(one), 0);
}

TEST(Sampler, TemperatureZeroIsGreedyWhateverTheSeedAndTopK) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = testing::random_floats(300, seed, 5.0f);
    const auto want = std::max_element(logits.begin(), logits.end()) - logits.begin();
    Sampler greedy({.temperature = 0, .top_k = static_cast<int>(seed % 3) * 10, .seed = seed});
    for (int i = 0; i < 3; ++i) EXPECT_EQ(greedy.sample(logits), want) << "seed " << seed;
  }
}

TEST(Sampler, TopKDrawsOnlyAndEveryOneOfTheKLargest) {
  const std::vector<float> logits = testing::random_floats(100, 3, 2.0f);
  const int k = 5;
  std::vector<size_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  const std::set<size_t> top(order.begin(), order.begin() + k);

  Sampler sampler({.temperature = 1.0, .top_k = k, .seed = 11});
  const std::vector<int> counts = count_draws(sampler, logits, 20000);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (top.contains(i)) {
      EXPECT_GT(counts[i], 0) << "token " << i << " is among the top " << k;
    } else {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the top " << k;
    }
  }
}

TEST(Sampler, TopKKeepsEveryLogitTiedWithTheKth) {
  const std::vector<float> logits = {3.0f, 2.0f, 2.0f, 2.0f, 1.0f, 0.0f};
  Sampler sampler({.temperature = 1.0, .top_k = 2, .seed = 5});
  const std::vector<int> counts = count_draws(sampler, logits, 20000);
  for (int i : {0, 1, 2, 3}) EXPECT_GT(counts[static_cast<size_t>(i)], 0) << i;
  EXPECT_EQ(counts[4], 0);
  EXPECT_EQ(counts[5], 0);
}

TEST(Sampler, FrequenciesFollowTheTemperedSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f, -3.0f, 1.5f, 0.25f};
  const int draws = 200000;
  for (const double temperature : {0.5, 1.0, 2.0}) {
    Sampler sampler({.temperature = temperature, .seed = 42});
    expect_frequencies_match(count_draws(sampler, logits, draws), expected_probabilities(logits, temperature),
                             draws);
  }
}

TEST(Sampler, TopKRenormalisesOverTheKeptTokens) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f, -3.0f, 1.5f, 0.25f};
  const int draws = 200000;
  Sampler sampler({.temperature = 0.8, .top_k = 3, .seed = 9});
  expect_frequencies_match(count_draws(sampler, logits, draws),
                           expected_probabilities(logits, 0.8, {0, 3, 6}), draws);
}

TEST(Sampler, LargeLogitsDoNotOverflow) {
  // exp(1000) overflows a double; the maximum must be subtracted first.
  const std::vector<float> logits = {1000.0f, 999.0f, -1000.0f};
  Sampler sampler({.temperature = 1.0, .seed = 1});
  const int draws = 100000;
  expect_frequencies_match(count_draws(sampler, logits, draws),
                           expected_probabilities({1.0f, 0.0f, -2000.0f}, 1.0), draws);
}

TEST(Sampler, TheSeedFixesTheDraws) {
  const std::vector<float> flat(50, 0.0f);
  const SamplingConfig config{.temperature = 1.0, .top_k = 0, .seed = 2024};
  Sampler a(config), b(config), other({.temperature = 1.0, .top_k = 0, .seed = 2025});
  std::vector<int32_t> da, db, dother;
  for (int i = 0; i < 100; ++i) {
    da.push_back(a.sample(flat));
    db.push_back(b.sample(flat));
    dother.push_back(other.sample(flat));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dother);  // equal by chance with probability 50^-100
}

TEST(Sampler, NonFiniteLogitsAreAnError) {
  Sampler sampler({.temperature = 1.0});
  const std::vector<float> logits = {0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
  EXPECT_NE(error_of([&] { sampler.sample(logits); }).find("non-finite"), std::string::npos);
  Sampler greedy({.temperature = 0});
  const std::vector<float> inf = {0.0f, INFINITY};
  EXPECT_THROW(greedy.sample(inf), Error);
}

}  // namespace
}  // namespace inkstone
