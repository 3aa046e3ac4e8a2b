// Fused softmax + cross-entropy over padded logits; probabilities are never stored.
// Layout: logits, dlogits [N, Vp] row-major, one dtype (F32 or BF16), the first vocab_size columns
// real; targets I32 [N]; losses F32 [N] (a statistic: always fp32).
// OVERWRITES losses and, when defined, dlogits = dloss * (softmax - onehot(target)), 0 in the padding
// columns [vocab_size, Vp), which never enter the softmax. A target < 0 is ignored: loss 0 and an
// all-zero gradient row. A target >= vocab_size cannot be reported without synchronising the host
// (targets live on the device; the data loader rejects such ids): its loss is NaN, which the
// trainer's bad-step check sees, and its gradient row carries no one-hot term.
// dlogits may alias logits (the unembedding backward then reads the gradient where the logits were):
// every thread reads, in the second pass, exactly the elements it then writes, the first pass and the
// target's logit are read before the block barrier that precedes any write, and no load here uses the
// non-coherent (read-only) path.
// Precision: fp32 accumulation; exp(x - max) = exp2f(fmaf(x, log2 e, -max * log2 e)) (online_softmax.cuh);
// loss = ln 2 * (log2(sum) - (x_target * log2 e - max * log2 e)), the same arguments as the sum, so the
// rounding of max * log2 e cancels. The gradient is rounded once to the output dtype.
//
// One block per row (up to 512 threads, two blocks per SM). Pass 1 streams the row's real columns in
// 16-byte vectors, kUnroll in flight per thread, into an online (max, sum) per thread; a fixed-order
// block reduction merges them. Pass 2 (with dlogits) re-reads the row — 100 KB of BF16 at GPT-2's
// vocabulary, still in L2 from pass 1 — and writes the gradient in place, padding included. Rows whose
// pitch is not a multiple of 16 bytes (or unaligned buffers) go element by element.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/online_softmax.cuh"

namespace inkstone::cuda {
namespace {

constexpr int kMaxThreads = 512;
constexpr int kUnroll = 4;  // vectors in flight per thread

template <class T>
struct CrossEntropyArgs {
  float* losses;
  T* dlogits;  // nullptr: losses only. Not __restrict__: may alias logits.
  const T* logits;
  const int32_t* targets;
  int Vp, V;
  float dloss;
};

// VEC elements per access: kVec16<T> (16 bytes) or 1.
template <class T, int VEC>
__global__ void __launch_bounds__(kMaxThreads, 2) cross_entropy_kernel(CrossEntropyArgs<T> a) {
  __shared__ MaxSum shared[32];
  const int64_t row = blockIdx.x;
  const T* x = a.logits + row * a.Vp;
  T* dx = a.dlogits ? a.dlogits + row * a.Vp : nullptr;
  const int n_valid = (a.V + VEC - 1) / VEC;  // vectors holding real columns
  const int n_all = a.Vp / VEC;               // Vp % VEC == 0 (launcher)
  const int stride = blockDim.x;
  const int target = a.targets[row];

  if (target < 0) {  // ignored row: uniform over the block, so returning early is safe
    if (threadIdx.x == 0) a.losses[row] = 0.0f;
    if (dx) {
      const float zero[VEC] = {};
      for (int i = threadIdx.x; i < n_all; i += stride) store_floats<VEC>(dx + int64_t{i} * VEC, zero);
    }
    return;
  }
  const bool target_real = target < a.V;
  // Read before block_combine's barrier, so before any thread overwrites the row.
  const float target_logit = threadIdx.x == 0 && target_real ? to_float(x[target]) : 0.0f;

  const MaxSum total = block_combine(thread_max_sum<kUnroll, VEC>(x, n_valid, a.V, stride), shared);
  const float shift = exp_shift(total.m);
  if (threadIdx.x == 0)
    a.losses[row] = target_real ? kLn2 * (log2f(total.s) - fmaf(target_logit, kLog2e, -shift)) : NAN;
  if (!dx) return;

  const float scale = a.dloss / total.s;
  const int hot = target_real ? target : -1;
  for (int i0 = threadIdx.x; i0 < n_all; i0 += kUnroll * stride) {
    float v[kUnroll][VEC] = {};
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * stride;
      if (i < n_valid) load_floats<VEC>(x + int64_t{i} * VEC, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * stride;
      if (i >= n_all) continue;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const int c = i * VEC + k;
        const float g = c < a.V ? exp2f(fmaf(v[u][k], kLog2e, -shift)) * scale : 0.0f;
        v[u][k] = c == hot ? g - a.dloss : g;
      }
      store_floats<VEC>(dx + int64_t{i} * VEC, v[u]);
    }
  }
}

template <class T>
void launch(const CrossEntropy& p, int64_t rows, int Vp) {
  const CrossEntropyArgs<T> a{p.losses.as<float>(),
                              p.dlogits.defined() ? p.dlogits.as<T>() : nullptr,
                              p.logits.as<T>(),
                              p.targets.as<int32_t>(),
                              Vp,
                              p.vocab_size,
                              p.dloss};
  constexpr int kVec = kVec16<T>;
  const bool vectorised =
      rows_vectorisable(int64_t{Vp} * static_cast<int64_t>(sizeof(T)), p.logits.data, p.dlogits.data);
  const int threads = row_threads(vectorised ? Vp / kVec : Vp, kUnroll, kMaxThreads);
  const dim3 grid(static_cast<unsigned>(rows));
  if (vectorised) {
    cross_entropy_kernel<T, kVec><<<grid, threads, 0, current_stream()>>>(a);
  } else {
    cross_entropy_kernel<T, 1><<<grid, threads, 0, current_stream()>>>(a);
  }
  INKSTONE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void cross_entropy(const CrossEntropy& p) {
  if (!p.logits.defined() || !p.losses.defined() || !p.targets.defined())
    throw std::invalid_argument("cuda::cross_entropy: logits, losses and targets are required");
  if (p.logits.dtype != DType::F32 && p.logits.dtype != DType::BF16)
    throw std::invalid_argument("cuda::cross_entropy: logits must be F32 or BF16");
  if (p.losses.dtype != DType::F32) throw std::invalid_argument("cuda::cross_entropy: losses must be F32");
  if (p.targets.dtype != DType::I32) throw std::invalid_argument("cuda::cross_entropy: targets must be I32");
  if (p.logits.ndim < 1) throw std::invalid_argument("cuda::cross_entropy: logits must be [N, Vp]");
  const int64_t Vp = p.logits.dim(-1);
  if (Vp <= 0 || Vp >= (int64_t{1} << 30))
    throw std::invalid_argument("cuda::cross_entropy: the padded vocabulary must be in [1, 2^30)");
  const int64_t rows = p.logits.numel() / Vp;
  if (p.vocab_size <= 0 || p.vocab_size > Vp)
    throw std::invalid_argument("cuda::cross_entropy: vocab_size must be in [1, padded vocab]");
  if (p.losses.numel() != rows) throw std::invalid_argument("cuda::cross_entropy: losses must be [N]");
  if (p.targets.numel() != rows) throw std::invalid_argument("cuda::cross_entropy: targets must be [N]");
  if (p.dlogits.defined()) {
    if (p.dlogits.dtype != p.logits.dtype)
      throw std::invalid_argument("cuda::cross_entropy: dlogits and logits must have one dtype");
    if (p.dlogits.numel() != rows * Vp)
      throw std::invalid_argument("cuda::cross_entropy: dlogits must have logits' shape");
  }
  if (rows > INT32_MAX) throw std::invalid_argument("cuda::cross_entropy: more than 2^31 - 1 rows");
  if (rows == 0) return;
  if (p.logits.dtype == DType::F32) {
    launch<float>(p, rows, static_cast<int>(Vp));
  } else {
    launch<__nv_bfloat16>(p, rows, static_cast<int>(Vp));
  }
}

}  // namespace inkstone::cuda
