// GELU (tanh approximation) forward and backward against the double reference (std::tanh form),
// saturation at large |x|, the += contract and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::random_floats;
namespace ref = testing::ref;

// Elementwise: a few roundings plus the exp approximation (<= 2 ulp), no reduction.
const double kTolerance = ref::fp32_tolerance(1, 16);

ref::Vec map(const std::vector<float>& x, double (*f)(double)) {
  ref::Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

TEST(Gelu, ForwardMatchesTanhReference) {
  for (int64_t n : {1, 7, 1000, 100003}) {
    auto x = random_floats(n, 1, 5.0f);
    std::vector<float> out(n);
    cpu::gelu_forward({.out = Tensor(out.data(), DType::F32, {n}), .inp = Tensor(x.data(), DType::F32, {n})});
    EXPECT_LT(ref::max_scaled_error(out, map(x, ref::gelu)), kTolerance) << "n=" << n;
  }
}

TEST(Gelu, ValuesNearZeroKeepRelativeAccuracy) {
  auto x = random_floats(4096, 2, 1e-3f);
  std::vector<float> out(x.size());
  const int64_t n = static_cast<int64_t>(x.size());
  cpu::gelu_forward({.out = Tensor(out.data(), DType::F32, {n}), .inp = Tensor(x.data(), DType::F32, {n})});
  EXPECT_LT(ref::max_scaled_error(out, map(x, ref::gelu)), kTolerance);
}

TEST(Gelu, SaturatesCleanlyAtLargeMagnitudes) {
  std::vector<float> x = {-100.0f, -30.0f, -12.0f, 12.0f, 30.0f, 100.0f, 1e30f, -1e30f};
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> out(n), dinp(n, 0.0f), dout(n, 1.0f);
  cpu::gelu_forward({.out = Tensor(out.data(), DType::F32, {n}), .inp = Tensor(x.data(), DType::F32, {n})});
  cpu::gelu_backward({.dinp = Tensor(dinp.data(), DType::F32, {n}),
                      .inp = Tensor(x.data(), DType::F32, {n}),
                      .dout = Tensor(dout.data(), DType::F32, {n})});
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(::testing::Message() << "x=" << x[i]);
    if (x[i] > 0) {
      EXPECT_EQ(out[i], x[i]);
      EXPECT_EQ(dinp[i], 1.0f);
    } else {
      EXPECT_EQ(out[i], 0.0f);
      EXPECT_EQ(dinp[i], 0.0f);
    }
  }
}

TEST(Gelu, BackwardAccumulatesReferenceGradient) {
  const int64_t n = 10007;
  auto x = random_floats(n, 3, 5.0f), dout = random_floats(n, 4), dinp = random_floats(n, 5);
  const auto dinp0 = dinp;
  cpu::gelu_backward({.dinp = Tensor(dinp.data(), DType::F32, {n}),
                      .inp = Tensor(x.data(), DType::F32, {n}),
                      .dout = Tensor(dout.data(), DType::F32, {n})});
  ref::Vec expected = map(x, ref::gelu_grad);
  for (int64_t i = 0; i < n; ++i) expected[i] = dinp0[i] + expected[i] * dout[i];
  EXPECT_LT(ref::max_scaled_error(dinp, expected), kTolerance);
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  const int64_t n = 64;
  auto x = random_floats(n, 6, 4.0f), proj = random_floats(n, 7);
  std::vector<float> dinp(n, 0.0f);
  cpu::gelu_backward({.dinp = Tensor(dinp.data(), DType::F32, {n}),
                      .inp = Tensor(x.data(), DType::F32, {n}),
                      .dout = Tensor(proj.data(), DType::F32, {n})});
  const ref::Vec pd = ref::to_double(proj);
  const ref::Vec fd = ref::numerical_gradient(
      [&](const ref::Vec& v) {
        double loss = 0;
        for (int64_t i = 0; i < n; ++i) loss += pd[i] * ref::gelu(v[i]);
        return loss;
      },
      ref::to_double(x));
  ref::Vec analytic = map(x, ref::gelu_grad);
  for (int64_t i = 0; i < n; ++i) analytic[i] *= pd[i];
  EXPECT_LT(ref::max_scaled_error(analytic, fd), 1e-8);
  EXPECT_LT(ref::max_scaled_error(dinp, fd), kTolerance);
}

TEST(Gelu, BackwardRejectsDinpAliasingDout) {
  std::vector<float> x(8), d(8);
  EXPECT_THROW(cpu::gelu_backward({.dinp = Tensor(d.data(), DType::F32, {8}),
                                   .inp = Tensor(x.data(), DType::F32, {8}),
                                   .dout = Tensor(d.data(), DType::F32, {8})}),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
