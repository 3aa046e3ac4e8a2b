// Causal multi-head self-attention on CUDA cores, flash-style: no T x T matrix ever reaches memory.
// Layout: qkv [B,T,3C] = q | k | v, head h in columns h*hd .. (h+1)*hd of each part; out, dout [B,T,C];
// lse [B,NH,T] F32 = natural-log log-sum-exp of the SCALED scores s_ij = q_i . k_j / sqrt(hd), j <= i
// (cpu::attention_forward's convention, so either backend's lse feeds either backward pass).
// Forward OVERWRITES out and lse. Backward ACCUMULATES (+=) into dqkv, which must not alias qkv, out or
// dout: every element of dqkv is read, added to and written by exactly one thread, so gradient
// accumulation over micro-batches costs nothing and needs no atomics.
// Precision: F32 or BF16 tensors (lse always F32); tiles are widened to fp32 in shared memory and every
// product, exponential and sum is fp32, so BF16 results round only once, on the final store.
// Determinism: every sum has one fixed order (no atomics, no split reductions), so runs are bit-identical.
//
// Every kernel runs 256 threads as a 16 x 16 grid (ty, tx) over a tile: the block OWNS kRows rows
// (queries, or keys for dK/dV) of one (batch, head), kept in shared memory for its whole life, and
// walks tiles of kCols rows of the other operand. Thread (ty, tx) owns rows ty*R .. ty*R+R-1 of the
// block (R = kRows/16): for a score tile it computes columns tx + 16j (j < kCols/16), for an output
// accumulator [rows][D] the columns g*16V + tx*V + e (V = 4, or 2 for D = 32), so output stores and the
// shared-memory reads of the micro-GEMMs are vectors. Row statistics (max, sum) are reduced over the
// 16 lanes of a half-warp by xor shuffles. Tiles are fp32 [rows][D+4]: rows stay 16-byte aligned and
// 8 consecutive rows hit 8 different bank quads, so the float4 reads of the micro-GEMMs are conflict-free.
//
// D is the head-dim bucket (32, 64, 128, 256) the kernels are compiled for; the real hd is masked: tile
// columns >= hd are zero and the score dot products stop at hd rounded up to 4.
//
// Forward (one block per (b, h, query tile)): online softmax over key tiles 0 .. the query tile's last
// query (later key tiles are fully masked and skipped): S = Q K^T, running max m and sum l per row,
// O = O * exp(m_old - m_new) + P V; out = O / l, lse = m + log l.
// Backward: D_i = dout_i . out_i (= sum_j p_ij dp_ij) is computed once into scratch by a warp per row;
// then one kernel per key tile walks the query tiles at or after it (dV += P^T dO, dK += dS^T Q) and one
// kernel per query tile walks the key tiles up to it (dQ += dS K), each rebuilding p_ij = exp(s_ij - lse_i)
// and dS_ij = p_ij (dp_ij - D_i). Splitting dK/dV from dQ is what makes the pass atomic-free.
//
// Dispatch: cuda::attention_forward / attention_backward hand BF16 with head dim 64 or 128 to the
// tensor-core kernels (attention_mma.h) when attention_tensor_core_supports says so, unless
// INKSTONE_ATTENTION=cuda_core (attention_select.h) forces these kernels for every case.
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/contract_checks.h"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_select.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace inkstone::cuda {
namespace {

constexpr int kThreads = 256;  // a 16 x 16 grid of threads
constexpr int kSide = 16;
constexpr int kMaxHeadDim = 256;

// Tile shapes per head-dim bucket, sized so that shared memory stays under sm_80's 163 KiB.
template <int D>
struct Tiles {
  static_assert(D == 32 || D == 64 || D == 128 || D == 256, "head-dim buckets are 32, 64, 128, 256");
  static constexpr int kRows = D <= 64 ? 64 : 32;         // rows a block owns
  static constexpr int kForwardCols = D <= 64 ? 64 : 32;  // keys per forward step
  static constexpr int kBackwardCols = 32;                // rows per backward step
  static constexpr int kLd = D + 4;                       // tile row stride (floats)
  static constexpr int kVec = D >= 64 ? 4 : 2;            // output columns per vector
  static constexpr int kGroups = D / (kSide * kVec);      // vectors per thread and row
  static constexpr int kOutCols = D / kSide;              // accumulator columns per thread
  static constexpr int R = kRows / kSide;                 // rows per thread
};

struct Params {
  const void* qkv;
  void* out;  // written by the forward pass, read by the backward pass
  float* lse;
  const void* dout;
  void* dqkv;
  float* delta;  // [B,NH,T] scratch: D_i = dout_i . out_i
  int B, T, C, NH, hd;
  float scale;  // 1 / sqrt(hd)
  bool vec;     // hd % 4 == 0 and every pointer aligned to 4 elements: vector loads and stores
};

// One (batch b, head h)'s rows inside the packed tensors: q, k, v of qkv (row stride ld = 3C), dout
// (row stride C), and its lse and delta rows [T].
template <class Elem>
struct HeadView {
  const Elem *q, *k, *v, *dout;
  const float *lse, *delta;
  int64_t ld;
  int64_t offset;  // of q in qkv, and of dq in dqkv (same layout)
};

template <class Elem>
__device__ __forceinline__ HeadView<Elem> head_view(const Params& p, int b, int h) {
  HeadView<Elem> view;
  view.ld = 3 * int64_t{p.C};
  view.offset = int64_t{b} * p.T * view.ld + int64_t{h} * p.hd;
  view.q = static_cast<const Elem*>(p.qkv) + view.offset;
  view.k = view.q + p.C;
  view.v = view.q + 2 * int64_t{p.C};
  const int64_t row = (int64_t{b} * p.NH + h) * p.T;
  view.lse = p.lse + row;
  // The forward pass has no dout and no delta.
  view.dout =
      p.dout ? static_cast<const Elem*>(p.dout) + int64_t{b} * p.T * p.C + int64_t{h} * p.hd : nullptr;
  view.delta = p.delta ? p.delta + row : nullptr;
  return view;
}

// ---- Loads and stores of N (4 or 2) consecutive elements, widened to / rounded from fp32 -----------

struct alignas(8) Bf16x4 {
  __nv_bfloat162 lo, hi;
};

// v[e] = p[e] for e < valid, else 0. One vector access when `vec` and the whole vector is valid.
template <int N>
__device__ __forceinline__ void load_vec(const float* p, float* v, int valid, bool vec) {
  if (vec && valid >= N) {
    if constexpr (N == 4) {
      const float4 x = *reinterpret_cast<const float4*>(p);
      v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
    } else {
      const float2 x = *reinterpret_cast<const float2*>(p);
      v[0] = x.x, v[1] = x.y;
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < N; ++e) v[e] = e < valid ? p[e] : 0.0f;
}
template <int N>
__device__ __forceinline__ void load_vec(const __nv_bfloat16* p, float* v, int valid, bool vec) {
  if (vec && valid >= N) {
    if constexpr (N == 4) {
      const Bf16x4 x = *reinterpret_cast<const Bf16x4*>(p);
      const float2 lo = __bfloat1622float2(x.lo), hi = __bfloat1622float2(x.hi);
      v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
    } else {
      const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
      v[0] = x.x, v[1] = x.y;
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < N; ++e) v[e] = e < valid ? __bfloat162float(p[e]) : 0.0f;
}

// p[e] = v[e] for e < valid.
template <int N>
__device__ __forceinline__ void store_vec(float* p, const float* v, int valid, bool vec) {
  if (vec && valid >= N) {
    if constexpr (N == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < N; ++e)
    if (e < valid) p[e] = v[e];
}
template <int N>
__device__ __forceinline__ void store_vec(__nv_bfloat16* p, const float* v, int valid, bool vec) {
  if (vec && valid >= N) {
    if constexpr (N == 4) {
      Bf16x4 x;
      x.lo = __floats2bfloat162_rn(v[0], v[1]);
      x.hi = __floats2bfloat162_rn(v[2], v[3]);
      *reinterpret_cast<Bf16x4*>(p) = x;
    } else {
      *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < N; ++e)
    if (e < valid) p[e] = __float2bfloat16_rn(v[e]);
}

// ---- Tiles in shared memory and the two micro-GEMMs on them -------------------------------------------

// tile[r][d] (row stride D+4) = src[r * ld + d] for r < valid_rows and d < hd, else 0. Consecutive
// threads take consecutive 4-column chunks of a row: coalesced global reads, conflict-free stores.
template <int D, int ROWS, class T>
__device__ __forceinline__ void load_tile(float* tile, const T* src, int64_t ld, int valid_rows, int hd,
                                          bool vec) {
  constexpr int kChunks = D / 4;
  for (int idx = threadIdx.x; idx < ROWS * kChunks; idx += kThreads) {
    const int r = idx / kChunks, d = (idx % kChunks) * 4;
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (r < valid_rows) load_vec<4>(src + r * ld + d, v, hd - d, vec);
    *reinterpret_cast<float4*>(tile + r * Tiles<D>::kLd + d) = make_float4(v[0], v[1], v[2], v[3]);
  }
}

// acc[i][j] = sum_{d < hd4} a[ty*R + i][d] * b[tx + 16j][d]: one tile of scores (or of dP). The a reads
// are broadcasts within a quarter-warp, the b reads 8 distinct rows per quarter-warp. The order of the
// sum is fixed (d ascending), and a.b and b.a give the same bits, so the backward pass rebuilds exactly
// the forward pass's scores.
template <int D, int R, int CN>
__device__ __forceinline__ void tile_dot(float (&acc)[R][CN], const float* a, const float* b, int hd4, int ty,
                                         int tx) {
  constexpr int kLd = Tiles<D>::kLd;
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < CN; ++j) acc[i][j] = 0.0f;
  const float* a_row = a + ty * R * kLd;
  const float* b_row = b + tx * kLd;
#pragma unroll 2
  for (int d = 0; d < hd4; d += 4) {
    float4 av[R], bv[CN];
#pragma unroll
    for (int i = 0; i < R; ++i) av[i] = *reinterpret_cast<const float4*>(a_row + i * kLd + d);
#pragma unroll
    for (int j = 0; j < CN; ++j) bv[j] = *reinterpret_cast<const float4*>(b_row + j * kSide * kLd + d);
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        float s = acc[i][j];
        s = fmaf(av[i].x, bv[j].x, s);
        s = fmaf(av[i].y, bv[j].y, s);
        s = fmaf(av[i].z, bv[j].z, s);
        s = fmaf(av[i].w, bv[j].w, s);
        acc[i][j] = s;
      }
  }
}

__device__ __forceinline__ float component(const float4& f, int k) {
  return k == 0 ? f.x : k == 1 ? f.y : k == 2 ? f.z : f.w;
}

// Column of the head that accumulator column g*V + e of thread tx stands for.
template <int D>
__device__ __forceinline__ int owned_column(int g, int tx) {
  return g * kSide * Tiles<D>::kVec + tx * Tiles<D>::kVec;
}

// acc[i][g*V + e] += sum_{c < W} p[ty*R + i][c] * v[c][owned_column(g) + e]: P V (or P^T dO, dS^T Q,
// dS K). p is [rows][W+4], v is [W][D+4]; p reads are quarter-warp broadcasts, v reads contiguous.
template <int D, int R, int W>
__device__ __forceinline__ void tile_accumulate(float (&acc)[R][D / kSide], const float* p, const float* v,
                                                int ty, int tx) {
  constexpr int kLd = Tiles<D>::kLd, kVec = Tiles<D>::kVec, kGroups = Tiles<D>::kGroups, kPld = W + 4;
  const float* p_row = p + ty * R * kPld;
#pragma unroll 2
  for (int c = 0; c < W; c += 4) {
    float4 pv[R];
#pragma unroll
    for (int i = 0; i < R; ++i) pv[i] = *reinterpret_cast<const float4*>(p_row + i * kPld + c);
#pragma unroll
    for (int cc = 0; cc < 4; ++cc) {
      const float* v_row = v + (c + cc) * kLd;
#pragma unroll
      for (int g = 0; g < kGroups; ++g) {
        float vv[kVec];
        if constexpr (kVec == 4) {
          const float4 x = *reinterpret_cast<const float4*>(v_row + owned_column<D>(g, tx));
          vv[0] = x.x, vv[1] = x.y, vv[2] = x.z, vv[3] = x.w;
        } else {
          const float2 x = *reinterpret_cast<const float2*>(v_row + owned_column<D>(g, tx));
          vv[0] = x.x, vv[1] = x.y;
        }
#pragma unroll
        for (int i = 0; i < R; ++i) {
          const float w = component(pv[i], cc);
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[i][g * kVec + e] = fmaf(w, vv[e], acc[i][g * kVec + e]);
        }
      }
    }
  }
}

// Over the 16 lanes of a half-warp (the threads sharing ty). Xor butterflies leave every lane with the
// same bits, since fp addition is commutative.
__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
  for (int offset = kSide / 2; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int offset = kSide / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// ---- Forward ---------------------------------------------------------------------------------------

template <int D>
constexpr size_t forward_smem_bytes() {
  using Tl = Tiles<D>;
  return sizeof(float) * ((Tl::kRows + 2 * Tl::kForwardCols) * Tl::kLd + Tl::kRows * (Tl::kForwardCols + 4));
}

// Grid (B*NH, query tiles); blockIdx.y = 0 takes the LAST query tile, the one with most key tiles, so
// the longest blocks start first.
template <class Elem, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(const Params p) {
  using Tl = Tiles<D>;
  constexpr int BM = Tl::kRows, BN = Tl::kForwardCols, R = Tl::R, CN = BN / kSide, kLd = Tl::kLd;
  constexpr int kVec = Tl::kVec, kGroups = Tl::kGroups;
  extern __shared__ float4 smem[];
  float* sq = reinterpret_cast<float*>(smem);  // [BM][D+4]
  float* sk = sq + BM * kLd;                   // [BN][D+4]
  float* sv = sk + BN * kLd;                   // [BN][D+4]
  float* sp = sv + BN * kLd;                   // [BM][BN+4] probabilities

  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int b = blockIdx.x / p.NH, h = blockIdx.x % p.NH;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * BM;
  const int T = p.T, hd = p.hd, hd4 = (hd + 3) & ~3;
  const HeadView<Elem> head = head_view<Elem>(p, b, h);
  const int64_t ld = head.ld;
  const Elem *q = head.q, *k = head.k, *v = head.v;

  load_tile<D, BM>(sq, q + q0 * ld, ld, min(BM, T - q0), hd, p.vec);
  float o[R][Tl::kOutCols];
  float m[R], l[R];  // running max (identical in the 16 lanes of a row) and this thread's share of the sum
#pragma unroll
  for (int i = 0; i < R; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < Tl::kOutCols; ++c) o[i][c] = 0.0f;
  }

  const int key_end = min(q0 + BM, T);  // keys past the query tile are masked for all its queries
  for (int k0 = 0; k0 < key_end; k0 += BN) {
    load_tile<D, BN>(sk, k + k0 * ld, ld, min(BN, T - k0), hd, p.vec);
    load_tile<D, BN>(sv, v + k0 * ld, ld, min(BN, T - k0), hd, p.vec);
    __syncthreads();  // (also publishes sq on the first step)

    float s[R][CN];
    tile_dot<D, R, CN>(s, sq, sk, hd4, ty, tx);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      // The last key query q0 + ty*R + i sees (rows past T see up to T-1: finite, and never stored).
      const int last_key = min(q0 + ty * R + i, T - 1);
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        s[i][j] = k0 + tx + kSide * j <= last_key ? s[i][j] * p.scale : -INFINITY;
        tile_max = fmaxf(tile_max, s[i][j]);
      }
      // Key 0 lies in the first tile and every row sees it, so m_new is finite from the first tile on
      // and exp(-inf - m_new) = 0 masks; alpha = exp(-inf) = 0 on the first tile (o and l are 0 then).
      const float m_new = fmaxf(m[i], half_warp_max(tile_max));
      const float alpha = expf(m[i] - m_new);
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const float pr = expf(s[i][j] - m_new);
        sp[(ty * R + i) * (BN + 4) + tx + kSide * j] = pr;
        sum += pr;
      }
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int c = 0; c < Tl::kOutCols; ++c) o[i][c] *= alpha;
    }
    __syncthreads();  // sp complete
    tile_accumulate<D, R, BN>(o, sp, sv, ty, tx);
    __syncthreads();  // sk, sv, sp free for the next step
  }

  Elem* out = static_cast<Elem*>(p.out) + int64_t{b} * T * p.C + int64_t{h} * hd;
  float* lse = p.lse + (int64_t{b} * p.NH + h) * T;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const float total = half_warp_sum(l[i]);  // all lanes, before the row test below
    const int row = q0 + ty * R + i;
    if (row >= T) continue;
    const float inv = 1.0f / total;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      float vals[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) vals[e] = o[i][g * kVec + e] * inv;
      const int d = owned_column<D>(g, tx);
      store_vec<kVec>(out + int64_t{row} * p.C + d, vals, hd - d, p.vec);
    }
    if (tx == 0) lse[row] = m[i] + logf(total);
  }
}

// ---- Backward --------------------------------------------------------------------------------------

// delta[b,h,t] = dout[b,t,h,:] . out[b,t,h,:]; one warp per (b, t, h), h fastest, so neighbouring warps
// read neighbouring columns.
template <class T>
__global__ void __launch_bounds__(kThreads) attention_delta_kernel(const Params p) {
  const int64_t rows = int64_t{p.B} * p.T * p.NH;
  const int64_t row = int64_t{blockIdx.x} * (kThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // uniform across the warp
  const int lane = threadIdx.x % 32;
  const int h = static_cast<int>(row % p.NH);
  const int64_t bt = row / p.NH;  // b * T + t
  const int64_t offset = bt * p.C + int64_t{h} * p.hd;
  const T* o = static_cast<const T*>(p.out) + offset;
  const T* dout = static_cast<const T*>(p.dout) + offset;
  float sum = 0.0f;
  for (int d = lane; d < p.hd; d += 32) sum = fmaf(to_float(dout[d]), to_float(o[d]), sum);
  sum = warp_sum(sum);
  const int64_t b = bt / p.T, t = bt % p.T;
  if (lane == 0) p.delta[(b * p.NH + h) * p.T + t] = sum;
}

// dqkv[row][part*C + h*hd + d] += scale * acc for the rows and columns this thread owns.
template <class T, int D, int R>
__device__ __forceinline__ void accumulate_rows(T* dst /*row 0, column 0 of the head's part*/, int64_t ld,
                                                const float (&acc)[R][D / kSide], float scale, int row0,
                                                int rows_valid, int hd, bool vec, int ty, int tx) {
  constexpr int kVec = Tiles<D>::kVec, kGroups = Tiles<D>::kGroups;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int r = row0 + ty * R + i;
    if (r >= rows_valid) continue;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const int d = owned_column<D>(g, tx);
      T* x = dst + int64_t{r} * ld + d;
      float vals[kVec];
      load_vec<kVec>(x, vals, hd - d, vec);
#pragma unroll
      for (int e = 0; e < kVec; ++e) vals[e] = fmaf(scale, acc[i][g * kVec + e], vals[e]);
      store_vec<kVec>(x, vals, hd - d, vec);
    }
  }
}

template <int D>
constexpr size_t dkdv_smem_bytes() {
  using Tl = Tiles<D>;
  constexpr int BM = Tl::kRows, BN = Tl::kBackwardCols;
  return sizeof(float) * ((2 * BM + 2 * BN) * Tl::kLd + 2 * BM * (BN + 4) + 2 * BN);
}

// dK and dV of one key tile: grid (B*NH, key tiles), blockIdx.y = 0 = the first key tile, which walks
// the most query tiles. Per query tile: P^T = exp(K Q^T * scale - lse), dP^T = V dO^T,
// dS^T = P^T (dP^T - D); dV += P^T dO, dK += dS^T Q (times scale at the end).
// (At most 128 registers: left alone, ptxas picks 64 for D = 32 and spills.)
template <class Elem, int D>
__global__ void __launch_bounds__(kThreads, 2) attention_backward_dkdv_kernel(const Params p) {
  using Tl = Tiles<D>;
  constexpr int BM = Tl::kRows, BN = Tl::kBackwardCols, R = Tl::R, CN = BN / kSide, kLd = Tl::kLd;
  extern __shared__ float4 smem[];
  float* sk = reinterpret_cast<float*>(smem);  // [BM][D+4]
  float* sv = sk + BM * kLd;                   // [BM][D+4]
  float* sq = sv + BM * kLd;                   // [BN][D+4]
  float* sdo = sq + BN * kLd;                  // [BN][D+4]
  float* sp = sdo + BN * kLd;                  // [BM][BN+4] P^T
  float* sds = sp + BM * (BN + 4);             // [BM][BN+4] dS^T
  float* slse = sds + BM * (BN + 4);           // [BN]
  float* sdelta = slse + BN;                   // [BN]

  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int b = blockIdx.x / p.NH, h = blockIdx.x % p.NH;
  const int k0 = blockIdx.y * BM;
  const int T = p.T, hd = p.hd, hd4 = (hd + 3) & ~3;
  const HeadView<Elem> head = head_view<Elem>(p, b, h);
  const int64_t ld = head.ld;
  const Elem *q = head.q, *k = head.k, *v = head.v, *dout = head.dout;
  const float *lse = head.lse, *delta = head.delta;

  load_tile<D, BM>(sk, k + k0 * ld, ld, min(BM, T - k0), hd, p.vec);
  load_tile<D, BM>(sv, v + k0 * ld, ld, min(BM, T - k0), hd, p.vec);
  float dk[R][Tl::kOutCols], dv[R][Tl::kOutCols];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int c = 0; c < Tl::kOutCols; ++c) dk[i][c] = dv[i][c] = 0.0f;

  // Queries before k0 see none of these keys: start at the query tile holding k0.
  for (int q0 = k0 - k0 % BN; q0 < T; q0 += BN) {
    load_tile<D, BN>(sq, q + q0 * ld, ld, min(BN, T - q0), hd, p.vec);
    load_tile<D, BN>(sdo, dout + int64_t{q0} * p.C, p.C, min(BN, T - q0), hd, p.vec);
    if (threadIdx.x < BN) {
      const int qi = q0 + threadIdx.x;
      slse[threadIdx.x] = qi < T ? lse[qi] : 0.0f;
      sdelta[threadIdx.x] = qi < T ? delta[qi] : 0.0f;
    }
    __syncthreads();  // (also publishes sk, sv on the first step)

    float st[R][CN], dpt[R][CN];
    tile_dot<D, R, CN>(st, sk, sq, hd4, ty, tx);
    tile_dot<D, R, CN>(dpt, sv, sdo, hd4, ty, tx);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int key = k0 + ty * R + i;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const int c = tx + kSide * j, qi = q0 + c;
        // Keys past T are zero rows of sk; they fail qi >= key for every qi < T.
        const float pr = qi >= key && qi < T ? expf(st[i][j] * p.scale - slse[c]) : 0.0f;
        sp[(ty * R + i) * (BN + 4) + c] = pr;
        sds[(ty * R + i) * (BN + 4) + c] = pr * (dpt[i][j] - sdelta[c]);
      }
    }
    __syncthreads();  // sp, sds complete
    tile_accumulate<D, R, BN>(dv, sp, sdo, ty, tx);
    tile_accumulate<D, R, BN>(dk, sds, sq, ty, tx);
    __syncthreads();  // sq, sdo, sp, sds, slse, sdelta free for the next step
  }

  Elem* dqkv = static_cast<Elem*>(p.dqkv) + head.offset;
  accumulate_rows<Elem, D, R>(dqkv + p.C, ld, dk, p.scale, k0, T, hd, p.vec, ty, tx);
  accumulate_rows<Elem, D, R>(dqkv + 2 * int64_t{p.C}, ld, dv, 1.0f, k0, T, hd, p.vec, ty, tx);
}

template <int D>
constexpr size_t dq_smem_bytes() {
  using Tl = Tiles<D>;
  constexpr int BM = Tl::kRows, BN = Tl::kBackwardCols;
  return sizeof(float) * ((2 * BM + 2 * BN) * Tl::kLd + BM * (BN + 4));
}

// dQ of one query tile: grid (B*NH, query tiles), blockIdx.y = 0 = the last query tile (most key
// tiles). Per key tile up to the query tile's end: P = exp(Q K^T * scale - lse), dP = dO V^T,
// dS = P (dP - D); dQ += dS K (times scale at the end).
template <class Elem, int D>
__global__ void __launch_bounds__(kThreads) attention_backward_dq_kernel(const Params p) {
  using Tl = Tiles<D>;
  constexpr int BM = Tl::kRows, BN = Tl::kBackwardCols, R = Tl::R, CN = BN / kSide, kLd = Tl::kLd;
  extern __shared__ float4 smem[];
  float* sq = reinterpret_cast<float*>(smem);  // [BM][D+4]
  float* sdo = sq + BM * kLd;                  // [BM][D+4]
  float* sk = sdo + BM * kLd;                  // [BN][D+4]
  float* sv = sk + BN * kLd;                   // [BN][D+4]
  float* sds = sv + BN * kLd;                  // [BM][BN+4]

  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const int b = blockIdx.x / p.NH, h = blockIdx.x % p.NH;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * BM;
  const int T = p.T, hd = p.hd, hd4 = (hd + 3) & ~3;
  const HeadView<Elem> head = head_view<Elem>(p, b, h);
  const int64_t ld = head.ld;
  const Elem *q = head.q, *k = head.k, *v = head.v, *dout = head.dout;
  const float *lse = head.lse, *delta = head.delta;

  load_tile<D, BM>(sq, q + q0 * ld, ld, min(BM, T - q0), hd, p.vec);
  load_tile<D, BM>(sdo, dout + int64_t{q0} * p.C, p.C, min(BM, T - q0), hd, p.vec);
  float row_lse[R], row_delta[R], dq[R][Tl::kOutCols];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int qi = q0 + ty * R + i;
    row_lse[i] = qi < T ? lse[qi] : 0.0f;
    row_delta[i] = qi < T ? delta[qi] : 0.0f;
#pragma unroll
    for (int c = 0; c < Tl::kOutCols; ++c) dq[i][c] = 0.0f;
  }

  const int key_end = min(q0 + BM, T);
  for (int k0 = 0; k0 < key_end; k0 += BN) {
    load_tile<D, BN>(sk, k + k0 * ld, ld, min(BN, T - k0), hd, p.vec);
    load_tile<D, BN>(sv, v + k0 * ld, ld, min(BN, T - k0), hd, p.vec);
    __syncthreads();  // (also publishes sq, sdo on the first step)

    float s[R][CN], dp[R][CN];
    tile_dot<D, R, CN>(s, sq, sk, hd4, ty, tx);
    tile_dot<D, R, CN>(dp, sdo, sv, hd4, ty, tx);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int qi = q0 + ty * R + i;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const int key = k0 + tx + kSide * j;
        const float pr = key <= qi && qi < T ? expf(s[i][j] * p.scale - row_lse[i]) : 0.0f;
        sds[(ty * R + i) * (BN + 4) + tx + kSide * j] = pr * (dp[i][j] - row_delta[i]);
      }
    }
    __syncthreads();  // sds complete
    tile_accumulate<D, R, BN>(dq, sds, sk, ty, tx);
    __syncthreads();  // sk, sv, sds free for the next step
  }

  accumulate_rows<Elem, D, R>(static_cast<Elem*>(p.dqkv) + head.offset, ld, dq, p.scale, q0, T, hd, p.vec, ty,
                              tx);
}

// ---- Launchers -------------------------------------------------------------------------------------

// Allows `kernel` `bytes` of dynamic shared memory (above the default 48 KiB); once per instantiation.
template <class Kernel>
bool allow_shared_memory(Kernel kernel, size_t bytes) {
  INKSTONE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return true;
}

int tiles(int n, int tile) {
  return (n + tile - 1) / tile;
}

template <class T, int D>
void launch_forward(const Params& p) {
  constexpr size_t smem = forward_smem_bytes<D>();
  static const bool allowed = allow_shared_memory(attention_forward_kernel<T, D>, smem);
  (void)allowed;
  const dim3 grid(p.B * p.NH, tiles(p.T, Tiles<D>::kRows));
  attention_forward_kernel<T, D><<<grid, kThreads, smem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

template <class T, int D>
void launch_backward(const Params& p) {
  const int64_t rows = int64_t{p.B} * p.T * p.NH;
  constexpr int kWarps = kThreads / 32;
  attention_delta_kernel<T>
      <<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();

  const dim3 grid(p.B * p.NH, tiles(p.T, Tiles<D>::kRows));
  constexpr size_t dkdv_smem = dkdv_smem_bytes<D>();
  static const bool dkdv_allowed = allow_shared_memory(attention_backward_dkdv_kernel<T, D>, dkdv_smem);
  (void)dkdv_allowed;
  attention_backward_dkdv_kernel<T, D><<<grid, kThreads, dkdv_smem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();

  constexpr size_t dq_smem = dq_smem_bytes<D>();
  static const bool dq_allowed = allow_shared_memory(attention_backward_dq_kernel<T, D>, dq_smem);
  (void)dq_allowed;
  attention_backward_dq_kernel<T, D><<<grid, kThreads, dq_smem, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

// The few compiled variants: dtype x head-dim bucket (FlashAttention's static_switch).
template <class T>
struct TypeTag {
  using type = T;
};
template <class Fn>
void dispatch(DType dtype, int hd, Fn&& fn) {
  auto with_bucket = [&](auto tag) {
    if (hd <= 32) return fn(tag, std::integral_constant<int, 32>{});
    if (hd <= 64) return fn(tag, std::integral_constant<int, 64>{});
    if (hd <= 128) return fn(tag, std::integral_constant<int, 128>{});
    return fn(tag, std::integral_constant<int, 256>{});
  };
  if (dtype == DType::F32) return with_bucket(TypeTag<float>{});
  return with_bucket(TypeTag<__nv_bfloat16>{});
}

// ---- Validation and kernel selection ---------------------------------------------------------------

using contract::contract_violation;

void require_tensor(const Tensor& t, DType dtype, int64_t numel, const char* op, const char* name) {
  contract::require_dtype(t, dtype, op, name);
  contract::require_numel(t, numel, op, name);
}

// Checks qkv, out and lse; returns the parameters shared by both passes (pointers of the rest unset).
Params check_attention(const char* op, const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_head) {
  if (!qkv.defined()) contract_violation(op, "qkv is missing");
  if (qkv.dtype != DType::F32 && qkv.dtype != DType::BF16)
    contract_violation(op, std::string("qkv must be F32 or BF16, got ") + dtype_name(qkv.dtype));
  if (qkv.ndim != 3 || qkv.dim(2) % 3 != 0) contract_violation(op, "qkv must be [B, T, 3C]");
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  if (n_head <= 0 || C <= 0 || C % n_head != 0) contract_violation(op, "n_head must divide C (C > 0)");
  const int64_t hd = C / n_head;
  if (hd > kMaxHeadDim)
    contract_violation(op, "head dim " + std::to_string(hd) + " exceeds " + std::to_string(kMaxHeadDim) +
                               "; use more heads");
  if (B * n_head > INT32_MAX || T > 65535 * 32 || C > INT32_MAX / 3)
    contract_violation(op, "B * n_head, T or C is beyond the launch grid's range");
  require_tensor(out, qkv.dtype, B * T * C, op, "out");
  require_tensor(lse, DType::F32, B * n_head * T, op, "lse");
  Params p{};
  p.qkv = qkv.data;
  p.out = out.data;
  p.lse = lse.as<float>();
  p.B = static_cast<int>(B);
  p.T = static_cast<int>(T);
  p.C = static_cast<int>(C);
  p.NH = n_head;
  p.hd = static_cast<int>(hd);
  p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  return p;
}

bool aligned_to(const void* ptr, size_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

bool vectorizable(const Params& p, DType dtype) {
  const size_t bytes = 4 * dtype_size(dtype);
  return p.hd % 4 == 0 && aligned_to(p.qkv, bytes) && aligned_to(p.out, bytes) && aligned_to(p.dout, bytes) &&
         aligned_to(p.dqkv, bytes);
}

// INKSTONE_ATTENTION, read at the first call (a bad value throws, and is read again on the next call).
bool cuda_core_forced_by_environment() {
  static const bool forced = [] {
    const char* value = std::getenv("INKSTONE_ATTENTION");
    if (value == nullptr || *value == '\0' || std::strcmp(value, "auto") == 0) return false;
    if (std::strcmp(value, "cuda_core") == 0) return true;
    throw std::invalid_argument(std::string("cuda::attention: INKSTONE_ATTENTION=") + value +
                                " is not understood; use auto (the default) or cuda_core");
  }();
  return forced;
}

std::atomic<bool> cuda_core_forced_for_testing{false};

bool use_tensor_cores(DType dtype, int hd) {
  if (cuda_core_forced_for_testing.load(std::memory_order_relaxed) || cuda_core_forced_by_environment())
    return false;
  return attention_tensor_core_supports(dtype, hd);
}

}  // namespace

void set_attention_kernels_for_testing(bool cuda_core_only) {
  cuda_core_forced_for_testing.store(cuda_core_only, std::memory_order_relaxed);
}

void attention_forward(const AttentionForward& p) {
  Params params = check_attention("cuda::attention_forward", p.qkv, p.out, p.lse, p.n_head);
  if (params.B == 0 || params.T == 0) return;
  if (use_tensor_cores(p.qkv.dtype, params.hd)) return attention_forward_tensor_core(p);
  params.vec = vectorizable(params, p.qkv.dtype);
  dispatch(p.qkv.dtype, params.hd, [&](auto type, auto head_dim) {
    launch_forward<typename decltype(type)::type, decltype(head_dim)::value>(params);
  });
}

void attention_backward(const AttentionBackward& p) {
  constexpr const char* op = "cuda::attention_backward";
  Params params = check_attention(op, p.qkv, p.out, p.lse, p.n_head);
  const int64_t B = params.B, T = params.T, C = params.C;
  require_tensor(p.dqkv, p.qkv.dtype, B * T * 3 * C, op, "dqkv");
  require_tensor(p.dout, p.qkv.dtype, B * T * C, op, "dout");
  if (p.dqkv.data == p.qkv.data || p.dqkv.data == p.out.data || p.dqkv.data == p.dout.data)
    contract_violation(op, "dqkv must not alias qkv, out or dout");
  if (B == 0 || T == 0) return;
  if (use_tensor_cores(p.qkv.dtype, params.hd)) return attention_backward_tensor_core(p);
  params.dout = p.dout.data;
  params.dqkv = p.dqkv.data;
  params.delta = static_cast<float*>(scratch(sizeof(float) * B * params.NH * T));
  params.vec = vectorizable(params, p.qkv.dtype);
  dispatch(p.qkv.dtype, params.hd, [&](auto type, auto head_dim) {
    launch_backward<typename decltype(type)::type, decltype(head_dim)::value>(params);
  });
}

}  // namespace inkstone::cuda
