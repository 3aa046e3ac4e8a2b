// GPT-2 (learned positions, pre-LayerNorm, GELU tanh, tied embeddings, final ln_f, eps 1e-5),
// written once against the Backend op interface so the same code runs on every device.
//
// Memory: parameters, gradients and activations are each ONE device buffer, allocated in the
// constructor for the largest batch (max_batch x max_seq tokens); forward and backward allocate
// nothing. Parameters carry Hugging Face GPT-2 names and shapes (see runtime/gpt2_params.h).
//
// A training micro-step:   loss = model.forward(tokens, targets, B, T); model.backward();
// Gradients accumulate (+=) across backward() calls until zero_grad(). For the gradient of the mean
// loss over all targets of k micro-batches, give micro-batch i loss_scale = counted_i / sum(counted)
// (1/k when every micro-batch counts the same number of targets).
#pragma once

#include <cstdint>
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
  size_t total() const { return parameters + gradients + activations; }
};

class GPT2 {
 public:
  static constexpr float kLayerNormEps = 1e-5f;

  // Parameters start at zero: call initialize(seed) or write_parameter(...) for every tensor.
  GPT2(Backend& backend, const GPT2Shape& shape, int max_batch, int max_seq);
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
  void backward(float loss_scale = 1.0f);

  void zero_grad();

  // Dropout (GPT-2's embd_pdrop and resid_pdrop) for the forwards that follow: on the embeddings and on
  // each attention and MLP projection before it joins the residual stream; attention probabilities are
  // not dropped. Masks are drawn from `seed` (see Dropout in kernels/ops.h), so a given (p, seed) makes
  // forward, backward and a resumed run reproducible; backward() reuses the last forward's masks.
  // p = 0 (the default) turns it off, as evaluation and generation need. Requires 0 <= p < 1.
  void set_dropout(float p, uint64_t seed);

  // Logits of the last forward, [B*T, padded_vocab]; columns >= vocab are padding (zero).
  // Valid until backward() or the next forward.
  Tensor logits() const;
  // The real-vocabulary logits of rows [first_row, first_row + rows) of the last forward, on the host,
  // row-major [rows, vocab].
  std::vector<float> read_logits(int64_t first_row, int64_t rows) const;
  int64_t counted_targets() const { return counted_targets_; }  // of the last forward

  // Parameters by Hugging Face name, host float vectors in HF shape (wte: [vocab, C], no padding).
  const std::vector<ParamInfo>& parameters() const { return layout_.table; }
  const ParamInfo& parameter(const std::string& name) const;  // throws inkstone::Error if unknown
  std::vector<float> read_parameter(const std::string& name) const;
  void write_parameter(const std::string& name, std::span<const float> values);
  std::vector<float> read_gradient(const std::string& name) const;

  // Whole buffers and per-tensor views (param.allocated floats, padding included) for optimizers.
  Tensor parameter_buffer() const { return params_.view(); }
  Tensor gradient_buffer() const { return grads_.view(); }
  Tensor parameter_view(const ParamInfo& param) const;
  Tensor gradient_view(const ParamInfo& param) const;

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

  float run_forward(Tensor tokens, Tensor targets, const Batch& batch);
  void block_forward(int layer, Tensor residual_in, const Batch& batch);
  void block_backward(int layer, Tensor residual_in, Tensor d_residual, const Batch& batch);
  void check_batch(int B, int T) const;
  enum class DropoutSite { Embedding, Attention, Mlp };
  // Applies the last forward's dropout to `t` in place (a no-op when p = 0).
  void apply_dropout(Tensor out, Tensor inp, int layer, DropoutSite site);
  float* act(int64_t offset) const { return activations_.view().as<float>() + offset; }
  Tensor rows(int64_t offset, int64_t n, int64_t cols) const;  // [n, cols] at a float offset
  Tensor flat(int64_t offset, int64_t n) const;                // [n]

  Backend& backend_;
  GPT2Shape shape_;
  int max_batch_, max_seq_;
  ParameterLayout layout_;
  ActivationOffsets acts_;
  DeviceTensor params_, grads_, activations_, tokens_, targets_;
  GPT2Weights weights_, weight_grads_;

  Stage stage_ = Stage::Empty;
  Batch batch_;
  Tensor batch_tokens_, batch_targets_;  // the views the last forward ran on
  int64_t counted_targets_ = 0;
  float dropout_p_ = 0.0f;  // set_dropout's, for the next forward
  uint64_t dropout_seed_ = 0;
  float forward_dropout_p_ = 0.0f;  // what the last forward used, for its backward
  uint64_t forward_dropout_seed_ = 0;
  std::vector<float> host_losses_;     // staging, sized once
  std::vector<int32_t> host_targets_;  // staging for device targets, sized once
};

}  // namespace inkstone
