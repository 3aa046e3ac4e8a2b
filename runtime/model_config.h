// GPT-2 shapes: the presets and the resolution of a ModelConfig into concrete dimensions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace inkstone {

struct GPT2Shape {
  int n_layer = 0;
  int n_head = 0;
  int n_embd = 0;
  int context = 0;
  int vocab = 0;         // the tokenizer's vocabulary, what users and files see
  int padded_vocab = 0;  // vocab rounded up to a multiple of 128, internal only

  int head_dim() const { return n_embd / n_head; }
  int64_t num_parameters() const;  // with the real (unpadded) vocab, tied embeddings counted once
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
GPT2Shape resolve_shape(const ModelConfig& config, int tokenizer_vocab);

int pad_vocab(int vocab);  // to a multiple of 128

}  // namespace inkstone
