// AdamW over a GPT2's parameter buffer, with global-norm gradient clipping.
//
// State: fp32 first and second moments (m, v), one device buffer each, with the parameter buffer's
// layout (so checkpoints can name them per tensor), and the step counter. In mixed precision the
// update runs on the model's fp32 master copy (GPT2::master_view) and refreshes its BF16 parameters.
// Weight decay applies to the 2-D tensors only (every matrix, wte and wpe included) and never to
// biases or LayerNorm parameters, as in nanoGPT and GPT-2 reproductions.
#pragma once

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/gpt2.h"

namespace inkstone {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;  // max global L2 norm of the gradients; <= 0 disables clipping
};

class AdamWOptimizer {
 public:
  // Updates every parameter, with m and v over the whole buffer.
  AdamWOptimizer(GPT2& model, const AdamWConfig& config);
  // ZeRO-1: updates only elements [shard_begin, shard_end) of the parameter buffer and holds m and v
  // for those alone (a data-parallel rank's part; the trainer all-gathers the parameters afterwards).
  // The norm is still that of the whole gradient buffer, which every rank holds after the all-reduce.
  AdamWOptimizer(GPT2& model, const AdamWConfig& config, int64_t shard_begin, int64_t shard_end);
  AdamWOptimizer(const AdamWOptimizer&) = delete;
  AdamWOptimizer& operator=(const AdamWOptimizer&) = delete;

  // One update of every parameter from the model's gradients at learning rate `lr`, clipping the
  // gradients to a global norm of config.grad_clip first (scale min(1, clip / (norm + 1e-6)), as
  // torch.nn.utils.clip_grad_norm_). Returns the global gradient norm before clipping.
  // When that norm is not finite, nothing is updated and the step counter does not advance: the
  // caller sees the NaN/Inf and decides (skip the batch, stop the run).
  float step(float lr);

  // step() in two halves, for data-parallel ranks that must all apply the same norm: the global norm of
  // the gradient buffer (its reduction order may differ between ranks with different thread counts or
  // devices), then the update with a given norm (nothing happens when it is not finite).
  double gradient_norm() const;
  float apply(float lr, double norm);

  int64_t steps() const { return steps_; }           // updates applied so far
  void set_steps(int64_t steps) { steps_ = steps; }  // when restoring a checkpoint
  // The moments of elements [shard_begin(), shard_end()) of the parameter buffer.
  Tensor m() const { return m_.view(); }
  Tensor v() const { return v_.view(); }
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_end() const { return shard_end_; }
  const AdamWConfig& config() const { return config_; }
  size_t memory_bytes() const { return m_.view().nbytes() + v_.view().nbytes(); }

 private:
  GPT2& model_;
  AdamWConfig config_;
  DeviceTensor m_, v_;
  int64_t shard_begin_ = 0, shard_end_ = 0;
  int64_t steps_ = 0;
};

}  // namespace inkstone
