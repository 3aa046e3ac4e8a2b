// 16-byte vector loads and stores of F32 / BF16 data, widened to (and narrowed from) fp32 in registers:
// one LDG.128 / STG.128 moves 4 floats or 8 bf16s, a quarter or an eighth of the instructions of
// scalar access, which is what lets an elementwise or row-wise kernel reach the memory bandwidth.
// A "chunk" of P elements is either one such vector (P = 16 / sizeof(T)) or a single element (P = 1),
// so one kernel body serves the vector path and the scalar path (ragged sizes, unaligned views).
// The caller guarantees alignment: a vector chunk's address is a multiple of 16 bytes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace inkstone::cuda {

// Elements of T in one 16-byte vector.
template <class T>
inline constexpr int kVectorElements = static_cast<int>(16 / sizeof(T));

inline bool is_aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

namespace detail {

// bf16 is the top half of an fp32: widening is a shift, and the element at the lower address sits in
// the low half of a little-endian 32-bit word.
__device__ __forceinline__ float bf16_low(uint32_t w) {
  return __uint_as_float(w << 16);
}
__device__ __forceinline__ float bf16_high(uint32_t w) {
  return __uint_as_float(w & 0xffff0000u);
}
__device__ __forceinline__ uint32_t bf16_pair(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

__device__ __forceinline__ void unpack(const uint4& r, const float*, float (&v)[4]) {
  v[0] = __uint_as_float(r.x);
  v[1] = __uint_as_float(r.y);
  v[2] = __uint_as_float(r.z);
  v[3] = __uint_as_float(r.w);
}
__device__ __forceinline__ void unpack(const uint4& r, const __nv_bfloat16*, float (&v)[8]) {
  v[0] = bf16_low(r.x);
  v[1] = bf16_high(r.x);
  v[2] = bf16_low(r.y);
  v[3] = bf16_high(r.y);
  v[4] = bf16_low(r.z);
  v[5] = bf16_high(r.z);
  v[6] = bf16_low(r.w);
  v[7] = bf16_high(r.w);
}
__device__ __forceinline__ uint4 pack(float*, const float (&v)[4]) {
  return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                    __float_as_uint(v[3]));
}
__device__ __forceinline__ uint4 pack(__nv_bfloat16*, const float (&v)[8]) {
  return make_uint4(bf16_pair(v[0], v[1]), bf16_pair(v[2], v[3]), bf16_pair(v[4], v[5]),
                    bf16_pair(v[6], v[7]));
}

}  // namespace detail

// v[0..P) = p[0..P) widened to fp32. P is 1 or kVectorElements<T> (then p is 16-byte aligned).
template <int P, class T>
__device__ __forceinline__ void load_chunk(const T* p, float (&v)[P]) {
  if constexpr (P == 1) {
    v[0] = to_float(*p);
  } else {
    static_assert(P == kVectorElements<T>, "a chunk is one element or one 16-byte vector");
    detail::unpack(*reinterpret_cast<const uint4*>(p), p, v);
  }
}

// p[0..P) = v[0..P) rounded to T (nearest even for BF16).
template <int P, class T>
__device__ __forceinline__ void store_chunk(T* p, const float (&v)[P]) {
  if constexpr (P == 1) {
    *p = from_float<T>(v[0]);
  } else {
    static_assert(P == kVectorElements<T>, "a chunk is one element or one 16-byte vector");
    *reinterpret_cast<uint4*>(p) = detail::pack(p, v);
  }
}

}  // namespace inkstone::cuda
