// What the tensor-core attention forward (attention_forward_mma.cu) and backward
// (attention_backward_mma.cu) share: the tile shape, the kernel parameter struct, the launchers'
// shape and dtype checks, and the causal mask and store helpers on mma accumulator fragments.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/ops.h"

namespace inkstone::cuda::attention_mma {

// Query and key tiles are both 64 rows: 4 warps own 16 rows each, and with equal tiles the causal
// "diagonal" is exactly one tile (key tile == query tile), the only one that needs a mask.
constexpr int kTile = 64;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
static_assert(kTile == kWarps * 16, "each warp owns 16 rows of a tile");

constexpr float kLog2e = 1.4426950408889634f;

// Everything a kernel needs; qkv [B,T,3C], out/dout [B,T,C], lse/delta [B,NH,T], dqkv [B,T,3C].
struct Params {
  const __nv_bfloat16* qkv = nullptr;
  __nv_bfloat16* out = nullptr;  // forward: written; backward: read
  const __nv_bfloat16* dout = nullptr;
  __nv_bfloat16* dqkv = nullptr;
  float* lse = nullptr;  // forward: written; backward: read
  float* delta = nullptr;
  int B = 0, T = 0, C = 0, NH = 0;
  float scale = 0;       // 1 / sqrt(hd)
  float scale_log2 = 0;  // scale * log2(e): exp(scale * s) = exp2(scale_log2 * s)
};

struct Shape {
  int64_t B, T, C, NH, hd;
};

inline bool aligned(const Tensor& t, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(t.data) % bytes == 0;
}

// Checks what both passes read: qkv [B,T,3C] and out [B,T,C] in BF16 (16-byte aligned: tiles are
// copied in 16-byte chunks), lse [B,NH,T] in F32, head dim 64 or 128, and grid limits.
inline Shape check_shape(const char* op, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                         int n_head) {
  const auto fail = [op](const std::string& what) {
    throw std::invalid_argument(std::string(op) + ": " + what);
  };
  if (qkv.dtype != DType::BF16 || out.dtype != DType::BF16)
    fail("qkv and out must be BF16 (the CUDA-core attention handles F32)");
  if (lse.dtype != DType::F32) fail("lse must be F32");
  if (qkv.ndim != 3 || qkv.dim(2) % 3 != 0) fail("qkv must be [B, T, 3C]");
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  if (n_head <= 0 || C % n_head != 0) fail("n_head must divide C");
  const int64_t hd = C / n_head;
  if (hd != 64 && hd != 128)
    fail("head dim " + std::to_string(hd) +
         " is not 64 or 128; check attention_tensor_core_supports() first");
  if (out.numel() != B * T * C) fail("out must be [B, T, C]");
  if (lse.numel() != B * n_head * T) fail("lse must be [B, n_head, T]");
  if (!aligned(qkv, 16) || !aligned(out, 16)) fail("qkv and out must be 16-byte aligned");
  if (B > 65535 || (T + kTile - 1) / kTile > 65535) fail("B or T exceeds the grid limits (65535 blocks)");
  return {B, T, C, n_head, hd};
}

inline Params make_params(const Shape& s) {
  Params p;
  p.B = static_cast<int>(s.B);
  p.T = static_cast<int>(s.T);
  p.C = static_cast<int>(s.C);
  p.NH = static_cast<int>(s.NH);
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.hd));  // as cpu::attention_* computes it
  p.scale_log2 = p.scale * kLog2e;
  return p;
}

// ---- Fragment helpers (a warp's 16 rows x kN columns of mma accumulators) ----------------------------

// Element e (0..3) of an accumulator fragment sits at row g + 8 * (e / 2), column 8 * nb + 2t + e % 2.
__device__ __forceinline__ int frag_row(int lane, int e) {
  return (lane >> 2) + ((e >> 1) << 3);
}
__device__ __forceinline__ int frag_col(int lane, int nb, int e) {
  return nb * 8 + ((lane & 3) << 1) + (e & 1);
}

// dst[row0 + r][c] = bf16(scale * acc[r][c] + (kAccumulate ? dst[row0 + r][c] : 0)) for the warp's 16
// rows r, those with row0 + r < T; ld is the row stride of dst in elements. Each element is read, added
// in fp32 and rounded once.
template <int kN, bool kAccumulate>
__device__ __forceinline__ void store_rows(__nv_bfloat16* dst, int64_t ld, int row0, int T,
                                           const float (&acc)[kN / 8][4], float scale, int lane) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + frag_row(lane, 2 * half);
    if (row >= T) continue;
    __nv_bfloat16* d = dst + row * ld;
#pragma unroll
    for (int nb = 0; nb < kN / 8; ++nb) {
      __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(d + frag_col(lane, nb, 0));
      float x = acc[nb][2 * half] * scale, y = acc[nb][2 * half + 1] * scale;
      if (kAccumulate) {
        const float2 old = __bfloat1622float2(*p);
        x += old.x;
        y += old.y;
      }
      *p = __floats2bfloat162_rn(x, y);
    }
  }
}

}  // namespace inkstone::cuda::attention_mma
