// cuda::dropout against cpu::dropout: the same elements dropped, the same values kept, bit for bit.
// Label gpu: skips without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

// Runs cuda::dropout in place on a device copy of `bytes` (n elements of `dtype`) and returns the result.
std::vector<char> on_device(const std::vector<char>& bytes, DType dtype, int64_t n, float p, uint64_t seed) {
  void* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, bytes.size()), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::dropout({.out = Tensor(d, dtype, {n}), .inp = Tensor(d, dtype, {n}), .p = p, .seed = seed});
  std::vector<char> result(bytes.size());
  EXPECT_EQ(cudaMemcpy(result.data(), d, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d);
  return result;
}

TEST(CudaDropout, F32MatchesTheCpuBitForBit) {
  REQUIRE_GPU();
  const int64_t n = (1 << 20) + 7;  // not a multiple of the block size: the tail is covered too
  std::vector<float> x = testing::random_floats(n, 3, 50.0f);
  for (float p : {0.1f, 0.5f}) {
    std::vector<float> cpu(n);
    cpu::dropout({.out = Tensor(cpu.data(), DType::F32, {n}),
                  .inp = Tensor(x.data(), DType::F32, {n}),
                  .p = p,
                  .seed = 1234});
    std::vector<char> bytes(n * sizeof(float));
    std::memcpy(bytes.data(), x.data(), bytes.size());
    const std::vector<char> gpu = on_device(bytes, DType::F32, n, p, 1234);
    EXPECT_EQ(std::memcmp(gpu.data(), cpu.data(), bytes.size()), 0) << "p=" << p;
  }
}

TEST(CudaDropout, BF16IsTheCpuResultRoundedToBF16) {
  REQUIRE_GPU();
  const int64_t n = 300007;
  std::vector<float> x = testing::random_floats(n, 4, 10.0f);
  std::vector<uint16_t> x_bf16(n);
  cpu::cast({Tensor(x_bf16.data(), DType::BF16, {n}), Tensor(x.data(), DType::F32, {n})});
  std::vector<float> widened(n), cpu(n);
  cpu::cast({Tensor(widened.data(), DType::F32, {n}), Tensor(x_bf16.data(), DType::BF16, {n})});
  cpu::dropout({.out = Tensor(cpu.data(), DType::F32, {n}),
                .inp = Tensor(widened.data(), DType::F32, {n}),
                .p = 0.2f,
                .seed = 77});
  std::vector<uint16_t> want(n);
  cpu::cast({Tensor(want.data(), DType::BF16, {n}), Tensor(cpu.data(), DType::F32, {n})});
  std::vector<char> bytes(n * 2);
  std::memcpy(bytes.data(), x_bf16.data(), bytes.size());
  const std::vector<char> gpu = on_device(bytes, DType::BF16, n, 0.2f, 77);
  EXPECT_EQ(std::memcmp(gpu.data(), want.data(), bytes.size()), 0);
}

}  // namespace
}  // namespace inkstone
