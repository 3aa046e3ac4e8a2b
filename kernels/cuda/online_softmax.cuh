// Device helpers for the row-softmax kernels (softmax.cu, cross_entropy.cu, attention_kv_cache.cu):
// 16-byte vector loads and stores widened to fp32, and the online (max, sum) of a softmax with its
// warp and block reductions.
//
// Exponentials are taken in base 2: a value x enters as y = x * log2(e) and exp(x - max) is
// exp2f(fmaf(x, log2(e), -m)) with m = max * log2(e) rounded once per row. One FFMA and one exp2f per
// element; the rounding of m is a common factor of every term, so it cancels in the normalised
// probabilities, and the remaining argument error is below |x - max| * 2^-23 relative.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace inkstone::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Elements of T in one 16-byte vector.
template <class T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

// x[0..N) <- p[0..N) widened to float. N == 1 is a scalar load; otherwise N * sizeof(T) == 16 and p
// must be 16-byte aligned (one 128-bit load). Plain (coherent) loads, never ld.global.nc: callers may
// overwrite what they read (cross_entropy's dlogits aliasing logits).
template <int N, class T>
__device__ __forceinline__ void load_floats(const T* p, float (&x)[N]) {
  if constexpr (N == 1) {
    x[0] = to_float(*p);
  } else {
    static_assert(N * sizeof(T) == 16, "load_floats: N elements must fill 16 bytes");
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (std::is_same_v<T, float>) {
        x[k] = __uint_as_float(w[k]);
      } else {  // two bf16 per word, the lower address in the low half (little-endian)
        x[2 * k] = __uint_as_float(w[k] << 16);
        x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
      }
    }
  }
}

// p[0..N) <- x rounded to T (nearest even for bf16). Same shapes and alignment as load_floats.
template <int N, class T>
__device__ __forceinline__ void store_floats(T* p, const float (&x)[N]) {
  if constexpr (N == 1) {
    *p = from_float<T>(x[0]);
  } else {
    static_assert(N * sizeof(T) == 16, "store_floats: N elements must fill 16 bytes");
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (std::is_same_v<T, float>) {
        w[k] = __float_as_uint(x[k]);
      } else {
        const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(x[2 * k]));
        const uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(x[2 * k + 1]));
        w[k] = lo | (hi << 16);
      }
    }
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// The shift a running maximum m (base-2 units) puts on exponents: m itself, or 0 while nothing finite
// has been seen (m == -inf), so exp2f(-inf - shift) is 0 and never exp2f(-inf + inf) = NaN.
__device__ __forceinline__ float exp_shift(float m) {
  return m == -INFINITY ? 0.0f : m;
}

// A partial softmax denominator: m = max of x * log2(e) so far, s = sum of exp2(x * log2(e) - m).
// NaN inputs never change m (fmaxf drops them) but reach s, so a NaN logit gives a NaN result.
struct MaxSum {
  float m = -INFINITY;
  float s = 0.0f;
};

// Merge of two partials. Not symmetric bit for bit (the compiler may fuse either product into an
// FMA), so reductions below always pass the lower lane's partial first.
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m), shift = exp_shift(m);
  return {m, a.s * exp2f(a.m - shift) + b.s * exp2f(b.m - shift)};
}

// Folds U x N raw values (masked entries -inf) into a running partial: one rescale per call.
// max(x) * log2(e) rounds like every x * log2(e) would (rounding is monotonic), so m is the largest
// rounded y and every argument below is <= 0 up to one rounding.
template <int U, int N>
__device__ __forceinline__ void accumulate(MaxSum& acc, const float (&x)[U][N]) {
  float local = -INFINITY;
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int k = 0; k < N; ++k) local = fmaxf(local, x[u][k]);
  const float m = fmaxf(acc.m, local * kLog2e), shift = exp_shift(m);
  float s = acc.s * exp2f(acc.m - shift);
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int k = 0; k < N; ++k) s += exp2f(fmaf(x[u][k], kLog2e, -shift));
  acc = {m, s};
}

// This thread's share of a row's (max, sum): vectors i = threadIdx.x, + stride, ... of VEC elements,
// U in flight at a time, over the n_vectors that hold the row's first `valid` columns (the rest of the
// last vector counts as -inf). The pass 1 of softmax and of cross-entropy.
template <int U, int VEC, class T>
__device__ __forceinline__ MaxSum thread_max_sum(const T* x, int n_vectors, int valid, int stride) {
  MaxSum part;
  for (int i0 = threadIdx.x; i0 < n_vectors; i0 += U * stride) {
    float v[U][VEC];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = i0 + u * stride;
      if (i < n_vectors) {
        load_floats<VEC>(x + int64_t{i} * VEC, v[u]);
#pragma unroll
        for (int k = 0; k < VEC; ++k)
          if (i * VEC + k >= valid) v[u][k] = -INFINITY;
      } else {
#pragma unroll
        for (int k = 0; k < VEC; ++k) v[u][k] = -INFINITY;
      }
    }
    accumulate(part, v);
  }
  return part;
}

__device__ __forceinline__ MaxSum warp_combine(MaxSum v) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, offset), __shfl_xor_sync(0xffffffffu, v.s, offset)};
    // Both partners evaluate combine(lower, upper): the same expression, so every lane ends equal.
    v = (lane & offset) ? combine(other, v) : combine(v, other);
  }
  return v;
}

// Combines one partial per thread over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the same total, in a fixed order (run-to-run identical). `shared` holds 32 partials
// and is free again when this returns only after a later __syncthreads().
__device__ __forceinline__ MaxSum block_combine(MaxSum v, MaxSum* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_combine(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_combine(lane < warps ? shared[lane] : MaxSum{});
}

// Launch shape shared by the row kernels: 16-byte vectors when every row starts 16-byte aligned in
// each buffer (a null pointer counts as aligned), and enough threads for `unroll` vectors each, a
// whole number of warps, at most max_threads.
inline bool rows_vectorisable(int64_t row_bytes, const void* a, const void* b) {
  return row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
}
inline int row_threads(int vectors, int unroll, int max_threads) {
  return static_cast<int>(std::clamp<int64_t>((vectors / unroll + 31) / 32 * 32, 32, max_threads));
}

}  // namespace inkstone::cuda
