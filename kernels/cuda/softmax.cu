// Row-wise softmax over the first valid_cols columns (the real vocabulary of padded logits).
// Layout: inp, out [N, cols], row-major, one dtype (F32 or BF16). OVERWRITES out, padding columns
// [valid_cols, cols) with 0 (they never enter the softmax). out may alias inp: every element is read
// by the thread that later writes it, and the whole row is read before the barrier that precedes the
// first write.
// Precision: fp32 throughout, one rounding to the output dtype; exp via exp2f of a pre-scaled argument
// (see online_softmax.cuh).
//
// One block per row, any row length: a single read pass keeps an online (max, sum) per thread, a block
// reduction merges them in a fixed order, then a second pass re-reads the row (from L2) and writes
// exp(x - max) / sum. Rows whose pitch is a multiple of 16 bytes (and 16-byte-aligned buffers) move
// in 16-byte vectors; others element by element.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/online_softmax.cuh"

namespace inkstone::cuda {
namespace {

constexpr int kMaxThreads = 512;
constexpr int kUnroll = 4;  // vectors in flight per thread

template <class T>
struct SoftmaxArgs {
  T* out;
  const T* inp;  // not __restrict__: may alias out
  int cols, valid;
};

// VEC elements per access: kVec16<T> (16 bytes) or 1.
template <class T, int VEC>
__global__ void __launch_bounds__(kMaxThreads) softmax_kernel(SoftmaxArgs<T> a) {
  __shared__ MaxSum shared[32];
  const int64_t row = blockIdx.x;
  const T* x = a.inp + row * a.cols;
  T* y = a.out + row * a.cols;
  const int n_valid = (a.valid + VEC - 1) / VEC;  // vectors holding real columns
  const int n_all = a.cols / VEC;                 // cols % VEC == 0 (launcher)
  const int stride = blockDim.x;

  const MaxSum total = block_combine(thread_max_sum<kUnroll, VEC>(x, n_valid, a.valid, stride), shared);
  const float shift = exp_shift(total.m), inv_sum = 1.0f / total.s;

  for (int i0 = threadIdx.x; i0 < n_all; i0 += kUnroll * stride) {
    float v[kUnroll][VEC] = {};
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * stride;
      if (i < n_valid) load_floats<VEC>(x + int64_t{i} * VEC, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * stride;
      if (i >= n_all) continue;
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        v[u][k] = i * VEC + k < a.valid ? exp2f(fmaf(v[u][k], kLog2e, -shift)) * inv_sum : 0.0f;
      store_floats<VEC>(y + int64_t{i} * VEC, v[u]);
    }
  }
}

template <class T>
void launch(const SoftmaxForward& p, int64_t rows, int cols) {
  SoftmaxArgs<T> a{p.out.as<T>(), p.inp.as<T>(), cols, p.valid_cols};
  constexpr int kVec = kVec16<T>;
  const bool vectorised =
      rows_vectorisable(int64_t{cols} * static_cast<int64_t>(sizeof(T)), p.out.data, p.inp.data);
  const int threads = row_threads(vectorised ? cols / kVec : cols, kUnroll, kMaxThreads);
  const dim3 grid(static_cast<unsigned>(rows));
  if (vectorised) {
    softmax_kernel<T, kVec><<<grid, threads, 0, current_stream()>>>(a);
  } else {
    softmax_kernel<T, 1><<<grid, threads, 0, current_stream()>>>(a);
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void softmax_forward(const SoftmaxForward& p) {
  if (!p.inp.defined() || !p.out.defined())
    throw std::invalid_argument("cuda::softmax_forward: inp and out are required");
  if (p.inp.dtype != p.out.dtype)
    throw std::invalid_argument("cuda::softmax_forward: out and inp must have one dtype");
  if (p.inp.dtype != DType::F32 && p.inp.dtype != DType::BF16)
    throw std::invalid_argument("cuda::softmax_forward: only F32 and BF16 are supported");
  if (p.inp.ndim < 1) throw std::invalid_argument("cuda::softmax_forward: inp must be [N, cols]");
  const int64_t cols = p.inp.dim(-1);
  if (cols <= 0 || cols >= (int64_t{1} << 30))
    throw std::invalid_argument("cuda::softmax_forward: cols must be in [1, 2^30)");
  const int64_t rows = p.inp.numel() / cols;
  if (p.out.numel() != rows * cols)
    throw std::invalid_argument("cuda::softmax_forward: out and inp differ in size");
  if (p.valid_cols <= 0 || p.valid_cols > cols)
    throw std::invalid_argument("cuda::softmax_forward: valid_cols must be in [1, cols]");
  if (rows > INT32_MAX) throw std::invalid_argument("cuda::softmax_forward: more than 2^31 - 1 rows");
  if (rows == 0) return;
  if (p.inp.dtype == DType::F32) {
    launch<float>(p, rows, static_cast<int>(cols));
  } else {
    launch<__nv_bfloat16>(p, rows, static_cast<int>(cols));
  }
}

}  // namespace inkstone::cuda
