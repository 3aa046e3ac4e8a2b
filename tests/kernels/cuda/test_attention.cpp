// cuda::attention_forward / attention_backward on their CUDA-core kernels (kernels/cuda/attention.cu),
// forced for every case, BF16 with head dim 64 or 128 included (the tensor-core kernels that normally
// take those have their own test). F32 against the CPU reference, BF16 against float64 by the rule of
// gpu_test_util.h; ragged T (1, 17, 65, 200, 300), head dims 7 .. 256 (every bucket, and real head dims
// masked inside one), several heads and batches, lse, the += contract of dqkv, bit-identical reruns,
// and the contract checks. Label gpu: skips without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/attention_select.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gpu_test_util.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"
#include "tests/kernels/cpu/reference.h"

namespace inkstone {
namespace {

using testing::GpuBuffer;
using testing::random_floats;
using testing::round_to_bf16;
namespace ref = testing::ref;

// Inputs of scale 2 give peaked softmax rows, not near-uniform ones (as in the CPU test).
constexpr float kInputScale = 2.0f;

// {B, T, C, NH}; the kernels tile 32 or 64 queries and keys and bucket head dims at 32/64/128/256.
const ref::AttentionDims kShapes[] = {
    {2, 1, 64, 4},     // one token (out = v), hd 16
    {2, 17, 128, 2},   // hd 64, T inside one tile
    {3, 65, 96, 3},    // hd 32, one tile plus one row
    {1, 300, 128, 2},  // hd 64 (GPT-2's), several query and key tiles
    {1, 200, 240, 3},  // hd 80: bucket 128 with the real head dim masked
    {2, 200, 256, 2},  // hd 128
    {1, 100, 21, 3},   // hd 7: no vector loads or stores
    {1, 45, 400, 2},   // hd 200: bucket 256 masked
    {1, 77, 256, 1},   // hd 256
};

std::string describe(const ref::AttentionDims& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " NH=" + std::to_string(s.NH) + " hd=" + std::to_string(s.hd());
}

// Every test here runs the CUDA-core kernels, whatever the tensor-core kernels would take.
class CudaAttention : public ::testing::Test {
 protected:
  void SetUp() override { cuda::set_attention_kernels_for_testing(true); }
  void TearDown() override { cuda::set_attention_kernels_for_testing(false); }
};

struct Forward {
  std::vector<float> out, lse;
};

Tensor host_view(const std::vector<float>& x, std::initializer_list<int64_t> shape) {
  return Tensor(const_cast<float*>(x.data()), DType::F32, shape);  // the CPU ops only read inputs
}

Forward cpu_forward(const std::vector<float>& qkv, const ref::AttentionDims& s) {
  Forward f{std::vector<float>(s.B * s.T * s.C), std::vector<float>(s.B * s.NH * s.T)};
  cpu::attention_forward({.out = host_view(f.out, {s.B, s.T, s.C}),
                          .lse = host_view(f.lse, {s.B, s.NH, s.T}),
                          .qkv = host_view(qkv, {s.B, s.T, 3 * s.C}),
                          .n_head = static_cast<int>(s.NH)});
  return f;
}

// dqkv_start + the gradient, as cpu::attention_backward accumulates it.
std::vector<float> cpu_backward(const std::vector<float>& dqkv_start, const std::vector<float>& dout,
                                const std::vector<float>& qkv, const Forward& f,
                                const ref::AttentionDims& s) {
  std::vector<float> dqkv = dqkv_start;
  cpu::attention_backward({.dqkv = host_view(dqkv, {s.B, s.T, 3 * s.C}),
                           .dout = host_view(dout, {s.B, s.T, s.C}),
                           .qkv = host_view(qkv, {s.B, s.T, 3 * s.C}),
                           .out = host_view(f.out, {s.B, s.T, s.C}),
                           .lse = host_view(f.lse, {s.B, s.NH, s.T}),
                           .n_head = static_cast<int>(s.NH)});
  return dqkv;
}

Forward gpu_forward(const std::vector<float>& qkv, const ref::AttentionDims& s, DType dtype) {
  GpuBuffer d_qkv(dtype, {s.B, s.T, 3 * s.C}), d_out(dtype, {s.B, s.T, s.C}),
      d_lse(DType::F32, {s.B, s.NH, s.T});
  d_qkv.upload(qkv);
  cuda::attention_forward({.out = d_out, .lse = d_lse, .qkv = d_qkv, .n_head = static_cast<int>(s.NH)});
  return {d_out.download(), d_lse.download()};
}

std::vector<float> gpu_backward(const std::vector<float>& dqkv_start, const std::vector<float>& dout,
                                const std::vector<float>& qkv, const Forward& f, const ref::AttentionDims& s,
                                DType dtype) {
  GpuBuffer d_dqkv(dtype, {s.B, s.T, 3 * s.C}), d_dout(dtype, {s.B, s.T, s.C}),
      d_qkv(dtype, {s.B, s.T, 3 * s.C}), d_out(dtype, {s.B, s.T, s.C}), d_lse(DType::F32, {s.B, s.NH, s.T});
  d_dqkv.upload(dqkv_start);
  d_dout.upload(dout);
  d_qkv.upload(qkv);
  d_out.upload(f.out);
  d_lse.upload(f.lse);
  cuda::attention_backward({.dqkv = d_dqkv,
                            .dout = d_dout,
                            .qkv = d_qkv,
                            .out = d_out,
                            .lse = d_lse,
                            .n_head = static_cast<int>(s.NH)});
  return d_dqkv.download();
}

// Part 0 (q), 1 (k) or 2 (v) of a [B,T,3C] tensor, so that an error in one is not hidden by the others.
template <class V>
V part(const V& x, const ref::AttentionDims& s, int which) {
  V r;
  for (int64_t row = 0; row < s.B * s.T; ++row)
    for (int64_t c = 0; c < s.C; ++c) r.push_back(x[row * 3 * s.C + which * s.C + c]);
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// F32 bound: each backend's result is within ref::fp32_tolerance(T + hd) of the exact one, in
// max_scaled_error (errors enter through hd-term dot products and exp, then sums over up to T keys; the
// CPU's own test asserts this bound for the CPU), so the two backends differ by at most twice that.
double f32_bound(const ref::AttentionDims& s) {
  return 2 * ref::fp32_tolerance(static_cast<double>(s.T + s.hd()));
}

TEST_F(CudaAttention, F32ForwardMatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const auto qkv = random_floats(s.B * s.T * 3 * s.C, ++seed, kInputScale);
    const Forward want = cpu_forward(qkv, s);
    const Forward got = gpu_forward(qkv, s, DType::F32);
    EXPECT_LT(ref::max_scaled_error(got.out, ref::to_double(want.out)), f32_bound(s));
    EXPECT_LT(ref::max_scaled_error(got.lse, ref::to_double(want.lse)), f32_bound(s));
  }
}

TEST_F(CudaAttention, F32FirstTokenAttendsOnlyToItself) {
  REQUIRE_GPU();
  const ref::AttentionDims s{2, 9, 64, 4};
  const auto qkv = random_floats(s.B * s.T * 3 * s.C, 7, kInputScale);
  const Forward got = gpu_forward(qkv, s, DType::F32);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t c = 0; c < s.C; ++c)  // out_0 = v_0 exactly: one key, probability exp(0) / 1
      EXPECT_EQ(got.out[b * s.T * s.C + c], qkv[b * s.T * 3 * s.C + 2 * s.C + c]);
}

TEST_F(CudaAttention, F32BackwardAccumulatesCpuGradients) {
  REQUIRE_GPU();
  uint64_t seed = 200;
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const auto qkv = random_floats(s.B * s.T * 3 * s.C, ++seed, kInputScale);
    const auto dout = random_floats(s.B * s.T * s.C, ++seed);
    const Forward f = cpu_forward(qkv, s);  // both backward passes read the same out and lse
    const std::vector<float> zeros(qkv.size(), 0.0f);
    const auto start = random_floats(qkv.size(), ++seed);  // dqkv += onto these
    for (const auto* dqkv0 : {&zeros, &start}) {
      SCOPED_TRACE(dqkv0 == &zeros ? "from zero" : "onto a non-zero dqkv");
      const std::vector<float> want = cpu_backward(*dqkv0, dout, qkv, f, s);
      const std::vector<float> got = gpu_backward(*dqkv0, dout, qkv, f, s, DType::F32);
      EXPECT_LT(ref::max_scaled_error(got, ref::to_double(want)), f32_bound(s));
    }
  }
}

TEST_F(CudaAttention, BF16ForwardWithinTwicePlainBF16Error) {
  REQUIRE_GPU();
  uint64_t seed = 300;
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const auto qkv = round_to_bf16(random_floats(s.B * s.T * 3 * s.C, ++seed, kInputScale));
    const ref::AttentionResult exact = ref::attention_forward(ref::to_double(qkv), s);
    const Forward plain = cpu_forward(qkv, s);
    const Forward got = gpu_forward(qkv, s, DType::BF16);
    testing::expect_bf16_error_within(got.out, round_to_bf16(plain.out), exact.out, "out");
    // lse is F32, computed in fp32 from exactly representable inputs: the F32 bound against float64.
    EXPECT_LT(ref::max_scaled_error(got.lse, exact.lse),
              ref::fp32_tolerance(static_cast<double>(s.T + s.hd())));
  }
}

TEST_F(CudaAttention, BF16BackwardWithinTwicePlainBF16Error) {
  REQUIRE_GPU();
  uint64_t seed = 400;
  for (const auto& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const auto qkv = round_to_bf16(random_floats(s.B * s.T * 3 * s.C, ++seed, kInputScale));
    const auto dout = round_to_bf16(random_floats(s.B * s.T * s.C, ++seed));
    const ref::Vec exact_grad = ref::attention_backward(ref::to_double(dout), ref::to_double(qkv), s);
    // The plain bf16 pipeline stores out in bf16 and feeds that to its backward pass; so does the kernel's.
    Forward plain_forward = cpu_forward(qkv, s);
    plain_forward.out = round_to_bf16(plain_forward.out);
    const Forward kernel_forward = gpu_forward(qkv, s, DType::BF16);
    const std::vector<float> zeros(qkv.size(), 0.0f);
    const auto start = round_to_bf16(random_floats(qkv.size(), ++seed));  // dqkv += onto these
    for (const auto* dqkv0 : {&zeros, &start}) {
      SCOPED_TRACE(dqkv0 == &zeros ? "from zero" : "onto a non-zero dqkv");
      const ref::Vec want = ref::add(ref::to_double(*dqkv0), exact_grad);
      const auto plain = round_to_bf16(cpu_backward(*dqkv0, dout, qkv, plain_forward, s));
      const auto got = gpu_backward(*dqkv0, dout, qkv, kernel_forward, s, DType::BF16);
      testing::expect_bf16_error_within(got, plain, want, "dqkv");
      const char* names[] = {"dq", "dk", "dv"};
      for (int which = 0; which < 3; ++which) {
        const ref::Vec want_part = part(want, s, which);
        if (std::all_of(want_part.begin(), want_part.end(), [](double x) { return x == 0.0; }))
          continue;  // exactly zero (dq and dk of a single token): the whole-tensor check covers it
        testing::expect_bf16_error_within(part(got, s, which), part(plain, s, which), want_part,
                                          names[which]);
      }
    }
  }
}

TEST_F(CudaAttention, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  const ref::AttentionDims s{2, 150, 192, 3};
  const auto qkv = random_floats(s.B * s.T * 3 * s.C, 500, kInputScale);
  const auto dout = random_floats(s.B * s.T * s.C, 501);
  const auto start = random_floats(qkv.size(), 502);
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Forward first = gpu_forward(qkv, s, dtype), second = gpu_forward(qkv, s, dtype);
    EXPECT_TRUE(same_bits(first.out, second.out));
    EXPECT_TRUE(same_bits(first.lse, second.lse));
    EXPECT_TRUE(same_bits(gpu_backward(start, dout, qkv, first, s, dtype),
                          gpu_backward(start, dout, qkv, first, s, dtype)));
  }
}

TEST_F(CudaAttention, RejectsContractViolations) {
  REQUIRE_GPU();
  const ref::AttentionDims s{1, 4, 12, 3};
  GpuBuffer qkv(DType::F32, {s.B, s.T, 3 * s.C}), out(DType::F32, {s.B, s.T, s.C}),
      lse(DType::F32, {s.B, s.NH, s.T}), lse_bf16(DType::BF16, {s.B, s.NH, s.T}),
      out_bf16(DType::BF16, {s.B, s.T, s.C}), dqkv(DType::F32, {s.B, s.T, 3 * s.C});
  EXPECT_THROW(cuda::attention_forward({.out = out, .lse = lse, .qkv = qkv, .n_head = 5}),
               std::invalid_argument);  // 5 does not divide C = 12
  EXPECT_THROW(cuda::attention_forward({.out = out, .lse = lse_bf16, .qkv = qkv, .n_head = 3}),
               std::invalid_argument);  // lse must be F32
  EXPECT_THROW(cuda::attention_forward({.out = out_bf16, .lse = lse, .qkv = qkv, .n_head = 3}),
               std::invalid_argument);  // out and qkv differ in dtype
  EXPECT_THROW(
      cuda::attention_backward({.dqkv = qkv, .dout = out, .qkv = qkv, .out = out, .lse = lse, .n_head = 3}),
      std::invalid_argument);  // dqkv aliases qkv
  EXPECT_THROW(cuda::attention_backward(
                   {.dqkv = dqkv, .dout = out_bf16, .qkv = qkv, .out = out, .lse = lse, .n_head = 3}),
               std::invalid_argument);  // dout and qkv differ in dtype
  GpuBuffer wide_qkv(DType::F32, {1, 2, 3 * 260}), wide_out(DType::F32, {1, 2, 260}),
      wide_lse(DType::F32, {1, 1, 2});
  EXPECT_THROW(cuda::attention_forward({.out = wide_out, .lse = wide_lse, .qkv = wide_qkv, .n_head = 1}),
               std::invalid_argument);  // head dim 260 > 256
}

}  // namespace
}  // namespace inkstone
