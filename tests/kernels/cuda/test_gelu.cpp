// cuda::gelu_forward / gelu_backward against cpu:: and the float64 reference (tanh form), F32 and BF16,
// on sizes that leave a scalar tail after the 16-byte vectors and on views that are not 16-byte aligned
// (the all-scalar path); the += contract of the backward pass, its bit-identical repeats, in-place forward.
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::DeviceArray;
using testing::GpuBuffer;
using testing::random_floats;
namespace ref = testing::ref;

const int64_t kSizes[] = {1, 7, 33, 771, (1 << 20) + 3};

struct Case {
  std::vector<float> inp, dout, dinp0;
};

Case make_case(int64_t n, uint64_t seed, bool bf16) {
  // [-6, 6]: both tails of GELU and its saturation, and the curved middle.
  Case c{random_floats(n, seed, 6.0f), random_floats(n, seed + 1), random_floats(n, seed + 2)};
  if (bf16)
    for (auto* v : {&c.inp, &c.dout, &c.dinp0}) *v = testing::round_to_bf16(*v);
  return c;
}

struct Result {
  std::vector<float> out, dinp;
};

Result run_gpu(const Case& c, DType dtype, int64_t offset) {
  DeviceArray inp(dtype, c.inp, offset), out(dtype, std::vector<float>(c.inp.size()), offset),
      dout(dtype, c.dout, offset), dinp(dtype, c.dinp0, offset);
  cuda::gelu_forward({.out = out.view, .inp = inp.view});
  cuda::gelu_backward({.dinp = dinp.view, .inp = inp.view, .dout = dout.view});
  return {out.download(), dinp.download()};
}

Result run_cpu(Case c) {
  const int64_t n = static_cast<int64_t>(c.inp.size());
  Result r{std::vector<float>(n), c.dinp0};
  cpu::gelu_forward(
      {.out = Tensor(r.out.data(), DType::F32, {n}), .inp = Tensor(c.inp.data(), DType::F32, {n})});
  cpu::gelu_backward({.dinp = Tensor(r.dinp.data(), DType::F32, {n}),
                      .inp = Tensor(c.inp.data(), DType::F32, {n}),
                      .dout = Tensor(c.dout.data(), DType::F32, {n})});
  return r;
}

struct Want {
  ref::Vec out, dinp;
};

Want reference(const Case& c) {
  Want w{ref::Vec(c.inp.size()), ref::Vec(c.inp.size())};
  for (size_t i = 0; i < c.inp.size(); ++i) {
    w.out[i] = ref::gelu(c.inp[i]);
    w.dinp[i] = double{c.dinp0[i]} + ref::gelu_grad(c.inp[i]) * c.dout[i];
  }
  return w;
}

// F32: the GPU evaluates the CPU's formula (sigmoid form) with expf in place of the CPU's vectorised exp,
// so its error against float64 is the CPU's own, give or take: at most 2x the CPU's plus 4 units of fp32
// roundoff of the output scale. (The formula's error is not uniform: 1 - s loses digits where s nears 1,
// up to ~20 roundoffs of the gradient scale at |x| = 5, for CPU and GPU alike.)
void expect_f32_within_twice_cpu(const std::vector<float>& gpu, const std::vector<float>& cpu,
                                 const ref::Vec& want, const char* what) {
  const testing::ErrorStats g = testing::error_against(gpu, want), c = testing::error_against(cpu, want);
  EXPECT_LE(g.max_abs, 2 * c.max_abs + 4 * ref::kFp32Roundoff * g.scale) << what;
  EXPECT_LT(ref::max_scaled_error(gpu, testing::widen(cpu)), 64 * ref::kFp32Roundoff) << what;
}

TEST(CudaGelu, F32MatchesCpuAndReference) {
  REQUIRE_GPU();
  for (int64_t offset : {0, 1}) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << offset);
      const Case c = make_case(n, 10 + n, false);
      const Result gpu = run_gpu(c, DType::F32, offset), cpu = run_cpu(c);
      const Want want = reference(c);
      expect_f32_within_twice_cpu(gpu.out, cpu.out, want.out, "out");
      expect_f32_within_twice_cpu(gpu.dinp, cpu.dinp, want.dinp, "dinp");
    }
  }
}

TEST(CudaGelu, BF16WithinTwiceThePlainBf16Error) {
  REQUIRE_GPU();
  for (int64_t offset : {0, 1}) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << offset);
      const Case c = make_case(n, 20 + n, true);
      const Result gpu = run_gpu(c, DType::BF16, offset), cpu = run_cpu(c);
      const Want want = reference(c);
      testing::expect_bf16_error_within(gpu.out, testing::round_to_bf16(cpu.out), want.out, "out");
      testing::expect_bf16_error_within(gpu.dinp, testing::round_to_bf16(cpu.dinp), want.dinp, "dinp");
    }
  }
}

// Saturated inputs give exact limits, never NaN: gelu(x) = x and gelu'(x) = 1 far right, 0 and 0 far left.
TEST(CudaGelu, SaturatesWithoutNaN) {
  REQUIRE_GPU();
  const Case c{{-1e30f, -100.0f, 100.0f, 1e30f}, {1, 1, 1, 1}, {0, 0, 0, 0}};
  const Result gpu = run_gpu(c, DType::F32, 0);
  const std::vector<float> out{-0.0f, -0.0f, 100.0f, 1e30f}, dinp{0, 0, 1, 1};
  for (size_t i = 0; i < c.inp.size(); ++i) {
    EXPECT_EQ(gpu.out[i], out[i]) << c.inp[i];
    EXPECT_EQ(gpu.dinp[i], dinp[i]) << c.inp[i];
  }
}

// The += contract, isolated: onto non-zero dinp the result is (result onto zero) + dinp0, rounded once
// (twice where nvcc fuses the product into the add).
TEST(CudaGelu, BackwardAddsToExistingGradients) {
  REQUIRE_GPU();
  Case c = make_case(4099, 30, false);
  const Result onto_initial = run_gpu(c, DType::F32, 0);
  const std::vector<float> dinp0 = c.dinp0;
  std::fill(c.dinp0.begin(), c.dinp0.end(), 0.0f);
  const Result onto_zero = run_gpu(c, DType::F32, 0);
  ref::Vec want(dinp0.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = double{onto_zero.dinp[i]} + dinp0[i];
  EXPECT_LT(ref::max_scaled_error(onto_initial.dinp, want), 4 * ref::kFp32Roundoff);
}

TEST(CudaGelu, BackwardIsBitIdenticalAcrossRuns) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Case c = make_case((1 << 20) + 3, 40, dtype == DType::BF16);
    const Result first = run_gpu(c, dtype, 0), second = run_gpu(c, dtype, 0);
    EXPECT_EQ(std::memcmp(first.dinp.data(), second.dinp.data(), first.dinp.size() * sizeof(float)), 0)
        << dtype_name(dtype);
  }
}

// out may alias inp: in place gives the bytes of out of place.
TEST(CudaGelu, ForwardInPlaceEqualsOutOfPlace) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Case c = make_case(100003, 50, dtype == DType::BF16);
    const Result separate = run_gpu(c, dtype, 0);
    DeviceArray x(dtype, c.inp, 0);
    cuda::gelu_forward({.out = x.view, .inp = x.view});
    const std::vector<float> in_place = x.download();
    EXPECT_EQ(std::memcmp(in_place.data(), separate.out.data(), in_place.size() * sizeof(float)), 0)
        << dtype_name(dtype);
  }
}

TEST(CudaGelu, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer a(DType::F32, {64}), b(DType::F32, {64}), short_f32(DType::F32, {63}), a_bf16(DType::BF16, {64});
  EXPECT_THROW(cuda::gelu_backward({.dinp = a, .inp = b, .dout = a}),
               std::invalid_argument);  // dinp aliases dout
  EXPECT_THROW(cuda::gelu_forward({.out = short_f32, .inp = a}), std::invalid_argument);
  EXPECT_THROW(cuda::gelu_forward({.out = a_bf16, .inp = a}), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
