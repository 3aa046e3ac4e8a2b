// cuda::softmax_forward against cpu::softmax_forward and the float64 reference: padded columns
// (junk in the padding must not enter the softmax and comes out 0), rows short and long, pitches that
// take the 16-byte path and ones that do not (odd widths, a misaligned view), large logits in place,
// bit-identical repeats, rejected arguments. Label gpu: skips without a device.
//
// Tolerances. F32: both the kernel and the CPU compute exp(x - max) in fp32 with an argument error of
// at most 2 |x - max| u relative (the kernel forms x * log2 e - max * log2 e in one FFMA), a few u per
// exp, divide and store, and a sum over `valid` terms: within ref::fp32_tolerance(valid) +
// 2 * range * u of the exact softmax (range = max - min of the inputs, u = 2^-24), measured as
// max_scaled_error; the two are within twice that of each other. BF16: gpu_test_util.h's rule.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
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
using testing::round_to_bf16;
namespace ref = testing::ref;

constexpr double kRoundoff = 0x1p-24;

struct Shape {
  int64_t N, cols, valid;
};
// cols 10, 67: no 16-byte pitch in either dtype; 300: 16-byte pitch in F32 only; 128 and 50304: both,
// with the last real vector partly padding (67, 50257); 4099: one long row element by element.
const Shape kShapes[] = {{1, 1, 1},    {3, 10, 7},      {4, 300, 257},    {5, 67, 67},
                         {2, 128, 67}, {3, 4099, 4099}, {2, 50304, 50257}};

double f32_bound(int64_t valid, double range) {
  return ref::fp32_tolerance(static_cast<double>(valid)) + 2 * range * kRoundoff;
}

// inp [N, cols], uniform in [-scale, scale] on the real columns, 1e30 in the padding.
std::vector<float> padded_input(const Shape& s, uint64_t seed, float scale) {
  std::vector<float> inp = random_floats(s.N * s.cols, seed, scale);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = s.valid; c < s.cols; ++c) inp[n * s.cols + c] = 1e30f;
  return inp;
}

std::vector<float> cpu_softmax(std::vector<float> inp, const Shape& s) {
  std::vector<float> out(inp.size());
  cpu::softmax_forward({.out = Tensor(out.data(), DType::F32, {s.N, s.cols}),
                        .inp = Tensor(inp.data(), DType::F32, {s.N, s.cols}),
                        .valid_cols = static_cast<int>(s.valid)});
  return out;
}

// cuda::softmax_forward of `inp` (already representable in `dtype`), out pre-filled with junk.
std::vector<float> gpu_softmax(const std::vector<float>& inp, const Shape& s, DType dtype) {
  GpuBuffer in(dtype, {s.N, s.cols}), out(dtype, {s.N, s.cols});
  in.upload(inp);
  out.upload(std::vector<float>(inp.size(), 7.0f));
  cuda::softmax_forward({.out = out, .inp = in, .valid_cols = static_cast<int>(s.valid)});
  return out.download();
}

void expect_padding_zero(const std::vector<float>& out, const Shape& s) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = s.valid; c < s.cols; ++c)
      ASSERT_EQ(out[n * s.cols + c], 0.0f) << "n=" << n << " c=" << c;
}

TEST(CudaSoftmax, F32MatchesReferenceAndCpu) {
  REQUIRE_GPU();
  const float scale = 10.0f;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " cols=" << s.cols << " valid=" << s.valid);
    const std::vector<float> inp = padded_input(s, 1, scale);
    const std::vector<float> got = gpu_softmax(inp, s, DType::F32);
    const ref::Vec want = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
    const double bound = f32_bound(s.valid, 2 * scale);
    EXPECT_LT(ref::max_scaled_error(got, want), bound);
    EXPECT_LT(ref::max_scaled_error(got, ref::to_double(cpu_softmax(inp, s))), 2 * bound);
    expect_padding_zero(got, s);
  }
}

TEST(CudaSoftmax, BF16WithinTwicePlainBF16Error) {
  REQUIRE_GPU();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " cols=" << s.cols << " valid=" << s.valid);
    const std::vector<float> inp = round_to_bf16(padded_input(s, 2, 10.0f));
    const std::vector<float> got = gpu_softmax(inp, s, DType::BF16);
    const std::vector<float> plain = round_to_bf16(cpu_softmax(inp, s));
    const ref::Vec want = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
    testing::expect_bf16_error_within(got, plain, want, "softmax");
    expect_padding_zero(got, s);
  }
}

TEST(CudaSoftmax, LargeLogitsInPlace) {
  REQUIRE_GPU();
  const Shape s{3, 1000, 997};  // 16-byte path in both dtypes, the last real vector partly padding
  const float scale = 1000.0f;  // exp would overflow without the max shift
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<float> inp = padded_input(s, 3, scale);
    if (dtype == DType::BF16) inp = round_to_bf16(inp);
    GpuBuffer buf(dtype, {s.N, s.cols});
    buf.upload(inp);
    cuda::softmax_forward({.out = buf, .inp = buf, .valid_cols = static_cast<int>(s.valid)});
    const std::vector<float> got = buf.download();
    for (float p : got) ASSERT_TRUE(std::isfinite(p));
    const ref::Vec want = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
    if (dtype == DType::F32)
      EXPECT_LT(ref::max_scaled_error(got, want), f32_bound(s.valid, 2 * scale));
    else
      testing::expect_bf16_error_within(got, round_to_bf16(cpu_softmax(inp, s)), want, "softmax in place");
    expect_padding_zero(got, s);
  }
}

// A view one element into its allocation: the 16-byte path must not be taken (misaligned loads fault).
TEST(CudaSoftmax, MisalignedViewsTakeTheElementwisePath) {
  REQUIRE_GPU();
  const Shape s{4, 512, 500};
  const std::vector<float> inp = padded_input(s, 4, 5.0f);
  GpuBuffer in(DType::F32, {s.N * s.cols + 1}), out(DType::F32, {s.N * s.cols + 1});
  std::vector<float> padded_in(inp);
  padded_in.insert(padded_in.begin(), 0.0f);
  in.upload(padded_in);
  const Tensor in_view(static_cast<float*>(in.view().data) + 1, DType::F32, {s.N, s.cols});
  const Tensor out_view(static_cast<float*>(out.view().data) + 1, DType::F32, {s.N, s.cols});
  cuda::softmax_forward({.out = out_view, .inp = in_view, .valid_cols = static_cast<int>(s.valid)});
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> got = out.download();
  got.erase(got.begin());
  const ref::Vec want = ref::softmax_forward(ref::to_double(inp), s.N, s.cols, s.valid);
  EXPECT_LT(ref::max_scaled_error(got, want), f32_bound(s.valid, 10.0));
  expect_padding_zero(got, s);
}

TEST(CudaSoftmax, RepeatedRunsAreBitIdentical) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape s{8, 50304, 50257};
    const std::vector<float> inp = padded_input(s, 5, 10.0f);
    GpuBuffer in(dtype, {s.N, s.cols}), out(dtype, {s.N, s.cols});
    in.upload(inp);
    std::vector<char> first(out.view().nbytes()), second(out.view().nbytes());
    cuda::softmax_forward({.out = out, .inp = in, .valid_cols = static_cast<int>(s.valid)});
    out.download_bytes(first.data());
    cuda::softmax_forward({.out = out, .inp = in, .valid_cols = static_cast<int>(s.valid)});
    out.download_bytes(second.data());
    EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size()), 0) << dtype_name(dtype);
  }
}

TEST(CudaSoftmax, RejectsBadArguments) {
  REQUIRE_GPU();
  GpuBuffer f32(DType::F32, {2, 4}), bf16(DType::BF16, {2, 4}), i32(DType::I32, {2, 4}),
      small(DType::F32, {2, 3});
  EXPECT_THROW(cuda::softmax_forward({.out = f32, .inp = f32, .valid_cols = 5}), std::invalid_argument);
  EXPECT_THROW(cuda::softmax_forward({.out = f32, .inp = f32, .valid_cols = 0}), std::invalid_argument);
  EXPECT_THROW(cuda::softmax_forward({.out = bf16, .inp = f32, .valid_cols = 4}), std::invalid_argument);
  EXPECT_THROW(cuda::softmax_forward({.out = i32, .inp = i32, .valid_cols = 4}), std::invalid_argument);
  EXPECT_THROW(cuda::softmax_forward({.out = small, .inp = f32, .valid_cols = 4}), std::invalid_argument);
  EXPECT_NO_THROW(cuda::softmax_forward({.out = bf16, .inp = bf16, .valid_cols = 4}));
}

}  // namespace
}  // namespace inkstone
