// Device-side helpers shared by the kernel files: the current stream as a CUDA type, fp32 loads and
// stores for both float dtypes, warp and block reductions, and grid sizing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/context.h"

namespace inkstone::cuda {

inline cudaStream_t current_stream() {
  return static_cast<cudaStream_t>(stream());
}

// Blocks for a grid-stride loop over n elements: enough to fill the device, never more than needed.
inline int grid_for(int64_t n, int threads) {
  const int64_t needed = (n + threads - 1) / threads;
  const int64_t cap = int64_t{multiprocessor_count()} * 32;
  return static_cast<int>(std::max<int64_t>(1, std::min(needed, cap)));
}

// Every op computes in fp32; these widen on load and round (to nearest even) on store.
__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every thread gets the total.
// `shared` holds 32 floats. The order of additions is fixed, so results are run-to-run identical.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace inkstone::cuda
