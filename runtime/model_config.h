// GPT-2 shapes: the presets and the resolution of a ModelConfig into concrete dimensions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace inkstone {

// The lm-head GEMM runs on aligned tiles: the vocab is padded to a multiple of 128 internally.
constexpr int pad_vocab(int vocab) {
  return (vocab + 127) / 128 * 128;
}

struct GPT2Shape {
  int n_layer = 0;
  int n_head = 0;
  int n_embd = 0;
  int context = 0;
  int vocab = 0;  // the tokenizer's vocabulary, what users and files see

  int padded_vocab() const { return pad_vocab(vocab); }  // internal only: never reaches users or files
  int head_dim() const { return n_embd / n_head; }
  int64_t num_parameters() const;  // with the real (unpadded) vocab, tied embeddings counted once
  bool operator==(const GPT2Shape&) const = default;
};

struct ModelPreset {
  const char* name;
  int n_layer, n_head, n_embd, context, vocab;
  bool gpu_only;  // too large to train on a CPU-sized machine
};

const std::vector<ModelPreset>& model_presets();
const ModelPreset* find_preset(const std::string& name);

// Preset first, then explicit fields; `tokenizer_vocab` fills vocab when the config leaves it 0.
// Throws inkstone::Error on an unknown preset or inconsistent shape (n_embd % n_head, ...).
// Vocab: an explicit model.vocab must equal a nonzero tokenizer_vocab; otherwise the tokenizer's
// vocab wins over the preset's (a preset's 50257 is GPT-2's tokenizer, not part of the architecture).
GPT2Shape resolve_shape(const ModelConfig& config, int tokenizer_vocab);
// The same without a tokenizer: vocab stays 0 when neither preset nor config sets it.
// For checks that need the dimensions before the data is prepared (config validation).
GPT2Shape resolve_architecture(const ModelConfig& config);

// Bytes to train `shape` in fp32 with AdamW at micro_batch B x seq_len T, counted the way llm.c's
// train_gpt2.c sizes its buffers, with inkstone's fused attention (runtime/gpt2_activations.h)
// (C = n_embd, L = n_layer, NH = n_head, Vp = padded vocab):
//   16 bytes x parameters       weights, gradients, AdamW m and v (padded wte rows included)
//   4 bytes x B*T x (
//     L * (17C + NH + 4)        per block: ln_1, qkv (3C), attention out, residual, ln_2, fc (4C),
//                               gelu (4C), residual; 4 layernorm means/rstds; attention keeps only its
//                               log-sum-exp (NH), never a T x T matrix
//     + 15C                     activation gradients, one block's worth reused by every block
//     + 2C + 3 + Vp)            embeddings out, ln_f (+ mean/rstd), loss, logits (dlogits in place)
// It leaves out BLAS/OpenMP workspace, the data loader and the allocator's slack, so it is a floor;
// on a GPU, where activations are bf16, it is an upper bound. Saturates at INT64_MAX, never overflows.
int64_t training_memory_bytes(const GPT2Shape& shape, int micro_batch, int seq_len);

// Throws inkstone::Error when `preset_or_desc` is a GPU-only preset asked to train on the CPU, or when
// training_memory_bytes exceeds `available_bytes` (skipped when available_bytes <= 0: unknown).
// The message names the model, the estimate, the memory available and what to change.
void check_fits_in_memory(const std::string& preset_or_desc, const GPT2Shape& shape, const TrainConfig& train,
                          int64_t available_bytes, bool on_gpu);

}  // namespace inkstone
