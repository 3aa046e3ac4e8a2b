// Causal attention backward on tensor cores, BF16 in, fp32 accumulate, head dim 64 or 128, sm_80 and
// up. Contract: AttentionBackward in kernels/ops.h; reference: kernels/cpu/attention.cpp.
// Layout: qkv, dqkv [B,T,3C] (q | k | v, head h at columns h*hd .. h*hd+hd-1 of each third); out, dout
// [B,T,C] BF16; lse [B,NH,T] F32 from the forward pass (natural log, scaled scores).
// ACCUMULATES into dqkv: each element is read, the gradient added in fp32, and the sum rounded to
// bf16 once, so gradient accumulation over micro-batches costs one rounding per call.
// Deterministic without atomics: every element of dqkv is owned by exactly one thread of one block,
// and every sum runs in a fixed order (not FlashAttention-2's atomicAdd into an fp32 dQ).
//
// With P_ij = exp(scale * q_i.k_j - lse_i) (rebuilt from lse; no T x T matrix is stored),
// dP = dO V^T, D_i = dO_i . O_i (= sum_j P_ij dP_ij) and dS = P * (dP - D):
//   dV = P^T dO,   dK = scale * dS^T Q,   dQ = scale * dS K.
// Three kernels on the stream:
//   1. delta: D [B,NH,T] (F32, in cuda::scratch()) = rowsum(dO * O), one warp per (token, head).
//   2. dK/dV: one block per (head, batch, 64-key tile), 4 warps each owning 16 keys, loops over the
//      64-query tiles at and after the key tile (causal), Q/dO/lse/D double-buffered with cp.async.
//      Per query tile: dP^T = V dO^T, S^T = K Q^T, P^T, dS^T, dV += P^T dO, dK += dS^T Q. Keys are
//      the rows (A operand) so a warp owns its dK, dV rows outright: no cross-warp reduction.
//   3. dQ: one block per (head, batch, 64-query tile), 4 warps each owning 16 queries, loops over the
//      key tiles up to the diagonal, K/V double-buffered: dP = dO V^T, S = Q K^T, P, dS, dQ += dS K.
// Both launch the longest blocks first (the causal triangle): key tile 0, and the last query tile.
// Kernels 2 and 3 both recompute S and dP (the price of having no atomics); the mma count is 7 tile
// products per (query tile, key tile) pair against FlashAttention-2's 5.
// Precision: the products run on bf16 operands (P and dS rounded to bf16 to enter their mma) with
// fp32 accumulation; P, dS and D are fp32 in registers.
// Ragged T: rows past T (Q, K, V, dO, lse, D) are zero-filled on load. A query past T then adds
// nothing to dK, dV (its dO row is 0, so P dO = 0 and dS = P (0 - 0) = 0); keys past T lie after every
// valid query and are masked; in the dQ kernel a query past T gets lse = +inf (P = 0). Nothing past T
// is stored.
#include <cuda_bf16.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_mma_common.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/mma.cuh"

namespace inkstone::cuda {
namespace {

using namespace attention_mma;
using namespace mma;

// ---- 1. D = rowsum(dO * O) ----------------------------------------------------------------------------

constexpr int kDeltaWarps = 8;

__global__ void __launch_bounds__(kDeltaWarps * 32) attention_delta_kernel(const Params p, int hd) {
  const int64_t rows = int64_t{p.B} * p.T * p.NH;
  const int64_t r = int64_t{blockIdx.x} * kDeltaWarps + threadIdx.x / 32;  // = (b * T + t) * NH + h
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int64_t bt = r / p.NH;
  const int h = static_cast<int>(r % p.NH);
  const int64_t offset = bt * p.C + int64_t{h} * hd;
  const __nv_bfloat162* o = reinterpret_cast<const __nv_bfloat162*>(p.out + offset);
  const __nv_bfloat162* g = reinterpret_cast<const __nv_bfloat162*>(p.dout + offset);
  float sum = 0.0f;
  for (int i = lane; i < hd / 2; i += 32) {
    const float2 a = __bfloat1622float2(o[i]), c = __bfloat1622float2(g[i]);
    sum += a.x * c.x + a.y * c.y;
  }
  sum = warp_sum(sum);
  const int64_t b = bt / p.T, t = bt % p.T;
  if (lane == 0) p.delta[(b * p.NH + h) * p.T + t] = sum;
}

// ---- 2. dK, dV per key tile ---------------------------------------------------------------------------

template <int kHd>
constexpr int dkdv_smem_bytes() {
  return 6 * kTile * kHd * 2 + 4 * kTile * 4;  // K, V, Q[2], dO[2]; lse[2], D[2]
}

template <int kHd>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(const Params p) {
  // A warp holds dK and dV for its 16 keys (kHd / 2 registers each); with kHd = 128 it takes the query
  // tile in two halves, so that S^T and dP^T of the half fit beside them without spilling.
  constexpr int kCols = kHd == 128 ? kTile / 2 : kTile;
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTileBytes = kTile * kHd * 2;
  const uint32_t sK = smem_address(smem), sV = sK + kTileBytes;
  const auto sQ = [&](int buf) { return sK + kTileBytes * (2 + buf); };
  const auto sdO = [&](int buf) { return sK + kTileBytes * (4 + buf); };
  float(*s_lse)[kTile] = reinterpret_cast<float(*)[kTile]>(smem + 6 * kTileBytes);  // [2][kTile]
  float(*s_delta)[kTile] = s_lse + 2;                                               // [2][kTile]

  const int h = blockIdx.x, b = blockIdx.y;
  const int kt = blockIdx.z;  // key tile kt meets n_tiles - kt query tiles: the first blocks are the longest
  const int k0 = kt * kTile;
  const int n_tiles = gridDim.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ld = 3 * int64_t{p.C}, ld_o = p.C;
  const int64_t qkv_offset = int64_t{b} * p.T * ld + h * kHd;
  const __nv_bfloat16* q = p.qkv + qkv_offset;
  const __nv_bfloat16* dout = p.dout + int64_t{b} * p.T * ld_o + h * kHd;
  const float* lse = p.lse + (int64_t{b} * p.NH + h) * p.T;
  const float* delta = p.delta + (int64_t{b} * p.NH + h) * p.T;

  // Query tile it's Q, dO, lse and D into buffer buf, zero-filled past T. A query row past T then adds
  // nothing: its dO row is 0, so its dV term P dO and its dS = P (dO.V - D) = P (0 - 0) vanish.
  const auto load_q_tile = [&](int it, int buf) {
    const int i0 = it * kTile;
    load_tile_async<kTile, kHd, kThreads>(sQ(buf), q + i0 * ld, ld, p.T - i0);
    load_tile_async<kTile, kHd, kThreads>(sdO(buf), dout + i0 * ld_o, ld_o, p.T - i0);
    const int r = static_cast<int>(threadIdx.x) % kTile;
    const bool valid = i0 + r < p.T;
    if (threadIdx.x < kTile)
      cp_async_4(smem_address(&s_lse[buf][r]), valid ? lse + i0 + r : lse, valid);
    else
      cp_async_4(smem_address(&s_delta[buf][r]), valid ? delta + i0 + r : delta, valid);
  };
  static_assert(kThreads == 2 * kTile, "threads 0 .. kTile - 1 copy lse, the others D");

  load_tile_async<kTile, kHd, kThreads>(sK, q + p.C + k0 * ld, ld, p.T - k0);
  load_tile_async<kTile, kHd, kThreads>(sV, q + 2 * p.C + k0 * ld, ld, p.T - k0);
  load_q_tile(kt, 0);
  cp_async_commit();

  float dk[kHd / 8][4] = {}, dv[kHd / 8][4] = {};
  const int key_base = k0 + warp * 16;  // key index of the warp's row 0

  for (int it = kt; it < n_tiles; ++it) {
    const int buf = (it - kt) & 1;
    const bool has_next = it + 1 < n_tiles;
    if (has_next) {  // buffer buf ^ 1 was last read in the previous iteration, which ended with a barrier
      load_q_tile(it + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    // Rows: the warp's 16 keys; columns: kCols of the tile's 64 queries at a time. dP^T first, then
    // S^T, so that both are fp32 only while P^T and dS^T are formed; dV and dK take them as bf16.
    const bool diagonal = it == kt;  // key j is visible to query i iff j <= i
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += kCols) {
      float dp[kCols / 8][4] = {};
      mma_abt<kHd, kCols>(dp, sV, warp * 16, sdO(buf), c0, lane);  // dP^T = V dO^T
      float s[kCols / 8][4] = {};
      mma_abt<kHd, kCols>(s, sK, warp * 16, sQ(buf), c0, lane);  // S^T = K Q^T
#pragma unroll
      for (int nb = 0; nb < kCols / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = c0 + frag_col(lane, nb, e);
          const bool masked = diagonal && key_base + frag_row(lane, e) > it * kTile + c;
          s[nb][e] = masked ? 0.0f : fast_exp2(fmaf(s[nb][e], p.scale_log2, -s_lse[buf][c] * kLog2e));  // P^T
          dp[nb][e] = s[nb][e] * (dp[nb][e] - s_delta[buf][c]);  // dS^T
        }
      uint32_t pa[kCols / 16][4], dsa[kCols / 16][4];
      to_a_fragments<kCols>(pa, s);
      to_a_fragments<kCols>(dsa, dp);
      mma_ab<kCols, kHd>(dv, pa, sdO(buf), c0, lane);  // dV += P^T dO
      mma_ab<kCols, kHd>(dk, dsa, sQ(buf), c0, lane);  // dK += dS^T Q (scaled on store)
    }

    __syncthreads();  // all warps are done with buffer buf before iteration it + 1 refills it
  }

  __nv_bfloat16* dk_out = p.dqkv + qkv_offset + p.C;
  store_rows<kHd, true>(dk_out, ld, key_base, p.T, dk, p.scale, lane);
  store_rows<kHd, true>(dk_out + p.C, ld, key_base, p.T, dv, 1.0f, lane);
}

// ---- 3. dQ per query tile ---------------------------------------------------------------------------------

template <int kHd>
constexpr int dq_smem_bytes() {
  return 6 * kTile * kHd * 2;  // Q, dO, K[2], V[2]
}

template <int kHd>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTileBytes = kTile * kHd * 2;
  const uint32_t sQ = smem_address(smem), sdO = sQ + kTileBytes;
  const auto sK = [&](int buf) { return sQ + kTileBytes * (2 + buf); };
  const auto sV = [&](int buf) { return sQ + kTileBytes * (4 + buf); };

  const int h = blockIdx.x, b = blockIdx.y;
  const int qt = gridDim.z - 1 - blockIdx.z;  // query tile qt meets qt + 1 key tiles: longest first
  const int q0 = qt * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ld = 3 * int64_t{p.C}, ld_o = p.C;
  const int64_t qkv_offset = int64_t{b} * p.T * ld + h * kHd;
  const __nv_bfloat16* q = p.qkv + qkv_offset;
  const __nv_bfloat16* k = q + p.C;
  const __nv_bfloat16* v = q + 2 * p.C;

  load_tile_async<kTile, kHd, kThreads>(sQ, q + q0 * ld, ld, p.T - q0);
  load_tile_async<kTile, kHd, kThreads>(sdO, p.dout + int64_t{b} * p.T * ld_o + h * kHd + q0 * ld_o, ld_o,
                                        p.T - q0);
  load_tile_async<kTile, kHd, kThreads>(sK(0), k, ld, p.T);
  load_tile_async<kTile, kHd, kThreads>(sV(0), v, ld, p.T);
  cp_async_commit();

  const int row_base = q0 + warp * 16;  // query index of the warp's row 0
  float lse2[2], delta[2];              // of this thread's rows g and g + 8
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = row_base + frag_row(lane, 2 * i);
    const int64_t at = (int64_t{b} * p.NH + h) * p.T + row;
    lse2[i] = row < p.T ? p.lse[at] * kLog2e : INFINITY;  // P = 0 past T
    delta[i] = row < p.T ? p.delta[at] : 0.0f;
  }

  float dq[kHd / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    const int buf = kt & 1;
    if (kt < qt) {  // buffer buf ^ 1 was last read in iteration kt - 1, which ended with a barrier
      load_tile_async<kTile, kHd, kThreads>(sK(buf ^ 1), k + (kt + 1) * kTile * ld, ld,
                                            p.T - (kt + 1) * kTile);
      load_tile_async<kTile, kHd, kThreads>(sV(buf ^ 1), v + (kt + 1) * kTile * ld, ld,
                                            p.T - (kt + 1) * kTile);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    float dp[kTile / 8][4] = {};
    mma_abt<kHd, kTile>(dp, sdO, warp * 16, sV(buf), 0, lane);  // dP = dO V^T
    float s[kTile / 8][4] = {};
    mma_abt<kHd, kTile>(s, sQ, warp * 16, sK(buf), 0, lane);  // S = Q K^T
    const bool diagonal = kt == qt;
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool masked = diagonal && kt * kTile + frag_col(lane, nb, e) > row_base + frag_row(lane, e);
        const float prob = masked ? 0.0f : fast_exp2(fmaf(s[nb][e], p.scale_log2, -lse2[e >> 1]));
        dp[nb][e] = prob * (dp[nb][e] - delta[e >> 1]);  // dS
      }
    uint32_t dsa[kTile / 16][4];
    to_a_fragments<kTile>(dsa, dp);
    mma_ab<kTile, kHd>(dq, dsa, sK(buf), 0, lane);  // dQ += dS K (scaled on store)
    __syncthreads();  // all warps are done with buffer buf before iteration kt + 1 refills it
  }

  store_rows<kHd, true>(p.dqkv + qkv_offset, ld, row_base, p.T, dq, p.scale, lane);
}

template <int kHd>
void launch_backward(const Params& p) {
  const int n_tiles = (p.T + kTile - 1) / kTile;
  const dim3 grid(p.NH, p.B, n_tiles);
  constexpr int kDkdvSmem = dkdv_smem_bytes<kHd>(), kDqSmem = dq_smem_bytes<kHd>();
  INKSTONE_CUDA_CHECK(cudaFuncSetAttribute(attention_dkdv_kernel<kHd>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, kDkdvSmem));
  attention_dkdv_kernel<kHd><<<grid, kThreads, kDkdvSmem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
  INKSTONE_CUDA_CHECK(
      cudaFuncSetAttribute(attention_dq_kernel<kHd>, cudaFuncAttributeMaxDynamicSharedMemorySize, kDqSmem));
  attention_dq_kernel<kHd><<<grid, kThreads, kDqSmem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_backward_tensor_core(const AttentionBackward& bwd) {
  constexpr const char* op = "cuda::attention_backward_tensor_core";
  const Shape s = check_shape(op, bwd.qkv, bwd.out, bwd.lse, bwd.n_head);
  const auto fail = [op](const char* what) { throw std::invalid_argument(std::string(op) + ": " + what); };
  if (bwd.dout.dtype != DType::BF16 || bwd.dout.numel() != s.B * s.T * s.C)
    fail("dout must be BF16 [B, T, C]");
  if (bwd.dqkv.dtype != DType::BF16 || bwd.dqkv.numel() != s.B * s.T * 3 * s.C)
    fail("dqkv must be BF16 [B, T, 3C]");
  if (!aligned(bwd.dout, 16) || !aligned(bwd.dqkv, 16)) fail("dout and dqkv must be 16-byte aligned");
  if (s.B == 0 || s.T == 0) return;

  Params p = make_params(s);
  p.qkv = bwd.qkv.as<const __nv_bfloat16>();
  p.out = bwd.out.as<__nv_bfloat16>();
  p.dout = bwd.dout.as<const __nv_bfloat16>();
  p.dqkv = bwd.dqkv.as<__nv_bfloat16>();
  p.lse = bwd.lse.as<float>();
  p.delta = static_cast<float*>(scratch(static_cast<size_t>(s.B * s.NH * s.T) * sizeof(float)));

  const int64_t rows = s.B * s.T * s.NH;
  attention_delta_kernel<<<static_cast<unsigned>((rows + kDeltaWarps - 1) / kDeltaWarps), kDeltaWarps * 32, 0,
                           current_stream()>>>(p, static_cast<int>(s.hd));
  INKSTONE_CUDA_CHECK_LAUNCH();
  if (s.hd == 64)
    launch_backward<64>(p);
  else
    launch_backward<128>(p);
}

}  // namespace inkstone::cuda
