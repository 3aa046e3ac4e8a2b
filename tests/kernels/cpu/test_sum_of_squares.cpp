// sum_of_squares: double accumulation (exact small cases, large random tensors), BF16 input, and
// determinism for a fixed thread count.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::random_floats;

TEST(SumOfSquares, ExactForSmallIntegers) {
  // n copies of 3: every partial sum is an integer below 2^53, so the double result is exact.
  const int64_t n = 1'000'003;
  std::vector<float> x(n, 3.0f);
  EXPECT_EQ(cpu::sum_of_squares(Tensor(x.data(), DType::F32, {n})), 9.0 * n);
  EXPECT_EQ(cpu::sum_of_squares(Tensor(x.data(), DType::F32, {0})), 0.0);
}

TEST(SumOfSquares, MatchesLongDoubleSumOfRandomValues) {
  for (int64_t n : {1, 31, 1'000'001}) {
    auto x = random_floats(n, 1, 3.0f);
    long double expected = 0;
    for (float v : x) expected += static_cast<long double>(v) * v;
    // Squares of floats are exact in double; summing n positive doubles in any order is within
    // n * 2^-53 relative of the exact sum (a float accumulator would be off by ~1e-4 here).
    EXPECT_NEAR(cpu::sum_of_squares(Tensor(x.data(), DType::F32, {n})), static_cast<double>(expected),
                static_cast<double>(n) * 0x1p-53 * static_cast<double>(expected))
        << "n=" << n;
  }
}

TEST(SumOfSquares, ReadsBf16) {
  const int64_t n = 70000;
  std::vector<uint16_t> x(n);
  double expected = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<uint16_t>(0x3f80 + (i % 128));  // 1 + k/128, k < 128: exactly representable
    const double value = std::bit_cast<float>(static_cast<uint32_t>(x[i]) << 16);
    expected += value * value;
  }
  EXPECT_NEAR(cpu::sum_of_squares(Tensor(x.data(), DType::BF16, {n})), expected, 1e-12 * expected);
}

TEST(SumOfSquares, RepeatedCallsAreBitIdentical) {
  const int64_t n = 3'000'017;
  auto x = random_floats(n, 2);
  const double first = cpu::sum_of_squares(Tensor(x.data(), DType::F32, {n}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(cpu::sum_of_squares(Tensor(x.data(), DType::F32, {n})), first);
}

}  // namespace
}  // namespace inkstone
