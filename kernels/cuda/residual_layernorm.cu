// Residual add fused with the LayerNorm of its result, on the device (llm.c's fused_residual_forward):
// residual = a + b, then out = (residual - mean) * rstd * weight + bias, row-wise over C.
// Layout: a, b, residual, out [N,C] (any leading dims); weight, bias [C]; mean, rstd [N]. All F32, or all
// BF16 except mean and rstd, which are F32 always (cuda_ops.h).
// Precision: the sum is one fp32 addition, rounded to bf16 when stored in BF16, and the LayerNorm
// normalises the STORED value, in fp32, with layernorm_row.cuh's code and order of sums. So residual,
// out, mean and rstd are bit for bit those of cuda::add followed by cuda::layernorm_forward, in both
// dtypes, and the model may recompute the LayerNorm later from residual alone.
// OVERWRITES residual, out, mean and rstd (mean and rstd may be absent). residual may alias a or b:
// each lane reads its chunk of a and b before it writes that chunk of residual, which no other lane
// touches. out aliases none of a, b, residual (__restrict__).
//
// One warp per row, 8 rows per block, as layernorm_forward. DRAM traffic: a and b read once, residual
// and out written once. The variance and normalisation passes read the row back from residual, which
// the same lane has just written (L1/L2 hits: a block's 8 rows are tens of KB); the unfused pair swept
// the residual stream once more through DRAM (add writes it, layernorm reads it again).
// The chunk size P follows layernorm_forward's rule (C % P == 0 and residual, out, weight and bias
// 16-byte aligned), because the chunks fix the order of the sums; when a or b is misaligned while the
// rest is not, they are read element by element into the same chunks.
#include <cuda_bf16.h>

#include <climits>
#include <utility>

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

// P elements at p widened to fp32: one 16-byte vector when kVector (p aligned), else one load each.
template <int P, bool kVector, class T>
__device__ __forceinline__ void load_elements(const T* p, float (&v)[P]) {
  if constexpr (kVector || P == 1) {
    load_chunk<P>(p, v);
  } else {
#pragma unroll
    for (int k = 0; k < P; ++k) v[k] = to_float(p[k]);
  }
}

// x as stored in T, widened back: what a later kernel reading the stored residual sees.
template <class T>
__device__ __forceinline__ float as_stored(float x) {
  return to_float(from_float<T>(x));
}

// One warp per row; P elements per chunk (a 16-byte vector or 1); kVectorInputs: a and b are read as
// vectors (they are 16-byte aligned).
template <class T, int P, bool kVectorInputs>
__global__ void __launch_bounds__(kThreads)
    residual_layernorm_kernel(T* residual, T* __restrict__ out, float* __restrict__ mean_out,
                              float* __restrict__ rstd_out, const T* a, const T* b,
                              const T* __restrict__ weight, const T* __restrict__ bias, int64_t N, int C,
                              float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t(kWarps) + threadIdx.x / 32;
  if (row >= N) return;  // the whole warp leaves: the shuffles below always see 32 lanes
  T* x = residual + row * C;
  const T* a_row = a + row * C;
  const T* b_row = b + row * C;
  const int chunks = C / P;
  // The first pass of layernorm_forward, on the sums as they are stored (rounded in BF16), in its order.
  float sum = 0.0f;
  for (int i = lane; i < chunks; i += 32) {
    float u[P], v[P];
    load_elements<P, kVectorInputs>(a_row + i * P, u);
    load_elements<P, kVectorInputs>(b_row + i * P, v);
#pragma unroll
    for (int k = 0; k < P; ++k) u[k] = as_stored<T>(u[k] + v[k]);
    store_chunk<P>(x + i * P, u);
    add_to_sum(sum, u);
  }
  const RowStatistics s = layernorm_finish_row<P>(out + row * C, x, weight, bias, sum, C, eps, lane);
  if (lane == 0 && mean_out != nullptr) {
    mean_out[row] = s.mean;
    rstd_out[row] = s.rstd;
  }
}

template <class T>
void launch(const ResidualLayerNormForward& p, int64_t N, int C) {
  constexpr int P = kVectorElements<T>;
  // layernorm_forward's rule with inp = residual: its chunks, hence its order of sums.
  const bool chunked = C % P == 0 && is_aligned16(p.residual.data) && is_aligned16(p.out.data) &&
                       is_aligned16(p.weight.data) && is_aligned16(p.bias.data);
  const bool vector_inputs = is_aligned16(p.a.data) && is_aligned16(p.b.data);
  auto kernel = !chunked        ? residual_layernorm_kernel<T, 1, false>
                : vector_inputs ? residual_layernorm_kernel<T, P, true>
                                : residual_layernorm_kernel<T, P, false>;
  const int64_t blocks = (N + kWarps - 1) / kWarps;
  float* mean = p.mean.defined() ? p.mean.as<float>() : nullptr;
  float* rstd = p.rstd.defined() ? p.rstd.as<float>() : nullptr;
  kernel<<<static_cast<unsigned>(blocks), kThreads, 0, current_stream()>>>(
      p.residual.as<T>(), p.out.as<T>(), mean, rstd, p.a.as<T>(), p.b.as<T>(), p.weight.as<T>(),
      p.bias.as<T>(), N, C, p.eps);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void residual_layernorm_forward(const ResidualLayerNormForward& p) {
  constexpr const char* op = "cuda::residual_layernorm_forward";
  const DType dtype = contract::require_float_dtype(p.residual, op, "residual");
  const int64_t C = p.residual.ndim > 0 ? p.residual.dim(-1) : 0;
  require(C <= INT_MAX, op, "C (the last dimension of residual) is too large");
  const int64_t N = contract::rows(p.residual);
  for (auto [t, name] : {std::pair{&p.out, "out"}, std::pair{&p.a, "a"}, std::pair{&p.b, "b"}}) {
    require_dtype(*t, dtype, op, name);
    require_numel(*t, N * C, op, name);
  }
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
  require(p.out.data != p.a.data && p.out.data != p.b.data && p.out.data != p.residual.data, op,
          "out must alias none of a, b and residual");
  if (N == 0) return;
  if (dtype == DType::F32)
    launch<float>(p, N, static_cast<int>(C));
  else
    launch<__nv_bfloat16>(p, N, static_cast<int>(C));
}

}  // namespace inkstone::cuda
