// Token + position embedding on the device.
// Layout: tokens I32 [B,T]; wte [V,C]; wpe [ctx,C]; out and dout [B,T,C]; positions (optional, forward
// only) I32 [B], each sequence's first position, in place of the shared pos_offset. The float tensors
// are all F32 or all BF16. Precision: fp32 sums, rounded once per call to the storage dtype.
// Forward OVERWRITES out: one warp per row bt, 16-byte vector loads when C and the pointers allow.
// Tokens and positions live on the device, so they cannot be checked here without a synchronisation;
// a row whose token is outside [0, V) or whose position is outside [0, ctx) is written as NaN (the loss
// shows it) rather than read out of bounds, and the backward pass skips such tokens.
// Backward ACCUMULATES: dwte[token] += the dout rows of that token, dwpe[pos_offset + t] += sum over b of
// dout[b, t]. Deterministic without atomics: the B*T token ids are sorted with their row indices
// (cub's radix sort, which is stable, so each token's rows stay in row order); the block that finds a
// run of equal tokens starting at its sorted position sums the run's rows in order and is the only one
// to touch that dwte row. dwpe: each (t, column) sums over b in order.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cub/device/device_radix_sort.cuh>

#include "kernels/contract_checks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/vector_access.cuh"

namespace inkstone::cuda {
namespace {

using contract::require;
using contract::require_dtype;
using contract::require_numel;

constexpr int kWarps = 8;    // forward: rows per block
constexpr int kWindow = 32;  // backward: rows of a run staged in shared memory at a time

// One warp per row bt = b * T + t.
template <class T, int P>
__global__ void __launch_bounds__(kWarps * 32)
    embedding_forward_kernel(T* __restrict__ out, const int32_t* __restrict__ tokens,
                             const T* __restrict__ wte, const T* __restrict__ wpe,
                             const int32_t* __restrict__ positions, int pos_offset, int64_t BT, int T_, int C,
                             int V, int ctx) {
  const int lane = threadIdx.x % 32;
  const int64_t bt = blockIdx.x * int64_t(kWarps) + threadIdx.x / 32;
  if (bt >= BT) return;
  const int token = tokens[bt];
  const int first = positions != nullptr ? positions[bt / T_] : pos_offset;
  const int64_t pos = int64_t{first} + bt % T_;
  const bool valid = token >= 0 && token < V && pos >= 0 && pos < ctx;
  const T* tok_row = wte + int64_t{token} * C;
  const T* pos_row = wpe + pos * C;
  T* o = out + bt * C;
  const int chunks = C / P;
  for (int i = lane; i < chunks; i += 32) {
    float a[P], b[P];
    if (valid) {
      load_chunk<P>(tok_row + i * P, a);
      load_chunk<P>(pos_row + i * P, b);
#pragma unroll
      for (int k = 0; k < P; ++k) a[k] += b[k];
    } else {
#pragma unroll
      for (int k = 0; k < P; ++k) a[k] = __int_as_float(0x7fc00000);  // quiet NaN
    }
    store_chunk<P>(o + i * P, a);
  }
}

// Sort input: key = token (V for an invalid one: sorted last, skipped), value = row index.
__global__ void embedding_sort_input_kernel(uint32_t* __restrict__ keys, int32_t* __restrict__ rows,
                                            const int32_t* __restrict__ tokens, int N, int V) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int token = tokens[i];
    keys[i] = token >= 0 && token < V ? static_cast<uint32_t>(token) : static_cast<uint32_t>(V);
    rows[i] = static_cast<int32_t>(i);
  }
}

// Block (i, y): if sorted position i starts a run of equal tokens, thread x sums chunk y * blockDim.x + x
// of the run's dout rows, in row order, and adds it into dwte[token]. Runs are read kWindow rows at a
// time: warp 0 stages the window's row indices in shared memory and counts how many still belong to
// the run; every thread then issues the window's loads back to back.
template <class T, int P>
__global__ void embedding_backward_wte_kernel(T* __restrict__ dwte, const T* __restrict__ dout,
                                              const uint32_t* __restrict__ keys,
                                              const int32_t* __restrict__ rows, int N, int C,
                                              uint32_t invalid_key) {
  __shared__ int32_t window_rows[kWindow];
  __shared__ int window_count;
  const int i = blockIdx.x;
  const uint32_t key = keys[i];
  if (key == invalid_key || (i > 0 && keys[i - 1] == key)) return;  // block-uniform: not a run start
  const int chunk = blockIdx.y * blockDim.x + threadIdx.x;
  const bool active = chunk < C / P;
  const T* d = dout + int64_t{chunk} * P;
  float acc[P];
#pragma unroll
  for (int k = 0; k < P; ++k) acc[k] = 0.0f;

  for (int base = i;; base += kWindow) {
    if (threadIdx.x < 32) {  // warp 0, all lanes (blockDim.x >= 32)
      const int j = base + threadIdx.x;
      const bool same = j < N && keys[j] == key;
      const unsigned differ = __ballot_sync(0xffffffffu, !same);
      if (same) window_rows[threadIdx.x] = rows[j];
      if (threadIdx.x == 0) window_count = differ != 0 ? __ffs(differ) - 1 : kWindow;
    }
    __syncthreads();
    const int count = window_count;  // keys are sorted: lanes [0, count) are the run's
    if (active) {
#pragma unroll 8
      for (int w = 0; w < count; ++w) {
        float v[P];
        load_chunk<P>(d + int64_t{window_rows[w]} * C, v);
#pragma unroll
        for (int k = 0; k < P; ++k) acc[k] += v[k];
      }
    }
    __syncthreads();  // the next window overwrites window_rows and window_count
    if (count < kWindow) break;
  }
  if (active) {
    T* dst = dwte + int64_t{key} * C + int64_t{chunk} * P;
    float cur[P];
    load_chunk<P>(dst, cur);
#pragma unroll
    for (int k = 0; k < P; ++k) cur[k] += acc[k];
    store_chunk<P>(dst, cur);
  }
}

// dwpe[t] += sum_b dout[b, t], b in order; one thread per (t, chunk). dwpe here starts at pos_offset.
template <class T, int P>
__global__ void embedding_backward_wpe_kernel(T* __restrict__ dwpe, const T* __restrict__ dout, int B, int T_,
                                              int C) {
  const int chunks = C / P;
  const int64_t total = int64_t{T_} * chunks;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / chunks;
    const int64_t col = (idx - t * chunks) * P;
    float acc[P];
#pragma unroll
    for (int k = 0; k < P; ++k) acc[k] = 0.0f;
    for (int b = 0; b < B; ++b) {
      float v[P];
      load_chunk<P>(dout + (int64_t{b} * T_ + t) * C + col, v);
#pragma unroll
      for (int k = 0; k < P; ++k) acc[k] += v[k];
    }
    T* dst = dwpe + t * C + col;
    float cur[P];
    load_chunk<P>(dst, cur);
#pragma unroll
    for (int k = 0; k < P; ++k) cur[k] += acc[k];
    store_chunk<P>(dst, cur);
  }
}

struct Shape {
  int64_t B, T, C, V, ctx;
};

Shape check_shapes(const char* op, const Tensor& x, const Tensor& tokens, const Tensor& wte,
                   const Tensor& wpe, const char* x_name, const char* wte_name, const char* wpe_name) {
  require_dtype(tokens, DType::I32, op, "tokens");
  require(tokens.ndim == 2, op, "tokens must be [B, T]");
  const DType dtype = contract::require_float_dtype(wte, op, wte_name);
  require_dtype(wpe, dtype, op, wpe_name);
  require_dtype(x, dtype, op, x_name);
  require(wte.ndim == 2 && wpe.ndim == 2 && wpe.dim(1) == wte.dim(1), op,
          "wte and wpe must be [V, C] and [ctx, C]");
  const Shape s{tokens.dim(0), tokens.dim(1), wte.dim(1), wte.dim(0), wpe.dim(0)};
  require_numel(x, s.B * s.T * s.C, op, x_name);
  // 32-bit indices in the kernels, with headroom for a window read past the last sorted position.
  require(s.B * s.T <= INT_MAX - kWindow && s.C <= INT_MAX && s.V < INT_MAX && s.ctx <= INT_MAX, op,
          "B*T, C, V and ctx must fit in 32 bits");
  return s;
}

template <class T>
void launch_forward(const EmbeddingForward& p, const Shape& s) {
  constexpr int P = kVectorElements<T>;
  const bool vector =
      s.C % P == 0 && is_aligned16(p.out.data) && is_aligned16(p.wte.data) && is_aligned16(p.wpe.data);
  auto kernel = vector ? embedding_forward_kernel<T, P> : embedding_forward_kernel<T, 1>;
  const int64_t BT = s.B * s.T;
  const int32_t* positions = p.positions.defined() ? p.positions.as<int32_t>() : nullptr;
  kernel<<<static_cast<unsigned>((BT + kWarps - 1) / kWarps), kWarps * 32, 0, current_stream()>>>(
      p.out.as<T>(), p.tokens.as<int32_t>(), p.wte.as<T>(), p.wpe.as<T>(), positions, p.pos_offset, BT,
      static_cast<int>(s.T), static_cast<int>(s.C), static_cast<int>(s.V), static_cast<int>(s.ctx));
  INKSTONE_CUDA_CHECK_LAUNCH();
}

size_t align256(size_t bytes) {
  return (bytes + 255) & ~size_t{255};
}

template <class T>
void launch_backward(const EmbeddingBackward& p, const Shape& s) {
  constexpr int P = kVectorElements<T>;
  const int N = static_cast<int>(s.B * s.T), C = static_cast<int>(s.C), V = static_cast<int>(s.V);
  const bool vector =
      C % P == 0 && is_aligned16(p.dout.data) && is_aligned16(p.dwte.data) && is_aligned16(p.dwpe.data);
  cudaStream_t stream = current_stream();

  // Keys take values in [0, V] (V marks an invalid token): sort only the bits that can differ.
  int end_bit = 1;
  while (end_bit < 32 && (uint64_t{1} << end_bit) <= static_cast<uint64_t>(V)) ++end_bit;

  // One scratch allocation: keys and rows before and after the sort, then cub's temporary storage.
  size_t sort_bytes = 0;
  INKSTONE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), N, 0, end_bit, stream));
  const size_t array_bytes = align256(size_t{4} * N);
  char* base = static_cast<char*>(scratch(4 * array_bytes + sort_bytes));
  uint32_t* keys_in = reinterpret_cast<uint32_t*>(base);
  int32_t* rows_in = reinterpret_cast<int32_t*>(base + array_bytes);
  uint32_t* keys = reinterpret_cast<uint32_t*>(base + 2 * array_bytes);
  int32_t* rows = reinterpret_cast<int32_t*>(base + 3 * array_bytes);
  void* sort_storage = base + 4 * array_bytes;

  embedding_sort_input_kernel<<<grid_for(N, 256), 256, 0, stream>>>(keys_in, rows_in, p.tokens.as<int32_t>(),
                                                                    N, V);
  INKSTONE_CUDA_CHECK_LAUNCH();
  INKSTONE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_storage, sort_bytes, keys_in, keys, rows_in, rows,
                                                      N, 0, end_bit, stream));

  const int chunks = vector ? C / P : C;
  const int threads = std::min(256, (chunks + 31) / 32 * 32);
  const dim3 wte_grid(static_cast<unsigned>(N), static_cast<unsigned>((chunks + threads - 1) / threads));
  auto wte_kernel = vector ? embedding_backward_wte_kernel<T, P> : embedding_backward_wte_kernel<T, 1>;
  wte_kernel<<<wte_grid, threads, 0, stream>>>(p.dwte.as<T>(), p.dout.as<T>(), keys, rows, N, C,
                                               static_cast<uint32_t>(V));
  INKSTONE_CUDA_CHECK_LAUNCH();

  auto wpe_kernel = vector ? embedding_backward_wpe_kernel<T, P> : embedding_backward_wpe_kernel<T, 1>;
  wpe_kernel<<<grid_for(s.T * chunks, 256), 256, 0, stream>>>(p.dwpe.as<T>() + int64_t{p.pos_offset} * C,
                                                              p.dout.as<T>(), static_cast<int>(s.B),
                                                              static_cast<int>(s.T), C);
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void embedding_forward(const EmbeddingForward& p) {
  constexpr const char* op = "cuda::embedding_forward";
  const Shape s = check_shapes(op, p.out, p.tokens, p.wte, p.wpe, "out", "wte", "wpe");
  if (p.positions.defined()) {
    require_dtype(p.positions, DType::I32, op, "positions");
    require_numel(p.positions, s.B, op, "positions");
  } else {
    require(p.pos_offset >= 0 && p.pos_offset + s.T <= s.ctx, op,
            "positions pos_offset + [0, T) run past wpe");
  }
  if (s.B * s.T == 0 || s.C == 0) return;
  if (p.wte.dtype == DType::F32)
    launch_forward<float>(p, s);
  else
    launch_forward<__nv_bfloat16>(p, s);
}

void embedding_backward(const EmbeddingBackward& p) {
  constexpr const char* op = "cuda::embedding_backward";
  const Shape s = check_shapes(op, p.dout, p.tokens, p.dwte, p.dwpe, "dout", "dwte", "dwpe");
  require(p.pos_offset >= 0 && p.pos_offset + s.T <= s.ctx, op,
          "positions pos_offset + [0, T) run past dwpe");
  if (s.B * s.T == 0 || s.C == 0) return;
  if (p.dwte.dtype == DType::F32)
    launch_backward<float>(p, s);
  else
    launch_backward<__nv_bfloat16>(p, s);
}

}  // namespace inkstone::cuda
