// The per-step scalars of AdamW (kernels/ops.h), computed once on the host in double and rounded to
// fp32, shared by the CPU and CUDA kernels so both start every element's update from the same bits.
#pragma once

#include <cmath>

#include "kernels/ops.h"

namespace inkstone {

struct AdamWCoefficients {
  float decay, beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, inv_sqrt_bc2, eps, grad_scale;
};

inline AdamWCoefficients adamw_coefficients(const AdamW& p) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), p.step);
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), p.step);
  return {1.0f - p.lr * p.weight_decay,
          p.beta1,
          p.beta2,
          1.0f - p.beta1,
          1.0f - p.beta2,
          static_cast<float>(p.lr / bc1),
          static_cast<float>(1.0 / std::sqrt(bc2)),
          p.eps,
          p.grad_scale};
}

}  // namespace inkstone
