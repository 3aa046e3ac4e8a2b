// Cast between F32 and BF16 on the device.
// Layout: any contiguous tensor, out.numel() == inp.numel(). Overwrites out.
// Precision: F32 -> BF16 rounds to nearest even (__float2bfloat16_rn); BF16 -> F32 is exact.
#include <cuda_bf16.h>

#include <stdexcept>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace inkstone::cuda {
namespace {

__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(inp[i]);
}

__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(inp[i]);
}

}  // namespace

void cast(const Cast& p) {
  const int64_t n = p.inp.numel();
  if (p.out.numel() != n) throw std::invalid_argument("cuda::cast: out and inp differ in size");
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
  if (p.inp.dtype == DType::F32 && p.out.dtype == DType::BF16) {
    f32_to_bf16_kernel<<<blocks, kThreads, 0, current_stream()>>>(p.out.as<__nv_bfloat16>(),
                                                                  p.inp.as<float>(), n);
  } else if (p.inp.dtype == DType::BF16 && p.out.dtype == DType::F32) {
    bf16_to_f32_kernel<<<blocks, kThreads, 0, current_stream()>>>(p.out.as<float>(),
                                                                  p.inp.as<__nv_bfloat16>(), n);
  } else {
    throw std::invalid_argument("cuda::cast: only F32 <-> BF16 is supported");
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace inkstone::cuda
