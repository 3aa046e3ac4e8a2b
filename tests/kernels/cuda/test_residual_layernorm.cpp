// cuda::residual_layernorm_forward: bit for bit cuda::add followed by cuda::layernorm_forward, in F32 and
// in BF16 (the model recomputes the LayerNorm from the stored sum and expects the forward's bits), on
// aligned, ragged and misaligned buffers; F32 against cpu:: and float64 within the layernorm bounds;
// BF16's sum exactly the CPU's sum rounded to bf16, its LayerNorm within 2x a plain bf16
// implementation's error (gpu_test_util.h); residual aliasing a or b; repeated runs; the contract.
// Shapes: C ragged (33, 771: the scalar path) and aligned (64, 768: 16-byte vectors); N from 1 to 16400,
// with partly filled last blocks of 8 rows.
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

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

constexpr float kEps = 1e-5f;

struct Shape {
  int64_t N, C;
};
const Shape kShapes[] = {{1, 33}, {129, 33}, {7, 771}, {129, 768}, {16400, 64}};

// Inputs of one case; with bf16, every value is rounded to bf16 first (so both backends see the same).
// a's rows have a non-zero mean (+3): the variance must not cancel.
struct Case {
  std::vector<float> a, b, weight, bias;
};

Case make_case(const Shape& s, uint64_t seed, bool bf16) {
  Case c{random_floats(s.N * s.C, seed, 2.0f), random_floats(s.N * s.C, seed + 1),
         random_floats(s.C, seed + 2), random_floats(s.C, seed + 3)};
  for (float& v : c.a) v += 3.0f;
  if (bf16)
    for (auto* v : {&c.a, &c.b, &c.weight, &c.bias}) *v = testing::round_to_bf16(*v);
  return c;
}

struct Result {
  std::vector<float> residual, out, mean, rstd;
};

// Where each tensor of a GPU run lives: offsets (in elements) from 16-byte alignment for the inputs
// a, b and for the outputs residual, out. An offset of 1 takes a tensor off its vector path.
struct Placement {
  int64_t inputs = 0, outputs = 0;
};

Tensor shaped(const DeviceArray& d, const Shape& s) {
  return Tensor(d.view.data, d.view.dtype, {s.N, s.C});
}

// The fused op on the device, or (fused = false) cuda::add then cuda::layernorm_forward, the two ops
// it replaces, with the same placement.
Result run_gpu(const Case& c, const Shape& s, DType dtype, bool fused, Placement at = {}) {
  const std::vector<float> zeros(s.N * s.C, 0.0f);
  DeviceArray a(dtype, c.a, at.inputs), b(dtype, c.b, at.inputs), weight(dtype, c.weight),
      bias(dtype, c.bias), residual(dtype, zeros, at.outputs), out(dtype, zeros, at.outputs);
  GpuBuffer mean(DType::F32, {s.N}), rstd(DType::F32, {s.N});
  if (fused) {
    cuda::residual_layernorm_forward({.residual = shaped(residual, s),
                                      .out = shaped(out, s),
                                      .mean = mean,
                                      .rstd = rstd,
                                      .a = shaped(a, s),
                                      .b = shaped(b, s),
                                      .weight = weight.view,
                                      .bias = bias.view,
                                      .eps = kEps});
  } else {
    cuda::add({.out = shaped(residual, s), .a = shaped(a, s), .b = shaped(b, s)});
    cuda::layernorm_forward({.out = shaped(out, s),
                             .mean = mean,
                             .rstd = rstd,
                             .inp = shaped(residual, s),
                             .weight = weight.view,
                             .bias = bias.view,
                             .eps = kEps});
  }
  return {residual.download(), out.download(), mean.download(), rstd.download()};
}

Result run_cpu(Case c, const Shape& s) {
  Result r{std::vector<float>(s.N * s.C), std::vector<float>(s.N * s.C), std::vector<float>(s.N),
           std::vector<float>(s.N)};
  cpu::residual_layernorm_forward({.residual = Tensor(r.residual.data(), DType::F32, {s.N, s.C}),
                                   .out = Tensor(r.out.data(), DType::F32, {s.N, s.C}),
                                   .mean = Tensor(r.mean.data(), DType::F32, {s.N}),
                                   .rstd = Tensor(r.rstd.data(), DType::F32, {s.N}),
                                   .a = Tensor(c.a.data(), DType::F32, {s.N, s.C}),
                                   .b = Tensor(c.b.data(), DType::F32, {s.N, s.C}),
                                   .weight = Tensor(c.weight.data(), DType::F32, {s.C}),
                                   .bias = Tensor(c.bias.data(), DType::F32, {s.C}),
                                   .eps = kEps});
  return r;
}

// The float64 LayerNorm of `residual`: what the op promises to compute from the sum it stored.
ref::LayerNormResult reference(const std::vector<float>& residual, const Case& c, const Shape& s) {
  return ref::layernorm_forward(ref::to_double(residual), ref::to_double(c.weight), ref::to_double(c.bias),
                                s.N, s.C, kEps);
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// Widened bf16 values compare bit for bit exactly when the bf16 values do.
void expect_same_bits(const Result& got, const Result& want) {
  EXPECT_TRUE(same_bits(got.residual, want.residual)) << "residual";
  EXPECT_TRUE(same_bits(got.out, want.out)) << "out";
  EXPECT_TRUE(same_bits(got.mean, want.mean)) << "mean";
  EXPECT_TRUE(same_bits(got.rstd, want.rstd)) << "rstd";
}

// The property the model relies on: fused == add then layernorm, bit for bit, in both dtypes. Placements:
// all aligned (vectors everywhere when C allows), a and b misaligned (the LayerNorm keeps its vector
// chunks, the inputs are read element by element into them), outputs misaligned (all scalar).
TEST(CudaResidualLayerNorm, IsBitIdenticalToAddThenLayerNorm) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Shape& s : kShapes) {
      for (Placement at : {Placement{0, 0}, Placement{1, 0}, Placement{0, 1}}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " N=" << s.N << " C=" << s.C << " offsets "
                                          << at.inputs << "/" << at.outputs);
        const Case c = make_case(s, 100 + s.C, dtype == DType::BF16);
        expect_same_bits(run_gpu(c, s, dtype, true, at), run_gpu(c, s, dtype, false, at));
      }
    }
  }
}

// F32: the sum is one fp32 addition, as on the CPU (bit for bit); the LayerNorm differs from the CPU's only
// in the order of its fp32 sums: the CPU test's bounds against float64, twice them against cpu::.
TEST(CudaResidualLayerNorm, F32MatchesCpuAndReference) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const Case c = make_case(s, 200, false);
    const Result gpu = run_gpu(c, s, DType::F32, true), cpu = run_cpu(c, s);
    EXPECT_TRUE(same_bits(gpu.residual, cpu.residual));
    const ref::LayerNormResult want = reference(cpu.residual, c, s);
    const double row = ref::fp32_tolerance(s.C);
    EXPECT_LT(ref::max_scaled_error(gpu.out, want.out), row);
    EXPECT_LT(ref::max_scaled_error(gpu.mean, want.mean), row);
    EXPECT_LT(ref::max_scaled_error(gpu.rstd, want.rstd), row);
    EXPECT_LT(ref::max_scaled_error(gpu.out, testing::widen(cpu.out)), 2 * row);
    EXPECT_LT(ref::max_scaled_error(gpu.mean, testing::widen(cpu.mean)), 2 * row);
    EXPECT_LT(ref::max_scaled_error(gpu.rstd, testing::widen(cpu.rstd)), 2 * row);
  }
}

// BF16: the stored sum is the CPU's fp32 sum rounded to bf16, exactly. The LayerNorm of that stored sum:
// out within 2x the error of a plain bf16 implementation (cpu:: in fp32 on the same rounded sum, its
// output rounded to bf16) against float64; the F32 statistics within the F32 bound.
TEST(CudaResidualLayerNorm, BF16NormalisesTheRoundedSum) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const Case c = make_case(s, 300, true);
    const Result gpu = run_gpu(c, s, DType::BF16, true);
    const std::vector<float> stored = testing::round_to_bf16(run_cpu(c, s).residual);
    EXPECT_TRUE(same_bits(gpu.residual, stored));
    // The plain implementation: cpu::layernorm_forward in fp32 on the rounded sum, rounded to bf16.
    std::vector<float> inp = stored, weight = c.weight, bias = c.bias, plain(s.N * s.C);
    cpu::layernorm_forward({.out = Tensor(plain.data(), DType::F32, {s.N, s.C}),
                            .mean = {},
                            .rstd = {},
                            .inp = Tensor(inp.data(), DType::F32, {s.N, s.C}),
                            .weight = Tensor(weight.data(), DType::F32, {s.C}),
                            .bias = Tensor(bias.data(), DType::F32, {s.C}),
                            .eps = kEps});
    const ref::LayerNormResult want = reference(stored, c, s);
    testing::expect_bf16_error_within(gpu.out, testing::round_to_bf16(plain), want.out, "out");
    EXPECT_LT(ref::max_scaled_error(gpu.mean, want.mean), ref::fp32_tolerance(s.C));
    EXPECT_LT(ref::max_scaled_error(gpu.rstd, want.rstd), ref::fp32_tolerance(s.C));
  }
}

// The model adds a projection into the buffer that holds it: residual = a + residual (and a + b into a).
TEST(CudaResidualLayerNorm, ResidualMayAliasEitherInput) {
  REQUIRE_GPU();
  const Shape s{129, 768};
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Case c = make_case(s, 400, dtype == DType::BF16);
    const Result want = run_gpu(c, s, dtype, true);
    for (bool into_a : {true, false}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << (into_a ? " residual = a" : " residual = b"));
      DeviceArray a(dtype, c.a), b(dtype, c.b), weight(dtype, c.weight), bias(dtype, c.bias),
          out(dtype, std::vector<float>(s.N * s.C));
      GpuBuffer mean(DType::F32, {s.N}), rstd(DType::F32, {s.N});
      cuda::residual_layernorm_forward({.residual = shaped(into_a ? a : b, s),
                                        .out = shaped(out, s),
                                        .mean = mean,
                                        .rstd = rstd,
                                        .a = shaped(a, s),
                                        .b = shaped(b, s),
                                        .weight = weight.view,
                                        .bias = bias.view,
                                        .eps = kEps});
      expect_same_bits({(into_a ? a : b).download(), out.download(), mean.download(), rstd.download()}, want);
    }
  }
}

TEST(CudaResidualLayerNorm, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  const Shape s{16400, 64};
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Case c = make_case(s, 500, dtype == DType::BF16);
    expect_same_bits(run_gpu(c, s, dtype, true), run_gpu(c, s, dtype, true));
  }
}

TEST(CudaResidualLayerNorm, StatisticsMayBeAbsent) {
  REQUIRE_GPU();
  const Shape s{5, 31};
  const Case c = make_case(s, 600, false);
  const Result want = run_gpu(c, s, DType::F32, true);
  DeviceArray a(DType::F32, c.a), b(DType::F32, c.b), weight(DType::F32, c.weight), bias(DType::F32, c.bias);
  GpuBuffer residual(DType::F32, {s.N, s.C}), out(DType::F32, {s.N, s.C});
  cuda::residual_layernorm_forward({.residual = residual,
                                    .out = out,
                                    .mean = {},
                                    .rstd = {},
                                    .a = shaped(a, s),
                                    .b = shaped(b, s),
                                    .weight = weight.view,
                                    .bias = bias.view,
                                    .eps = kEps});
  EXPECT_TRUE(same_bits(residual.download(), want.residual));
  EXPECT_TRUE(same_bits(out.download(), want.out));
}

TEST(CudaResidualLayerNorm, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer a(DType::F32, {4, 8}), b(DType::F32, {4, 8}), residual(DType::F32, {4, 8}),
      out(DType::F32, {4, 8}), w(DType::F32, {8}), w7(DType::F32, {7}), w_bf16(DType::BF16, {8}),
      mean(DType::F32, {4}), rstd(DType::F32, {4});
  const ResidualLayerNormForward ok{.residual = residual,
                                    .out = out,
                                    .mean = mean,
                                    .rstd = rstd,
                                    .a = a,
                                    .b = b,
                                    .weight = w,
                                    .bias = w,
                                    .eps = kEps};
  EXPECT_NO_THROW(cuda::residual_layernorm_forward(ok));
  auto broken = [&](auto change) {
    ResidualLayerNormForward p = ok;
    change(p);
    return p;
  };
  EXPECT_THROW(cuda::residual_layernorm_forward(broken([](auto& p) { p.out = p.residual; })),
               std::invalid_argument);
  EXPECT_THROW(cuda::residual_layernorm_forward(broken([](auto& p) { p.out = p.a; })), std::invalid_argument);
  EXPECT_THROW(cuda::residual_layernorm_forward(broken([&](auto& p) { p.weight = w7; })),
               std::invalid_argument);
  EXPECT_THROW(cuda::residual_layernorm_forward(broken([&](auto& p) { p.bias = w_bf16; })),
               std::invalid_argument);
  EXPECT_THROW(cuda::residual_layernorm_forward(broken([](auto& p) { p.rstd = {}; })), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
