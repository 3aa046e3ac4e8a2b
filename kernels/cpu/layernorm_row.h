// One row of the LayerNorm forward pass, shared by layernorm_forward and residual_layernorm_forward so
// that both run the same float operations in the same order: the fused op's LayerNorm must give the
// bits of the plain one on the sum it stored (the model recomputes LayerNorm outputs with the plain op
// in its backward pass, and its tests compare the two runs bit for bit).
#pragma once

#include <cmath>
#include <cstdint>

namespace inkstone::cpu::detail {

struct RowStatistics {
  float mean = 0, rstd = 0;
};

// o[c] = (x[c] - mean) * rstd * weight[c] + bias[c] over the C columns of one row, mean and rstd by two
// passes over x (the mean first, then the centred variance: no cancellation for rows with a large mean).
// o may alias x (each element is read before it is written, and the sums are done by then).
inline RowStatistics layernorm_row(float* o, const float* x, const float* weight, const float* bias,
                                   int64_t C, float eps) {
  const float inv_c = 1.0f / static_cast<float>(C);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < C; ++c) sum += x[c];
  const float mean = sum * inv_c;
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / std::sqrt(var * inv_c + eps);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - mean) * rstd * weight[c] + bias[c];
  return {mean, rstd};
}

}  // namespace inkstone::cpu::detail
