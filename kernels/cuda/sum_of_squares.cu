// Sum of squares of a tensor on the device, for the global gradient norm. Layout: any contiguous tensor,
// F32 or BF16. Returns a double on the host: the one op that synchronises (its stream, not the device).
// Precision: each element squared and summed in double, like kernels/cpu/sum_of_squares.cpp, so the
// result does not lose digits over 10^8 parameters.
// Deterministic: a fixed grid (its size depends on numel only, never on the device) sums the tensor in a
// grid-stride order, each block reduces its threads' sums in a fixed tree into one partial
// (cuda::scratch()), and a single block adds the partials in a fixed order on the device; one 8-byte
// copy brings the total back.
// Access: 16-byte vectors over the aligned bulk, a scalar tail.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {
namespace {

constexpr int kThreads = 256;
// Partial sums: one per block, at most kMaxBlocks (enough to fill an H200 several times over), and
// at least kElementsPerBlock elements per block.
constexpr int64_t kMaxBlocks = 1024;
constexpr int64_t kElementsPerBlock = 8 * 1024;

__device__ __forceinline__ double warp_sum_double(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block of kThreads threads in a fixed order; the total is valid in thread 0.
__device__ __forceinline__ double block_sum_double(double v) {
  __shared__ double warp_sums[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum_double(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  return total;
}

// partials[blockIdx.x] = sum of squares of this block's grid-stride share: vectors [0, n_vec) of P
// elements, then the scalar elements [n_vec * P, n). n_vec is 0 when the data is not 16-byte aligned.
template <class T>
__global__ void __launch_bounds__(kThreads)
    sum_of_squares_kernel(double* __restrict__ partials, const T* __restrict__ x, int64_t n_vec, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const int64_t first = blockIdx.x * int64_t(kThreads) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  double sum = 0.0;
  for (int64_t i = first; i < n_vec; i += stride) {
    float v[P];
    load_chunk<P>(x + i * P, v);
    double chunk = 0.0;
#pragma unroll
    for (int k = 0; k < P; ++k) chunk += static_cast<double>(v[k]) * v[k];
    sum += chunk;
  }
  for (int64_t i = n_vec * P + first; i < n; i += stride) {
    const double value = to_float(x[i]);
    sum += value * value;
  }
  const double total = block_sum_double(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// partials[count] = sum of partials[0, count), by one block.
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(double* partials, int count) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) sum += partials[i];
  const double total = block_sum_double(sum);
  if (threadIdx.x == 0) partials[count] = total;
}

template <class T>
void launch(const Tensor& t, int64_t n, double* partials, int blocks, cudaStream_t stream) {
  constexpr int P = kVectorElements<T>;
  const int64_t n_vec = is_aligned16(t.data) ? n / P : 0;
  sum_of_squares_kernel<T><<<blocks, kThreads, 0, stream>>>(partials, t.as<T>(), n_vec, n);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

double sum_of_squares(Tensor t) {
  constexpr const char* op = "cuda::sum_of_squares";
  const int64_t n = t.numel();
  if (n == 0) return 0.0;
  const DType dtype = contract::require_float_dtype(t, op, "tensor");
  const int blocks =
      static_cast<int>(std::clamp<int64_t>((n + kElementsPerBlock - 1) / kElementsPerBlock, 1, kMaxBlocks));
  double* partials = static_cast<double*>(scratch((blocks + 1) * sizeof(double)));
  cudaStream_t stream = current_stream();
  if (dtype == DType::F32)
    launch<float>(t, n, partials, blocks, stream);
  else
    launch<__nv_bfloat16>(t, n, partials, blocks, stream);
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(partials, blocks);
  INKSTONE_CUDA_CHECK_LAUNCH();
  double total = 0.0;
  INKSTONE_CUDA_CHECK(
      cudaMemcpyAsync(&total, partials + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream));
  INKSTONE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

}  // namespace inkstone::cuda
