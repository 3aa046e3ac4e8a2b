// AdamW (decoupled weight decay) on one parameter tensor on the device, as torch.optim.AdamW computes it:
//   g = grad * grad_scale;  p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)            (t = step, 1-based)
// Layout: params, grads, m, v (and master) have the same numel; elementwise, grid-stride.
// Dtypes: params and grads F32, or BF16 (mixed precision, then master is required); m, v and master F32.
// OVERWRITES params, m, v (and master). With master defined the update runs on the fp32 master copy
// and params receive it cast (round to nearest even for BF16), so params == cast(master) exactly.
// Precision: the coefficients come from the host in double (kernels/adamw_coefficients.h, as on the CPU), and
// every fp32 operation is written as an explicitly rounded intrinsic in the CPU's order, so nvcc cannot
// contract pairs of them into FMAs: F32 results equal the CPU's up to the CPU compiler's own contractions
// (a few ulps at most).
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/adamw_coefficients.h"
#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace inkstone::cuda {
namespace {

using contract::require;
using contract::require_dtype;
using contract::require_numel;

constexpr int kThreads = 256;

// One element, in the CPU's order of operations; returns the new parameter value.
__device__ __forceinline__ float adamw_element(float param, float grad, float& m, float& v,
                                               const AdamWCoefficients& k) {
  const float g = __fmul_rn(grad, k.grad_scale);
  m = __fadd_rn(__fmul_rn(k.beta1, m), __fmul_rn(k.one_minus_beta1, g));
  v = __fadd_rn(__fmul_rn(k.beta2, v), __fmul_rn(__fmul_rn(k.one_minus_beta2, g), g));
  const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(v), k.inv_sqrt_bc2), k.eps);
  return __fsub_rn(__fmul_rn(param, k.decay), __fdiv_rn(__fmul_rn(k.step_size, m), denom));
}

// kMaster: the update runs on master and params = cast(master); otherwise params (F32) are updated.
template <class T, bool kMaster>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(T* __restrict__ params, const T* __restrict__ grads, float* __restrict__ m,
                 float* __restrict__ v, float* __restrict__ master, int64_t n, AdamWCoefficients k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float mi = m[i], vi = v[i];
    const float g = to_float(grads[i]);
    if constexpr (kMaster) {
      const float updated = adamw_element(master[i], g, mi, vi, k);
      master[i] = updated;
      params[i] = from_float<T>(updated);
    } else {
      params[i] = adamw_element(to_float(params[i]), g, mi, vi, k);
    }
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adamw_update(const AdamW& p) {
  constexpr const char* op = "cuda::adamw_update";
  const DType dtype = contract::require_float_dtype(p.params, op, "params");
  const int64_t n = p.params.numel();
  require_dtype(p.grads, dtype, op, "grads (the dtype of params)");
  require_numel(p.grads, n, op, "grads");
  require_dtype(p.m, DType::F32, op, "m");
  require_numel(p.m, n, op, "m");
  require_dtype(p.v, DType::F32, op, "v");
  require_numel(p.v, n, op, "v");
  require(p.step >= 1, op, "step is 1-based");
  if (p.master.defined()) {
    require_dtype(p.master, DType::F32, op, "master");
    require_numel(p.master, n, op, "master");
  } else {
    require(dtype == DType::F32, op, "BF16 params need an F32 master copy");
  }
  if (n == 0) return;
  const AdamWCoefficients k = adamw_coefficients(p);
  const int blocks = grid_for(n, kThreads);
  float* m = p.m.as<float>();
  float* v = p.v.as<float>();
  float* master = p.master.defined() ? p.master.as<float>() : nullptr;
  cudaStream_t stream = current_stream();
  if (dtype == DType::BF16) {
    adamw_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, stream>>>(
        p.params.as<__nv_bfloat16>(), p.grads.as<__nv_bfloat16>(), m, v, master, n, k);
  } else if (master != nullptr) {
    adamw_kernel<float, true>
        <<<blocks, kThreads, 0, stream>>>(p.params.as<float>(), p.grads.as<float>(), m, v, master, n, k);
  } else {
    adamw_kernel<float, false>
        <<<blocks, kThreads, 0, stream>>>(p.params.as<float>(), p.grads.as<float>(), m, v, nullptr, n, k);
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace inkstone::cuda
