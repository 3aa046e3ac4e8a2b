// The model part of a checkpoint directory, shared by training (which adds optimizer.safetensors and
// state.json, see train/run_checkpoint.h) and by eval / generate / serve, which need only this:
//
//   model.safetensors  every parameter as F32 under its Hugging Face GPT-2 name and shape
//                      (wte [vocab, C] without padding; tied lm_head not stored, as HF does)
//   config.json        Hugging Face GPT2Config fields (model_type gpt2, n_layer, n_head, n_embd,
//                      n_positions, vocab_size, activation_function gelu_new, layer_norm_epsilon,
//                      tie_word_embeddings, eos/bos token ids ...) plus an "inkstone" object:
//                      {"format": 1, "run_config": <resolved config as YAML text>, "tokenizer_sha256": hex}
//   tokenizer.json     the Hugging Face tokenizer the model was trained with
//
// Readers validate everything against everything: config.json against the safetensors names, dtypes
// and shapes, the tokenizer's vocab and hash against config.json. Errors name the file and the fix.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "runtime/config.h"
#include "runtime/gpt2.h"
#include "runtime/model_config.h"
#include "runtime/tokenizer.h"

namespace inkstone {

inline constexpr const char* kModelWeightsFile = "model.safetensors";
inline constexpr const char* kModelConfigFile = "config.json";
// kTokenizerFile ("tokenizer.json") is declared in runtime/prepare.h.

// Writes the three files into `dir` (which must exist), each durably (tmp, fsync, rename).
// `tokenizer_json` is the exact tokenizer.json text the data was prepared with.
void write_model_files(const std::filesystem::path& dir, const GPT2& model, const RunConfig& config,
                       const std::string& tokenizer_json);

struct ModelCheckpointInfo {
  std::filesystem::path dir;
  RunConfig config;  // the resolved run config stored in config.json
  GPT2Shape shape;   // from config.json, checked against run_config
  std::string tokenizer_json;
  std::unique_ptr<Tokenizer> tokenizer;  // vocab_size() == shape.vocab
};

// Reads config.json and tokenizer.json of checkpoint `dir` and checks them against each other.
// Does not parse the weights, but checks every model file against the checkpoint's checksums.sha256
// when it has one (see runtime/checkpoint_manifest.h). Throws inkstone::Error naming the file.
ModelCheckpointInfo read_model_checkpoint_info(const std::filesystem::path& dir);

// Reads model.safetensors of `dir` into `model`: the names must be exactly the model's parameters
// (HF's "transformer." prefix, attn.bias / attn.masked_bias buffers and a tied lm_head.weight equal
// to wte are accepted and skipped), each shape must match. Throws inkstone::Error naming the tensor.
void load_model_weights(const std::filesystem::path& dir, GPT2& model);

// Builds a model on `backend` sized for max_batch x max_seq (max_seq <= context) and loads `dir` into it.
std::unique_ptr<GPT2> load_model(const ModelCheckpointInfo& info, Backend& backend, int max_batch,
                                 int max_seq);

}  // namespace inkstone
