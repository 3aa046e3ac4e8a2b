// The LayerNorm forward pass of one row by one warp, from the lanes' partial sums of the row on: shared
// by layernorm.cu and residual_layernorm.cu, so that the fused residual add + LayerNorm gives the bits of
// the plain kernel run on the sum it stored (the model recomputes LayerNorm outputs with the plain
// kernel in its backward pass and expects the forward's bits).
//
// A row is C / P chunks of P elements (a 16-byte vector, or 1); lane l owns chunks l, l + 32, ... and
// sums its elements in that order (chunk by chunk, element by element, as add_to_sum does), then the
// warp adds the 32 lane sums in warp_sum's fixed tree. Both kernels follow that order exactly.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {

struct RowStatistics {
  float mean, rstd;
};

// sum += v[0] + ... + v[P-1], left to right.
template <int P>
__device__ __forceinline__ void add_to_sum(float& sum, const float (&v)[P]) {
#pragma unroll
  for (int k = 0; k < P; ++k) sum += v[k];
}

// Given each lane's partial sum of row x (in the order above): the mean, then the centred variance by a
// second pass over x (no cancellation for rows with a large mean), and o = (x - mean) * rstd * weight +
// bias. o may alias x: each lane reads its chunk before it writes it, and both sums are complete by then.
// Every lane of the warp must call it (warp shuffles).
template <int P, class T>
__device__ __forceinline__ RowStatistics layernorm_finish_row(T* o, const T* x, const T* __restrict__ weight,
                                                              const T* __restrict__ bias, float lane_sum,
                                                              int C, float eps, int lane) {
  const int chunks = C / P;
  const float inv_c = 1.0f / static_cast<float>(C);
  const float mean = warp_sum(lane_sum) * inv_c;

  float var = 0.0f;
  for (int i = lane; i < chunks; i += 32) {
    float v[P];
    load_chunk<P>(x + i * P, v);
#pragma unroll
    for (int k = 0; k < P; ++k) var += (v[k] - mean) * (v[k] - mean);
  }
  const float rstd = 1.0f / sqrtf(warp_sum(var) * inv_c + eps);

  for (int i = lane; i < chunks; i += 32) {
    float v[P], w[P], b[P];
    load_chunk<P>(x + i * P, v);
    load_chunk<P>(weight + i * P, w);
    load_chunk<P>(bias + i * P, b);
#pragma unroll
    for (int k = 0; k < P; ++k) v[k] = (v[k] - mean) * rstd * w[k] + b[k];
    store_chunk<P>(o + i * P, v);
  }
  return {mean, rstd};
}

}  // namespace inkstone::cuda
