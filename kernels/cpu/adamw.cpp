// AdamW (decoupled weight decay) on one parameter tensor, as torch.optim.AdamW computes it:
//   g = grad * grad_scale;  p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)            (t = step, 1-based)
// Layout: params, grads, m, v (and master) have the same numel; elementwise. Precision: fp32 state and
// arithmetic; bias corrections computed in double. OVERWRITES params, m, v (and master).
// With master defined (mixed precision) the update runs on the fp32 master copy and params receive it
// cast (round to nearest even when params are BF16); without it params must be F32 and are updated.
#include <cmath>

#include "kernels/adamw_coefficients.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

namespace inkstone::cpu {
namespace {

using namespace detail;

// One element; returns the new parameter value.
inline float adamw_element(float param, float grad, float& m, float& v, const AdamWCoefficients& k) {
  const float g = grad * k.grad_scale;
  m = k.beta1 * m + k.one_minus_beta1 * g;
  v = k.beta2 * v + k.one_minus_beta2 * g * g;
  return param * k.decay - k.step_size * m / (std::sqrt(v) * k.inv_sqrt_bc2 + k.eps);
}

}  // namespace

void adamw_update(const AdamW& p) {
  constexpr const char* op = "cpu::adamw_update";
  const int64_t n = p.params.numel();
  require_f32(p.grads, op, "grads");
  require_f32(p.m, op, "m");
  require_f32(p.v, op, "v");
  require_numel(p.grads, n, op, "grads");
  require_numel(p.m, n, op, "m");
  require_numel(p.v, n, op, "v");
  require(p.step >= 1, op, "step is 1-based");
  const AdamWCoefficients k = adamw_coefficients(p);
  const float* grads = p.grads.as<float>();
  float* m = p.m.as<float>();
  float* v = p.v.as<float>();
  const bool parallel = n >= kParallelElementwise;

  if (!p.master.defined()) {
    require_f32(p.params, op, "params (BF16 params need an F32 master copy)");
    float* params = p.params.as<float>();
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) params[i] = adamw_element(params[i], grads[i], m[i], v[i], k);
    return;
  }
  require_f32(p.master, op, "master");
  require_numel(p.master, n, op, "master");
  float* master = p.master.as<float>();
  if (p.params.dtype == DType::BF16) {
    uint16_t* params = p.params.as<uint16_t>();
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) {
      master[i] = adamw_element(master[i], grads[i], m[i], v[i], k);
      params[i] = float_to_bf16(master[i]);
    }
  } else {
    require_f32(p.params, op, "params");
    float* params = p.params.as<float>();
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) {
      master[i] = adamw_element(master[i], grads[i], m[i], v[i], k);
      params[i] = master[i];
    }
  }
}

}  // namespace inkstone::cpu
