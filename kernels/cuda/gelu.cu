// GELU, tanh approximation (GPT-2's "gelu_new"), on the device: the formulas of kernels/cpu/gelu.cpp
// (0.5 (1 + tanh(u)) written as the sigmoid 1 / (1 + e^{-2u}), the gradient clamped at |x| = 20), so
// both backends saturate the same way and never form inf * 0.
// Layout: any contiguous tensor, elementwise; every tensor of a call is F32 or every one is BF16.
// Forward OVERWRITES out (which may alias inp). Backward ACCUMULATES, dinp += gelu'(inp) * dout, the
// sum formed in fp32 and rounded once; dinp must not alias dout (it may alias inp: each element is
// read before it is written, by the same thread).
// Access: 16-byte vectors (4 floats or 8 bf16s) over the aligned bulk, a scalar grid-stride tail.
// Precision: fp32 with expf (within 2 ulp) where the CPU uses its vectorised exp: F32 results agree with
// the CPU's to a few ulps of the output's scale (the gradient's error is the formula's own, the same on
// both backends: 1 - s loses digits where s nears 1).
#include <cuda_bf16.h>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gelu.cuh"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {
namespace {

using contract::require;
using contract::require_dtype;
using contract::require_numel;

constexpr int kThreads = 256;

// Vectors [0, n_vec) of P elements, then the scalar elements [n_vec * P, n). n_vec is 0 when a pointer
// is not 16-byte aligned. No __restrict__: out may alias inp.
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n_vec, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = first; i < n_vec; i += stride) {
    float x[P];
    load_chunk<P>(inp + i * P, x);
#pragma unroll
    for (int k = 0; k < P; ++k) x[k] = gelu_tanh(x[k]);
    store_chunk<P>(out + i * P, x);
  }
  for (int64_t i = n_vec * P + first; i < n; i += stride) out[i] = from_float<T>(gelu_tanh(to_float(inp[i])));
}

template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n_vec, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = first; i < n_vec; i += stride) {
    float x[P], d[P], acc[P];
    load_chunk<P>(inp + i * P, x);
    load_chunk<P>(dout + i * P, d);
    load_chunk<P>(dinp + i * P, acc);
#pragma unroll
    for (int k = 0; k < P; ++k) acc[k] += gelu_tanh_grad(x[k]) * d[k];
    store_chunk<P>(dinp + i * P, acc);
  }
  for (int64_t i = n_vec * P + first; i < n; i += stride)
    dinp[i] = from_float<T>(to_float(dinp[i]) + gelu_tanh_grad(to_float(inp[i])) * to_float(dout[i]));
}

// Enough threads for the vectors (the tail, under P elements, is covered by the first threads) or, when
// there are none, for the scalar elements.
int blocks_for(int64_t n_vec, int64_t n) {
  return grid_for(n_vec > 0 ? n_vec : n, kThreads);
}

template <class T>
void launch_forward(const GeluForward& p, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const int64_t n_vec = is_aligned16(p.out.data) && is_aligned16(p.inp.data) ? n / P : 0;
  gelu_forward_kernel<T>
      <<<blocks_for(n_vec, n), kThreads, 0, current_stream()>>>(p.out.as<T>(), p.inp.as<T>(), n_vec, n);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_backward(const GeluBackward& p, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const bool aligned = is_aligned16(p.dinp.data) && is_aligned16(p.inp.data) && is_aligned16(p.dout.data);
  const int64_t n_vec = aligned ? n / P : 0;
  gelu_backward_kernel<T><<<blocks_for(n_vec, n), kThreads, 0, current_stream()>>>(
      p.dinp.as<T>(), p.inp.as<T>(), p.dout.as<T>(), n_vec, n);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gelu_forward(const GeluForward& p) {
  constexpr const char* op = "cuda::gelu_forward";
  const DType dtype = contract::require_float_dtype(p.inp, op, "inp");
  require_dtype(p.out, dtype, op, "out");
  const int64_t n = p.inp.numel();
  require_numel(p.out, n, op, "out");
  if (n == 0) return;
  if (dtype == DType::F32)
    launch_forward<float>(p, n);
  else
    launch_forward<__nv_bfloat16>(p, n);
}

void gelu_backward(const GeluBackward& p) {
  constexpr const char* op = "cuda::gelu_backward";
  const DType dtype = contract::require_float_dtype(p.inp, op, "inp");
  require_dtype(p.dout, dtype, op, "dout");
  require_dtype(p.dinp, dtype, op, "dinp");
  const int64_t n = p.inp.numel();
  require_numel(p.dout, n, op, "dout");
  require_numel(p.dinp, n, op, "dinp");
  require(p.dinp.data != p.dout.data, op, "dinp must not alias dout");
  if (n == 0) return;
  if (dtype == DType::F32)
    launch_backward<float>(p, n);
  else
    launch_backward<__nv_bfloat16>(p, n);
}

}  // namespace inkstone::cuda
