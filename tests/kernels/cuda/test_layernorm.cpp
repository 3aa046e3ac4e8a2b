// cuda::layernorm_forward / layernorm_backward against cpu:: and the float64 reference: F32 within the
// CPU test's fp32 bounds, BF16 within 2x the error of a plain bf16 implementation (gpu_test_util.h), the
// += contract on non-zero gradients, and bit-identical repeated backward passes.
// Shapes: C ragged (33, 771: the scalar path) and aligned (64, 768: 16-byte vectors); N from 1 to 16400
// (one block of the backward pass up to hundreds, with a partly filled last block).
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>
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

constexpr float kEps = 1e-5f;

struct Shape {
  int64_t N, C;
};
const Shape kShapes[] = {{1, 33}, {129, 33}, {7, 771}, {129, 768}, {16400, 64}};

// Inputs of one case; with bf16, every value is rounded to bf16 first (so both backends see the same).
struct Case {
  std::vector<float> inp, weight, bias, dout, dinp0, dweight0, dbias0;
};

Case make_case(const Shape& s, uint64_t seed, bool bf16) {
  Case c;
  // Rows with a non-zero mean (shifted by +3): the variance must not cancel.
  c.inp = random_floats(s.N * s.C, seed, 2.0f);
  for (float& v : c.inp) v += 3.0f;
  c.weight = random_floats(s.C, seed + 1);
  c.bias = random_floats(s.C, seed + 2);
  c.dout = random_floats(s.N * s.C, seed + 3);
  c.dinp0 = random_floats(s.N * s.C, seed + 4);  // non-zero: the backward pass must add to it
  c.dweight0 = random_floats(s.C, seed + 5);
  c.dbias0 = random_floats(s.C, seed + 6);
  if (bf16)
    for (auto* v : {&c.inp, &c.weight, &c.bias, &c.dout, &c.dinp0, &c.dweight0, &c.dbias0})
      *v = testing::round_to_bf16(*v);
  return c;
}

struct Result {
  std::vector<float> out, mean, rstd, dinp, dweight, dbias;
};

// Forward, then backward from the forward's statistics onto the case's initial gradients.
Result run_gpu(const Case& c, const Shape& s, DType dtype) {
  GpuBuffer inp(dtype, {s.N, s.C}), out(dtype, {s.N, s.C}), weight(dtype, {s.C}), bias(dtype, {s.C});
  GpuBuffer mean(DType::F32, {s.N}), rstd(DType::F32, {s.N});
  GpuBuffer dout(dtype, {s.N, s.C}), dinp(dtype, {s.N, s.C}), dweight(dtype, {s.C}), dbias(dtype, {s.C});
  inp.upload(c.inp);
  weight.upload(c.weight);
  bias.upload(c.bias);
  dout.upload(c.dout);
  dinp.upload(c.dinp0);
  dweight.upload(c.dweight0);
  dbias.upload(c.dbias0);
  cuda::layernorm_forward(
      {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .weight = weight, .bias = bias, .eps = kEps});
  cuda::layernorm_backward({.dinp = dinp,
                            .dweight = dweight,
                            .dbias = dbias,
                            .dout = dout,
                            .inp = inp,
                            .weight = weight,
                            .mean = mean,
                            .rstd = rstd});
  return {out.download(),  mean.download(),    rstd.download(),
          dinp.download(), dweight.download(), dbias.download()};
}

Result run_cpu(Case c, const Shape& s) {
  Result r{std::vector<float>(s.N * s.C),
           std::vector<float>(s.N),
           std::vector<float>(s.N),
           c.dinp0,
           c.dweight0,
           c.dbias0};
  cpu::layernorm_forward({.out = Tensor(r.out.data(), DType::F32, {s.N, s.C}),
                          .mean = Tensor(r.mean.data(), DType::F32, {s.N}),
                          .rstd = Tensor(r.rstd.data(), DType::F32, {s.N}),
                          .inp = Tensor(c.inp.data(), DType::F32, {s.N, s.C}),
                          .weight = Tensor(c.weight.data(), DType::F32, {s.C}),
                          .bias = Tensor(c.bias.data(), DType::F32, {s.C}),
                          .eps = kEps});
  cpu::layernorm_backward({.dinp = Tensor(r.dinp.data(), DType::F32, {s.N, s.C}),
                           .dweight = Tensor(r.dweight.data(), DType::F32, {s.C}),
                           .dbias = Tensor(r.dbias.data(), DType::F32, {s.C}),
                           .dout = Tensor(c.dout.data(), DType::F32, {s.N, s.C}),
                           .inp = Tensor(c.inp.data(), DType::F32, {s.N, s.C}),
                           .weight = Tensor(c.weight.data(), DType::F32, {s.C}),
                           .mean = Tensor(r.mean.data(), DType::F32, {s.N}),
                           .rstd = Tensor(r.rstd.data(), DType::F32, {s.N})});
  return r;
}

// The float64 answer: forward outputs and statistics, and the initial gradients plus the exact ones.
struct Want {
  ref::Vec out, mean, rstd, dinp, dweight, dbias;
};

Want reference(const Case& c, const Shape& s) {
  const ref::LayerNormResult f = ref::layernorm_forward(ref::to_double(c.inp), ref::to_double(c.weight),
                                                        ref::to_double(c.bias), s.N, s.C, kEps);
  const ref::LayerNormGrads g = ref::layernorm_backward(ref::to_double(c.dout), ref::to_double(c.inp),
                                                        ref::to_double(c.weight), s.N, s.C, kEps);
  return {f.out,
          f.mean,
          f.rstd,
          ref::add(ref::to_double(c.dinp0), g.dinp),
          ref::add(ref::to_double(c.dweight0), g.dweight),
          ref::add(ref::to_double(c.dbias0), g.dbias)};
}

// F32 differs from the CPU only in the order of its fp32 sums: the bounds of the CPU test
// (tests/kernels/cpu/test_layernorm.cpp), against float64 and against cpu:: alike.
TEST(CudaLayerNorm, F32MatchesCpuAndReference) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const Case c = make_case(s, 100, false);
    const Result gpu = run_gpu(c, s, DType::F32);
    const Result cpu = run_cpu(c, s);
    const Want want = reference(c, s);
    const double row = ref::fp32_tolerance(s.C);
    EXPECT_LT(ref::max_scaled_error(gpu.out, want.out), row);
    EXPECT_LT(ref::max_scaled_error(gpu.mean, want.mean), row);
    EXPECT_LT(ref::max_scaled_error(gpu.rstd, want.rstd), row);
    EXPECT_LT(ref::max_scaled_error(gpu.dinp, want.dinp), row);
    EXPECT_LT(ref::max_scaled_error(gpu.dweight, want.dweight), ref::fp32_tolerance(s.N * s.C));
    EXPECT_LT(ref::max_scaled_error(gpu.dbias, want.dbias), ref::fp32_tolerance(s.N));
    // And against the CPU backend itself (both are within the bound of float64, so within twice it of each
    // other).
    EXPECT_LT(ref::max_scaled_error(gpu.out, testing::widen(cpu.out)), 2 * row);
    EXPECT_LT(ref::max_scaled_error(gpu.dinp, testing::widen(cpu.dinp)), 2 * row);
    EXPECT_LT(ref::max_scaled_error(gpu.dweight, testing::widen(cpu.dweight)),
              2 * ref::fp32_tolerance(s.N * s.C));
    EXPECT_LT(ref::max_scaled_error(gpu.dbias, testing::widen(cpu.dbias)), 2 * ref::fp32_tolerance(s.N));
  }
}

// BF16: every output within 2x the error of cpu:: run in fp32 on the same bf16 values and rounded to bf16;
// the statistics stay F32 and meet the F32 bound.
TEST(CudaLayerNorm, BF16WithinTwiceThePlainBf16Error) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const Case c = make_case(s, 200, true);
    const Result gpu = run_gpu(c, s, DType::BF16);
    const Result cpu = run_cpu(c, s);
    const Want want = reference(c, s);
    using testing::expect_bf16_error_within;
    using testing::round_to_bf16;
    expect_bf16_error_within(gpu.out, round_to_bf16(cpu.out), want.out, "out");
    expect_bf16_error_within(gpu.dinp, round_to_bf16(cpu.dinp), want.dinp, "dinp");
    expect_bf16_error_within(gpu.dweight, round_to_bf16(cpu.dweight), want.dweight, "dweight");
    expect_bf16_error_within(gpu.dbias, round_to_bf16(cpu.dbias), want.dbias, "dbias");
    EXPECT_LT(ref::max_scaled_error(gpu.mean, want.mean), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(gpu.rstd, want.rstd), ref::fp32_tolerance(s.C));
  }
}

// The += contract, isolated: a backward pass onto zero gradients and one onto non-zero gradients differ
// by the initial values, up to the rounding of the sum (and of the increment, which nvcc may fuse into
// the add): 4 units of fp32 roundoff of the output's scale.
TEST(CudaLayerNorm, BackwardAddsToExistingGradients) {
  REQUIRE_GPU();
  const Shape s{129, 768};
  Case c = make_case(s, 300, false);
  const Result onto_initial = run_gpu(c, s, DType::F32);
  for (auto* v : {&c.dinp0, &c.dweight0, &c.dbias0}) std::fill(v->begin(), v->end(), 0.0f);
  const Result onto_zero = run_gpu(c, s, DType::F32);
  const Case initial = make_case(s, 300, false);
  auto expect_sum = [](const std::vector<float>& got, const std::vector<float>& zero,
                       const std::vector<float>& init, const char* what) {
    std::vector<double> want(got.size());
    for (size_t i = 0; i < got.size(); ++i) want[i] = double{zero[i]} + init[i];
    EXPECT_LT(ref::max_scaled_error(got, want), 4 * ref::kFp32Roundoff) << what;
  };
  expect_sum(onto_initial.dinp, onto_zero.dinp, initial.dinp0, "dinp");
  expect_sum(onto_initial.dweight, onto_zero.dweight, initial.dweight0, "dweight");
  expect_sum(onto_initial.dbias, onto_zero.dbias, initial.dbias0, "dbias");
}

TEST(CudaLayerNorm, BackwardIsBitIdenticalAcrossRuns) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Shape& s : {Shape{16400, 64}, Shape{129, 771}}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " N=" << s.N << " C=" << s.C);
      const Case c = make_case(s, 400, dtype == DType::BF16);
      const Result first = run_gpu(c, s, dtype), second = run_gpu(c, s, dtype);
      for (auto [a, b] : {std::pair{&first.dinp, &second.dinp}, std::pair{&first.dweight, &second.dweight},
                          std::pair{&first.dbias, &second.dbias}, std::pair{&first.out, &second.out}})
        EXPECT_EQ(std::memcmp(a->data(), b->data(), a->size() * sizeof(float)), 0);
    }
  }
}

TEST(CudaLayerNorm, ForwardWithoutSavedStatistics) {
  REQUIRE_GPU();
  const Shape s{5, 31};
  const Case c = make_case(s, 500, false);
  GpuBuffer inp(DType::F32, {s.N, s.C}), out(DType::F32, {s.N, s.C}), weight(DType::F32, {s.C}),
      bias(DType::F32, {s.C});
  inp.upload(c.inp);
  weight.upload(c.weight);
  bias.upload(c.bias);
  cuda::layernorm_forward(
      {.out = out, .mean = {}, .rstd = {}, .inp = inp, .weight = weight, .bias = bias, .eps = kEps});
  EXPECT_LT(ref::max_scaled_error(out.download(), reference(c, s).out), ref::fp32_tolerance(s.C));
}

TEST(CudaLayerNorm, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer x(DType::F32, {4, 8}), y(DType::F32, {4, 8}), w(DType::F32, {8}), w7(DType::F32, {7}),
      w_bf16(DType::BF16, {8}), stats(DType::F32, {4});
  EXPECT_THROW(cuda::layernorm_forward({.out = y, .mean = {}, .rstd = {}, .inp = x, .weight = w7, .bias = w}),
               std::invalid_argument);
  EXPECT_THROW(
      cuda::layernorm_forward({.out = y, .mean = {}, .rstd = {}, .inp = x, .weight = w_bf16, .bias = w}),
      std::invalid_argument);
  EXPECT_THROW(cuda::layernorm_backward({.dinp = y,
                                         .dweight = w,
                                         .dbias = w,
                                         .dout = y,
                                         .inp = x,
                                         .weight = w,
                                         .mean = stats,
                                         .rstd = stats}),
               std::invalid_argument);  // dinp aliases dout
}

}  // namespace
}  // namespace inkstone
