// Scalar math written so that `#pragma omp simd` loops vectorise it: no libm calls, no branches.
// glibc's expf/tanhf are scalar calls that would dominate GELU, softmax and cross-entropy over a
// 50k vocabulary; this exp is within 2 ulp of expf over the float range.
#pragma once

#include <bit>
#include <cstdint>

namespace inkstone::cpu::detail {

inline float exp_approx(float x) {
  // Cephes expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, 2^n in the exponent bits.
  constexpr float kMax = 88.3f;          // e^88.3 < FLT_MAX and n <= 127 below it
  constexpr float kMin = -87.3f;         // n >= -126: 2^n stays a normal float; smaller inputs return 0
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  // NaN fails both comparisons and is clamped too, so the int conversion below stays defined.
  const float xc = x > kMax ? kMax : (x >= kMin ? x : kMin);
  const float n = (xc * 1.44269504088896341f + kRound) - kRound;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>(static_cast<int32_t>(n + 127.0f) << 23);
  // Out-of-range inputs scale the clamped result to 0 or infinity. A select between constants,
  // rather than between constants and the result, keeps the loop free of branches under the default
  // -ftrapping-math (which forbids speculating the arithmetic into both arms).
  // NaN in gives NaN out (x != x), so a NaN logit still reaches the loss and the bad-step check.
  const float saturate = x < kMin ? 0.0f
                                  : (x > kMax ? std::bit_cast<float>(0x7f800000)
                                              : (x == x ? 1.0f : std::bit_cast<float>(0x7fc00000)));
  return er * two_n * saturate;
}

// GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// Uses 0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e^{-2u}), which saturates cleanly to 0 and 1.
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

inline float gelu(float x) {
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  return x / (1.0f + exp_approx(-2.0f * u));
}

// d gelu / dx = s + x s (1 - s) 2 u', with s = sigmoid(2u) and u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
// Beyond |x| = 20 the derivative is exactly 0 or 1 in fp32; clamping there keeps x^2 (in u') finite,
// so saturated inputs give 0 * finite rather than 0 * inf = NaN.
inline float gelu_grad(float x_in) {
  constexpr float kSaturated = 20.0f;
  const float x = x_in > kSaturated ? kSaturated : (x_in < -kSaturated ? -kSaturated : x_in);
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  const float s = 1.0f / (1.0f + exp_approx(-2.0f * u));
  const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
  return s + 2.0f * x * s * (1.0f - s) * du;
}

// max(init, x[0..n)). Written as a select on `x[j] > m`: GCC vectorises that reduction, but not the
// same loop written with std::max.
inline float row_max(const float* x, int64_t n, float init) {
  float m = init;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

}  // namespace inkstone::cpu::detail
