// LayerNorm over the last dimension on the device: out = (inp - mean) * rstd * weight + bias.
// Layout: inp, out, dout, dinp [N,C] (any leading dims); weight, bias, dweight, dbias [C]; mean, rstd [N].
// All of them F32, or all BF16 except mean and rstd, which are F32 always (cuda_ops.h).
// Precision: fp32. Row statistics by two passes over the row, the mean first and then the centred
// variance, as kernels/cpu/layernorm.cpp does (no cancellation for rows with a large mean).
// Forward OVERWRITES out, mean and rstd (mean and rstd may be absent when no backward pass follows);
// out may alias inp (each lane reads its chunk before it writes it, and the row was summed before).
// Backward ACCUMULATES into dinp, dweight and dbias, like every backward op, so the caller zeroes them
// once per step. dinp must alias neither inp nor dout: other warps still read those rows.
//
// Forward: one warp per row, 8 rows per block, 16-byte vector loads when C and the pointers allow; the
// row's statistics and normalisation are layernorm_row.cuh's, which the fused residual add shares.
// Backward, deterministic without atomics: block b owns the rows [b R, (b+1) R). Its warps compute dinp
// a row each (the same two-pass shape as the forward); after each tile of 8 rows the block's threads
// turn to columns (thread t owns columns t, t + 256, ...) and add the tile's norm * dout and dout,
// row by row, to the block's partial sums in shared memory. The partials ([blocks][2][C], F32, in
// cuda::scratch()) are then summed by a second kernel in a fixed order and added into dweight/dbias.
// R depends on N only, so the result is the same on every device and every run.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/layernorm_row.cuh"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {
namespace {

using contract::require;
using contract::require_dtype;
using contract::require_numel;

constexpr int kWarps = 8;  // rows in flight per block
constexpr int kThreads = kWarps * 32;
// The backward pass gives each block at least kMinRowsPerBlock rows and uses at most kMaxBlocks blocks:
// enough blocks to fill an H200 (132 SMs) a few times over, few enough that the partial sums
// (kMaxBlocks * 2C floats, 6 MB at C = 768) stay small beside the activations the kernel reads.
constexpr int kMinRowsPerBlock = 2 * kWarps;
constexpr int64_t kMaxBlocks = 1024;
constexpr size_t kDefaultSharedBytes = 48 * 1024;

// One warp per row. P elements per chunk: a 16-byte vector, or 1 when C or a pointer is not aligned.
template <class T, int P>
__global__ void __launch_bounds__(kThreads)
    layernorm_forward_kernel(T* out, float* __restrict__ mean_out, float* __restrict__ rstd_out, const T* inp,
                             const T* __restrict__ weight, const T* __restrict__ bias, int64_t N, int C,
                             float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t(kWarps) + threadIdx.x / 32;
  if (row >= N) return;  // the whole warp leaves: the shuffles below always see 32 lanes
  const T* x = inp + row * C;
  const int chunks = C / P;
  float sum = 0.0f;
  for (int i = lane; i < chunks; i += 32) {
    float v[P];
    load_chunk<P>(x + i * P, v);
    add_to_sum(sum, v);
  }
  const RowStatistics s = layernorm_finish_row<P>(out + row * C, x, weight, bias, sum, C, eps, lane);
  if (lane == 0 && mean_out != nullptr) {
    mean_out[row] = s.mean;
    rstd_out[row] = s.rstd;
  }
}

// dinp[row] += (weight * dout - mean(weight * dout) - norm * mean(weight * dout * norm)) * rstd, by one warp.
template <class T, int P>
__device__ __forceinline__ void layernorm_backward_row(T* __restrict__ dinp, const T* __restrict__ dout,
                                                       const T* __restrict__ inp,
                                                       const T* __restrict__ weight, float mean, float rstd,
                                                       int C, int lane) {
  const int chunks = C / P;
  const float inv_c = 1.0f / static_cast<float>(C);
  float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
  for (int i = lane; i < chunks; i += 32) {
    float x[P], d[P], w[P];
    load_chunk<P>(inp + i * P, x);
    load_chunk<P>(dout + i * P, d);
    load_chunk<P>(weight + i * P, w);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float dnorm = w[k] * d[k];
      dnorm_sum += dnorm;
      dnorm_norm_sum += dnorm * (x[k] - mean) * rstd;
    }
  }
  const float dnorm_mean = warp_sum(dnorm_sum) * inv_c;
  const float dnorm_norm_mean = warp_sum(dnorm_norm_sum) * inv_c;
  for (int i = lane; i < chunks; i += 32) {
    float x[P], d[P], w[P], dx[P];
    load_chunk<P>(inp + i * P, x);
    load_chunk<P>(dout + i * P, d);
    load_chunk<P>(weight + i * P, w);
    load_chunk<P>(dinp + i * P, dx);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float norm = (x[k] - mean) * rstd;
      dx[k] += (w[k] * d[k] - dnorm_mean - norm * dnorm_norm_mean) * rstd;
    }
    store_chunk<P>(dinp + i * P, dx);
  }
}

// Block b: rows [b * rows_per_block, ...) (rows_per_block a multiple of kWarps). Writes the block's column
// sums to partials[b] = [dweight part (C) | dbias part (C)]. Dynamic shared memory: 2 * C floats.
template <class T, int P>
__global__ void __launch_bounds__(kThreads)
    layernorm_backward_kernel(T* __restrict__ dinp, float* __restrict__ partials, const T* __restrict__ dout,
                              const T* __restrict__ inp, const T* __restrict__ weight,
                              const float* __restrict__ mean, const float* __restrict__ rstd, int64_t N,
                              int C, int rows_per_block) {
  // acc[c] and acc[C + c] are touched only by thread c % kThreads: private sums, no barrier needed.
  extern __shared__ float acc[];
  for (int c = threadIdx.x; c < C; c += kThreads) {
    acc[c] = 0.0f;
    acc[C + c] = 0.0f;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t begin = blockIdx.x * int64_t(rows_per_block);
  const int64_t end = begin + rows_per_block < N ? begin + rows_per_block : N;
  for (int64_t tile = begin; tile < end; tile += kWarps) {
    const int64_t row = tile + warp;
    if (row < end)  // warp-uniform
      layernorm_backward_row<T, P>(dinp + row * C, dout + row * C, inp + row * C, weight, mean[row],
                                   rstd[row], C, lane);
    // The tile's rows in order, for the columns this thread owns (just read by the warps: L1/L2 hits).
    for (int c = threadIdx.x; c < C; c += kThreads) {
      float dw = 0.0f, db = 0.0f;
#pragma unroll
      for (int r = 0; r < kWarps; ++r) {
        const int64_t n = tile + r;
        if (n < end) {
          const float d = to_float(dout[n * C + c]);
          dw += (to_float(inp[n * C + c]) - mean[n]) * rstd[n] * d;
          db += d;
        }
      }
      acc[c] += dw;
      acc[C + c] += db;
    }
  }
  float* part = partials + blockIdx.x * int64_t(2) * C;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    part[c] = acc[c];
    part[C + c] = acc[C + c];
  }
}

// dweight[c] += sum_b partials[b][c], dbias[c] += sum_b partials[b][C + c], b in a fixed order: thread
// (x, y) of a 32 x 8 block sums b = y, y + 8, ... for column 32 blockIdx.x + x, then row y = 0 adds
// the 8 sums in order.
template <class T>
__global__ void __launch_bounds__(256)
    layernorm_reduce_partials_kernel(T* __restrict__ dweight, T* __restrict__ dbias,
                                     const float* __restrict__ partials, int blocks, int C) {
  __shared__ float sums[8][32];
  const int col = blockIdx.x * 32 + threadIdx.x;  // in [0, 2C): dweight then dbias
  float s = 0.0f;
  if (col < 2 * C) {
#pragma unroll 4
    for (int b = threadIdx.y; b < blocks; b += 8) s += partials[b * int64_t(2) * C + col];
  }
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < 2 * C) {
    float total = 0.0f;
#pragma unroll
    for (int y = 0; y < 8; ++y) total += sums[y][threadIdx.x];
    T* dst = col < C ? dweight + col : dbias + (col - C);
    *dst = from_float<T>(to_float(*dst) + total);
  }
}

template <class T>
void launch_forward(const LayerNormForward& p, int64_t N, int C) {
  constexpr int P = kVectorElements<T>;
  const bool vector = C % P == 0 && is_aligned16(p.out.data) && is_aligned16(p.inp.data) &&
                      is_aligned16(p.weight.data) && is_aligned16(p.bias.data);
  const int64_t blocks = (N + kWarps - 1) / kWarps;
  auto kernel = vector ? layernorm_forward_kernel<T, P> : layernorm_forward_kernel<T, 1>;
  float* mean = p.mean.defined() ? p.mean.as<float>() : nullptr;
  float* rstd = p.rstd.defined() ? p.rstd.as<float>() : nullptr;
  kernel<<<static_cast<unsigned>(blocks), kThreads, 0, current_stream()>>>(
      p.out.as<T>(), mean, rstd, p.inp.as<T>(), p.weight.as<T>(), p.bias.as<T>(), N, C, p.eps);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_backward(const LayerNormBackward& p, int64_t N, int C) {
  constexpr int P = kVectorElements<T>;
  const bool vector = C % P == 0 && is_aligned16(p.dinp.data) && is_aligned16(p.dout.data) &&
                      is_aligned16(p.inp.data) && is_aligned16(p.weight.data);
  auto kernel = vector ? layernorm_backward_kernel<T, P> : layernorm_backward_kernel<T, 1>;

  // Rows per block from N alone (a multiple of kWarps), so the order of the sums never depends on the device.
  int64_t rows_per_block = std::max<int64_t>(kMinRowsPerBlock, (N + kMaxBlocks - 1) / kMaxBlocks);
  rows_per_block = (rows_per_block + kWarps - 1) / kWarps * kWarps;
  const int64_t blocks = (N + rows_per_block - 1) / rows_per_block;

  const size_t shared_bytes = size_t{2} * C * sizeof(float);
  if (shared_bytes > kDefaultSharedBytes) {
    int device = 0, optin = 0;
    INKSTONE_CUDA_CHECK(cudaGetDevice(&device));
    INKSTONE_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (shared_bytes > static_cast<size_t>(optin))
      contract::contract_violation("cuda::layernorm_backward",
                                   "C = " + std::to_string(C) + " needs more shared memory than a block has");
    INKSTONE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(shared_bytes)));
  }

  float* partials = static_cast<float*>(scratch(static_cast<size_t>(blocks) * 2 * C * sizeof(float)));
  kernel<<<static_cast<unsigned>(blocks), kThreads, shared_bytes, current_stream()>>>(
      p.dinp.as<T>(), partials, p.dout.as<T>(), p.inp.as<T>(), p.weight.as<T>(), p.mean.as<float>(),
      p.rstd.as<float>(), N, C, static_cast<int>(rows_per_block));
  INKSTONE_CUDA_CHECK_LAUNCH();

  const unsigned reduce_blocks = static_cast<unsigned>((2 * int64_t{C} + 31) / 32);
  layernorm_reduce_partials_kernel<T><<<reduce_blocks, dim3(32, 8), 0, current_stream()>>>(
      p.dweight.as<T>(), p.dbias.as<T>(), partials, static_cast<int>(blocks), C);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

// C of inp, checked to fit the kernels' int column indices.
int columns(const Tensor& inp, const char* op) {
  const int64_t C = inp.ndim > 0 ? inp.dim(-1) : 0;
  require(C <= INT_MAX / 2, op, "C (the last dimension of inp) is too large");
  return static_cast<int>(C);
}

}  // namespace

void layernorm_forward(const LayerNormForward& p) {
  constexpr const char* op = "cuda::layernorm_forward";
  const DType dtype = contract::require_float_dtype(p.inp, op, "inp");
  const int C = columns(p.inp, op);
  const int64_t N = contract::rows(p.inp);
  require_dtype(p.out, dtype, op, "out");
  require_numel(p.out, N * C, op, "out");
  require_dtype(p.weight, dtype, op, "weight");
  require_numel(p.weight, C, op, "weight");
  require_dtype(p.bias, dtype, op, "bias");
  require_numel(p.bias, C, op, "bias");
  if (p.mean.defined() || p.rstd.defined()) {
    require_dtype(p.mean, DType::F32, op, "mean");
    require_numel(p.mean, N, op, "mean");
    require_dtype(p.rstd, DType::F32, op, "rstd");
    require_numel(p.rstd, N, op, "rstd");
  }
  if (N == 0) return;
  if (dtype == DType::F32)
    launch_forward<float>(p, N, C);
  else
    launch_forward<__nv_bfloat16>(p, N, C);
}

void layernorm_backward(const LayerNormBackward& p) {
  constexpr const char* op = "cuda::layernorm_backward";
  const DType dtype = contract::require_float_dtype(p.inp, op, "inp");
  const int C = columns(p.inp, op);
  const int64_t N = contract::rows(p.inp);
  require_dtype(p.dinp, dtype, op, "dinp");
  require_numel(p.dinp, N * C, op, "dinp");
  require_dtype(p.dout, dtype, op, "dout");
  require_numel(p.dout, N * C, op, "dout");
  require_dtype(p.weight, dtype, op, "weight");
  require_numel(p.weight, C, op, "weight");
  require_dtype(p.dweight, dtype, op, "dweight");
  require_numel(p.dweight, C, op, "dweight");
  require_dtype(p.dbias, dtype, op, "dbias");
  require_numel(p.dbias, C, op, "dbias");
  require_dtype(p.mean, DType::F32, op, "mean");
  require_numel(p.mean, N, op, "mean");
  require_dtype(p.rstd, DType::F32, op, "rstd");
  require_numel(p.rstd, N, op, "rstd");
  require(p.dinp.data != p.dout.data && p.dinp.data != p.inp.data, op,
          "dinp must alias neither inp nor dout");
  if (N == 0) return;
  if (dtype == DType::F32)
    launch_backward<float>(p, N, C);
  else
    launch_backward<__nv_bfloat16>(p, N, C);
}

}  // namespace inkstone::cuda
