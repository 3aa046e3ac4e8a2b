// The op contract shared by every backend (kernels/cpu, kernels/cuda) and the model above them.
//
// Layouts: row-major; activations are [N, C] with N = B*T rows. Weights follow Hugging Face GPT-2:
// Conv1D weights are [in, out] (WeightLayout::InOut); the tied lm_head reads wte as [out, in] (OutIn).
//
// Gradient contract (as in llm.c): every backward op ACCUMULATES (+=) into each gradient it produces,
// parameter and activation gradients alike, so the caller zeroes gradient buffers once per step and
// gradient accumulation over micro-batches is free. The one exception is cross_entropy, which
// OVERWRITES dlogits (it may alias logits). An optional tensor is "absent" when !defined().
#pragma once

#include "kernels/tensor.h"

// Functions that host and device code must compute identically (the dropout mask) are compiled
// for both when nvcc sees them.
#ifdef __CUDACC__
#define INKSTONE_HOST_DEVICE __host__ __device__
#else
#define INKSTONE_HOST_DEVICE
#endif

namespace inkstone {

enum class WeightLayout : uint8_t {
  InOut,  // weight [C, OC]: out = inp @ weight        (HF Conv1D)
  OutIn,  // weight [OC, C]: out = inp @ weight^T      (nn.Linear, tied lm_head)
};

enum class Epilogue : uint8_t { None, Gelu };

// out[B,T,C] = wte[tokens[b,t]] + wpe[start_b + t], start_b = positions[b] when `positions` (I32 [B],
// each sequence's first position: KV-cache decoding, where sequences have different lengths) is
// defined, else pos_offset.
struct EmbeddingForward {
  Tensor out, tokens /*I32 [B,T]*/, wte /*[V,C]*/, wpe /*[ctx,C]*/;
  int pos_offset = 0;
  Tensor positions = {} /*optional I32 [B]*/;
};
// dwte += scatter(dout), dwpe += sum over batch of dout
struct EmbeddingBackward {
  Tensor dwte, dwpe, dout /*[B,T,C]*/, tokens;
  int pos_offset = 0;
};

// out[N,OC] = epilogue(inp[N,C] . W + bias). With Epilogue::Gelu the pre-activation is kept in
// pre_gelu (needed by the backward pass) and out holds gelu(pre_gelu).
struct MatmulForward {
  Tensor out, inp, weight, bias /*optional [OC]*/, pre_gelu /*[N,OC] with Gelu*/;
  WeightLayout layout = WeightLayout::InOut;
  Epilogue epilogue = Epilogue::None;
};
// dinp += dout . W^T ; dweight += (layout-shaped) inp^T . dout ; dbias += colsum(dout)
struct MatmulBackward {
  Tensor dinp /*optional*/, dweight, dbias /*optional*/, dout, inp, weight;
  WeightLayout layout = WeightLayout::InOut;
};

// out = (inp - mean) * rstd * weight + bias, row-wise over C; mean and rstd [N] are saved.
struct LayerNormForward {
  Tensor out, mean, rstd, inp, weight, bias;
  float eps = 1e-5f;
};
struct LayerNormBackward {
  Tensor dinp, dweight, dbias, dout, inp, weight, mean, rstd;
};

// The residual add fused with the LayerNorm that reads its result (llm.c's fused_residual_forward):
// residual = a + b, then out = LayerNorm(residual) as LayerNormForward with inp = residual, in one pass
// over the rows. Gives the bits of Add{residual, a, b} followed by that LayerNormForward: in BF16 the
// sum is rounded when stored and the LayerNorm normalises the stored value, so a LayerNorm recomputed
// later from `residual` alone reproduces out, mean and rstd exactly. Shapes: a, b, residual, out [N,C]
// (any leading dims; C is residual's last); weight, bias [C]; mean, rstd [N] (F32; may be absent).
// OVERWRITES residual, out, mean and rstd. residual may alias a or b; out aliases none of a, b,
// residual. No backward op: the add passes its gradient through unchanged, so LayerNormBackward's
// dinp (which accumulates) is already the gradient of a and of b.
struct ResidualLayerNormForward {
  Tensor residual, out, mean, rstd, a, b, weight, bias;
  float eps = 1e-5f;
};

// Causal multi-head self-attention over packed qkv [B,T,3C] (q | k | v, heads contiguous in C).
// out [B,T,C]; lse [B,NH,T] (log-sum-exp of the scaled scores) lets the backward pass rebuild
// the probabilities without storing a T x T matrix.
struct AttentionForward {
  Tensor out, lse, qkv;
  int n_head = 0;
};
struct AttentionBackward {
  Tensor dqkv, dout, qkv, out, lse;
  int n_head = 0;
};

// Causal self-attention of T new tokens per sequence over a KV cache (inference; no backward pass).
// Sequence b's new tokens stand at positions start[b] + [0, T). Their keys and values (from qkv) are
// first written into the cache at those positions; then the query at position p attends to cache
// positions [0, p]. k_cache and v_cache are one layer's cache, [B, NH, capacity, hd] each, and
// start[b] + T <= capacity. Cache positions a sequence has not reached may hold anything: they are
// never read, so a batch of prompts of different lengths is prefilled right-padded in one call, the
// padding's keys landing where the sequence's later tokens will overwrite them.
// OVERWRITES out and the cache at the new positions.
struct AttentionKvCache {
  Tensor out /*[B,T,C]*/, qkv /*[B,T,3C]*/, k_cache, v_cache, start /*I32 [B]*/;
  int n_head = 0;
};

// Row-wise softmax over the first `valid_cols` columns of inp [N, cols]; padded columns get 0.
struct SoftmaxForward {
  Tensor out, inp;
  int valid_cols = 0;
};

// Fused softmax + cross-entropy over logits [N, Vp] whose first `vocab_size` columns are real.
// losses[i] = -log softmax(logits[i])[targets[i]]; targets < 0 are ignored (loss 0, zero gradient).
// When dlogits is defined it is OVERWRITTEN with dloss * (softmax - onehot) (zero in the padding);
// it may alias logits. Probabilities are never stored.
struct CrossEntropy {
  Tensor losses /*[N]*/, dlogits /*optional*/, logits, targets /*I32 [N]*/;
  int vocab_size = 0;
  float dloss = 1.0f;
};

// GELU, tanh approximation (GPT-2's "gelu_new").
struct GeluForward {
  Tensor out, inp;
};
struct GeluBackward {
  Tensor dinp, inp, dout;  // dinp must not alias dout
};

// out = a + b (elementwise, same shape). out may alias a or b.
struct Add {
  Tensor out, a, b;
};

// Inverted dropout: out[i] = keep(seed, i) ? inp[i] / (1 - p) : 0, with keep(seed, i) a pure function
// of (seed, i) (a counter-based hash, as Philox in PyTorch's CUDA dropout), so no mask is stored: the
// backward pass is this same op on the gradient with the same seed, and every backend and thread count
// drops exactly the same elements. out may alias inp. 0 <= p < 1; p = 0 copies.
struct Dropout {
  Tensor out, inp;
  float p = 0.0f;
  uint64_t seed = 0;
};

// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijection of 64-bit words whose output bits
// look independent of its input's. Derives dropout masks and the seeds of each mask.
INKSTONE_HOST_DEVICE constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The mask of Dropout, for CPU and GPU alike: element i is kept unless its 32-bit hash falls below
// p * 2^32 (SplitMix64's step over (seed, i)).
INKSTONE_HOST_DEVICE constexpr bool dropout_keeps(uint64_t seed, uint64_t i, uint32_t threshold) {
  return static_cast<uint32_t>(mix64(seed + (i + 1) * 0x9E3779B97F4A7C15ull) >> 32) >= threshold;
}
// threshold for dropout_keeps: p * 2^32, saturating below 2^32.
INKSTONE_HOST_DEVICE constexpr uint32_t dropout_threshold(float p) {
  const double t = static_cast<double>(p) * 4294967296.0;
  return t >= 4294967295.0 ? 4294967295u : static_cast<uint32_t>(t);
}

// Decoupled-weight-decay Adam on one parameter tensor; grads are multiplied by grad_scale first
// (clipping). step is 1-based (bias correction). m, v and master are fp32. When master is defined
// the update happens on it and params receive a cast of the result (mixed precision).
struct AdamW {
  Tensor params, grads, m, v, master;
  float lr = 0, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0, grad_scale = 1;
  int step = 1;
};

// out = cast(inp); same numel, dtypes F32 <-> BF16.
struct Cast {
  Tensor out, inp;
};

}  // namespace inkstone
