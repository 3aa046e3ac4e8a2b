// cuda::adamw_update against cpu::adamw_update and the float64 torch formula over several steps:
// F32 params (with and without a master copy) and mixed precision (BF16 params and grads, F32 master),
// with weight decay and grad_scale. The GPU evaluates the CPU's operations in the CPU's order with
// explicitly rounded fp32 intrinsics, so the two agree up to the CPU compiler's own FMA contractions.
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::GpuBuffer;
using testing::random_floats;
namespace ref = testing::ref;

constexpr int kSteps = 5;
constexpr ref::AdamWHyper kHyper{
    .lr = 0.05, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_scale = 0.5};
const int64_t kSizes[] = {1, 771, (1 << 20) + 3};

// A few fp32 roundings per step, adding up linearly over the steps at worst (as the CPU test states).
const double kVsReference = kSteps * 8 * ref::kFp32Roundoff;
// GPU against CPU: the same operations; a contracted FMA on the CPU side moves a result by about an ulp.
const double kVsCpu = kSteps * 4 * ref::kFp32Roundoff;

AdamW hyper(int step) {
  AdamW p{};
  p.lr = static_cast<float>(kHyper.lr);
  p.beta1 = static_cast<float>(kHyper.beta1);
  p.beta2 = static_cast<float>(kHyper.beta2);
  p.eps = static_cast<float>(kHyper.eps);
  p.weight_decay = static_cast<float>(kHyper.weight_decay);
  p.grad_scale = static_cast<float>(kHyper.grad_scale);
  p.step = step;
  return p;
}

// Optimizer state on the CPU: params as F32 (the master when there is one), m, v.
struct State {
  std::vector<float> params, m, v;
};

std::vector<float> grads_of_step(int64_t n, int step, bool bf16) {
  const std::vector<float> g = random_floats(n, 100 + step, 2.0f);
  return bf16 ? testing::round_to_bf16(g) : g;
}

void cpu_step(State& s, std::vector<float> grads, int step) {
  const int64_t n = static_cast<int64_t>(grads.size());
  AdamW p = hyper(step);
  p.params = Tensor(s.params.data(), DType::F32, {n});
  p.grads = Tensor(grads.data(), DType::F32, {n});
  p.m = Tensor(s.m.data(), DType::F32, {n});
  p.v = Tensor(s.v.data(), DType::F32, {n});
  cpu::adamw_update(p);
}

TEST(CudaAdamW, F32StepsMatchCpuAndTorchFormula) {
  REQUIRE_GPU();
  for (bool with_master : {false, true}) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " master=" << with_master);
      State cpu{random_floats(n, 1), std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
      ref::AdamWState expected{ref::to_double(cpu.params), ref::Vec(n, 0.0), ref::Vec(n, 0.0)};
      GpuBuffer params(DType::F32, {n}), grads(DType::F32, {n}), m(DType::F32, {n}), v(DType::F32, {n}),
          master(DType::F32, {n});
      params.upload(cpu.params);
      master.upload(cpu.params);
      m.upload(cpu.m);
      v.upload(cpu.v);
      for (int step = 1; step <= kSteps; ++step) {
        const std::vector<float> g = grads_of_step(n, step, false);
        grads.upload(g);
        AdamW p = hyper(step);
        p.params = params;
        p.grads = grads;
        p.m = m;
        p.v = v;
        if (with_master) p.master = master;
        cuda::adamw_update(p);
        cpu_step(cpu, g, step);
        ref::adamw_step(expected, ref::to_double(g), kHyper, step);
      }
      const std::vector<float> gpu_params = params.download(), gpu_m = m.download(), gpu_v = v.download();
      EXPECT_LT(ref::max_scaled_error(gpu_params, testing::widen(cpu.params)), kVsCpu);
      EXPECT_LT(ref::max_scaled_error(gpu_m, testing::widen(cpu.m)), kVsCpu);
      EXPECT_LT(ref::max_scaled_error(gpu_v, testing::widen(cpu.v)), kVsCpu);
      EXPECT_LT(ref::max_scaled_error(gpu_params, expected.params), kVsReference);
      EXPECT_LT(ref::max_scaled_error(gpu_m, expected.m), kVsReference);
      EXPECT_LT(ref::max_scaled_error(gpu_v, expected.v), kVsReference);
      if (with_master) {
        const std::vector<float> gpu_master = master.download();
        EXPECT_EQ(std::memcmp(gpu_master.data(), gpu_params.data(), n * sizeof(float)), 0)
            << "F32 params are a copy of the master";
      }
    }
  }
}

// Mixed precision: BF16 params and grads, F32 master, m and v. The master follows the CPU's update (run
// on the same bf16 gradients, widened), and params are the master rounded to bf16, bit for bit.
TEST(CudaAdamW, BF16ParamsFollowTheFp32Master) {
  REQUIRE_GPU();
  for (int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    State cpu{random_floats(n, 2), std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
    GpuBuffer params(DType::BF16, {n}), grads(DType::BF16, {n}), m(DType::F32, {n}), v(DType::F32, {n}),
        master(DType::F32, {n});
    params.upload(cpu.params);  // rounded to bf16
    master.upload(cpu.params);
    m.upload(cpu.m);
    v.upload(cpu.v);
    for (int step = 1; step <= kSteps; ++step) {
      const std::vector<float> g = grads_of_step(n, step, true);
      grads.upload(g);
      AdamW p = hyper(step);
      p.params = params;
      p.grads = grads;
      p.m = m;
      p.v = v;
      p.master = master;
      cuda::adamw_update(p);
      cpu_step(cpu, g, step);
    }
    const std::vector<float> gpu_master = master.download(), gpu_params = params.download();
    EXPECT_LT(ref::max_scaled_error(gpu_master, testing::widen(cpu.params)), kVsCpu);
    EXPECT_LT(ref::max_scaled_error(m.download(), testing::widen(cpu.m)), kVsCpu);
    EXPECT_LT(ref::max_scaled_error(v.download(), testing::widen(cpu.v)), kVsCpu);
    const std::vector<float> rounded = testing::round_to_bf16(gpu_master);
    EXPECT_EQ(std::memcmp(gpu_params.data(), rounded.data(), n * sizeof(float)), 0);
  }
}

TEST(CudaAdamW, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer p_bf16(DType::BF16, {16}), g_bf16(DType::BF16, {16}), p_f32(DType::F32, {16}),
      g_f32(DType::F32, {16}), m(DType::F32, {16}), v(DType::F32, {16}), v_short(DType::F32, {15});
  const auto update = [&](Tensor params, Tensor grads, Tensor v_state, int step) {
    AdamW p = hyper(step);
    p.params = params;
    p.grads = grads;
    p.m = m;
    p.v = v_state;
    cuda::adamw_update(p);
  };
  EXPECT_THROW(update(p_bf16, g_bf16, v, 1), std::invalid_argument);  // bf16 params without a master
  EXPECT_THROW(update(p_f32, g_bf16, v, 1), std::invalid_argument);   // params and grads differ in dtype
  EXPECT_THROW(update(p_f32, g_f32, v_short, 1), std::invalid_argument);
  EXPECT_THROW(update(p_f32, g_f32, v, 0), std::invalid_argument);  // steps are 1-based
}

}  // namespace
}  // namespace inkstone
