// Dropout: the kept share matches 1 - p, kept values are scaled by 1 / (1 - p) exactly, the mask is a
// pure function of (seed, index) — the same for every thread count and for the backward pass.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::random_floats;

std::vector<float> run_dropout(const std::vector<float>& x, float p, uint64_t seed) {
  std::vector<float> out(x.size());
  const auto n = static_cast<int64_t>(x.size());
  cpu::dropout({.out = Tensor(out.data(), DType::F32, {n}),
                .inp = Tensor(const_cast<float*>(x.data()), DType::F32, {n}),
                .p = p,
                .seed = seed});
  return out;
}

TEST(Dropout, KeepsAboutOneMinusPAndScalesKeptValues) {
  const int64_t n = 1 << 20;
  const auto x = random_floats(n, 1, 10.0f);
  for (float p : {0.1f, 0.2f, 0.5f, 0.9f}) {
    const auto out = run_dropout(x, p, 42);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (out[i] == 0.0f && x[i] != 0.0f) continue;
      ++kept;
      ASSERT_EQ(out[i], x[i] * (1.0f / (1.0f - p))) << "p=" << p << " i=" << i;
    }
    // Binomial(n, 1-p): its standard deviation is sqrt(n p (1-p)) <= 512; allow 6 of them.
    EXPECT_NEAR(static_cast<double>(kept), (1.0 - p) * n, 6 * std::sqrt(n * p * (1.0 - p))) << "p=" << p;
  }
}

TEST(Dropout, ZeroProbabilityCopies) {
  const auto x = random_floats(1000, 2);
  EXPECT_EQ(run_dropout(x, 0.0f, 7), x);
}

TEST(Dropout, MaskDependsOnlyOnSeedAndIndex) {
  const int64_t n = 300001;
  const auto x = random_floats(n, 3);
  const auto a = run_dropout(x, 0.3f, 99);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one_thread = run_dropout(x, 0.3f, 99);
  omp_set_num_threads(threads);
  EXPECT_EQ(a, one_thread);
  EXPECT_NE(a, run_dropout(x, 0.3f, 100));  // another seed, another mask
  // A prefix of the tensor gets the same mask as the whole: element i's fate is (seed, i) alone.
  const std::vector<float> prefix(x.begin(), x.begin() + 1000);
  EXPECT_EQ(run_dropout(prefix, 0.3f, 99), std::vector<float>(a.begin(), a.begin() + 1000));
  // Masks of neighbouring seeds are not shifted copies of each other.
  const auto b = run_dropout(x, 0.3f, 98);
  int64_t agree = 0;
  for (int64_t i = 0; i + 1 < n; ++i) agree += (a[i + 1] == 0.0f) == (b[i] == 0.0f);
  EXPECT_LT(agree, n * 0.65);  // independent masks agree on p^2 + (1-p)^2 = 58% of elements
}

TEST(Dropout, BackwardIsTheSameOpAndMayRunInPlace) {
  const int64_t n = 5000;
  const auto x = random_floats(n, 4), dy = random_floats(n, 5);
  const auto y = run_dropout(x, 0.25f, 11);
  auto dx = dy;
  cpu::dropout({.out = Tensor(dx.data(), DType::F32, {n}),
                .inp = Tensor(dx.data(), DType::F32, {n}),
                .p = 0.25f,
                .seed = 11});
  // d(sum(y * dy))/dx_i = dy_i * keep_i / (1 - p): zero exactly where y was dropped.
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(dx[i] == 0.0f, y[i] == 0.0f) << i;
    if (y[i] != 0.0f) {
      ASSERT_EQ(dx[i], dy[i] * (1.0f / 0.75f)) << i;
    }
  }
}

TEST(Dropout, RejectsProbabilityOfOne) {
  std::vector<float> x(4, 1.0f);
  EXPECT_THROW(run_dropout(x, 1.0f, 1), std::invalid_argument);
  EXPECT_THROW(run_dropout(x, -0.1f, 1), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
