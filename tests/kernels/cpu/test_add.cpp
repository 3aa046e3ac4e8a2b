// Residual add: exact fp32 sums (one rounding, identical to the float expression), aliasing, sizes.
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::random_floats;

TEST(Add, IsTheCorrectlyRoundedSum) {
  for (int64_t n : {1, 15, 1 << 16, 100003}) {
    auto a = random_floats(n, 1), b = random_floats(n, 2, 100.0f);
    std::vector<float> out(n);
    cpu::add({.out = Tensor(out.data(), DType::F32, {n}),
              .a = Tensor(a.data(), DType::F32, {n}),
              .b = Tensor(b.data(), DType::F32, {n})});
    // An IEEE float add is correctly rounded, so the double sum rounded to float is the only right answer.
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(out[i], static_cast<float>(static_cast<double>(a[i]) + b[i])) << "n=" << n << " i=" << i;
  }
}

TEST(Add, OutMayAliasEitherInput) {
  const int64_t n = 4099;
  auto a = random_floats(n, 3), b = random_floats(n, 4);
  auto a_inout = a, b_inout = b;
  cpu::add({.out = Tensor(a_inout.data(), DType::F32, {n}),
            .a = Tensor(a_inout.data(), DType::F32, {n}),
            .b = Tensor(b.data(), DType::F32, {n})});
  cpu::add({.out = Tensor(b_inout.data(), DType::F32, {n}),
            .a = Tensor(a.data(), DType::F32, {n}),
            .b = Tensor(b_inout.data(), DType::F32, {n})});
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(a_inout[i], a[i] + b[i]);
    ASSERT_EQ(b_inout[i], a[i] + b[i]);
  }
}

TEST(Add, RejectsMismatchedSizes) {
  std::vector<float> a(8), b(7), out(8);
  EXPECT_THROW(cpu::add({.out = Tensor(out.data(), DType::F32, {8}),
                         .a = Tensor(a.data(), DType::F32, {8}),
                         .b = Tensor(b.data(), DType::F32, {7})}),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
