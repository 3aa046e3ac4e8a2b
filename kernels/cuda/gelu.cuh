// GELU, tanh form (GPT-2's "gelu_new"), as kernels/cpu/gelu.cpp writes it: 0.5 x (1 + tanh(u)) =
// x / (1 + e^{-2u}), u = sqrt(2/pi) (x + 0.044715 x^3). One definition for the GELU kernel and the
// matmul's GELU epilogue, so that recomputing the activation in the backward pass
// (Recompute::Gelu) gives the very bits the forward pass kept. expf is the accurate one (no
// fast-math in this build), so F32 results are within a few ulps of the CPU's; saturates to x and
// -0 without NaN.
#pragma once

namespace inkstone::cuda {

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}

// s + 2 x s (1 - s) u' with s = sigmoid(2u); beyond |x| = 20 the derivative is exactly 0 or 1 in fp32.
__device__ __forceinline__ float gelu_tanh_grad(float x_in) {
  constexpr float kSaturated = 20.0f;
  const float x = fminf(fmaxf(x_in, -kSaturated), kSaturated);
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  const float s = 1.0f / (1.0f + expf(-2.0f * u));
  const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
  return s + 2.0f * x * s * (1.0f - s) * du;
}

}  // namespace inkstone::cuda
