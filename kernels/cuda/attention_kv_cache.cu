// Causal multi-head self-attention of T new tokens per sequence over a KV cache (inference only).
// Layout: qkv [B,T,3C] = q | k | v, head h in columns h*hd .. (h+1)*hd of each; out [B,T,C];
// k_cache, v_cache [B,NH,capacity,hd], each (sequence, head) one dense [capacity, hd] block; start I32
// [B] on the device: the position of sequence b's first new token. qkv, out and the caches share one
// dtype (F32 or BF16: the cache stores exactly what qkv holds). Scores are q . k / sqrt(hd).
// OVERWRITES out and the cache at positions start[b] + [0, T); the cache is read only below
// start[b] + T, so stale or NaN rows past a sequence's end never reach out. A start outside
// [0, capacity - T] cannot be reported without synchronising the host: that sequence's cache is left
// untouched and its outputs are NaN.
// Head dims up to 256. Precision: fp32 accumulation; scores in base 2 (q pre-scaled by log2(e) / sqrt(hd),
// exp2f), one rounding of each output to the dtype.
//
// Three kernels on the stream, in order:
// 1. write_cache: the new keys and values into the cache (a plain copy, bit-exact).
// 2a. Decoding (T == 1), flash-decoding: grid (splits, NH, B). Each block takes one chunk of a
//     sequence's cache positions; inside it "groups" of G lanes (G a power of two <= 32, each lane
//     holding 16-byte vectors of the row, or single elements when hd or alignment forbid vectors) each
//     own one key at a time, kUnroll keys in flight, with an online softmax per group. The block merges its
//     groups through shared memory in a fixed order and writes a partial (max, sum, acc[hd]) to
//     cuda::scratch() — or, with one chunk, the output itself.
// 2b. combine (splits > 1): one block per (sequence, head) merges the partials in chunk order.
// 3. Prefill (T > 1): grid (query tiles of 16, NH, B), 4 warps of 4 query rows. Key/value tiles of 32
//     rows are staged in shared memory as fp32 (keys padded to an odd pitch: conflict-free column
//     reads), lane j scores key j against the warp's 4 rows, online softmax per row, and each lane
//     accumulates P V for dims lane, lane + 32, ... CUDA cores only: the hot path is decoding.
// Determinism: fixed chunking (a function of capacity and B * NH only), fixed reduction orders, no atomics.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/online_softmax.cuh"

namespace inkstone::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kDecodeThreads = 128;
constexpr int kUnroll = 4;            // keys in flight per group (decode)
constexpr int kMinChunk = 128;        // cache positions per decode block, at least
constexpr int kTargetBlocks = 1024;   // decode blocks to aim for at full length (fills an H200)
constexpr int kPrefillThreads = 128;  // 4 warps
constexpr int kRowsPerWarp = 4;
constexpr int kQueryTile = kRowsPerWarp * kPrefillThreads / 32;  // 16 query rows per block
constexpr int kKeyTile = 32;                                     // one key per lane

template <class T>
struct KvParams {
  const T* qkv;
  T* out;
  T* k_cache;
  T* v_cache;
  const int32_t* start;
  float* partial;                     // decode with splits > 1: [B*NH][splits][2 + hd] = (max, sum, acc[hd])
  int B, n_new, C, NH, hd, capacity;  // n_new: T, the new tokens per sequence
  int chunk, splits;                  // decode: cache positions per block, blocks per (sequence, head)
  int lanes_per_key;                  // decode: G
  float q_scale;                      // log2(e) / sqrt(hd)
};

template <class T>
__device__ __forceinline__ bool start_ok(const KvParams<T>& p, int start) {
  return start >= 0 && start <= p.capacity - p.n_new;
}

// ---- 1. New keys and values into the cache --------------------------------------------------------

template <class T>
__global__ void write_cache_kernel(KvParams<T> p) {
  const int64_t n = int64_t{p.B} * p.n_new * p.C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t bt = i / p.C;
    const int c = static_cast<int>(i - bt * p.C);
    const int b = static_cast<int>(bt / p.n_new), t = static_cast<int>(bt - int64_t{b} * p.n_new);
    const int start = p.start[b];
    if (!start_ok(p, start)) continue;
    const int h = c / p.hd, d = c - h * p.hd;
    const T* k = p.qkv + bt * 3 * p.C + p.C + c;
    const int64_t dst = ((int64_t{b} * p.NH + h) * p.capacity + start + t) * p.hd + d;
    p.k_cache[dst] = k[0];
    p.v_cache[dst] = k[p.C];
  }
}

// ---- 2a. Decoding: one chunk of the cache per block -----------------------------------------------

// VEC elements per access (kVec16<T> or 1); NPL: most vectors of a row one lane holds (hd / VEC / G).
template <class T, int VEC, int NPL>
__global__ void __launch_bounds__(kDecodeThreads) decode_kernel(KvParams<T> p) {
  // n_groups * hd <= (128 / G) * (G * NPL * VEC): 8 floats per thread hold every group's acc.
  static_assert(NPL * VEC <= 8, "group_acc holds 8 floats per thread");
  __shared__ float group_max[kDecodeThreads], group_sum[kDecodeThreads];
  __shared__ float group_acc[8 * kDecodeThreads];  // [n_groups][hd]

  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t bh = int64_t{b} * p.NH + h;
  const int hd = p.hd;
  T* out = p.out + int64_t{b} * p.C + h * hd;
  const int pos = p.start[b];
  if (!start_ok(p, pos)) {
    if (p.splits == 1)
      for (int d = threadIdx.x; d < hd; d += blockDim.x) out[d] = from_float<T>(NAN);
    return;  // with splits > 1 the combine kernel writes the NaNs
  }
  const int n_keys = pos + 1, k_begin = split * p.chunk;
  if (k_begin >= n_keys) return;  // a chunk past this sequence's end: uniform over the block
  const int k_end = min(n_keys, k_begin + p.chunk);

  const int G = p.lanes_per_key, slot = threadIdx.x & (G - 1), group = threadIdx.x / G;
  const int n_groups = kDecodeThreads / G, nvr = hd / VEC;  // groups never straddle a warp: G | 32
  const T* kc = p.k_cache + bh * p.capacity * hd;
  const T* vc = p.v_cache + bh * p.capacity * hd;
  const T* q = p.qkv + int64_t{b} * 3 * p.C + h * hd;  // T == 1

  float qf[NPL][VEC], acc[NPL][VEC];
#pragma unroll
  for (int n = 0; n < NPL; ++n) {
    const int j = slot + n * G;
    if (j < nvr) {
      load_floats<VEC>(q + j * VEC, qf[n]);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) qf[n][k] = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      qf[n][k] *= p.q_scale;
      acc[n][k] = 0.0f;
    }
  }
  float m = -INFINITY, l = 0.0f;

  // Uniform trip count over the block: every lane reaches every shuffle. Key of (group, u):
  // kb + u * n_groups + group, so neighbouring groups read neighbouring rows.
  for (int kb = k_begin; kb < k_end; kb += kUnroll * n_groups) {
    float kf[kUnroll][NPL][VEC], vf[kUnroll][NPL][VEC];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = kb + u * n_groups + group;
#pragma unroll
      for (int n = 0; n < NPL; ++n) {
        const int j = slot + n * G;
        if (key < k_end && j < nvr) {
          load_floats<VEC>(kc + int64_t{key} * hd + j * VEC, kf[u][n]);
          load_floats<VEC>(vc + int64_t{key} * hd + j * VEC, vf[u][n]);
        } else {
#pragma unroll
          for (int k = 0; k < VEC; ++k) {
            kf[u][n][k] = 0.0f;
            vf[u][n][k] = 0.0f;
          }
        }
      }
    }
    float s[kUnroll];
    float block_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float dot = 0.0f;
#pragma unroll
      for (int n = 0; n < NPL; ++n)
#pragma unroll
        for (int k = 0; k < VEC; ++k) dot = fmaf(qf[n][k], kf[u][n][k], dot);
      for (int offset = G / 2; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      s[u] = kb + u * n_groups + group < k_end ? dot : -INFINITY;
      block_max = fmaxf(block_max, s[u]);
    }
    const float m_new = fmaxf(m, block_max), shift = exp_shift(m_new);
    const float alpha = exp2f(m - shift);
    l *= alpha;
#pragma unroll
    for (int n = 0; n < NPL; ++n)
#pragma unroll
      for (int k = 0; k < VEC; ++k) acc[n][k] *= alpha;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const float pu = exp2f(s[u] - shift);  // 0 for keys past k_end (their v rows are 0, not loaded)
      l += pu;
#pragma unroll
      for (int n = 0; n < NPL; ++n)
#pragma unroll
        for (int k = 0; k < VEC; ++k) acc[n][k] = fmaf(pu, vf[u][n][k], acc[n][k]);
    }
    m = m_new;
  }

  // Merge the groups: rescale each to the block's max, then sum over groups in order.
  if (slot == 0) {
    group_max[group] = m;
    group_sum[group] = l;
  }
  __syncthreads();
  float block_m = -INFINITY;
  for (int g = 0; g < n_groups; ++g) block_m = fmaxf(block_m, group_max[g]);
  const float shift = exp_shift(block_m);
  const float f = exp2f(m - shift);
#pragma unroll
  for (int n = 0; n < NPL; ++n) {
    const int j = slot + n * G;
    if (j < nvr)
#pragma unroll
      for (int k = 0; k < VEC; ++k) group_acc[group * hd + j * VEC + k] = acc[n][k] * f;
  }
  __syncthreads();
  float block_l = 0.0f;
  for (int g = 0; g < n_groups; ++g) block_l += group_sum[g] * exp2f(group_max[g] - shift);
  float* partial = p.splits > 1 ? p.partial + (bh * p.splits + split) * (2 + hd) : nullptr;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int g = 0; g < n_groups; ++g) o += group_acc[g * hd + d];
    if (partial) {
      partial[2 + d] = o;
    } else {
      out[d] = from_float<T>(o / block_l);
    }
  }
  if (partial && threadIdx.x == 0) {
    partial[0] = block_m;
    partial[1] = block_l;
  }
}

// ---- 2b. Decoding: merge of the chunks' partials --------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kDecodeThreads) combine_kernel(KvParams<T> p) {
  const int h = blockIdx.x, b = blockIdx.y;
  const int64_t bh = int64_t{b} * p.NH + h;
  T* out = p.out + int64_t{b} * p.C + h * p.hd;
  const int pos = p.start[b];
  if (!start_ok(p, pos)) {
    for (int d = threadIdx.x; d < p.hd; d += blockDim.x) out[d] = from_float<T>(NAN);
    return;
  }
  const int n_chunks = pos / p.chunk + 1;  // chunks holding positions [0, pos]
  const float* partial = p.partial + bh * p.splits * (2 + p.hd);
  const int pitch = 2 + p.hd;
  float m = -INFINITY;
  for (int c = 0; c < n_chunks; ++c) m = fmaxf(m, partial[c * pitch]);
  const float shift = exp_shift(m);
  float l = 0.0f;
  for (int c = 0; c < n_chunks; ++c) l += partial[c * pitch + 1] * exp2f(partial[c * pitch] - shift);
  for (int d = threadIdx.x; d < p.hd; d += blockDim.x) {
    float o = 0.0f;
    for (int c = 0; c < n_chunks; ++c) o += partial[c * pitch + 2 + d] * exp2f(partial[c * pitch] - shift);
    out[d] = from_float<T>(o / l);
  }
}

// ---- 3. Prefill: tiles of query rows --------------------------------------------------------------

// DPL: most output dims per lane (hd <= 32 * DPL).
template <class T, int DPL>
__global__ void __launch_bounds__(kPrefillThreads) prefill_kernel(KvParams<T> p) {
  extern __shared__ float smem[];
  const int hd = p.hd, ldk = hd | 1;   // odd key pitch: lane j reading k[j][d] hits bank (j * ldk + d) % 32
  float* q_s = smem;                   // [kQueryTile][hd], pre-scaled
  float* k_s = q_s + kQueryTile * hd;  // [kKeyTile][ldk]
  float* v_s = k_s + kKeyTile * ldk;   // [kKeyTile][hd]

  // Later query tiles see more keys: hand them out first.
  const int t0 = (gridDim.x - 1 - blockIdx.x) * kQueryTile, h = blockIdx.y, b = blockIdx.z;
  const int rows = min(kQueryTile, p.n_new - t0);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * kRowsPerWarp;
  T* out = p.out + (int64_t{b} * p.n_new + t0) * p.C + h * hd;
  const int start = p.start[b];
  if (!start_ok(p, start)) {
    for (int e = threadIdx.x; e < rows * hd; e += blockDim.x)
      out[int64_t{e / hd} * p.C + e % hd] = from_float<T>(NAN);
    return;
  }
  const int64_t bh = int64_t{b} * p.NH + h;
  const T* kc = p.k_cache + bh * p.capacity * hd;
  const T* vc = p.v_cache + bh * p.capacity * hd;
  const T* q = p.qkv + (int64_t{b} * p.n_new + t0) * 3 * p.C + h * hd;
  for (int e = threadIdx.x; e < kQueryTile * hd; e += blockDim.x) {
    const int r = e / hd, d = e - r * hd;
    q_s[e] = r < rows ? to_float(q[int64_t{r} * 3 * p.C + d]) * p.q_scale : 0.0f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DPL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[r][i] = 0.0f;
  }
  const int n_keys = start + t0 + rows;  // the tile's last query sees keys [0, n_keys)
  for (int j0 = 0; j0 < n_keys; j0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and q_s is written, on the first pass)
    const int tile_keys = min(kKeyTile, n_keys - j0);
    for (int e = threadIdx.x; e < kKeyTile * hd; e += blockDim.x) {
      const int j = e / hd, d = e - j * hd;
      const bool in = j < tile_keys;  // rows past n_keys may hold anything: never loaded
      k_s[j * ldk + d] = in ? to_float(kc[int64_t{j0} * hd + e]) : 0.0f;
      v_s[e] = in ? to_float(vc[int64_t{j0} * hd + e]) : 0.0f;
    }
    __syncthreads();

    float s[kRowsPerWarp] = {};
    for (int d = 0; d < hd; ++d) {
      const float kv = k_s[lane * ldk + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] = fmaf(q_s[(r0 + r) * hd + d], kv, s[r]);  // broadcast
    }
    float pr[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int query_pos = start + t0 + r0 + r;  // sees keys [0, query_pos]
      const bool visible = r0 + r < rows && j0 + lane <= query_pos;
      const float sr = visible ? s[r] : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(sr)), shift = exp_shift(m_new);
      const float alpha = exp2f(m[r] - shift);
      pr[r] = exp2f(sr - shift);
      l[r] = l[r] * alpha + warp_sum(pr[r]);
#pragma unroll
      for (int i = 0; i < DPL; ++i) acc[r][i] *= alpha;
      m[r] = m_new;
    }
    for (int j = 0; j < tile_keys; ++j) {
      float pj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pj[r] = __shfl_sync(0xffffffffu, pr[r], j);
#pragma unroll
      for (int i = 0; i < DPL; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) {
          const float vv = v_s[j * hd + d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] = fmaf(pj[r], vv, acc[r][i]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    if (r0 + r >= rows) continue;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) out[int64_t{r0 + r} * p.C + d] = from_float<T>(acc[r][i] / l[r]);
    }
  }
}

// ---- Launchers ------------------------------------------------------------------------------------

int next_pow2(int x) {
  int p = 1;
  while (p < x) p *= 2;
  return p;
}

template <class T, int VEC, int NPL>
void launch_decode(KvParams<T> p) {
  const int nvr = p.hd / VEC;
  p.lanes_per_key = std::min(32, next_pow2(nvr));
  const dim3 grid(p.splits, p.NH, p.B);
  decode_kernel<T, VEC, NPL><<<grid, kDecodeThreads, 0, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
  if (p.splits > 1) {
    combine_kernel<T><<<dim3(p.NH, p.B), kDecodeThreads, 0, current_stream()>>>(p);
    INKSTONE_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void decode(KvParams<T> p) {
  const int64_t pairs = int64_t{p.B} * p.NH;
  const int64_t most_splits = (p.capacity + kMinChunk - 1) / kMinChunk;
  const int64_t wanted = (kTargetBlocks + pairs - 1) / pairs;
  const int64_t splits = std::clamp<int64_t>(wanted, 1, most_splits);
  p.chunk = static_cast<int>((p.capacity + splits - 1) / splits);
  p.splits = (p.capacity + p.chunk - 1) / p.chunk;
  if (p.splits > 1) {
    const size_t bytes = static_cast<size_t>(pairs) * p.splits * (2 + p.hd) * sizeof(float);
    p.partial = static_cast<float*>(scratch(bytes));
  }
  constexpr int kVec = kVec16<T>;
  const bool vectorised = p.hd % kVec == 0 && reinterpret_cast<uintptr_t>(p.qkv) % 16 == 0 &&
                          reinterpret_cast<uintptr_t>(p.k_cache) % 16 == 0 &&
                          reinterpret_cast<uintptr_t>(p.v_cache) % 16 == 0;
  // A row is hd / VEC vectors over G <= 32 lanes: at most 256 / 4 / 32 = 2 per lane for F32 vectors,
  // 256 / 8 / 32 = 1 for BF16, 256 / 32 = 8 element by element.
  if (vectorised) {
    launch_decode<T, kVec, kMaxHeadDim / kVec / 32>(p);
  } else {
    launch_decode<T, 1, kMaxHeadDim / 32>(p);
  }
}

template <class T, int DPL>
void launch_prefill(const KvParams<T>& p) {
  const size_t floats = size_t{kQueryTile} * p.hd + size_t{kKeyTile} * (p.hd | 1) + size_t{kKeyTile} * p.hd;
  const size_t bytes = floats * sizeof(float);  // at most 82 KB (hd = 256)
  if (bytes > 48 * 1024)
    INKSTONE_CUDA_CHECK(cudaFuncSetAttribute(
        prefill_kernel<T, DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  const dim3 grid((p.n_new + kQueryTile - 1) / kQueryTile, p.NH, p.B);
  prefill_kernel<T, DPL><<<grid, kPrefillThreads, bytes, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

template <class T>
void run(const AttentionKvCache& a, int B, int n_new, int C, int NH, int capacity) {
  KvParams<T> p{};
  p.qkv = a.qkv.as<T>();
  p.out = a.out.as<T>();
  p.k_cache = a.k_cache.as<T>();
  p.v_cache = a.v_cache.as<T>();
  p.start = a.start.as<int32_t>();
  p.B = B, p.n_new = n_new, p.C = C, p.NH = NH, p.hd = C / NH, p.capacity = capacity;
  p.q_scale = kLog2e / std::sqrt(static_cast<float>(p.hd));

  constexpr int kThreads = 256;
  write_cache_kernel<T><<<grid_for(int64_t{B} * n_new * C, kThreads), kThreads, 0, current_stream()>>>(p);
  INKSTONE_CUDA_CHECK_LAUNCH();
  if (n_new == 1) {
    decode(p);
  } else if (p.hd <= 64) {
    launch_prefill<T, 2>(p);
  } else {
    launch_prefill<T, kMaxHeadDim / 32>(p);
  }
}

[[noreturn]] void reject(const char* what) {
  throw std::invalid_argument(std::string("cuda::attention_kv_cache: ") + what);
}

}  // namespace

void attention_kv_cache(const AttentionKvCache& a) {
  for (const Tensor* t : {&a.out, &a.qkv, &a.k_cache, &a.v_cache, &a.start})
    if (!t->defined()) reject("out, qkv, k_cache, v_cache and start are required");
  const DType dt = a.qkv.dtype;
  if (dt != DType::F32 && dt != DType::BF16) reject("qkv must be F32 or BF16");
  if (a.out.dtype != dt || a.k_cache.dtype != dt || a.v_cache.dtype != dt)
    reject("out, k_cache and v_cache must have qkv's dtype");
  if (a.start.dtype != DType::I32) reject("start must be I32");
  if (a.qkv.ndim != 3 || a.qkv.dim(2) % 3 != 0) reject("qkv must be [B, T, 3C]");
  const int64_t B = a.qkv.dim(0), T = a.qkv.dim(1), C = a.qkv.dim(2) / 3;
  if (C == 0) reject("qkv must be [B, T, 3C] with C > 0");
  if (a.n_head <= 0 || C % a.n_head != 0) reject("n_head must divide C");
  const int64_t NH = a.n_head, hd = C / NH;
  if (hd > kMaxHeadDim) reject("head dim (C / n_head) must be at most 256");
  if (a.out.numel() != B * T * C) reject("out must be [B, T, C]");
  if (a.start.numel() != B) reject("start must be [B]");
  const Tensor& k = a.k_cache;
  if (k.ndim != 4 || k.dim(0) != B || k.dim(1) != NH || k.dim(3) != hd)
    reject("k_cache must be [B, n_head, capacity, C / n_head]");
  if (a.v_cache.ndim != 4 || a.v_cache.shape != k.shape) reject("v_cache must have k_cache's shape");
  const int64_t capacity = k.dim(2);
  if (T > capacity) reject("T new tokens do not fit in the cache's capacity");
  if (B > 65535 || NH > 65535 || capacity > INT32_MAX || B * T > INT32_MAX || 3 * C > INT32_MAX)
    reject("B and n_head must be at most 65535; capacity, B * T and 3C must fit in 31 bits");
  if (B == 0 || T == 0) return;
  if (dt == DType::F32) {
    run<float>(a, static_cast<int>(B), static_cast<int>(T), static_cast<int>(C), static_cast<int>(NH),
               static_cast<int>(capacity));
  } else {
    run<__nv_bfloat16>(a, static_cast<int>(B), static_cast<int>(T), static_cast<int>(C), static_cast<int>(NH),
                       static_cast<int>(capacity));
  }
}

}  // namespace inkstone::cuda
