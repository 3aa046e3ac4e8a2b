// Inverted dropout on the device (see Dropout in kernels/ops.h): out = inp * keep / (1 - p).
// Layout: any contiguous tensor, out and inp of one dtype (F32 or BF16) and size; out may alias inp.
// OVERWRITES out. Precision: the product is formed in fp32 (one rounding, then one more to bf16), so
// F32 results equal cpu::dropout's bit for bit and BF16 ones equal its result rounded to bf16.
// The mask is dropout_keeps(seed, i) — the function the CPU evaluates — so both backends, every grid
// size and the backward pass (the same op on the gradient) drop exactly the same elements.
#include <cuda_bf16.h>

#include <algorithm>
#include <stdexcept>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace inkstone::cuda {
namespace {

__device__ inline float load(const float* p, int64_t i) {
  return p[i];
}
__device__ inline float load(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ inline void store(float* p, int64_t i, float v) {
  p[i] = v;
}
__device__ inline void store(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

template <class T>
__global__ void dropout_kernel(T* out, const T* inp, int64_t n, uint32_t threshold, float scale,
                               uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // __fmul_rn: no contraction into a neighbouring add, so the fp32 product is the CPU's.
    store(out, i,
          dropout_keeps(seed, static_cast<uint64_t>(i), threshold) ? __fmul_rn(load(inp, i), scale) : 0.0f);
  }
}

}  // namespace

void dropout(const Dropout& p) {
  const int64_t n = p.inp.numel();
  if (p.out.numel() != n) throw std::invalid_argument("cuda::dropout: out and inp differ in size");
  if (p.out.dtype != p.inp.dtype) throw std::invalid_argument("cuda::dropout: out and inp differ in dtype");
  if (!(p.p >= 0.0f && p.p < 1.0f)) throw std::invalid_argument("cuda::dropout: p must be in [0, 1)");
  if (n == 0) return;
  const uint32_t threshold = dropout_threshold(p.p);
  const float scale = 1.0f / (1.0f - p.p);
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
  if (p.inp.dtype == DType::F32) {
    dropout_kernel<<<blocks, kThreads, 0, current_stream()>>>(p.out.as<float>(), p.inp.as<float>(), n,
                                                              threshold, scale, p.seed);
  } else if (p.inp.dtype == DType::BF16) {
    dropout_kernel<<<blocks, kThreads, 0, current_stream()>>>(
        p.out.as<__nv_bfloat16>(), p.inp.as<__nv_bfloat16>(), n, threshold, scale, p.seed);
  } else {
    throw std::invalid_argument("cuda::dropout: only F32 and BF16 are supported");
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace inkstone::cuda
