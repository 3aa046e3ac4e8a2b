// Causal attention forward on tensor cores (FlashAttention-2 style), BF16 in, fp32 accumulate, head
// dim 64 or 128, sm_80 and up. Contract: AttentionForward in kernels/ops.h; reference:
// kernels/cpu/attention.cpp.
// Layout: qkv [B,T,3C] = q | k | v (head h at columns h*hd .. h*hd+hd-1 of each third), out [B,T,C]
// BF16; lse [B,NH,T] F32 = natural-log log-sum-exp of the scaled scores q.k / sqrt(hd), which the
// backward pass uses to rebuild the probabilities without a T x T matrix.
// OVERWRITES out and lse.
// Precision: S = Q K^T and O = P V run on bf16 operands with fp32 accumulation; the softmax (running
// max and sum) is fp32 in registers; P is rounded to bf16 once to enter the P V mma, and out once on store.
//
// One block per (head, batch, 64-query tile), 4 warps each owning 16 query rows. Q is copied into
// registers once; 64-key K and V tiles stream through shared memory, double-buffered with cp.async so
// the next tile's copy overlaps this tile's mma. Causal: key tiles after the query tile are never
// loaded, and only the diagonal tile is masked. T need not be a multiple of 64: rows past T are
// zero-filled on load (every query row past T is discarded, every key past T is masked as lying after
// all queries) and never stored. Blocks are launched largest query tile first so the causal triangle's
// long blocks do not trail at the end of the grid.
#include <cuda_bf16.h>

#include <stdexcept>

#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_mma_common.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/mma.cuh"

namespace inkstone::cuda {
namespace {

using namespace attention_mma;
using namespace mma;

template <int kHd>
constexpr int forward_smem_bytes() {
  return (kTile + 4 * kTile) * kHd * 2;  // Q, K[2], V[2]
}

template <int kHd>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTileBytes = kTile * kHd * 2;
  const uint32_t sQ = smem_address(smem);
  const auto sK = [&](int buf) { return sQ + kTileBytes * (1 + buf); };
  const auto sV = [&](int buf) { return sQ + kTileBytes * (3 + buf); };

  const int h = blockIdx.x, b = blockIdx.y;
  const int qt = gridDim.z - 1 - blockIdx.z;  // the longest rows of the causal triangle first
  const int q0 = qt * kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t ld = 3 * int64_t{p.C};
  const __nv_bfloat16* q = p.qkv + int64_t{b} * p.T * ld + h * kHd;
  const __nv_bfloat16* k = q + p.C;
  const __nv_bfloat16* v = q + 2 * p.C;

  load_tile_async<kTile, kHd, kThreads>(sQ, q + q0 * ld, ld, p.T - q0);
  load_tile_async<kTile, kHd, kThreads>(sK(0), k, ld, p.T);
  load_tile_async<kTile, kHd, kThreads>(sV(0), v, ld, p.T);
  cp_async_commit();

  uint32_t qf[kHd / 16][4];
  float o[kHd / 8][4] = {};
  // Per thread: rows g and g + 8 of the warp's 16. m: running max of the raw scores; l: this thread's
  // part of the running sum of exp(scale * (s - m)) (its 16 columns of each tile; the 4 threads of a
  // row add their parts at the end).
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int row_base = q0 + warp * 16;  // query index of the warp's row 0

  for (int kt = 0; kt <= qt; ++kt) {
    const int buf = kt & 1;
    if (kt < qt) {  // buffer buf ^ 1 was last read in iteration kt - 1, which ended with a barrier
      load_tile_async<kTile, kHd, kThreads>(sK(buf ^ 1), k + (kt + 1) * kTile * ld, ld,
                                            p.T - (kt + 1) * kTile);
      load_tile_async<kTile, kHd, kThreads>(sV(buf ^ 1), v + (kt + 1) * kTile * ld, ld,
                                            p.T - (kt + 1) * kTile);
      cp_async_commit();
      cp_async_wait<1>();  // everything but the tile just requested has landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int ks = 0; ks < kHd / 16; ++ks) load_a<kHd>(qf[ks], sQ, warp * 16, ks * 16, lane);
    }

    float s[kTile / 8][4] = {};
    mma_abt<kHd, kTile>(s, qf, sK(buf), 0, lane);
    if (kt == qt) {  // the diagonal tile: key j is visible to query i iff j <= i
#pragma unroll
      for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (kt * kTile + frag_col(lane, nb, e) > row_base + frag_row(lane, e)) s[nb][e] = -INFINITY;
    }

    // Online softmax. Every row sees at least one unmasked key in every tile it visits (key 0 of the
    // tile is <= the row), so the new max is finite and exp2 of a masked score is exp2(-inf) = 0.
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb) {
      mx[0] = fmaxf(mx[0], fmaxf(s[nb][0], s[nb][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[nb][2], s[nb][3]));
    }
    float corr[2], m_scaled[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // the 4 threads of a quad hold one row
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      corr[i] = fast_exp2((m[i] - mx[i]) * p.scale_log2);  // 0 on the first tile (m = -inf)
      m[i] = mx[i];
      m_scaled[i] = mx[i] * p.scale_log2;
      l[i] *= corr[i];
    }
#pragma unroll
    for (int nd = 0; nd < kHd / 8; ++nd) {
      o[nd][0] *= corr[0];
      o[nd][1] *= corr[0];
      o[nd][2] *= corr[1];
      o[nd][3] *= corr[1];
    }
#pragma unroll
    for (int nb = 0; nb < kTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nb][e] = fast_exp2(fmaf(s[nb][e], p.scale_log2, -m_scaled[e >> 1]));
        l[e >> 1] += s[nb][e];
      }

    uint32_t pa[kTile / 16][4];
    to_a_fragments<kTile>(pa, s);
    mma_ab<kTile, kHd>(o, pa, sV(buf), 0, lane);
    __syncthreads();  // all warps are done with buffer buf before iteration kt + 1 refills it
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  const float inv[2] = {1.0f / l[0], 1.0f / l[1]};  // l >= 1: the row's max contributes exp2(0)
#pragma unroll
  for (int nd = 0; nd < kHd / 8; ++nd) {
    o[nd][0] *= inv[0];
    o[nd][1] *= inv[0];
    o[nd][2] *= inv[1];
    o[nd][3] *= inv[1];
  }
  store_rows<kHd, false>(p.out + int64_t{b} * p.T * p.C + h * kHd, p.C, row_base, p.T, o, 1.0f, lane);
  if ((lane & 3) == 0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = row_base + frag_row(lane, 2 * i);
      if (row < p.T) p.lse[(int64_t{b} * p.NH + h) * p.T + row] = m[i] * p.scale + logf(l[i]);
    }
  }
}

template <int kHd>
void launch_forward(const Params& p) {
  constexpr int kSmem = forward_smem_bytes<kHd>();
  INKSTONE_CUDA_CHECK(cudaFuncSetAttribute(attention_forward_kernel<kHd>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid(p.NH, p.B, (p.T + kTile - 1) / kTile);
  attention_forward_kernel<kHd><<<grid, kThreads, kSmem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_tensor_core_supports(DType dtype, int head_dim) {
  return dtype == DType::BF16 && (head_dim == 64 || head_dim == 128);
}

void attention_forward_tensor_core(const AttentionForward& fwd) {
  const Shape s = check_shape("cuda::attention_forward_tensor_core", fwd.qkv, fwd.out, fwd.lse, fwd.n_head);
  if (s.B == 0 || s.T == 0) return;
  Params p = make_params(s);
  p.qkv = fwd.qkv.as<const __nv_bfloat16>();
  p.out = fwd.out.as<__nv_bfloat16>();
  p.lse = fwd.lse.as<float>();
  if (s.hd == 64)
    launch_forward<64>(p);
  else
    launch_forward<128>(p);
}

}  // namespace inkstone::cuda
