// The CUDA side of the build: links cuBLASLt and NCCL, finds devices, and casts like the CPU.
// Label gpu: every test that needs a device skips (not passes) without one.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/require_gpu.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

TEST(CudaDevice, NcclIsLinkedAndReportsAVersion) {
  // ncclGetVersion needs no device: this proves the NCCL link on every CI run.
  EXPECT_GE(cuda::nccl_version(), 20000);
}

TEST(CudaDevice, CublasLtIsLinkedAndReportsAVersion) {
  EXPECT_GE(cuda::cublaslt_version(), 10000u);
}

TEST(CudaDevice, CountIsZeroOrDescribesDevices) {
  const int n = cuda::device_count();
  ASSERT_GE(n, 0);
  for (int i = 0; i < n; ++i) EXPECT_NE(cuda::device_description(i).find("sm_"), std::string::npos);
}

TEST(CudaDevice, CublasLtContextAllocatesItsWorkspace) {
  REQUIRE_GPU();
  cuda::CublasLtContext context(4u << 20);
  EXPECT_NE(context.handle(), nullptr);
  EXPECT_NE(context.workspace(), nullptr);
}

TEST(CudaCast, RoundTripMatchesTheCpuCastBitForBit) {
  REQUIRE_GPU();
  std::vector<float> host = testing::random_floats(100003, 7, 1000.0f);
  host[0] = std::numeric_limits<float>::infinity();
  host[1] = -0.0f;
  host[2] = 1.00390625f;  // exactly halfway between two bf16 values: ties to even
  const int64_t n = static_cast<int64_t>(host.size());

  std::vector<uint16_t> cpu_bf16(host.size());
  cpu::cast({Tensor(cpu_bf16.data(), DType::BF16, {n}), Tensor(host.data(), DType::F32, {n})});

  float* d_f32 = nullptr;
  void* d_bf16 = nullptr;
  ASSERT_EQ(cudaMalloc(&d_f32, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_bf16, n * 2), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_f32, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::cast({Tensor(d_bf16, DType::BF16, {n}), Tensor(d_f32, DType::F32, {n})});
  std::vector<uint16_t> gpu_bf16(host.size());
  ASSERT_EQ(cudaMemcpy(gpu_bf16.data(), d_bf16, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::memcmp(gpu_bf16.data(), cpu_bf16.data(), n * 2), 0);

  cuda::cast({Tensor(d_f32, DType::F32, {n}), Tensor(d_bf16, DType::BF16, {n})});
  std::vector<float> back(host.size());
  ASSERT_EQ(cudaMemcpy(back.data(), d_f32, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(host[i])) continue;
    ASSERT_NEAR(back[i], host[i], std::abs(host[i]) / 256.0f) << i;
  }
  cudaFree(d_f32);
  cudaFree(d_bf16);
}

}  // namespace
}  // namespace inkstone
