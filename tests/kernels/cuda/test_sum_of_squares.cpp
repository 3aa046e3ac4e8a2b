// cuda::sum_of_squares: exact on small integers (every partial sum is an integer below 2^53), close to a
// long-double sum and to cpu::sum_of_squares on random data, F32 and BF16, aligned and offset views, sizes
// from 1 element to more than the grid's 1024 blocks' worth; repeated calls return the same bits.
// Label gpu: every test skips without a device.
#include <gtest/gtest.h>

#include <cmath>
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
using testing::random_floats;

// 8M + 5 elements: past 1024 blocks of 8192, so the grid is capped and strides over the data.
const int64_t kSizes[] = {1, 7, 771, (1 << 20) + 3, (8 << 20) + 5};

TEST(CudaSumOfSquares, ExactForSmallIntegers) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t offset : {0, 1}) {
      for (int64_t n : kSizes) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n << " offset=" << offset);
        std::vector<float> x(n);
        int64_t exact = 0;
        for (int64_t i = 0; i < n; ++i) {
          x[i] = static_cast<float>(i % 7 - 3);  // -3..3, exact in bf16
          exact += static_cast<int64_t>(x[i] * x[i]);
        }
        const DeviceArray d(dtype, x, offset);
        EXPECT_EQ(cuda::sum_of_squares(d.view), static_cast<double>(exact));
      }
    }
  }
}

// A sum of n non-negative doubles has relative error below n * 2^-53; the squares are exact in double
// (24-bit mantissas). The CPU's order differs, so the two agree within twice that.
TEST(CudaSumOfSquares, RandomValuesMatchLongDoubleAndCpu) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n);
      std::vector<float> x = random_floats(n, 7 + n, 3.0f);
      if (dtype == DType::BF16) x = testing::round_to_bf16(x);
      long double exact = 0;
      for (float v : x) exact += static_cast<long double>(v) * v;
      const double cpu = cpu::sum_of_squares(Tensor(x.data(), DType::F32, {n}));
      const double gpu = cuda::sum_of_squares(DeviceArray(dtype, x).view);
      const double bound = static_cast<double>(n) * std::ldexp(1.0, -53);
      EXPECT_LE(std::abs(gpu - static_cast<double>(exact)), bound * static_cast<double>(exact));
      EXPECT_LE(std::abs(gpu - cpu), 2 * bound * cpu);
    }
  }
}

TEST(CudaSumOfSquares, RepeatedCallsAreBitIdentical) {
  REQUIRE_GPU();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const DeviceArray d(dtype, random_floats((8 << 20) + 5, 9));
    const double first = cuda::sum_of_squares(d.view), second = cuda::sum_of_squares(d.view);
    EXPECT_EQ(std::memcmp(&first, &second, sizeof(double)), 0) << dtype_name(dtype);
  }
}

TEST(CudaSumOfSquares, EmptyIsZeroAndIntegersAreRejected) {
  REQUIRE_GPU();
  EXPECT_EQ(cuda::sum_of_squares(Tensor(nullptr, DType::F32, {0})), 0.0);
  const testing::GpuBuffer ints(DType::I32, {4});
  EXPECT_THROW(cuda::sum_of_squares(ints), std::invalid_argument);
}

}  // namespace
}  // namespace inkstone
