// Sampler: greedy is the argmax of the processed logits; the processors (repetition penalty,
// no-repeat-n-gram) and warpers (temperature, top-k, top-p, min-p) follow Hugging Face's definitions on
// distributions computed by hand; draws follow sampling_distribution within a stated statistical
// tolerance; a seed fixes the draws; every out-of-range option is refused by its flag's name.
#include "infer/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "runtime/error.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

std::vector<int> count_draws(Sampler& sampler, std::span<const float> logits, int draws,
                             std::span<const int32_t> history = {}) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts.at(static_cast<size_t>(sampler.sample(logits, history)));
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

void expect_distribution_near(const std::vector<double>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-12) << "token " << i;
}

TEST(Sampler, RejectsEveryOutOfRangeOptionByItsFlag) {
  struct Case {
    SamplingConfig config;
    const char* message;
  };
  const double nan = std::nan("");
  const std::vector<Case> cases = {
      {{.temperature = -0.1}, "--temperature must be >= 0"},
      {{.temperature = nan}, "--temperature must be >= 0"},
      {{.temperature = INFINITY}, "--temperature must be >= 0 and finite"},
      {{.top_k = -1}, "--top-k must be >= 0"},
      {{.top_p = 0}, "--top-p must be in (0, 1]"},
      {{.top_p = 1.5}, "--top-p must be in (0, 1]"},
      {{.top_p = -0.5}, "--top-p must be in (0, 1]"},
      {{.top_p = nan}, "--top-p must be in (0, 1]"},
      {{.min_p = -0.01}, "--min-p must be in [0, 1]"},
      {{.min_p = 1.01}, "--min-p must be in [0, 1]"},
      {{.min_p = nan}, "--min-p must be in [0, 1]"},
      {{.repetition_penalty = 0}, "--repetition-penalty must be > 0"},
      {{.repetition_penalty = -1.2}, "--repetition-penalty must be > 0"},
      {{.repetition_penalty = INFINITY}, "--repetition-penalty must be > 0 and finite"},
      {{.repetition_penalty = nan}, "--repetition-penalty must be > 0"},
      {{.no_repeat_ngram_size = -1}, "--no-repeat-ngram-size must be >= 0"},
  };
  for (const Case& c : cases) {
    const std::string message = error_of([&] { validate(c.config); });
    EXPECT_NE(message.find(c.message), std::string::npos)
        << "want '" << c.message << "', got '" << message << "'";
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] { validate({.temperature = -1}); }).find("0 means greedy"), std::string::npos);
  EXPECT_THROW(Sampler({.temperature = -1}), Error);
  EXPECT_THROW(Sampler({.top_p = 0}), Error);
  const std::vector<float> logits = {0.0f, 1.0f};
  EXPECT_THROW(sampling_distribution(logits, {}, {.min_p = 2}), Error);
  // The closed ends of every range, and values just inside the open ones, are accepted.
  EXPECT_EQ(error_of([] { validate({.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0}); }), "");
  EXPECT_EQ(error_of([] {
              validate({.temperature = 2.5,
                        .top_k = 50,
                        .top_p = 1e-9,
                        .min_p = 1,
                        .repetition_penalty = 1e-3,
                        .no_repeat_ngram_size = 3});
            }),
            "");
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

TEST(Sampler, GreedyIsTheArgmaxAfterThePenalties) {
  const std::vector<float> logits = {3.0f, 2.5f, 1.0f, -1.0f};
  const std::vector<int32_t> history = {0};
  // 3.0 / 1.5 = 2.0 falls below 2.5.
  Sampler penalised({.temperature = 0, .repetition_penalty = 1.5});
  EXPECT_EQ(penalised.sample(logits, history), 1);
  Sampler banned({.temperature = 0, .no_repeat_ngram_size = 1});
  EXPECT_EQ(banned.sample(logits, history), 1);
  EXPECT_EQ(sampling_distribution(logits, history, {.temperature = 0, .repetition_penalty = 1.5}),
            (std::vector<double>{0, 1, 0, 0}));
}

TEST(Sampler, ATinyTemperatureDrawsWhatGreedyPicks) {
  // Every gap between distinct logits is >= 0.25, i.e. >= 2500 at temperature 1e-4, and exp(-2500) is 0 in
  // double: the limit temperature -> 0 is reached exactly, so every draw must be the greedy choice.
  const std::vector<float> logits = {0.5f, -2.0f, 3.25f, 1.0f, 3.0f, 2.0f};
  const std::vector<int32_t> history = {2, 4};
  struct Case {
    SamplingConfig config;
    int32_t greedy;
  };
  // With penalty 2, tokens 2 and 4 fall to 1.625 and 1.5, below token 5's 2.0.
  for (const Case& c : {Case{{}, 2}, Case{{.top_k = 3, .top_p = 0.9, .repetition_penalty = 2.0}, 5}}) {
    SamplingConfig cold = c.config;
    cold.temperature = 1e-4;
    SamplingConfig greedy = c.config;
    greedy.temperature = 0;
    EXPECT_EQ(sampling_distribution(logits, history, cold), sampling_distribution(logits, history, greedy));
    EXPECT_EQ(Sampler(greedy).sample(logits, history), c.greedy);
    Sampler sampler(cold);
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(sampler.sample(logits, history), c.greedy) << "draw " << i;
  }
}

TEST(Sampler, TemperatureZeroIsGreedyWhateverTheSeedAndTheWarpers) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = testing::random_floats(300, seed, 5.0f);
    const auto want = std::max_element(logits.begin(), logits.end()) - logits.begin();
    Sampler greedy({.temperature = 0,
                    .top_k = static_cast<int>(seed % 3) * 10,
                    .top_p = seed % 2 == 0 ? 1.0 : 0.05,
                    .min_p = seed % 4 == 0 ? 0.0 : 0.9,
                    .seed = seed});
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

TEST(Sampler, TopPKeepsTheSmallestSetReachingPAtAnExactBoundary) {
  // Eight equal logits: every probability is 1/8 exactly, so the masses are exact binary fractions, and
  // among equals the lower id ranks first. The mass above the token ranked i is i/8; kept while < top_p.
  const std::vector<float> flat(8, 0.5f);
  const auto distribution = [&](double top_p) { return sampling_distribution(flat, {}, {.top_p = top_p}); };
  // Four tokens hold exactly 0.5: the fifth has 0.5 above it and goes.
  EXPECT_EQ(distribution(0.5), (std::vector<double>{0.25, 0.25, 0.25, 0.25, 0, 0, 0, 0}));
  EXPECT_EQ(distribution(std::nextafter(0.5, 1.0)), (std::vector<double>{0.2, 0.2, 0.2, 0.2, 0.2, 0, 0, 0}));
  EXPECT_EQ(distribution(0.125), (std::vector<double>{1, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(distribution(0.126), (std::vector<double>{0.5, 0.5, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(distribution(1e-9), (std::vector<double>{1, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(distribution(1.0), std::vector<double>(8, 0.125));
}

TEST(Sampler, TopPKeepsTheMostLikelyTokensUntilTheirMassReachesP) {
  // Probabilities (e^3, e^1, e^2, e^0, e^-1) / 31.5606 = 0.6364, 0.0861, 0.2341, 0.0317, 0.0117. Ranked
  // 0, 2, 1, 3, 4, with masses above them 0, 0.6364, 0.8705, 0.9567, 0.9883.
  const std::vector<float> logits = {3.0f, 1.0f, 2.0f, 0.0f, -1.0f};
  struct Case {
    double top_p;
    std::set<size_t> keep;
  };
  for (const Case& c : {Case{0.6, {0}}, Case{0.7, {0, 2}}, Case{0.9, {0, 1, 2}}, Case{0.97, {0, 1, 2, 3}},
                        Case{0.99, {0, 1, 2, 3, 4}}}) {
    SCOPED_TRACE(c.top_p);
    expect_distribution_near(sampling_distribution(logits, {}, {.top_p = c.top_p}),
                             expected_probabilities(logits, 1.0, c.keep));
  }
}

TEST(Sampler, TopPOverALargeVocabularyMatchesAFullSort) {
  // Thousands of tokens take the top-p cut through many rounds of selection.
  // 1024 equal logits: each has probability 2^-10 exactly, and top-p 0.5 keeps the lowest 512 ids.
  const std::vector<float> flat(1024, -0.5f);
  std::vector<double> half(1024, 0.0);
  std::fill(half.begin(), half.begin() + 512, 1.0 / 512);
  EXPECT_EQ(sampling_distribution(flat, {}, {.top_p = 0.5}), half);

  // Random logits against a full sort and a running sum in long double, written out here.
  const std::vector<float> logits = testing::random_floats(3000, 21, 2.0f);
  const double top_p = 0.8;
  const std::vector<double> p = expected_probabilities(logits, 1.0);
  std::vector<size_t> ranked(logits.size());
  for (size_t i = 0; i < ranked.size(); ++i) ranked[i] = i;
  std::sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  std::set<size_t> keep;
  long double above = 0;
  for (const size_t i : ranked) {
    if (above >= top_p) break;
    keep.insert(i);
    above += p[i];
  }
  ASSERT_GT(keep.size(), 600u);  // a nucleus of hundreds of tokens
  expect_distribution_near(sampling_distribution(logits, {}, {.top_p = top_p}),
                           expected_probabilities(logits, 1.0, keep));
}

TEST(Sampler, TopPFollowsTheTemperatureAndTheTopKSurvivors) {
  // {1, 0}: token 0 has probability 0.731 at temperature 1 and 0.562 at temperature 4.
  const std::vector<float> two = {1.0f, 0.0f};
  EXPECT_EQ(sampling_distribution(two, {}, {.temperature = 1, .top_p = 0.7}), (std::vector<double>{1, 0}));
  expect_distribution_near(sampling_distribution(two, {}, {.temperature = 4, .top_p = 0.7}),
                           expected_probabilities(two, 4.0));
  // {2, 1, 0, -1}: token 0 has 0.644 of the four tokens' mass, but 0.731 of the top 2's. HF applies
  // top-k first, so top-p 0.7 then keeps token 0 alone.
  const std::vector<float> four = {2.0f, 1.0f, 0.0f, -1.0f};
  EXPECT_EQ(sampling_distribution(four, {}, {.top_k = 2, .top_p = 0.7}), (std::vector<double>{1, 0, 0, 0}));
  expect_distribution_near(sampling_distribution(four, {}, {.top_p = 0.7}),
                           expected_probabilities(four, 1.0, {0, 1}));
}

TEST(Sampler, MinPDropsTokensBelowMinPTimesTheMostLikely) {
  // Probabilities relative to the most likely token: 1, e^-1 = 0.368, e^-2 = 0.135, e^-3 = 0.050, e^-5 =
  // 0.0067.
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, -3.0f};
  struct Case {
    double min_p;
    std::set<size_t> keep;
  };
  for (const Case& c :
       {Case{0.4, {0}}, Case{0.1, {0, 1, 2}}, Case{0.04, {0, 1, 2, 3}}, Case{0.005, {0, 1, 2, 3, 4}}}) {
    SCOPED_TRACE(c.min_p);
    expect_distribution_near(sampling_distribution(logits, {}, {.min_p = c.min_p}),
                             expected_probabilities(logits, 1.0, c.keep));
  }
  // min-p 1 keeps exactly the tokens tied with the most likely.
  const std::vector<float> tied = {1.0f, 3.0f, 3.0f, 2.0f};
  EXPECT_EQ(sampling_distribution(tied, {}, {.min_p = 1}), (std::vector<double>{0, 0.5, 0.5, 0}));
  // After the temperature: {0, -2, -4} at temperature 2 has ratios 1, e^-1, e^-2, so min-p 0.2 keeps two
  // tokens; at temperature 1 the ratios are 1, e^-2 = 0.135, e^-4, so it keeps one.
  const std::vector<float> spread = {0.0f, -2.0f, -4.0f};
  expect_distribution_near(sampling_distribution(spread, {}, {.temperature = 2, .min_p = 0.2}),
                           expected_probabilities(spread, 2.0, {0, 1}));
  EXPECT_EQ(sampling_distribution(spread, {}, {.temperature = 1, .min_p = 0.2}),
            (std::vector<double>{1, 0, 0}));
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerToken) {
  // Token 1 occurs three times and token 0 twice; each is penalised once (-1.5 * 8 would be thrice).
  // Token 5's logit 0 stays 0; tokens 2, 3, 4 are not in the history.
  const std::vector<float> raw = {2.0f, -1.5f, 0.5f, 3.0f, -0.25f, 0.0f};
  const std::vector<float> penalised = {1.0f, -3.0f, 0.5f, 3.0f, -0.25f, 0.0f};
  const std::vector<int32_t> history = {0, 1, 1, 5, 0, 1};
  std::vector<float> logits = raw;
  apply_repetition_penalty(logits, history, 2.0);
  EXPECT_EQ(logits, penalised);
  // Below 1 it encourages repeats.
  std::vector<float> encouraged = {2.0f, -1.5f, 0.5f};
  apply_repetition_penalty(encouraged, std::vector<int32_t>{0, 1, 0, 1}, 0.5);
  EXPECT_EQ(encouraged, (std::vector<float>{4.0f, -0.75f, 0.5f}));
  // The draws see the penalised logits, before the temperature.
  expect_distribution_near(
      sampling_distribution(raw, history, {.temperature = 0.5, .repetition_penalty = 2.0}),
      expected_probabilities(penalised, 0.5));
  // An extreme penalty leaves the logits finite, in the same order.
  std::vector<float> extreme = {3e38f, -3e38f, 1.0f};
  apply_repetition_penalty(extreme, std::vector<int32_t>{0, 1}, 1e-3);
  EXPECT_EQ(extreme[0], FLT_MAX);
  EXPECT_FLOAT_EQ(extreme[1], -3e35f);
  apply_repetition_penalty(extreme, std::vector<int32_t>{1}, 1e9);
  EXPECT_EQ(extreme[1], -FLT_MAX);
}

// The token ids ban_repeated_ngrams bans from an 8-token vocabulary; every other logit must be untouched.
std::set<size_t> banned_by(int n, const std::vector<int32_t>& history) {
  std::vector<float> logits(8, 1.5f);
  ban_repeated_ngrams(logits, history, n);
  std::set<size_t> banned;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == -INFINITY) {
      banned.insert(i);
    } else {
      EXPECT_EQ(logits[i], 1.5f) << "token " << i;
    }
  }
  return banned;
}

TEST(Sampler, NoRepeatNgramBansExactlyTheTokensThatWouldRepeatAnNgram) {
  const std::vector<int32_t> history = {1, 2, 3, 5, 2, 6, 1, 2};
  EXPECT_EQ(banned_by(1, history), (std::set<size_t>{1, 2, 3, 5, 6}));  // every token seen
  EXPECT_EQ(banned_by(2, history), (std::set<size_t>{3, 6}));           // 2 was followed by 3 and by 6
  EXPECT_EQ(banned_by(3, history), (std::set<size_t>{3}));              // (1, 2) was followed by 3
  EXPECT_EQ(banned_by(4, history), (std::set<size_t>{}));               // (6, 1, 2) is new
  EXPECT_EQ(banned_by(0, history), (std::set<size_t>{}));               // off
  EXPECT_EQ(banned_by(8, history), (std::set<size_t>{}));               // the only 8-gram's prefix differs
  EXPECT_EQ(banned_by(9, history), (std::set<size_t>{}));               // shorter than n
  EXPECT_EQ(banned_by(3, {7, 7, 7}), (std::set<size_t>{7}));            // (7, 7) overlaps its own 3-gram
  EXPECT_EQ(banned_by(2, {4}), (std::set<size_t>{}));
  EXPECT_EQ(banned_by(1, {4}), (std::set<size_t>{4}));
  EXPECT_EQ(banned_by(1, {}), (std::set<size_t>{}));
}

TEST(Sampler, BannedTokensAreNeverDrawnAndBanningEveryTokenIsAnError) {
  // After "2 2", a second bigram (2, 2) is banned, so token 2, the most likely, is out.
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.0f};
  const std::vector<int32_t> history = {2, 2};
  expect_distribution_near(sampling_distribution(logits, history, {.no_repeat_ngram_size = 2}),
                           expected_probabilities(logits, 1.0, {0, 1, 3}));
  Sampler sampler({.no_repeat_ngram_size = 2, .seed = 3});
  EXPECT_EQ(count_draws(sampler, logits, 5000, history)[2], 0);

  const std::vector<int32_t> all = {0, 3, 1, 2};
  const std::string message =
      error_of([&] { sampling_distribution(logits, all, {.no_repeat_ngram_size = 1}); });
  EXPECT_NE(message.find("--no-repeat-ngram-size 1 bans every one of the 4 tokens"), std::string::npos)
      << message;
  Sampler greedy({.temperature = 0, .no_repeat_ngram_size = 1});
  EXPECT_THROW(greedy.sample(logits, all), Error);
}

TEST(Sampler, HistoryTokensOutsideTheVocabularyAreAnError) {
  const std::vector<float> logits = {1.0f, 2.0f};
  const std::vector<int32_t> history = {0, 2};
  Sampler penalised({.repetition_penalty = 1.2});
  EXPECT_NE(error_of([&] { penalised.sample(logits, history); }).find("token id 2"), std::string::npos);
  Sampler banned({.no_repeat_ngram_size = 1});
  EXPECT_THROW(banned.sample(logits, history), Error);
}

TEST(Sampler, DrawsFollowTheSamplingDistributionWithEveryOptionOn) {
  const std::vector<float> logits = testing::random_floats(40, 7, 3.0f);
  // The last token is 3, which was followed by 8 and by 9: both banned.
  const std::vector<int32_t> history = {3, 8, 3, 9, 8, 3};
  const SamplingConfig config{.temperature = 0.9,
                              .top_k = 12,
                              .top_p = 0.9,
                              .min_p = 0.05,
                              .repetition_penalty = 1.3,
                              .no_repeat_ngram_size = 2,
                              .seed = 77};
  const std::vector<double> p = sampling_distribution(logits, history, config);
  double total = 0;
  size_t kept = 0;
  for (const double x : p) {
    EXPECT_GE(x, 0);
    total += x;
    kept += x > 0;
  }
  EXPECT_NEAR(total, 1, 1e-12);
  EXPECT_EQ(p[8], 0);
  EXPECT_EQ(p[9], 0);
  EXPECT_LE(kept, 12u);
  EXPECT_GE(kept, 3u);  // a distribution worth testing the draws against

  const int draws = 200000;
  Sampler sampler(config);
  expect_frequencies_match(count_draws(sampler, logits, draws, history), p, draws);
}

TEST(Sampler, TokenLogprobIsTheLogSoftmaxOfTheRawLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -1.0f};
  long double z = 0;
  for (const float l : logits) z += std::exp(static_cast<long double>(l));
  for (int32_t i = 0; i < 4; ++i)
    EXPECT_NEAR(token_logprob(logits, i), static_cast<double>(logits[static_cast<size_t>(i)] - std::log(z)),
                1e-12);
  // exp(1000) overflows a double: log(e^1000 / (e^1000 + e^999)) = -log(1 + e^-1).
  const std::vector<float> large = {1000.0f, 999.0f};
  EXPECT_NEAR(token_logprob(large, 0), -std::log1p(std::exp(-1.0)), 1e-12);
  EXPECT_THROW(token_logprob(logits, 4), Error);
  EXPECT_THROW(token_logprob(logits, -1), Error);
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
  const std::vector<int32_t> history = {4, 9, 4};
  const SamplingConfig config{.temperature = 1.0, .top_p = 0.95, .repetition_penalty = 1.1, .seed = 2024};
  SamplingConfig other_seed = config;
  other_seed.seed = 2025;
  Sampler a(config), b(config), other(other_seed);
  std::vector<int32_t> da, db, dother;
  for (int i = 0; i < 100; ++i) {
    da.push_back(a.sample(flat, history));
    db.push_back(b.sample(flat, history));
    dother.push_back(other.sample(flat, history));
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
