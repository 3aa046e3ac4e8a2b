// AdamW against a double implementation of torch.optim.AdamW's update over several steps, the
// closed form of the first step, grad_scale and weight decay, and the BF16-params + fp32-master mode.
#include <gtest/gtest.h>

#include <bit>
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

constexpr int kSteps = 10;
constexpr ref::AdamWHyper kHyper{
    .lr = 0.05, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_scale = 0.5};

AdamW make_update(Tensor params, std::vector<float>& grads, std::vector<float>& m, std::vector<float>& v,
                  int step) {
  const int64_t n = static_cast<int64_t>(grads.size());
  return {.params = params,
          .grads = Tensor(grads.data(), DType::F32, {n}),
          .m = Tensor(m.data(), DType::F32, {n}),
          .v = Tensor(v.data(), DType::F32, {n}),
          .master = {},
          .lr = static_cast<float>(kHyper.lr),
          .beta1 = static_cast<float>(kHyper.beta1),
          .beta2 = static_cast<float>(kHyper.beta2),
          .eps = static_cast<float>(kHyper.eps),
          .weight_decay = static_cast<float>(kHyper.weight_decay),
          .grad_scale = static_cast<float>(kHyper.grad_scale),
          .step = step};
}

// Each step rounds params, m and v to fp32 a few times; errors add up linearly over the steps at worst.
const double kTolerance = kSteps * 8 * ref::kFp32Roundoff;

TEST(AdamW, SeveralStepsMatchTorchFormula) {
  for (int64_t n : {1, 13, 100003}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    auto params = random_floats(n, 1);
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    ref::AdamWState expected{ref::to_double(params), ref::Vec(n, 0.0), ref::Vec(n, 0.0)};
    for (int step = 1; step <= kSteps; ++step) {
      auto grads = random_floats(n, 100 + step, 2.0f);
      cpu::adamw_update(make_update(Tensor(params.data(), DType::F32, {n}), grads, m, v, step));
      ref::adamw_step(expected, ref::to_double(grads), kHyper, step);
    }
    EXPECT_LT(ref::max_scaled_error(params, expected.params), kTolerance);
    EXPECT_LT(ref::max_scaled_error(m, expected.m), kTolerance);
    EXPECT_LT(ref::max_scaled_error(v, expected.v), kTolerance);
  }
}

TEST(AdamW, FirstStepMovesEachParameterByLrAgainstTheGradientSign) {
  // Step 1: m_hat = g and v_hat = g^2, so the Adam term is g / (|g| + eps), about sign(g) for |g| >> eps.
  std::vector<float> params = {1.0f, -2.0f, 0.5f, 0.0f}, grads = {3.0f, -0.25f, 1e-3f, -7.0f};
  std::vector<float> m(4, 0.0f), v(4, 0.0f);
  const auto p0 = params;
  cpu::adamw_update(make_update(Tensor(params.data(), DType::F32, {4}), grads, m, v, 1));
  for (size_t i = 0; i < params.size(); ++i) {
    const double g = grads[i] * kHyper.grad_scale;
    const double expected =
        p0[i] * (1 - kHyper.lr * kHyper.weight_decay) - kHyper.lr * g / (std::abs(g) + kHyper.eps);
    EXPECT_NEAR(params[i], expected, 4 * ref::kFp32Roundoff * 2) << "i=" << i;  // |params| < 2
  }
}

TEST(AdamW, Bf16ParamsFollowTheFp32Master) {
  const int64_t n = 4097;
  auto master = random_floats(n, 2);
  std::vector<uint16_t> params(n, 0);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  ref::AdamWState expected{ref::to_double(master), ref::Vec(n, 0.0), ref::Vec(n, 0.0)};
  for (int step = 1; step <= kSteps; ++step) {
    auto grads = random_floats(n, 200 + step);
    AdamW update = make_update(Tensor(params.data(), DType::BF16, {n}), grads, m, v, step);
    update.master = Tensor(master.data(), DType::F32, {n});
    cpu::adamw_update(update);
    ref::adamw_step(expected, ref::to_double(grads), kHyper, step);
  }
  EXPECT_LT(ref::max_scaled_error(master, expected.params), kTolerance);
  for (int64_t i = 0; i < n; ++i) {
    // bf16 keeps 8 significant bits: rounding to nearest moves a value by at most 2^-8 of itself.
    const float as_float = std::bit_cast<float>(static_cast<uint32_t>(params[i]) << 16);
    ASSERT_LE(std::abs(as_float - master[i]), std::ldexp(std::abs(master[i]), -8)) << "i=" << i;
  }
}

TEST(AdamW, RejectsBf16ParamsWithoutMaster) {
  std::vector<uint16_t> params(4);
  std::vector<float> grads(4), m(4), v(4);
  EXPECT_THROW(cpu::adamw_update(make_update(Tensor(params.data(), DType::BF16, {4}), grads, m, v, 1)),
               std::invalid_argument);
  std::vector<float> fparams(4);
  EXPECT_THROW(cpu::adamw_update(make_update(Tensor(fparams.data(), DType::F32, {4}), grads, m, v, 0)),
               std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
