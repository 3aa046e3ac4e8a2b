// Fused softmax + cross-entropy against the double reference: losses, dlogits (overwritten, scaled
// by dloss), ignored targets, padded vocabulary columns, dlogits aliasing logits, finite differences.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

struct Shape {
  int64_t N, Vp, V;
};
// The last one is GPT-2's vocabulary padded to a multiple of 128.
const Shape kShapes[] = {{1, 1, 1}, {5, 16, 13}, {8, 384, 300}, {4, 50304, 50257}};

std::vector<int32_t> random_targets(int64_t N, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(N);
  for (auto& x : t) x = dist(rng);
  return t;
}

// Logits with junk in the padding: huge values that would dominate the softmax if they entered it.
std::vector<float> padded_logits(const Shape& s, uint64_t seed) {
  auto logits = random_floats(s.N * s.Vp, seed, 8.0f);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t v = s.V; v < s.Vp; ++v) logits[n * s.Vp + v] = 1e30f;
  return logits;
}

void run(std::vector<float>& losses, float* dlogits, std::vector<float>& logits,
         std::vector<int32_t>& targets, const Shape& s, float dloss) {
  cpu::cross_entropy({.losses = Tensor(losses.data(), DType::F32, {s.N}),
                      .dlogits = dlogits ? Tensor(dlogits, DType::F32, {s.N, s.Vp}) : Tensor(),
                      .logits = Tensor(logits.data(), DType::F32, {s.N, s.Vp}),
                      .targets = Tensor(targets.data(), DType::I32, {s.N}),
                      .vocab_size = static_cast<int>(s.V),
                      .dloss = dloss});
}

TEST(CrossEntropy, MatchesReferenceIgnoringPaddingAndIgnoredTargets) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " Vp=" << s.Vp << " V=" << s.V);
    auto logits = padded_logits(s, 1);
    auto targets = random_targets(s.N, s.V, 2);
    if (s.N > 2) targets[1] = -1, targets[2] = -100;  // both ignored
    const float dloss = 1.0f / static_cast<float>(s.N);
    std::vector<float> losses(s.N, -1.0f), dlogits(logits.size(), 123.0f);  // dlogits is overwritten
    run(losses, dlogits.data(), logits, targets, s, dloss);
    const ref::CrossEntropyResult expected =
        ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, dloss);
    EXPECT_LT(ref::max_scaled_error(losses, expected.losses), ref::fp32_tolerance(s.V));
    EXPECT_LT(ref::max_scaled_error(dlogits, expected.dlogits), ref::fp32_tolerance(s.V));
    for (int64_t n = 0; n < s.N; ++n) {
      for (int64_t v = s.V; v < s.Vp; ++v) ASSERT_EQ(dlogits[n * s.Vp + v], 0.0f) << "padding n=" << n;
      if (targets[n] >= 0) continue;
      EXPECT_EQ(losses[n], 0.0f);
      for (int64_t v = 0; v < s.Vp; ++v) ASSERT_EQ(dlogits[n * s.Vp + v], 0.0f) << "ignored row n=" << n;
    }
  }
}

TEST(CrossEntropy, LossesOnlyWhenNoGradientIsRequested) {
  const Shape s{6, 256, 200};
  auto logits = padded_logits(s, 3);
  auto targets = random_targets(s.N, s.V, 4);
  const auto logits0 = logits;
  std::vector<float> losses(s.N);
  run(losses, nullptr, logits, targets, s, 1.0f);
  const ref::CrossEntropyResult expected =
      ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, 1.0);
  EXPECT_LT(ref::max_scaled_error(losses, expected.losses), ref::fp32_tolerance(s.V));
  EXPECT_EQ(logits, logits0);
}

TEST(CrossEntropy, DlogitsMayAliasLogits) {
  const Shape s{5, 1024, 1000};
  auto logits = padded_logits(s, 5);
  auto targets = random_targets(s.N, s.V, 6);
  targets[3] = -1;
  const ref::CrossEntropyResult expected =
      ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, 0.5);
  std::vector<float> losses(s.N);
  run(losses, logits.data(), logits, targets, s, 0.5f);
  EXPECT_LT(ref::max_scaled_error(losses, expected.losses), ref::fp32_tolerance(s.V));
  EXPECT_LT(ref::max_scaled_error(logits, expected.dlogits), ref::fp32_tolerance(s.V));
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  const Shape s{3, 12, 9};
  auto logits = random_floats(s.N * s.Vp, 7, 3.0f);
  auto targets = random_targets(s.N, s.V, 8);
  targets[1] = -1;
  const float dloss = 0.25f;
  std::vector<float> losses(s.N), dlogits(logits.size());
  run(losses, dlogits.data(), logits, targets, s, dloss);
  const ref::Vec fd = ref::numerical_gradient(
      [&](const ref::Vec& x) {
        double total = 0;
        for (double l : ref::cross_entropy(x, targets, s.Vp, s.V, dloss).losses) total += dloss * l;
        return total;
      },
      ref::to_double(logits));
  EXPECT_LT(ref::max_scaled_error(
                ref::cross_entropy(ref::to_double(logits), targets, s.Vp, s.V, dloss).dlogits, fd),
            1e-8);
  EXPECT_LT(ref::max_scaled_error(dlogits, fd), ref::fp32_tolerance(s.V));
}

TEST(CrossEntropy, RejectsTargetsOutsideTheRealVocabulary) {
  const Shape s{2, 8, 6};
  std::vector<float> logits(s.N * s.Vp, 0.0f), losses(s.N);
  std::vector<int32_t> targets = {0, 6};  // 6 is a padding column
  EXPECT_THROW(run(losses, nullptr, logits, targets, s, 1.0f), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
