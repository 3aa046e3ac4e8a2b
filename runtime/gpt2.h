// GPT-2 (learned positions, pre-LayerNorm, GELU tanh, tied embeddings, final ln_f, eps 1e-5),
// written once against the Backend op interface so the same code runs on every device.
//
// Memory: parameters, gradients and activations are each ONE device buffer, allocated in the
// constructor for the largest batch (max_batch x max_seq tokens); forward and backward allocate
// nothing. Parameters carry Hugging Face GPT-2 names and shapes (see runtime/gpt2_params.h).
//
// Precision: the compute dtype is F32 (the CPU, and the GPU's fp32 mode for tests) or BF16 (mixed
// precision, as llm.c): parameters, gradients, activations, logits and the KV cache are BF16, every
// op accumulates in fp32, the statistics (LayerNorm mean/rstd, attention lse, losses) are F32, and an
// F32 master copy of the parameters is what the optimizer updates and what read_parameter /
// write_parameter (and so checkpoints) see; the BF16 parameters are always bf16(master).
//
// A training micro-step:   loss = model.forward(tokens, targets, B, T); model.backward();
// Gradients accumulate (+=) across backward() calls until zero_grad(). For the gradient of the mean
// loss over all targets of k micro-batches, give micro-batch i loss_scale = counted_i / sum(counted)
// (1/k when every micro-batch counts the same number of targets).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/gpt2_activations.h"
#include "runtime/gpt2_params.h"
#include "runtime/model_config.h"

namespace inkstone {

struct ModelMemory {
  size_t parameters = 0;   // bytes, alignment gaps and wte padding included
  size_t gradients = 0;    // same layout as the parameters
  size_t activations = 0;  // forward activations, logits, activation gradients, tokens and targets
  size_t kv_cache = 0;     // keys and values of allocate_kv_cache (0 until it is called)
  size_t total() const { return parameters + gradients + activations + kv_cache; }
};

struct GPT2Options {
  DType compute = DType::F32;  // F32 or BF16 (mixed precision; the backend must support it: CUDA does)
  Recompute recompute = Recompute::None;  // see runtime/gpt2_activations.h
};

class GPT2 {
 public:
  static constexpr float kLayerNormEps = 1e-5f;

  // Parameters start at zero: call initialize(seed) or write_parameter(...) for every tensor.
  GPT2(Backend& backend, const GPT2Shape& shape, int max_batch, int max_seq, const GPT2Options& options = {});
  GPT2(const GPT2&) = delete;
  GPT2& operator=(const GPT2&) = delete;

  // GPT-2 / nanoGPT initialisation, deterministic for `seed` on every machine.
  void initialize(uint64_t seed);

  // Forward pass over tokens [B*T] (row-major [B, T], ids in [0, vocab)). With targets (same size;
  // a target < 0 is ignored) returns the mean cross-entropy over the counted targets (0 when none
  // is counted); without targets (empty span) returns 0 and only computes logits.
  // Requires B * T <= max_batch * max_seq and T <= context. Throws inkstone::Error on bad input.
  float forward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int B, int T);
  // The same with I32 tensors already on the device (targets may be undefined). They must stay
  // alive and unchanged until backward() has run. Token ids are trusted (the data loader checks them).
  float forward(Tensor tokens, Tensor targets, int B, int T);

  // Adds to the parameter gradients the gradient of loss_scale * (the loss of the last forward).
  // Requires a forward with targets since the last backward. Overwrites the logits (dlogits reuses
  // their buffer), so read logits before calling this.
  // `layer_done` (optional) is called with l once the ops producing block h.l's gradients are queued
  // (l = n_layer-1 down to 0; ln_f's are queued before the first call), then with -1 once wte's and
  // wpe's are: a data-parallel run starts reducing finished gradients while the rest of the backward
  // runs (train/gradient_sync.h).
  void backward(float loss_scale = 1.0f, const std::function<void(int layer)>& layer_done = {});

  void zero_grad();

  // Dropout (GPT-2's embd_pdrop and resid_pdrop) for the forwards that follow: on the embeddings and on
  // each attention and MLP projection before it joins the residual stream; attention probabilities are
  // not dropped. Masks are drawn from `seed` (see Dropout in kernels/ops.h), so a given (p, seed) makes
  // forward, backward and a resumed run reproducible; backward() reuses the last forward's masks.
  // p = 0 (the default) turns it off, as evaluation and generation need. Requires 0 <= p < 1.
  void set_dropout(float p, uint64_t seed);

  // ---- Inference with a KV cache ----
  // Allocates the cache once: keys and values of every layer for `batch` sequences of up to `capacity`
  // positions (1 <= capacity <= context, batch >= 1). Calling it again with a larger size reallocates;
  // any call forgets what the cache held (every sequence starts again from position 0).
  void allocate_kv_cache(int batch, int capacity);
  // Runs T new tokens for each of B sequences, rows [first_row, first_row + B) of the cache: sequence
  // b's tokens (tokens[b*T .. b*T+T), row-major [B, T]) stand at positions start[b] + [0, T). Their keys
  // and values are stored in the cache; the logits of every new token are then readable through
  // logits() / read_logits() (row b*T + t). A sequence's earlier positions must have been filled by
  // earlier calls; anything it stores past its own true length (right padding of a shorter prompt)
  // is overwritten by its later tokens before it is ever read. Requires start[b] >= 0,
  // start[b] + T <= capacity, B*T <= max_batch*max_seq. Dropout is not applied. Throws on bad input.
  void forward_cached(std::span<const int32_t> tokens, std::span<const int32_t> start, int B, int T,
                      int first_row = 0);
  int kv_cache_batch() const { return kv_batch_; }
  int kv_cache_capacity() const { return kv_capacity_; }

  // Logits of the last forward, [B*T, padded_vocab] in the compute dtype; columns >= vocab are
  // padding (zero).
  // Valid until backward() or the next forward.
  Tensor logits() const;
  // The real-vocabulary logits of rows [first_row, first_row + rows) of the last forward, on the host,
  // row-major [rows, vocab].
  std::vector<float> read_logits(int64_t first_row, int64_t rows) const;
  // The same into `out` (rows * vocab floats), for decode loops that must not allocate per token.
  void read_logits(int64_t first_row, int64_t rows, std::span<float> out) const;
  int64_t counted_targets() const { return counted_targets_; }  // of the last forward

  // Parameters by Hugging Face name, host float vectors in HF shape (wte: [vocab, C], no padding).
  // In mixed precision these read and write the F32 master copy (writes also refresh the BF16 one).
  const std::vector<ParamInfo>& parameters() const { return layout_.table; }
  const ParamInfo& parameter(const std::string& name) const;  // throws inkstone::Error if unknown
  std::vector<float> read_parameter(const std::string& name) const;
  void write_parameter(const std::string& name, std::span<const float> values);
  std::vector<float> read_gradient(const std::string& name) const;

  // Whole buffers and per-tensor views (param.allocated elements, padding included) for optimizers,
  // in the compute dtype; master_view is the F32 master copy (undefined when computing in F32).
  Tensor parameter_buffer() const { return params_.view(); }
  Tensor gradient_buffer() const { return grads_.view(); }
  Tensor parameter_view(const ParamInfo& param) const;
  Tensor gradient_view(const ParamInfo& param) const;
  Tensor master_view(const ParamInfo& param) const;
  Tensor master_buffer() const { return master_.view(); }  // undefined when computing in F32
  DType compute_dtype() const { return compute_; }
  bool mixed_precision() const { return compute_ != DType::F32; }

  const GPT2Shape& shape() const { return shape_; }
  int max_batch() const { return max_batch_; }
  int max_seq() const { return max_seq_; }
  Backend& backend() const { return backend_; }
  ModelMemory memory() const;

 private:
  enum class Stage { Empty, Logits, Loss, BackwardDone };

  struct Batch {
    int B = 0, T = 0;
    int64_t N() const { return int64_t{B} * T; }
  };

  // What turns a forward pass into a KV-cache step: per-sequence start positions (I32 [B], on the
  // device) and the first cache row the batch's sequences occupy.
  struct CachedStep {
    Tensor start;
    int first_row = 0;
  };

  // `cached` null: a training/evaluation pass over whole sequences; otherwise a KV-cache step.
  float run_forward(Tensor tokens, Tensor targets, const Batch& batch, const CachedStep* cached = nullptr);
  void block_forward(int layer, Tensor residual_in, const Batch& batch, const CachedStep* cached);
  // Layer `layer`'s keys (part 0) or values (part 1) for cache rows [first_row, first_row + B).
  Tensor kv_cache_view(int layer, int part, int first_row, int B) const;
  void block_backward(int layer, Tensor residual_in, Tensor d_residual, const Batch& batch);
  void recompute_layernorm(int layer, int which, int64_t N, Tensor residual_in = {});
  // LayerNorm `which` (1 or 2) of `layer`, or ln_f for layer == n_layer, on `inp`: where it writes its
  // output and statistics, and its parameters. The forward pass and the recomputation share it.
  LayerNormForward layernorm_of(int layer, int which, Tensor inp, int64_t N) const;
  void check_batch(int B, int T) const;
  enum class DropoutSite { Embedding, Attention, Mlp };
  // Applies the last forward's dropout to `t` in place (a no-op when p = 0).
  void apply_dropout(Tensor out, Tensor inp, int layer, DropoutSite site);
  void* act(int64_t byte_offset) const { return static_cast<char*>(activations_.view().data) + byte_offset; }
  Tensor rows(int64_t offset, int64_t n, int64_t cols) const;  // [n, cols] of the compute dtype
  Tensor stats(int64_t offset, int64_t n) const;               // [n] F32 statistics
  // The elements [offset, offset + n) of a parameter-layout buffer of the compute dtype.
  Tensor element_view(const DeviceTensor& buffer, int64_t offset, int64_t n) const;
  // Host floats from a device tensor of the compute dtype (widened from BF16 through `staging`).
  void download_floats(float* host, Tensor src) const;

  Backend& backend_;
  GPT2Shape shape_;
  int max_batch_, max_seq_;
  DType compute_;
  Recompute recompute_;
  ParameterLayout layout_;
  ActivationOffsets acts_;
  DeviceTensor params_, grads_, activations_, tokens_, targets_;
  DeviceTensor master_;     // F32 parameters in mixed precision; empty otherwise
  DeviceTensor kv_cache_;   // [n_layer][2 (k, v)][kv_batch_][n_head][kv_capacity_][head_dim]
  DeviceTensor positions_;  // I32 [max_batch * max_seq]: start positions of forward_cached
  int kv_batch_ = 0, kv_capacity_ = 0;
  GPT2Weights weights_, weight_grads_;

  Stage stage_ = Stage::Empty;
  Batch batch_;
  Tensor batch_tokens_, batch_targets_;  // the views the last forward ran on
  int64_t counted_targets_ = 0;
  float dropout_p_ = 0.0f;  // set_dropout's, for the next forward
  uint64_t dropout_seed_ = 0;
  float forward_dropout_p_ = 0.0f;  // what the last forward used, for its backward
  uint64_t forward_dropout_seed_ = 0;
  std::vector<float> host_losses_;           // staging, sized once
  std::vector<int32_t> host_targets_;        // staging for device targets, sized once
  mutable std::vector<uint16_t> host_bf16_;  // staging for BF16 downloads (grows to the largest read)
};

}  // namespace inkstone
