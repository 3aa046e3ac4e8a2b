// cuda::add against cpu::add: one fp32 addition per element, so F32 agrees bit for bit and BF16 is the
// CPU's sum of the same bf16 values rounded to bf16, bit for bit. Sizes leave a scalar tail after the
// 16-byte vectors; offset views take the all-scalar path; out aliasing a or b.
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

namespace inkstone {
namespace {

using testing::DeviceArray;
using testing::GpuBuffer;
using testing::random_floats;

const int64_t kSizes[] = {1, 7, 33, 771, (1 << 20) + 5};

// cpu::add of a and b; rounded to bf16 for BF16 (a and b are bf16 values already).
std::vector<float> expected_sum(std::vector<float> a, std::vector<float> b, DType dtype) {
  const int64_t n = static_cast<int64_t>(a.size());
  std::vector<float> out(n);
  cpu::add({.out = Tensor(out.data(), DType::F32, {n}),
            .a = Tensor(a.data(), DType::F32, {n}),
            .b = Tensor(b.data(), DType::F32, {n})});
  return dtype == DType::BF16 ? testing::round_to_bf16(out) : out;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
}

TEST(CudaAdd, EqualsTheCpuSumBitForBit) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t offset : {0, 1}) {
      for (int64_t n : kSizes) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n << " offset=" << offset);
        std::vector<float> a = random_floats(n, 1 + n, 4.0f), b = random_floats(n, 2 + n, 4.0f);
        if (dtype == DType::BF16) {
          a = testing::round_to_bf16(a);
          b = testing::round_to_bf16(b);
        }
        DeviceArray da(dtype, a, offset), db(dtype, b, offset), out(dtype, std::vector<float>(n), offset);
        cuda::add({.out = out.view, .a = da.view, .b = db.view});
        expect_same_bits(out.download(), expected_sum(a, b, dtype));
      }
    }
  }
}

TEST(CudaAdd, OutMayAliasEitherInput) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t n = 100003;
    std::vector<float> a = testing::round_to_bf16(random_floats(n, 3)),
                       b = testing::round_to_bf16(random_floats(n, 4));
    const std::vector<float> want = expected_sum(a, b, dtype);
    DeviceArray da(dtype, a), db(dtype, b);
    cuda::add({.out = da.view, .a = da.view, .b = db.view});  // a += b
    expect_same_bits(da.download(), want);
    DeviceArray da2(dtype, a), db2(dtype, b);
    cuda::add({.out = db2.view, .a = da2.view, .b = db2.view});  // b = a + b
    expect_same_bits(db2.download(), want);
  }
}

TEST(CudaAdd, RejectsContractViolations) {
  REQUIRE_GPU();
  GpuBuffer a(DType::F32, {64}), b(DType::F32, {63}), c_bf16(DType::BF16, {64}), i32(DType::I32, {64});
  EXPECT_THROW(cuda::add({.out = a, .a = a, .b = b}), std::invalid_argument);
  EXPECT_THROW(cuda::add({.out = a, .a = a, .b = c_bf16}), std::invalid_argument);
  EXPECT_THROW(cuda::add({.out = i32, .a = i32, .b = i32}), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
