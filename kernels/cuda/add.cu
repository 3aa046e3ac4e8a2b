// Residual add on the device: out = a + b, elementwise over tensors of one size and one dtype (F32 or
// BF16). OVERWRITES out, which may alias a or b: every element is read before it is written, by the
// same thread, so no pointer is __restrict__.
// Access: 16-byte vectors (4 floats or 8 bf16s) over the aligned bulk, a scalar grid-stride tail.
// Precision: the sum is one fp32 addition (rounded once more to bf16 for BF16), so F32 results equal
// cpu::add's bit for bit.
#include <cuda_bf16.h>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {
namespace {

constexpr int kThreads = 256;

// Vectors [0, n_vec) of P elements, then the scalar elements [n_vec * P, n); n_vec is 0 when a pointer
// is not 16-byte aligned.
template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n_vec, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = first; i < n_vec; i += stride) {
    float x[P], y[P];
    load_chunk<P>(a + i * P, x);
    load_chunk<P>(b + i * P, y);
#pragma unroll
    for (int k = 0; k < P; ++k) x[k] += y[k];
    store_chunk<P>(out + i * P, x);
  }
  for (int64_t i = n_vec * P + first; i < n; i += stride)
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T>
void launch(const Add& p, int64_t n) {
  constexpr int P = kVectorElements<T>;
  const bool aligned = is_aligned16(p.out.data) && is_aligned16(p.a.data) && is_aligned16(p.b.data);
  const int64_t n_vec = aligned ? n / P : 0;
  // With vectors the tail (under P elements) is covered by the first threads.
  const int blocks = grid_for(n_vec > 0 ? n_vec : n, kThreads);
  add_kernel<T><<<blocks, kThreads, 0, current_stream()>>>(p.out.as<T>(), p.a.as<T>(), p.b.as<T>(), n_vec, n);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void add(const Add& p) {
  constexpr const char* op = "cuda::add";
  const DType dtype = contract::require_float_dtype(p.out, op, "out");
  contract::require_dtype(p.a, dtype, op, "a");
  contract::require_dtype(p.b, dtype, op, "b");
  const int64_t n = p.out.numel();
  contract::require_numel(p.a, n, op, "a");
  contract::require_numel(p.b, n, op, "b");
  if (n == 0) return;
  if (dtype == DType::F32)
    launch<float>(p, n);
  else
    launch<__nv_bfloat16>(p, n);
}

}  // namespace inkstone::cuda
