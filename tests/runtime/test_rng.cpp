#include "runtime/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace inkstone {
namespace {

TEST(Rng, MatchesSplitMix64ReferenceOutputs) {
  // Published reference sequence for seed 1234567 (Rosetta Code, "Pseudo-random numbers/Splitmix64").
  Rng rng(1234567);
  EXPECT_EQ(rng.next_u64(), 6457827717110365317ull);
  EXPECT_EQ(rng.next_u64(), 3203168211198807973ull);
  EXPECT_EQ(rng.next_u64(), 9817491932198370423ull);
  EXPECT_EQ(rng.next_u64(), 4593380528125082431ull);
  EXPECT_EQ(rng.next_u64(), 16408922859458223821ull);
}

TEST(Rng, StateRestoresTheStream) {
  Rng a(99);
  for (int i = 0; i < 10; ++i) a.next_u64();
  Rng b(0);
  b.set_state(a.state());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Rng, UniformStaysInTheUnitInterval) {
  Rng rng(5);
  double sum = 0;
  constexpr int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));  // 5 sigma
}

TEST(Rng, NormalHasStandardMoments) {
  constexpr int n = 200001;  // odd: the last value comes from a lone draw
  std::vector<float> z(n);
  Rng rng(11);
  rng.fill_normal(z, 0.0, 1.0);
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (float x : z) {
    const double d = x;
    m1 += d, m2 += d * d, m3 += d * d * d, m4 += d * d * d * d;
  }
  m1 /= n, m2 /= n, m3 /= n, m4 /= n;
  // Standard errors of the sample moments of N(0,1): sqrt(1/n), sqrt(2/n), sqrt(15/n), sqrt(96/n); 5 sigma.
  const double s = 5 / std::sqrt(double(n));
  EXPECT_NEAR(m1, 0.0, s);
  EXPECT_NEAR(m2, 1.0, s * std::sqrt(2.0));
  EXPECT_NEAR(m3, 0.0, s * std::sqrt(15.0));
  EXPECT_NEAR(m4, 3.0, s * std::sqrt(96.0));
}

TEST(Rng, FillNormalScalesAndShifts) {
  std::vector<float> a(1001), b(1001);
  Rng ra(3), rb(3);
  ra.fill_normal(a, 0.0, 1.0);
  rb.fill_normal(b, 2.0, 0.5);
  // Both are float roundings of the same double; 1e-6 covers the two roundings of O(1) values.
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], 2.0 + 0.5 * a[i], 1e-6);
}

}  // namespace
}  // namespace inkstone
